// Retry-After (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date in
// any of its three forms (section 5.6.7).
#include <algorithm>
#include <ctime>

#include "internal.hpp"
#include "rebound/http/client.hpp"

namespace rebound::http {

namespace {

using detail::trim;

int month_index(std::string_view m) {
  static constexpr std::string_view names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == names[i]) return i;
  }
  return -1;
}

bool digits(std::string_view s, int& out) {
  if (s.empty() || s.size() > 4) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

// "08:49:37"
bool clock_time(std::string_view s, int& h, int& m, int& sec) {
  return s.size() == 8 && s[2] == ':' && s[5] == ':' && digits(s.substr(0, 2), h) &&
         digits(s.substr(3, 2), m) && digits(s.substr(6, 2), sec) && h < 24 && m < 60 && sec < 61;
}

std::vector<std::string_view> split_spaces(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// The three HTTP-date forms of RFC 9110 5.6.7, as seconds since the epoch (UTC).
std::optional<std::time_t> parse_http_date(std::string_view s) {
  std::tm tm{};
  int day = 0, year = 0, h = 0, m = 0, sec = 0, mon = -1;
  const auto parts = split_spaces(s);
  if (parts.size() == 6 && parts[0].size() == 4 && parts[0][3] == ',' && parts[5] == "GMT") {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    mon = month_index(parts[2]);
    if (!digits(parts[1], day) || !digits(parts[3], year) || !clock_time(parts[4], h, m, sec))
      return std::nullopt;
  } else if (parts.size() == 4 && parts[0].back() == ',' && parts[3] == "GMT") {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    const std::string_view d = parts[1];
    if (d.size() != 9 || d[2] != '-' || d[6] != '-') return std::nullopt;
    mon = month_index(d.substr(3, 3));
    if (!digits(d.substr(0, 2), day) || !digits(d.substr(7, 2), year) ||
        !clock_time(parts[2], h, m, sec))
      return std::nullopt;
    year += year < 70 ? 2000 : 1900;
  } else if (parts.size() == 5) {
    // asctime: Sun Nov  6 08:49:37 1994
    mon = month_index(parts[1]);
    if (!digits(parts[2], day) || !clock_time(parts[3], h, m, sec) || !digits(parts[4], year))
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (mon < 0 || day < 1 || day > 31 || year < 1970 || year > 9999) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  // timegm normalises "31 Feb" into March: such a date is malformed, not a date.
  std::tm back{};
  gmtime_r(&t, &back);
  if (back.tm_mday != day || back.tm_mon != mon || back.tm_year != year - 1900) return std::nullopt;
  return t;
}

}  // namespace

std::optional<duration> parse_retry_after(std::string_view value,
                                          std::chrono::system_clock::time_point now) {
  const std::string_view v = trim(value);
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delta-seconds; values past what nanoseconds hold saturate (the cap decides).
    constexpr std::int64_t max_seconds = duration::max().count() / 1'000'000'000;
    std::int64_t s = 0;
    for (char c : v) {
      s = s * 10 + (c - '0');
      if (s > max_seconds) return duration::max();
    }
    return std::chrono::duration_cast<duration>(std::chrono::seconds(s));
  }
  const auto when = parse_http_date(v);
  if (!when) return std::nullopt;
  // In whole seconds, so dates past 2262 (where nanoseconds end) saturate.
  const std::int64_t ahead = static_cast<std::int64_t>(*when) -
                             static_cast<std::int64_t>(std::chrono::system_clock::to_time_t(now));
  if (ahead <= 0) return duration::zero();
  if (ahead > duration::max().count() / 1'000'000'000) return duration::max();
  const auto frac =
      now - std::chrono::system_clock::from_time_t(std::chrono::system_clock::to_time_t(now));
  const duration d = std::chrono::seconds(ahead) - std::chrono::duration_cast<duration>(frac);
  return d > duration::zero() ? d : duration::zero();
}

}  // namespace rebound::http
