#include "firmware/uplink.hpp"
