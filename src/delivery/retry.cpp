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

bool Number(std::string_view s, int* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "Wed, 21 Oct 2015 07:28:00 GMT" → seconds since the epoch.
std::optional<int64_t> ParseImfFixdate(std::string_view s) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT") {
    return std::nullopt;
  }
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (!Number(s.substr(5, 2), &day) || !Number(s.substr(12, 4), &year) ||
      !Number(s.substr(17, 2), &hour) || !Number(s.substr(20, 2), &minute) ||
      !Number(s.substr(23, 2), &second)) {
    return std::nullopt;
  }
  const auto month = std::find(kMonths.begin(), kMonths.end(), s.substr(8, 3));
  if (month == kMonths.end() || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = static_cast<int>(month - kMonths.begin());
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
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
  const auto when = ParseImfFixdate(value);
  if (!when) return std::nullopt;
  const int64_t now_ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count();
  const int64_t delta = *when * 1000 - now_ms;
  return milliseconds(std::clamp<int64_t>(delta, 0, kMaxRetryDelay.count()));
}

}  // namespace walhook
