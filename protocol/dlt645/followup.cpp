#include "protocol/dlt645/followup.hpp"

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/control.hpp"

namespace meterd::protocol::dlt645 {

namespace {

class FollowUpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dlt645.follow_up"; }
  std::string message(int ev) const override {
    switch (static_cast<FollowUpError>(ev)) {
      case FollowUpError::not_first_answer:
        return "first frame is not a read answer (91H/B1H)";
      case FollowUpError::not_continuation:
        return "frame is not a follow-up answer (92H/B2H)";
      case FollowUpError::other_meter:
        return "continuation from another meter";
      case FollowUpError::di_mismatch:
        return "continuation for another data identifier";
      case FollowUpError::missing_seq:
        return "follow-up frame missing";
      case FollowUpError::repeated_seq:
        return "follow-up frame repeated";
      case FollowUpError::after_last:
        return "continuation after the last frame";
      case FollowUpError::incomplete:
        return "more follow-up frames expected";
    }
    return "unknown follow-up error";
  }
};

constexpr std::uint8_t normal_read_answer = 0x91;  // 11H | direction

FollowUpResult failed(FollowUpResult r, FollowUpError e, std::string message) {
  r.error = e;
  r.message = std::move(message);
  r.data.clear();
  r.block = {};
  return r;
}

}  // namespace

const std::error_category& follow_up_category() noexcept {
  static const FollowUpCategory category;
  return category;
}

std::error_code make_error_code(FollowUpError e) noexcept {
  return {static_cast<int>(e), follow_up_category()};
}

FollowUpResult reassemble(const Frame& first, std::span<const Frame> continuations) {
  FollowUpResult r;
  const auto c = first.control;
  if (!control::is_response(c) || control::is_abnormal(c) || control::function(c) != fn2007::read ||
      first.data.size() < 4)
    return failed(std::move(r), FollowUpError::not_first_answer,
                  "first frame: control " + to_hex(std::span(&first.control, 1)) +
                      ", expected 91 or B1 with a DI");
  r.di = read_di(Version::v2007, first.data);
  r.data.assign(first.data.begin() + 4, first.data.end());
  r.frames = 1;
  bool more = control::has_follow_up(c);
  for (std::size_t k = 0; k < continuations.size(); ++k) {
    const Frame& f = continuations[k];
    const std::string at = "continuation " + std::to_string(k + 1) + ": ";
    const std::uint8_t expected = static_cast<std::uint8_t>(k + 1);
    if (!more)
      return failed(std::move(r), FollowUpError::after_last,
                    at + "the frame before it said nothing follows");
    if (!control::is_response(f.control) || control::is_abnormal(f.control) ||
        control::function(f.control) != fn2007::read_follow_up || f.data.size() < 5)
      return failed(std::move(r), FollowUpError::not_continuation,
                    at + "control " + to_hex(std::span(&f.control, 1)) +
                        ", expected 92 or B2 with DI and SEQ");
    if (f.address != first.address)
      return failed(
          std::move(r), FollowUpError::other_meter,
          at + "address " + f.address.to_string() + ", expected " + first.address.to_string());
    const auto di = read_di(Version::v2007, f.data);
    if (di != r.di)
      return failed(std::move(r), FollowUpError::di_mismatch,
                    at + "DI " + di_to_string(Version::v2007, di) + ", expected " +
                        di_to_string(Version::v2007, r.di));
    const std::uint8_t seq = f.data.back();
    if (seq != expected)
      return failed(
          std::move(r),
          seq == 0 || seq < expected ? FollowUpError::repeated_seq : FollowUpError::missing_seq,
          at + "SEQ " + std::to_string(seq) + ", expected " + std::to_string(expected));
    r.data.insert(r.data.end(), f.data.begin() + 4, f.data.end() - 1);
    ++r.frames;
    more = control::has_follow_up(f.control);
  }
  if (more)
    return failed(std::move(r), FollowUpError::incomplete,
                  "after " + std::to_string(r.frames) + " frame" + (r.frames == 1 ? "" : "s") +
                      ": the last one says more follows (SEQ " + std::to_string(r.frames) +
                      " not received)");
  Frame whole{first.address, normal_read_answer, {}};
  append_di(Version::v2007, r.di, whole.data);
  whole.data.insert(whole.data.end(), r.data.begin(), r.data.end());
  r.block = interpret(whole, Version::v2007);
  return r;
}

}  // namespace meterd::protocol::dlt645
