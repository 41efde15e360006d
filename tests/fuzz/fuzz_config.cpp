// libFuzzer target: the config loader (firmware/config.cpp) on arbitrary
// text. Whatever the input, parse_config returns a config or a list of
// errors that each name a line within the text — it never throws, crashes
// or names a line the text does not have.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "firmware/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto r = meterd::firmware::parse_config(text, "fuzz.toml");
  if (r.config.has_value() == !r.errors.empty()) std::abort();  // exactly one of the two
  const long lines = std::count(text.begin(), text.end(), '\n') + 1;
  for (const auto& e : r.errors) {
    if (e.line < 0 || e.line > lines) std::abort();
    if (e.key.empty() || e.problem.empty()) std::abort();
  }
  return 0;
}
