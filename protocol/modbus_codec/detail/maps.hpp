// Internal: the built-in register maps (maps.cpp), read through models().
#pragma once

#include <vector>

#include "protocol/modbus_codec/registers.hpp"

namespace meterd::protocol::modbus::detail {

std::vector<Model> build_models();

}  // namespace meterd::protocol::modbus::detail
