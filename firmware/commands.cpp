#include "firmware/commands.hpp"
