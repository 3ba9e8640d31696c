#pragma once
// The retry schedule of a trigger (SPEC §3): the first retry after
// retry_interval_ms, doubling each time, ±20 % jitter, capped at one hour;
// a Retry-After header (seconds or HTTP date, capped at one hour) wins.
// Pure. Thread-safety: stateless functions.

#include <chrono>
#include <optional>
#include <string_view>

namespace walhook {

constexpr std::chrono::milliseconds kMaxRetryDelay{3600 * 1000};

// Delay before the next attempt after `failed_attempts` (>= 1) failures.
// `jitter` in [0, 1) picks the point in the ±20 % band (0.5 = no jitter).
std::chrono::milliseconds RetryDelay(int failed_attempts, int retry_interval_ms, double jitter);

// After failed attempt number `attempt` (1 for the first) of an event whose
// trigger allows `retries` retries: nullopt when no attempt follows (that was
// attempt retries + 1, or `fail_now`), else the delay before the next one —
// `retry_after` when the response gave one, else RetryDelay.
std::optional<std::chrono::milliseconds> NextAttemptDelay(
    int attempt, int retries, int retry_interval_ms, bool fail_now,
    std::optional<std::chrono::milliseconds> retry_after, double jitter);

// Parses a Retry-After value (RFC 9110 §10.2.3): delta-seconds ("120") or an
// HTTP date in any of its three forms — IMF-fixdate ("Sun, 06 Nov 1994
// 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT", its two-digit
// year read as RFC 9110 §5.6.7 says) or asctime ("Sun Nov  6 08:49:37 1994")
// — relative to `now`. A date in the past gives 0. nullopt when malformed
// (an impossible date too). Capped at kMaxRetryDelay.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

}  // namespace walhook
