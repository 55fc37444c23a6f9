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

// Exactly `n` digits (RFC 9110's 2DIGIT, 4DIGIT), or 1..n digits when `up_to`.
bool digits(std::string_view s, int& out, std::size_t n, bool up_to = false) {
  if (s.empty() || s.size() > n || (!up_to && s.size() != n)) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

// time-of-day = hour ":" minute ":" second: "08:49:37"; second 60 is a leap second.
bool clock_time(std::string_view s, int& h, int& m, int& sec) {
  return s.size() == 8 && s[2] == ':' && s[5] == ':' && digits(s.substr(0, 2), h, 2) &&
         digits(s.substr(3, 2), m, 2) && digits(s.substr(6, 2), sec, 2) && h < 24 && m < 60 &&
         sec <= 60;
}

// day-name (IMF-fixdate, asctime-date) or day-name-l (rfc850-date); case-sensitive.
bool day_name(std::string_view s, bool long_form) {
  static constexpr std::string_view names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view long_names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                    "Friday", "Saturday", "Sunday"};
  for (int i = 0; i < 7; ++i) {
    if (s == (long_form ? long_names[i] : names[i])) return true;
  }
  return false;
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

// The three HTTP-date forms of RFC 9110 section 5.6.7, as seconds since the
// epoch (UTC), to the letter of its grammar, with one documented leniency:
// runs of spaces count as one (asctime-date's "Nov  6" needs two anyway).
// `now` resolves rfc850-date's two-digit year.
std::optional<std::time_t> parse_http_date(std::string_view s,
                                           std::chrono::system_clock::time_point now) {
  int day = 0, year = 0, h = 0, m = 0, sec = 0, mon = -1;
  const auto parts = split_spaces(s);
  if (parts.size() == 6 && parts[0].size() == 4 && parts[0][3] == ',' && parts[5] == "GMT") {
    // IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT: Sun, 06 Nov 1994 08:49:37 GMT
    if (!day_name(parts[0].substr(0, 3), false)) return std::nullopt;
    mon = month_index(parts[2]);
    if (!digits(parts[1], day, 2) || !digits(parts[3], year, 4) ||
        !clock_time(parts[4], h, m, sec)) {
      return std::nullopt;
    }
  } else if (parts.size() == 4 && parts[0].back() == ',' && parts[3] == "GMT") {
    // rfc850-date = day-name-l "," SP date2 SP time-of-day SP GMT: Sunday, 06-Nov-94 08:49:37 GMT
    if (!day_name(parts[0].substr(0, parts[0].size() - 1), true)) return std::nullopt;
    const std::string_view d = parts[1];
    if (d.size() != 9 || d[2] != '-' || d[6] != '-') return std::nullopt;
    mon = month_index(d.substr(3, 3));
    int yy = 0;
    if (!digits(d.substr(0, 2), day, 2) || !digits(d.substr(7, 2), yy, 2) ||
        !clock_time(parts[2], h, m, sec)) {
      return std::nullopt;
    }
    // "Recipients of a timestamp value in rfc850-date format, which uses a
    // two-digit year, MUST interpret a timestamp that appears to be more than
    // 50 years in the future as representing the most recent year in the past
    // that had the same last two digits." (RFC 9110 5.6.7; compared by year.)
    const std::time_t now_t = std::chrono::system_clock::to_time_t(now);
    std::tm now_tm{};
    gmtime_r(&now_t, &now_tm);
    const int this_year = now_tm.tm_year + 1900;
    year = this_year / 100 * 100 + yy;
    if (year > this_year + 50) year -= 100;
  } else if (parts.size() == 5) {
    // asctime-date = day-name SP date3 SP time-of-day SP year: Sun Nov  6 08:49:37 1994
    if (!day_name(parts[0], false)) return std::nullopt;
    mon = month_index(parts[1]);
    if (!digits(parts[2], day, 2, true) || !clock_time(parts[3], h, m, sec) ||
        !digits(parts[4], year, 4)) {
      return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  if (mon < 0 || day < 1 || day > 31 || year < 1970) return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec == 60 ? 59 : sec;  // a leap second: counted as the second after :59
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  // timegm normalises "31 Feb" into March: such a date is malformed, not a date.
  std::tm back{};
  gmtime_r(&t, &back);
  if (back.tm_mday != day || back.tm_mon != mon || back.tm_year != year - 1900) return std::nullopt;
  return sec == 60 ? t + 1 : t;
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
  const auto when = parse_http_date(v, now);
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
