// Read-only access to a buffer file, beside a running meterd (WAL lets
// readers in while it writes) or with the daemon stopped: meterctl's
// offline export and the daemon's own export thread. Opening never writes:
// no migration, no clean-stop marker taken, no seq reservation, so a
// Reader can never make the daemon's next start report a seq gap.
//
// Thread: one thread at a time per Reader; any number of Readers at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/result.hpp"
#include "buffer/store.hpp"

namespace meterd::buffer {

class Reader {
 public:
  // Errors: cannot_open (no such file), not_a_buffer, schema_too_new, corrupt, busy.
  static Result<Reader> open(const std::string& path);
  Reader(Reader&&) noexcept;
  Reader& operator=(Reader&&) noexcept;
  ~Reader();

  // Every meter id with a stored reading series or event, sorted ("" for
  // gateway events is left out).
  Result<std::vector<std::string>> meters();
  // As Store::export_readings / export_events.
  Result<std::uint64_t> export_readings(std::string_view meter, std::int64_t from_ms,
                                        std::int64_t to_ms,
                                        const std::function<bool(const Reading&)>& visit);
  Result<std::uint64_t> export_events(std::string_view meter, std::int64_t from_ms,
                                      std::int64_t to_ms,
                                      const std::function<bool(const Event&)>& visit);
  // Row counts, sizes, the oldest unsent row's ts (in flight counts as unsent).
  Result<Stats> stats();

 private:
  class Impl;
  explicit Reader(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meterd::buffer
