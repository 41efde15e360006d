#include "tests/support/system.hpp"

#include <atomic>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "protocol/dlt645/frame.hpp"
#include "protocol/modbus_codec/tcp.hpp"

namespace meterd::testing {

Process::Process(const std::string& program, const std::vector<std::string>& args,
                 const std::filesystem::path& log) {
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    if (!log.empty()) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
}

Process::~Process() {
  if (running()) stop(SIGTERM, std::chrono::seconds(3));
  if (running()) stop(SIGKILL, std::chrono::seconds(3));
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    pid_ = -1;
    return false;
  }
  return r == 0;
}

int Process::stop(int sig, std::chrono::milliseconds wait) {
  if (!running()) return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  ::kill(pid_, sig);
  const auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    if (!running()) return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/meterd-test-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

bool wait_for_file(const std::filesystem::path& file, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (std::filesystem::exists(file)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

nlohmann::json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

nlohmann::json control(const std::filesystem::path& socket_path, const nlohmann::json& request) {
  LineClient c(socket_path);
  if (!c.ok()) throw std::runtime_error("cannot connect to " + socket_path.string());
  c.send(request.dump() + "\n");
  return nlohmann::json::parse(c.line(std::chrono::seconds(10)));
}

LineClient::LineClient(const std::filesystem::path& socket) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

LineClient::~LineClient() {
  if (fd_ >= 0) ::close(fd_);
}

void LineClient::send(const std::string& text) {
  std::size_t done = 0;
  while (fd_ >= 0 && done < text.size()) {
    const ssize_t n = ::send(fd_, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

std::string LineClient::line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (const auto nl = in_.find('\n'); nl != std::string::npos) {
      std::string l = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      return l;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0 || fd_ < 0) return "<timeout>";
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return "<eof>";
    in_.append(buf, static_cast<std::size_t>(n));
  }
}

ShellRun run_shell(const std::string& command) {
  static std::atomic<int> n{0};
  const std::filesystem::path err_file =
      std::filesystem::temp_directory_path() /
      ("meterd_test_stderr_" + std::to_string(::getpid()) + "_" + std::to_string(++n));
  ShellRun r;
  FILE* p = ::popen((command + " 2>" + err_file.string()).c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen: " + command);
  char buf[4096];
  std::size_t k;
  while ((k = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, k);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  std::error_code ec;
  std::filesystem::remove(err_file, ec);
  return r;
}

Serial::Serial(const std::filesystem::path& path, unsigned baud, bool even_parity,
               unsigned stop_bits) {
  fd_ = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0)
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  termios t{};
  ::tcgetattr(fd_, &t);
  ::cfmakeraw(&t);
  const speed_t speed = baud == 9600     ? B9600
                        : baud == 19200  ? B19200
                        : baud == 1200   ? B1200
                        : baud == 4800   ? B4800
                        : baud == 38400  ? B38400
                        : baud == 115200 ? B115200
                                         : B2400;
  ::cfsetispeed(&t, speed);
  ::cfsetospeed(&t, speed);
  if (even_parity) t.c_cflag |= PARENB;
  if (stop_bits == 2)
    t.c_cflag |= CSTOPB;
  else
    t.c_cflag &= ~static_cast<tcflag_t>(CSTOPB);
  ::tcsetattr(fd_, TCSANOW, &t);
}

Serial::~Serial() {
  if (fd_ >= 0) ::close(fd_);
}

void Serial::write(const std::vector<std::uint8_t>& bytes) {
  if (::write(fd_, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    throw std::runtime_error("serial write failed");
}

void Serial::drain(std::chrono::milliseconds quiet) {
  std::uint8_t buf[512];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(quiet.count())) <= 0) return;
    if (::read(fd_, buf, sizeof buf) <= 0) return;
  }
}

Serial::Answer Serial::transact(const std::vector<std::uint8_t>& request,
                                std::chrono::milliseconds timeout,
                                bool (*done)(const std::vector<std::uint8_t>&)) {
  write(request);
  return listen(timeout, done);
}

Serial::Answer Serial::listen(std::chrono::milliseconds timeout,
                              bool (*done)(const std::vector<std::uint8_t>&)) {
  Answer a;
  const auto start = std::chrono::steady_clock::now();
  const auto until = start + timeout;
  std::uint8_t buf[512];
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd_, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(1, left.count()))) <= 0) continue;
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) continue;
    const auto now = std::chrono::steady_clock::now();
    if (a.bytes.empty()) a.first_byte = now - start;
    a.last_byte = now - start;
    a.reads.emplace_back(now - start, static_cast<std::size_t>(n));
    a.bytes.insert(a.bytes.end(), buf, buf + n);
    if (done && done(a.bytes)) break;
  }
  return a;
}

std::chrono::steady_clock::duration Serial::Answer::largest_gap(std::size_t from) const {
  std::chrono::steady_clock::duration gap{};
  std::size_t at = 0;
  for (std::size_t k = 0; k < reads.size(); ++k) {
    if (k > 0 && at > from) gap = std::max(gap, reads[k].first - reads[k - 1].first);
    at += reads[k].second;
  }
  return gap;
}

bool dlt645_complete(const std::vector<std::uint8_t>& bytes) {
  const auto r = protocol::dlt645::decode(bytes);
  return r.status != protocol::dlt645::DecodeStatus::need_more;
}

}  // namespace meterd::testing

namespace meterd::testing {

bool modbus_rtu_complete(const std::vector<std::uint8_t>& b) {
  if (b.size() < 5) return false;
  if (b[1] & 0x80) return true;                                    // exception: 5 bytes
  if (b[1] == 0x03 || b[1] == 0x04) return b.size() >= 5u + b[2];  // read: 3 + count + 2
  return b.size() >= 8;                                            // echo, write answers
}

std::vector<std::uint8_t> modbus_tcp_ask(int port, const std::vector<std::uint8_t>& request,
                                         std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    throw std::runtime_error("cannot send to 127.0.0.1:" + std::to_string(port));
  }
  std::vector<std::uint8_t> out;
  std::uint8_t buf[512];
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.insert(out.end(), buf, buf + n);
    if (protocol::modbus::decode_tcp(out).status == protocol::modbus::DecodeStatus::frame) break;
  }
  ::close(fd);
  return out;
}

}  // namespace meterd::testing
