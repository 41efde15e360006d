#include "protocol/dlt645/requests.hpp"

#include "protocol/bcd.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/values.hpp"

namespace meterd::protocol::dlt645 {

namespace {

int days_in_month(int year, int month) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : days[month - 1];
}

std::optional<int> digits(std::string_view s) {
  int v = 0;
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

Frame make(const Address& a, std::uint8_t control, std::vector<std::uint8_t> data = {}) {
  return Frame{a, control, std::move(data)};
}

void append_password(std::vector<std::uint8_t>& d, const Password& p) {
  d.push_back(p.level);
  d.insert(d.end(), p.bytes.begin(), p.bytes.end());
}

void append_operator(std::vector<std::uint8_t>& d, const OperatorCode& op) {
  d.insert(d.end(), op.begin(), op.end());
}

std::vector<std::uint8_t> with_di(Version v, std::uint32_t di) {
  std::vector<std::uint8_t> d;
  append_di(v, di, d);
  return d;
}

// "12345678" -> bytes low pair first, hex digits taken as printed.
template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> parse_printed(std::string_view text) {
  if (text.size() != N * 2) return std::nullopt;
  const auto bytes = parse_hex(text);
  if (!bytes || bytes->size() != N) return std::nullopt;
  std::array<std::uint8_t, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = (*bytes)[N - 1 - i];
  return out;
}

}  // namespace

bool valid(const DateTime& t) noexcept {
  return t.year >= 2000 && t.year <= 2099 && t.month >= 1 && t.month <= 12 && t.day >= 1 &&
         t.day <= days_in_month(t.year, t.month) && t.hour >= 0 && t.hour <= 23 && t.minute >= 0 &&
         t.minute <= 59 && t.second >= 0 && t.second <= 59;
}

std::optional<DateTime> parse_datetime(std::string_view s) {
  // YYYY-MM-DD[T ]hh:mm[:ss]
  if (s.size() != 16 && s.size() != 19) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':')
    return std::nullopt;
  if (s.size() == 19 && s[16] != ':') return std::nullopt;
  DateTime t;
  const auto y = digits(s.substr(0, 4)), mo = digits(s.substr(5, 2)), d = digits(s.substr(8, 2)),
             h = digits(s.substr(11, 2)), mi = digits(s.substr(14, 2));
  const auto se = s.size() == 19 ? digits(s.substr(17, 2)) : std::optional<int>(0);
  if (!y || !mo || !d || !h || !mi || !se) return std::nullopt;
  t = {*y, *mo, *d, *h, *mi, *se};
  if (!valid(t)) return std::nullopt;
  return t;
}

std::optional<Password> parse_password(std::string_view text, std::uint8_t level) {
  if (text.size() == 8) {
    const auto bytes = parse_hex(text.substr(0, 2));
    if (!bytes) return std::nullopt;
    level = (*bytes)[0];
    text.remove_prefix(2);
  }
  const auto p = parse_printed<3>(text);
  if (!p) return std::nullopt;
  return Password{level, *p};
}

std::optional<OperatorCode> parse_operator(std::string_view text) { return parse_printed<4>(text); }

std::array<std::uint8_t, 6> encode_datetime(const DateTime& t) {
  return {bcd::encode_byte(static_cast<unsigned>(t.second)),
          bcd::encode_byte(static_cast<unsigned>(t.minute)),
          bcd::encode_byte(static_cast<unsigned>(t.hour)),
          bcd::encode_byte(static_cast<unsigned>(t.day)),
          bcd::encode_byte(static_cast<unsigned>(t.month)),
          bcd::encode_byte(static_cast<unsigned>(t.year % 100))};
}

std::optional<DateTime> decode_datetime(std::span<const std::uint8_t, 6> w) {
  std::array<int, 6> v{};
  for (std::size_t i = 0; i < 6; ++i) {
    const auto b = bcd::decode_byte(w[i]);
    if (!b) return std::nullopt;
    v[i] = static_cast<int>(*b);
  }
  DateTime t{2000 + v[5], v[4], v[3], v[2], v[1], v[0]};
  if (!valid(t)) return std::nullopt;
  return t;
}

