#include "drivers/mqtt.hpp"
