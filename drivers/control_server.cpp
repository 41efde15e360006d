#include "drivers/control_server.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

namespace meterd::drivers {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

ControlSession::ControlSession(stream::socket socket, ControlServer& server, std::uint64_t number)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      server_(&server),
      number_(number) {}

ControlSession::~ControlSession() = default;

bool ControlSession::send(std::string line) {
  if (!open_) return false;
  const std::size_t max = server_ ? server_->options_.limits.max_output : 0;
  if (unsent_ + line.size() + 1 > max) return false;
  line.push_back('\n');
  unsent_ += line.size();
  out_.push_back(std::move(line));
  write_next();
  return true;
}

void ControlSession::finish(std::string line) {
  if (!open_ || !busy_) return;
  end_on_eof_ = false;
  line.push_back('\n');
  unsent_ += line.size();
  out_.push_back(std::move(line));
  busy_ = false;
  write_next();
  // The next request is taken from the loop, not from inside the handler
  // that called finish() (which may still be on the stack).
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->read_next(); });
}

void ControlSession::on_drained(std::function<void()> hook) { drained_ = std::move(hook); }
void ControlSession::on_close(std::function<void()> hook) { closed_ = std::move(hook); }

void ControlSession::close() {
  if (!open_) return;
  open_ = false;
  const auto keep = shared_from_this();  // the server drops its reference below
  boost::system::error_code ignored;
  timer_.cancel();
  socket_.shutdown(stream::socket::shutdown_both, ignored);
  socket_.close(ignored);
  out_.clear();
  unsent_ = 0;
  drained_ = nullptr;
  auto hook = std::move(closed_);
  closed_ = nullptr;
  if (server_) server_->closed(this);
  server_ = nullptr;
  if (hook) hook();
}

// Takes the next complete request line when no request is running and the
// client has read what it was sent; otherwise reads more.
void ControlSession::read_next() {
  if (!open_ || busy_) return;
  const ControlLimits& limits = server_->options_.limits;
  if (unsent_ > limits.max_output) return;  // write_next() calls again once it drains
  const auto nl = in_.find('\n');
  if (nl != std::string::npos) {
    std::string line = in_.substr(0, nl);
    in_.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {  // blank lines are skipped
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->read_next(); });
      return;
    }
    busy_ = true;
    timer_.cancel();
    auto handler = server_->handler_;  // a copy: the handler may stop the server
    handler(shared_from_this(), std::move(line));
    if (busy_ && open_ && !reading_) {
      // Keep reading while the request runs, to notice a client that goes away.
      arm_idle();
    }
    return;
  }
  if (in_.size() > limits.max_line) {
    busy_ = true;
    const std::string text =
        "request line longer than " + std::to_string(limits.max_line) + " bytes";
    finish(server_->refusal_("malformed", text));
    // Nothing after an over-long line can be trusted to start a request.
    in_.clear();
    eof_after_write();
    return;
  }
  if (reading_) return;
  if (eof_) {
    if (out_.empty())
      close();
    else
      close_after_write_ = true;
    return;
  }
  arm_idle();
}

void ControlSession::eof_after_write() {
  close_after_write_ = true;
  if (out_.empty() && !writing_) close();
}

void ControlSession::arm_idle() {
  if (!open_) return;
  const ControlLimits& limits = server_->options_.limits;
  if (!busy_) {
    // A started line must end soon; an idle connection may wait long.
    timer_.expires_after(in_.empty() ? limits.idle_timeout : limits.line_timeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && !self->busy_) self->close();
    });
  }
  if (reading_ || eof_) return;
  // While a request runs, input is only kept up to one line's worth more.
  if (busy_ && in_.size() > limits.max_line) return;
  reading_ = true;
  auto self = shared_from_this();
  socket_.async_read_some(asio::buffer(chunk_), [self](const boost::system::error_code& ec,
                                                       std::size_t n) { self->on_read(ec, n); });
}

void ControlSession::on_read(const boost::system::error_code& ec, std::size_t n) {
  reading_ = false;
  if (!open_) return;
  if (ec) {
    if (ec == asio::error::eof) {
      // The client may have shut down its side after sending: answer what
      // it asked, then close. A request still running (tail) ends here.
      eof_ = true;
      if (busy_) {
        if (end_on_eof_) close();
        return;
      }
      read_next();
      return;
    }
    close();
    return;
  }
  in_.append(chunk_.data(), n);
  if (busy_) {
    arm_idle();
    return;
  }
  timer_.cancel();
  read_next();
}

