// JSON with exact decimal numbers. nlohmann::json stores numbers as
// int64/double; a meter's "220.10" must reach the payload as the text
// 220.10, not as a binary float. exact_number() stores a Decimal as a
// marked string and dump() turns each marked string into a bare JSON number.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "protocol/decimal.hpp"

namespace meterd::protocol {

// A JSON value that dump() writes as the number `to_string(d)`.
nlohmann::json exact_number(const Decimal& d);

// Serialises `j` on one line; marked numbers come out as bare numbers.
// Strings are escaped by nlohmann, so a marker can only come from
// exact_number() (it starts with a control character that no caller text
// can carry unescaped).
std::string dump(const nlohmann::json& j);

}  // namespace meterd::protocol
