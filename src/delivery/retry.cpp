#include "walhook/retry.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>

namespace walhook {

using std::chrono::milliseconds;

milliseconds RetryDelay(int failed_attempts, int retry_interval_ms, double jitter) {
  const int doublings = std::clamp(failed_attempts, 1, 64) - 1;
  // In double: 2^63 ms would overflow an integer long before the cap applies.
  double ms = static_cast<double>(std::max(retry_interval_ms, 0)) * std::pow(2.0, doublings);
  ms = std::min(ms, static_cast<double>(kMaxRetryDelay.count()));
  const double factor = 0.8 + 0.4 * std::clamp(jitter, 0.0, 1.0);
  ms = std::min(ms * factor, static_cast<double>(kMaxRetryDelay.count()));
  return milliseconds(static_cast<int64_t>(ms));
}

std::optional<milliseconds> NextAttemptDelay(int attempt, int retries, int retry_interval_ms,
                                             bool fail_now, std::optional<milliseconds> retry_after,
                                             double jitter) {
  if (fail_now || attempt > retries) return std::nullopt;
  if (retry_after) return std::min(*retry_after, kMaxRetryDelay);
  return RetryDelay(attempt, retry_interval_ms, jitter);
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Digits only: no sign, no space.
bool Number(std::string_view s, int* out) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

template <size_t N>
bool OneOf(const std::array<std::string_view, N>& names, std::string_view s) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

// "08:49:37" into *tm.
bool TimeOfDay(std::string_view s, std::tm* tm) {
  int hour = 0, minute = 0, second = 0;
  if (s.size() != 8 || s[2] != ':' || s[5] != ':' || !Number(s.substr(0, 2), &hour) ||
      !Number(s.substr(3, 2), &minute) || !Number(s.substr(6, 2), &second) || hour > 23 ||
      minute > 59 || second > 60) {
    return false;
  }
  tm->tm_hour = hour;
  tm->tm_min = minute;
  tm->tm_sec = second;
  return true;
}

// Day, month name and year into *tm; false for an impossible date.
bool Date(int day, std::string_view month, int year, std::tm* tm) {
  static constexpr std::array<int, 12> kLength = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const auto m = std::find(kMonths.begin(), kMonths.end(), month);
  if (m == kMonths.end() || year < 1900 || year > 9999) return false;
  const auto index = static_cast<size_t>(m - kMonths.begin());
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day < 1 || day > kLength[index] || (index == 1 && day == 29 && !leap)) return false;
  tm->tm_year = year - 1900;
  tm->tm_mon = static_cast<int>(index);
  tm->tm_mday = day;
  return true;
}

// An HTTP date (RFC 9110 §5.6.7) → seconds since the epoch, in any of its
// three forms: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850
// "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994".
// `now_s` places RFC 850's two-digit year: one that would be more than 50
// years ahead is the most recent past year with those digits.
std::optional<int64_t> ParseHttpDate(std::string_view s, int64_t now_s) {
  std::tm tm{};
  int day = 0, year = 0;
  if (s.size() == 29 && s[3] == ',') {  // IMF-fixdate
    if (!OneOf(kDays, s.substr(0, 3)) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s.substr(25) != " GMT" || !Number(s.substr(5, 2), &day) ||
        !Number(s.substr(12, 4), &year) || !Date(day, s.substr(8, 3), year, &tm) ||
        !TimeOfDay(s.substr(17, 8), &tm)) {
      return std::nullopt;
    }
  } else if (s.size() == 24 && s[3] == ' ') {  // asctime
    std::string_view d = s.substr(8, 2);
    if (d[0] == ' ') d.remove_prefix(1);
    if (!OneOf(kDays, s.substr(0, 3)) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' ||
        !Number(d, &day) || !Number(s.substr(20, 4), &year) ||
        !Date(day, s.substr(4, 3), year, &tm) || !TimeOfDay(s.substr(11, 8), &tm)) {
      return std::nullopt;
    }
  } else {  // RFC 850
    const size_t comma = s.find(", ");
    if (comma == std::string_view::npos || !OneOf(kLongDays, s.substr(0, comma))) {
      return std::nullopt;
    }
    const std::string_view rest = s.substr(comma + 2);
    int yy = 0;
    if (rest.size() != 22 || rest[2] != '-' || rest[6] != '-' || rest[9] != ' ' ||
        rest.substr(18) != " GMT" || !Number(rest.substr(0, 2), &day) ||
        !Number(rest.substr(7, 2), &yy) || !TimeOfDay(rest.substr(10, 8), &tm)) {
      return std::nullopt;
    }
    std::tm today{};
    const auto now_t = static_cast<std::time_t>(now_s);
    gmtime_r(&now_t, &today);
    const int this_year = today.tm_year + 1900;
    year = this_year - this_year % 100 + yy;
    if (year > this_year + 50) year -= 100;
    if (!Date(day, rest.substr(3, 3), year, &tm)) return std::nullopt;
  }
  return static_cast<int64_t>(timegm(&tm));
}
}  // namespace

std::optional<milliseconds> ParseRetryAfter(std::string_view value,
                                            std::chrono::system_clock::time_point now) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::isdigit(static_cast<unsigned char>(value.front()))) {
    int64_t seconds = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (p != value.data() + value.size()) return std::nullopt;
    if (ec == std::errc::result_out_of_range || seconds > kMaxRetryDelay.count() / 1000) {
      return kMaxRetryDelay;
    }
    if (ec != std::errc()) return std::nullopt;
    return milliseconds(seconds * 1000);
  }
  const int64_t now_ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count();
  const auto when = ParseHttpDate(value, now_ms / 1000);
  if (!when) return std::nullopt;
  const int64_t delta = *when * 1000 - now_ms;
  return milliseconds(std::clamp<int64_t>(delta, 0, kMaxRetryDelay.count()));
}

}  // namespace walhook
