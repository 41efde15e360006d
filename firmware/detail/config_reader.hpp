// The config loader's reading tools: TOML nodes to values, each problem
// recorded as file:line: key: problem and reading carried on, so one pass
// reports every error. Used by config.cpp and config_profiles.cpp only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "firmware/config.hpp"
#include "firmware/profiles.hpp"

namespace meterd::firmware::detail {

inline int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

inline const char* type_name(const toml::node& n) {
  if (n.is_string()) return "a string";
  if (n.is_integer()) return "an integer";
  if (n.is_floating_point()) return "a float";
  if (n.is_boolean()) return "a boolean";
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  return "a date or time";
}

inline std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// One TOML table and the dotted name its keys are reported under.
struct Scope {
  const toml::table& table;
  std::string prefix;  // "gateway", "bus", "profile.register"
  int line;            // the table's header (for missing keys)
  std::string key(std::string_view k) const {
    return prefix.empty() ? std::string(k) : prefix + "." + std::string(k);
  }
};

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}

  void error(int line, std::string key, std::string problem) {
    errors_.push_back({file_, line, std::move(key), std::move(problem)});
  }
  std::vector<ConfigError> take_errors() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    return std::move(errors_);
  }

  void check_keys(const Scope& s, std::initializer_list<std::string_view> known) {
    for (const auto& [k, v] : s.table) {
      const std::string_view name = k.str();
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      const bool table = v.is_table() || (v.is_array() && v.as_array()->is_array_of_tables());
      error(line_of(v), s.key(name), table ? "unknown table" : "unknown key");
    }
  }

  const toml::node* node(const Scope& s, std::string_view key, bool required) {
    const toml::node* n = s.table.get(key);
    if (!n && required) error(s.line, s.key(key), "required key missing");
    return n;
  }

  std::optional<std::string> string(const Scope& s, std::string_view key, bool required = false,
                                    bool allow_empty = false) {
    const toml::node* n = node(s, key, required);
    if (!n) return std::nullopt;
    if (!n->is_string()) {
      error(line_of(*n), s.key(key), std::string("expected a string, got ") + type_name(*n));
      return std::nullopt;
    }
    std::string v = n->as_string()->get();
    if (v.empty() && !allow_empty) {
      error(line_of(*n), s.key(key), "must not be empty");
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> boolean(const Scope& s, std::string_view key) {
    const toml::node* n = node(s, key, false);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) {
      error(line_of(*n), s.key(key), std::string("expected true or false, got ") + type_name(*n));
      return std::nullopt;
    }
    return n->as_boolean()->get();
  }

  std::optional<std::int64_t> integer(const Scope& s, std::string_view key, std::int64_t min,
                                      std::int64_t max, bool required = false) {
    const toml::node* n = node(s, key, required);
    if (!n) return std::nullopt;
    if (!n->is_integer()) {
      error(line_of(*n), s.key(key), std::string("expected an integer, got ") + type_name(*n));
      return std::nullopt;
    }
    const std::int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      error(line_of(*n), s.key(key),
            "must be " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
                std::to_string(v));
      return std::nullopt;
    }
    return v;
  }

  // A list of non-empty strings, each with its line.
  std::optional<std::vector<std::pair<std::string, int>>> string_list(const Scope& s,
                                                                      std::string_view key) {
    const toml::node* n = node(s, key, false);
    if (!n) return std::nullopt;
    const toml::array* a = n->as_array();
    if (!a) {
      error(line_of(*n), s.key(key),
            std::string("expected a list of strings, got ") + type_name(*n));
      return std::nullopt;
    }
    std::vector<std::pair<std::string, int>> out;
    bool good = true;
    for (const auto& e : *a) {
      if (!e.is_string() || e.as_string()->get().empty()) {
        error(line_of(e), s.key(key),
              std::string("expected a list of non-empty strings, got ") +
                  (e.is_string() ? "an empty string" : type_name(e)));
        good = false;
        continue;
      }
      out.emplace_back(e.as_string()->get(), line_of(e));
    }
    if (good && out.empty()) {
      error(line_of(*n), s.key(key), "empty list: leave the key out instead");
      return std::nullopt;
    }
    return good ? std::optional(std::move(out)) : std::nullopt;
  }

  // A [section] table, or nullptr (absent, or not a table: reported).
  const toml::table* table(const toml::table& parent, const std::string& prefix,
                           std::string_view key) {
    const toml::node* n = parent.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
      error(line_of(*n), prefix.empty() ? std::string(key) : prefix + "." + std::string(key),
            "expected a table [" + (prefix.empty() ? "" : prefix + ".") + std::string(key) +
                "], got " + type_name(*n));
      return nullptr;
    }
    return n->as_table();
  }

  // The tables of an array of tables ([[bus]]); empty when absent or wrong.
  std::vector<const toml::table*> tables(const toml::table& parent, const std::string& name,
                                         std::string_view key) {
    std::vector<const toml::table*> out;
    const toml::node* n = parent.get(key);
    if (!n) return out;
    const toml::array* a = n->as_array();
    if (!a || !a->is_array_of_tables()) {
      error(line_of(*n), name, "expected [[" + name + "]] tables, got " + type_name(*n));
      return out;
    }
    for (const auto& e : *a) out.push_back(e.as_table());
    return out;
  }

  // A duration given as text ("15m") or as whole seconds.
  std::optional<std::chrono::milliseconds> duration(const Scope& s, std::string_view key) {
    const toml::node* n = node(s, key, false);
    if (!n) return std::nullopt;
    if (n->is_integer()) return std::chrono::seconds(n->as_integer()->get());
    if (!n->is_string()) {
      error(line_of(*n), s.key(key),
            std::string("expected a duration such as \"5m\", got ") + type_name(*n));
      return std::nullopt;
    }
    const auto d = parse_duration(n->as_string()->get());
    if (!d)
      error(line_of(*n), s.key(key),
            "expected a number and a unit (ms, s, m, h, d) such as \"15m\", got " +
                quoted(n->as_string()->get()));
    return d;
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

// The [[profile]] tables (config_profiles.cpp), added to `set`.
void load_profiles(Loader& L, const toml::table& root, ProfileSet& set);

}  // namespace meterd::firmware::detail