void ControlSession::write_next() {
  if (!open_ || writing_ || out_.empty()) return;
  writing_ = true;
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(out_.front()),
                    [self](const boost::system::error_code& ec, std::size_t) {
                      self->writing_ = false;
                      if (!self->open_) return;
                      if (ec) {
                        self->close();
                        return;
                      }
                      self->unsent_ -= self->out_.front().size();
                      self->out_.pop_front();
                      const std::size_t max = self->server_->options_.limits.max_output;
                      if (self->drained_ && self->unsent_ <= max / 2) {
                        auto hook = std::move(self->drained_);
                        self->drained_ = nullptr;
                        hook();
                        if (!self->open_) return;
                      }
                      if (self->out_.empty() && self->close_after_write_) {
                        self->close();
                        return;
                      }
                      self->write_next();
                      if (!self->busy_) self->read_next();
                    });
}

ControlServer::ControlServer(asio::io_context& io, ControlSocketOptions options, Handler handler,
                             Refusal refusal)
    : io_(io),
      options_(std::move(options)),
      handler_(std::move(handler)),
      refusal_(std::move(refusal)),
      acceptor_(io) {}

ControlServer::~ControlServer() { stop(); }

namespace {

// Is a server answering on `path`? (A socket file left by a dead process
// refuses connections.)
bool someone_listens(asio::io_context& io, const std::filesystem::path& path) {
  stream::socket probe(io);
  boost::system::error_code ec;
  probe.connect(stream::endpoint(path.string()), ec);
  return !ec;
}

}  // namespace

std::error_code ControlServer::start() {
  namespace fs = std::filesystem;
  std::error_code fec;
  const auto st = fs::symlink_status(options_.path, fec);
  if (!fec && fs::exists(st)) {
    if (st.type() != fs::file_type::socket) return std::make_error_code(std::errc::file_exists);
    if (someone_listens(io_, options_.path)) return std::make_error_code(std::errc::address_in_use);
    fs::remove(options_.path, fec);
  }
  boost::system::error_code ec;
  acceptor_.open(stream(), ec);
  if (!ec) acceptor_.bind(stream::endpoint(options_.path.string()), ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return {ec.value(), std::generic_category()};
  }
  struct stat sb {};
  if (::stat(options_.path.c_str(), &sb) == 0) inode_ = sb.st_ino;
  std::error_code result;
  if (!options_.group.empty()) {
    const group* g = ::getgrnam(options_.group.c_str());
    if (g == nullptr) {
      result = std::make_error_code(std::errc::invalid_argument);
    } else if (::chown(options_.path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
      result = {errno, std::generic_category()};
    }
  }
  if (!result && ::chmod(options_.path.c_str(), options_.mode) != 0)
    result = {errno, std::generic_category()};
  if (result) {
    stop();
    return result;
  }
  started_ = true;
  accept();
  return {};
}

void ControlServer::stop() {
  if (!acceptor_.is_open() && !started_) return;
  started_ = false;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  auto live = std::move(live_);
  live_.clear();
  for (auto& s : live) s->close();
  struct stat sb {};
  if (inode_ != 0 && ::stat(options_.path.c_str(), &sb) == 0 && sb.st_ino == inode_) {
    std::error_code ec;
    std::filesystem::remove(options_.path, ec);
  }
  inode_ = 0;
}

void ControlServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, stream::socket s) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      auto session = std::make_shared<ControlSession>(std::move(s), *this, next_number_++);
      const bool full = live_.size() >= options_.limits.max_clients;
      live_.push_back(session);
      if (full) {
        // One answer line, then close: the client learns why.
        session->busy_ = true;
        session->finish(refusal_("busy", "too many control connections (" +
                                             std::to_string(options_.limits.max_clients) +
                                             "); try again"));
        session->eof_after_write();
      } else {
        session->read_next();
      }
    }
    accept();
  });
}

void ControlServer::closed(ControlSession* s) {
  std::erase_if(live_, [s](const auto& p) { return p.get() == s; });
}

}  // namespace meterd::drivers