namespace request {

Frame read(const Address& a, std::uint32_t di) {
  return make(a, fn2007::read, with_di(Version::v2007, di));
}

Frame read_blocks(const Address& a, std::uint32_t di, unsigned n, std::optional<DateTime> from) {
  auto d = with_di(Version::v2007, di);
  d.push_back(bcd::encode_byte(n % 100));
  if (from) {
    const auto w = encode_datetime(*from);
    d.insert(d.end(), w.begin() + 1, w.end());  // mm hh DD MM YY
  }
  return make(a, fn2007::read, std::move(d));
}

Frame read_follow_up(const Address& a, std::uint32_t di, std::uint8_t seq) {
  auto d = with_di(Version::v2007, di);
  d.push_back(seq);
  return make(a, fn2007::read_follow_up, std::move(d));
}

Frame read_address() { return make(Address::wildcard(), fn2007::read_address); }

Frame write(const Address& a, std::uint32_t di, const Password& p, const OperatorCode& op,
            const std::vector<std::uint8_t>& data) {
  auto d = with_di(Version::v2007, di);
  append_password(d, p);
  append_operator(d, op);
  d.insert(d.end(), data.begin(), data.end());
  return make(a, fn2007::write, std::move(d));
}

Frame write_address(const Address& new_address) {
  const auto& w = new_address.wire();
  return make(Address::wildcard(), fn2007::write_address, {w.begin(), w.end()});
}

Frame broadcast_time(const DateTime& t) {
  const auto w = encode_datetime(t);
  return make(Address::broadcast(), fn2007::broadcast_time, {w.begin(), w.end()});
}

Frame freeze(const Address& a, std::array<std::uint8_t, 4> pattern) {
  return make(a, fn2007::freeze, {pattern.begin(), pattern.end()});
}

Frame change_baud(const Address& a, std::uint8_t baud_word) {
  return make(a, fn2007::change_baud, {baud_word});
}

Frame change_password(const Address& a, std::uint32_t di, const Password& old_p,
                      const Password& new_p) {
  auto d = with_di(Version::v2007, di);
  append_password(d, old_p);
  append_password(d, new_p);
  return make(a, fn2007::change_password, std::move(d));
}

Frame demand_reset(const Address& a, const Password& p, const OperatorCode& op) {
  std::vector<std::uint8_t> d;
  append_password(d, p);
  append_operator(d, op);
  return make(a, fn2007::demand_reset, std::move(d));
}

Frame meter_clear(const Address& a, const Password& p, const OperatorCode& op) {
  std::vector<std::uint8_t> d;
  append_password(d, p);
  append_operator(d, op);
  return make(a, fn2007::meter_clear, std::move(d));
}

Frame event_clear(const Address& a, const Password& p, const OperatorCode& op, std::uint32_t di) {
  std::vector<std::uint8_t> d;
  append_password(d, p);
  append_operator(d, op);
  append_di(Version::v2007, di, d);
  return make(a, fn2007::event_clear, std::move(d));
}

Frame relay_control(const Address& a, const Password& p, const OperatorCode& op,
                    RelayCommand command, const DateTime& valid_until) {
  std::vector<std::uint8_t> d;
  append_password(d, p);
  append_operator(d, op);
  d.push_back(static_cast<std::uint8_t>(command));
  d.push_back(0x00);
  const auto w = encode_datetime(valid_until);
  d.insert(d.end(), w.begin(), w.end());
  return make(a, fn2007::relay_control, std::move(d));
}

namespace v1997 {

Frame read(const Address& a, std::uint16_t di) {
  return make(a, fn1997::read, with_di(Version::v1997, di));
}

Frame read_follow_up(const Address& a, std::uint16_t di) {
  return make(a, fn1997::read_follow_up, with_di(Version::v1997, di));
}

Frame reread(const Address& a) { return make(a, fn1997::reread); }

Frame write(const Address& a, std::uint16_t di, const Password& p,
            const std::vector<std::uint8_t>& data) {
  auto d = with_di(Version::v1997, di);
  append_password(d, p);
  d.insert(d.end(), data.begin(), data.end());
  return make(a, fn1997::write, std::move(d));
}

Frame broadcast_time(const DateTime& t) {
  const auto w = encode_datetime(t);
  return make(Address::broadcast(), fn1997::broadcast_time, {w.begin(), w.end()});
}

Frame write_address(const Address& a, const Address& new_address) {
  const auto& w = new_address.wire();
  return make(a, fn1997::write_address, {w.begin(), w.end()});
}

Frame change_baud(const Address& a, std::uint8_t baud_word) {
  return make(a, fn1997::change_baud, {baud_word});
}

Frame change_password(const Address& a, const Password& old_p, const Password& new_p) {
  std::vector<std::uint8_t> d;
  append_password(d, old_p);
  append_password(d, new_p);
  return make(a, fn1997::change_password, std::move(d));
}

Frame demand_reset(const Address& a, const Password& p) {
  std::vector<std::uint8_t> d;
  append_password(d, p);
  return make(a, fn1997::demand_reset, std::move(d));
}

}  // namespace v1997
}  // namespace request
}  // namespace meterd::protocol::dlt645
