#include "tests/support/broker.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace meterd::testing {

namespace {

constexpr const char* kMosquitto = "/usr/sbin/mosquitto";
constexpr const char* kOpenssl = "/usr/bin/openssl";

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Runs `program args...` to completion (bounded: 30 s), output to `log`.
void run_checked(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      throw std::runtime_error(argv[0] + " " + argv[1] + " timed out");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error("failed: " + cmd + "\n" + read_text(log));
  }
}

}  // namespace

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("cannot bind 127.0.0.1:0: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool loopback_accepts(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const sockaddr_in addr = loopback(port);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

Broker::Broker(BrokerOptions options) : options_(std::move(options)), port_(options_.port) {
  if (!std::filesystem::exists(kMosquitto))
    throw std::runtime_error(std::string(kMosquitto) +
                             " is missing (toolchains/install-deps installs mosquitto)");
  start();
}

Broker::~Broker() { stop(); }

void Broker::write_config() const {
  std::ostringstream conf;
  conf << "listener " << port_ << " 127.0.0.1\n"
       << "allow_anonymous " << (options_.allow_anonymous ? "true" : "false") << "\n"
       << "persistence false\n"
       << "log_dest file " << (dir_.path / "mosquitto.log").string() << "\n"
       << "log_type all\n"
       << "connection_messages true\n"
       << "log_timestamp_format %H:%M:%S\n";
  // As root, mosquitto drops to the user "mosquitto" unless told otherwise;
  // stay whoever we are, so the log and the key files stay readable.
  if (const passwd* pw = ::getpwuid(::geteuid())) conf << "user " << pw->pw_name << "\n";
  if (options_.tls) {
    conf << "cafile " << options_.tls->ca_file.string() << "\n"
         << "certfile " << options_.tls->cert_file.string() << "\n"
         << "keyfile " << options_.tls->key_file.string() << "\n"
         << "require_certificate " << (options_.tls->require_certificate ? "true" : "false")
         << "\n";
  }
  conf << options_.extra_config << "\n";
  write_text(dir_.path / "mosquitto.conf", conf.str());
}

bool Broker::wait_accepting(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (!process_ || !process_->running()) return false;
    if (loopback_accepts(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void Broker::start() {
  if (running()) return;
  const bool fixed = port_ != 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (!fixed) port_ = free_loopback_port();
    write_config();
    process_ = std::make_unique<Process>(
        kMosquitto, std::vector<std::string>{"-c", (dir_.path / "mosquitto.conf").string()},
        dir_.path / "stdout.log");
    if (wait_accepting(std::chrono::seconds(10))) return;
    // Most likely the port was taken between our probe and mosquitto's bind
    // (or, for a fixed port, is still held): try again.
    process_->stop(SIGKILL, std::chrono::seconds(3));
    process_.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("mosquitto did not come up on 127.0.0.1:" + std::to_string(port_) +
                           "\n" + log());
}

void Broker::stop() {
  if (!process_) return;
  if (process_->running()) process_->stop(SIGTERM, std::chrono::seconds(5));
  if (process_->running()) process_->stop(SIGKILL, std::chrono::seconds(5));
  process_.reset();
}

void Broker::kill() {
  if (!process_) return;
  process_->stop(SIGKILL, std::chrono::seconds(5));
  process_.reset();
}

void Broker::restart() {
  stop();
  start();
}

bool Broker::running() { return process_ && process_->running(); }

std::string Broker::log() const {
  return read_text(dir_.path / "mosquitto.log") + read_text(dir_.path / "stdout.log");
}

TestPki make_test_pki(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const auto log = dir / "openssl.log";
  const auto p = [&](const char* name) { return (dir / name).string(); };
  TestPki pki{dir / "ca.crt",     dir / "ca.key",     dir / "server.crt",
              dir / "server.key", dir / "client.crt", dir / "client.key"};
  const auto key = [&](const std::filesystem::path& out) {
    run_checked({kOpenssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", out.string()},
                log);
  };
  key(pki.ca_key);
  run_checked({kOpenssl, "req", "-x509", "-new", "-key", pki.ca_key.string(), "-sha256", "-days",
               "30", "-subj", "/CN=meterd-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", pki.ca_cert.string()},
              log);
  const auto leaf = [&](const std::filesystem::path& k, const std::filesystem::path& crt,
                        const char* cn, const char* ext_name, const std::string& ext) {
    key(k);
    const std::string csr = crt.string() + ".csr";
    write_text(dir / ext_name, ext);
    run_checked({kOpenssl, "req", "-new", "-key", k.string(), "-subj", std::string("/CN=") + cn,
                 "-out", csr},
                log);
    run_checked({kOpenssl, "x509", "-req", "-in", csr, "-CA", pki.ca_cert.string(), "-CAkey",
                 pki.ca_key.string(), "-CAcreateserial", "-days", "30", "-sha256", "-extfile",
                 p(ext_name), "-out", crt.string()},
                log);
  };
  leaf(pki.server_key, pki.server_cert, "localhost", "server.ext",
       "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
       "extendedKeyUsage=serverAuth\n");
  leaf(pki.client_key, pki.client_cert, "meterd-test-client", "client.ext",
       "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  return pki;
}

}  // namespace meterd::testing
