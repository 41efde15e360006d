// JSON with exact decimal numbers. nlohmann::json stores numbers as
// int64/double; a meter's "220.10" must reach the payload as the text
// 220.10, not as a binary float. exact_number() stores a Decimal as a
// marked string and dump() turns each marked string into a bare JSON number.
#pragma once

#include <optional>
#include <string>
#include <string_view>

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

// The reverse: parses JSON text keeping every number that has a fraction or
// an exponent (or does not fit 64 bits) as its text, marked as by
// exact_number(), so dump(parse_exact(t)) writes "230.10" back as 230.10,
// where nlohmann's double would give 230.1. Integers stay integers (exact
// already). Returns a discarded value (is_discarded()) on malformed text,
// and on a string that starts with the marker (nothing legitimate can).
nlohmann::json parse_exact(std::string_view text);

// The text of a number: a marked number's as written, an integer's digits;
// nullopt for anything else (a double that was not marked included).
std::optional<std::string> number_text(const nlohmann::json& j);

}  // namespace meterd::protocol
