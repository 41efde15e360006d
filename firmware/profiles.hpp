// Read profiles: what to read from a meter and how. Built in:
// dlt645-basic, dlt645-full, dlt645-1997-basic, sdm630, sdm120, dtsu666,
// dtsu666h, generic (the names metersim --gateway-config writes); users add
// [[profile]] tables in the config (firmware/config.hpp). Immutable once
// built; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/control.hpp"
#include "protocol/modbus_codec/registers.hpp"

namespace meterd::firmware {

// One DL/T 645 read: a DI (often a block such as 0001FF00) and, for a
// block, the single DIs to read instead when the meter answers ERR 02 to
// the block (remembered per meter by the poller).
struct DltRead {
  protocol::dlt645::DataItem item;  // layout: from the catalogue or the user's table
  std::vector<protocol::dlt645::DataItem> singles;  // empty: no fallback (not a block)
};

struct Profile {
  std::string name;
  enum class Kind { dlt645, modbus } kind = Kind::dlt645;
  protocol::dlt645::Version version = protocol::dlt645::Version::v2007;  // dlt645
  std::vector<DltRead> dlt_reads;                                        // dlt645

  // modbus: the model (built-in, or the user's registers on a copy of a
  // built-in model's quirks) and the registers wanted (primary addresses).
  std::shared_ptr<const protocol::modbus::Model> model;
  std::vector<const protocol::modbus::Register*> registers;  // point into *model

  // Silence before each request on top of the protocol's own (SDM630: the
  // recommended gap), and the largest read (SDM: 80 registers).
  std::chrono::microseconds min_gap{0};
  std::uint16_t max_registers = 125;
  std::uint16_t max_gap = 0;  // registers the planner may read between wanted ones

  // Quantity names to keep out of what is read; empty: every value read.
  // A `quantities` list on a meter narrows the profile to these.
  std::vector<std::string> keep;

  // The canonical quantity names this profile can deliver (for `quantities` checks).
  std::vector<std::string> quantities() const;
  // A copy narrowed to these quantity names: only the reads (DIs, blocks,
  // registers) that deliver one of them, and `keep` set to them.
  Profile narrowed(const std::vector<std::string>& wanted) const;
};

// The read of a catalogued DI: its layout, and for a block (2007: one DI
// byte FF, 1997: low nibble F) the catalogued singles that deliver its
// members — for a "total + tariffs" block the total and tariffs 1..4.
// nullopt if the catalogue does not know the DI.
std::optional<DltRead> catalogue_read(protocol::dlt645::Version version, std::uint32_t di);

// A register a profile reads by default: a primary address (alternative 0),
// readable, and a measurement (not setting.*, info.*, command.*, clock.*).
bool is_measurement(const protocol::modbus::Register& r);
// The model's measurement registers, in map order (pointers into `model`).
std::vector<const protocol::modbus::Register*> measured_registers(
    const protocol::modbus::Model& model);
// min_gap, max_registers and max_gap from p.model's quirks: the recommended
// request gap (else the documented minimum), plan_max_registers, plan_max_gap.
void apply_quirks(Profile& p);

class ProfileSet {
 public:
  // The built-in profiles.
  static std::shared_ptr<ProfileSet> builtin();
  const Profile* find(const std::string& name) const;
  // The same, shared: meters on one profile share one copy (a profile with
  // its catalogue items is tens of KiB; 1024 copies would be tens of MiB).
  std::shared_ptr<const Profile> share(const std::string& name) const;
  void add(Profile profile);  // replaces a profile of the same name
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::shared_ptr<const Profile>> profiles_;
};

}  // namespace meterd::firmware
