// System-tier test support: a real mosquitto broker on a loopback port, and
// a throw-away PKI for its TLS listener. Every wait is bounded; a broker that
// cannot be started is a test failure (std::runtime_error), never a skip:
// toolchains/install-deps installs mosquitto and openssl.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "tests/support/system.hpp"

namespace meterd::testing {

struct BrokerTls {
  std::filesystem::path ca_file, cert_file, key_file;
  bool require_certificate = true;  // clients must present a cert signed by ca_file
};

struct BrokerOptions {
  bool allow_anonymous = true;
  std::optional<BrokerTls> tls;  // the listener speaks TLS only when set
  std::string extra_config;      // appended to the generated mosquitto.conf
  std::uint16_t port = 0;        // 0: a free loopback port, chosen at the first start
};

// /usr/sbin/mosquitto -c <generated conf>, listening on 127.0.0.1 only, with
// persistence off (a restart forgets sessions and retained messages) and its
// log in its own temp dir. The constructor starts it; the destructor stops it.
class Broker {
 public:
  explicit Broker(BrokerOptions options = {});
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Starts the broker (no-op when running) and returns once it accepts TCP
  // connections. On the first start with port 0 a free port is picked, and
  // another one if mosquitto could not bind it; later starts reuse the port.
  // Throws std::runtime_error (with the log) when it does not come up in 10 s.
  void start();
  // SIGTERM and wait: clients see their connection closed (the broker sends
  // DISCONNECT 0x8B "server shutting down" to MQTT 5 clients first).
  void stop();
  // SIGKILL and wait: sockets closed by the kernel, nothing sent first.
  void kill();
  // stop() then start() on the same port.
  void restart();
  bool running();

  std::uint16_t port() const noexcept { return port_; }
  const std::filesystem::path& dir() const noexcept { return dir_.path; }
  // The broker's log (log_type all) and its stdout/stderr, so far.
  std::string log() const;

 private:
  void write_config() const;
  bool wait_accepting(std::chrono::milliseconds timeout);

  BrokerOptions options_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Process> process_;
};

// A CA and two certificates it signed: a server certificate for 127.0.0.1
// (subjectAltName IP:127.0.0.1, DNS:localhost) and a client certificate
// (CN meterd-test-client). EC P-256 keys, valid for 30 days.
struct TestPki {
  std::filesystem::path ca_cert, ca_key;
  std::filesystem::path server_cert, server_key;
  std::filesystem::path client_cert, client_key;
};

// Generates a TestPki into `dir` with the openssl CLI (about 0.1 s); throws
// std::runtime_error with openssl's output when a step fails.
TestPki make_test_pki(const std::filesystem::path& dir);

// Binds 127.0.0.1:0 and returns the port the kernel chose (closed again:
// free now, but not reserved).
std::uint16_t free_loopback_port();

// True when a TCP connect to 127.0.0.1:`port` succeeds (the socket is closed).
bool loopback_accepts(std::uint16_t port);

}  // namespace meterd::testing
