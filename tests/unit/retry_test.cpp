#include "walhook/retry.h"

#include <doctest/doctest.h>

namespace walhook {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("retry: the delay doubles per failure, with ±20 % jitter, capped at 1 h") {
  CHECK(RetryDelay(1, 5000, 0.5) == milliseconds(5000));
  CHECK(RetryDelay(2, 5000, 0.5) == milliseconds(10000));
  CHECK(RetryDelay(3, 5000, 0.5) == milliseconds(20000));
  CHECK(RetryDelay(1, 5000, 0.0) == milliseconds(4000));
  CHECK(RetryDelay(1, 5000, 1.0) == milliseconds(6000));
  CHECK(RetryDelay(3, 1000, 0.25) == milliseconds(3600));
  // The cap holds after jitter too, and for absurd attempt counts.
  CHECK(RetryDelay(20, 5000, 0.5) == kMaxRetryDelay);
  CHECK(RetryDelay(20, 5000, 1.0) == kMaxRetryDelay);
  CHECK(RetryDelay(1000, 3600000, 1.0) == kMaxRetryDelay);
  CHECK(RetryDelay(20, 5000, 0.0) == milliseconds(2880000));
  CHECK(RetryDelay(1, 0, 0.7) == milliseconds(0));
  CHECK(RetryDelay(0, 100, 0.5) == milliseconds(100));
  CHECK(RetryDelay(-5, 100, 0.5) == milliseconds(100));
}

TEST_CASE("retry: Retry-After in seconds or as an HTTP date") {
  // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480
  const auto now = std::chrono::system_clock::time_point(seconds(1445412480 - 30));
  CHECK(ParseRetryAfter("120", now) == milliseconds(120000));
  CHECK(ParseRetryAfter(" 0 ", now) == milliseconds(0));
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now) == milliseconds(30000));
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now) == milliseconds(0));
  CHECK(ParseRetryAfter("999999", now) == kMaxRetryDelay);
  CHECK(ParseRetryAfter("99999999999999999999999", now) == kMaxRetryDelay);
  CHECK(ParseRetryAfter("Thu, 22 Oct 2015 07:28:00 GMT", now) == kMaxRetryDelay);
  for (const char* bad : {"", "soon", "-1", "1.5", "12abc", "Wed, 21 Oct 2015 07:28:00",
                          "Wed, 21 Foo 2015 07:28:00 GMT", "Wed, 32 Oct 2015 07:28:00 GMT"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseRetryAfter(bad, now).has_value());
  }
}

TEST_CASE("retry: Retry-After in each of HTTP's three date forms (RFC 9110 §5.6.7)") {
  // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
  const auto now = std::chrono::system_clock::time_point(seconds(784111777 - 90));
  CHECK(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now) == milliseconds(90000));
  CHECK(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now) == milliseconds(90000));
  CHECK(ParseRetryAfter("Sun Nov  6 08:49:37 1994", now) == milliseconds(90000));
  CHECK(ParseRetryAfter("Sun Nov 16 08:49:37 1994", now) == kMaxRetryDelay);
  CHECK(ParseRetryAfter("  Sun Nov  6 08:49:37 1994 ", now) == milliseconds(90000));
  // In the past: at once.
  CHECK(ParseRetryAfter("Saturday, 05-Nov-94 08:49:37 GMT", now) == milliseconds(0));
  CHECK(ParseRetryAfter("Thu, 01 Jan 1970 00:00:00 GMT", now) == milliseconds(0));
  // A two-digit year more than 50 years ahead is the past century's.
  const auto in_2026 = std::chrono::system_clock::time_point(seconds(1795000000));
  CHECK(ParseRetryAfter("Friday, 01-Jan-99 00:00:00 GMT", in_2026) == milliseconds(0));
  CHECK(ParseRetryAfter("Friday, 01-Jan-27 00:00:00 GMT", in_2026) == kMaxRetryDelay);
  // A leap day only in a leap year.
  CHECK(ParseRetryAfter("Thu, 29 Feb 2024 00:00:00 GMT", in_2026) == milliseconds(0));
  for (const char* bad : {"Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun,  6 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 8:49:37 GMT",
                          "Sun, 06 Nov 1994 24:00:00 GMT",
                          "Sun, 06 Nov 1994 08:60:00 GMT",
                          "Sun, 31 Nov 1994 08:49:37 GMT",
                          "Wed, 29 Feb 2023 00:00:00 GMT",
                          "Xyz, 06 Nov 1994 08:49:37 GMT",
                          "Sun, -6 Nov 1994 08:49:37 GMT",
                          "Sunday, 06-Nov-1994 08:49:37 GMT",
                          "Sunday, 06-Nov-94 08:49:37",
                          "Someday, 06-Nov-94 08:49:37 GMT",
                          "Sunday 06-Nov-94 08:49:37 GMT",
                          "Sun Nov 6 08:49:37 1994",
                          "Sun Nov  6 08:49:37 94",
                          "Sun Foo  6 08:49:37 1994",
                          "Sun Nov  0 08:49:37 1994",
                          "Sun Nov  6 08:49:37 1994 GMT",
                          "\xff\xfe",
                          "Sun, 06 Nov 1994 08:49:37 GMT\r\nX: y",
                          "1e3",
                          "+5",
                          "0x10",
                          "Sun, 06 Nov +994 08:49:37 GMT"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseRetryAfter(bad, now).has_value());
  }
}

TEST_CASE("retry: attempts stop after retries + 1, or at once for 410; Retry-After wins") {
  // retries = 2: attempts 1 and 2 are followed by another, attempt 3 is the last.
  CHECK(NextAttemptDelay(1, 2, 1000, false, std::nullopt, 0.5) == milliseconds(1000));
  CHECK(NextAttemptDelay(2, 2, 1000, false, std::nullopt, 0.5) == milliseconds(2000));
  CHECK_FALSE(NextAttemptDelay(3, 2, 1000, false, std::nullopt, 0.5).has_value());
  CHECK_FALSE(NextAttemptDelay(1, 0, 1000, false, std::nullopt, 0.5).has_value());
  CHECK_FALSE(NextAttemptDelay(1, 5, 1000, true, std::nullopt, 0.5).has_value());
  CHECK(NextAttemptDelay(1, 2, 10, false, milliseconds(3000), 0.5) == milliseconds(3000));
  CHECK(NextAttemptDelay(1, 2, 10, false, milliseconds(99999999), 0.5) == kMaxRetryDelay);
  // A Retry-After on the last attempt changes nothing: it was the last.
  CHECK_FALSE(NextAttemptDelay(3, 2, 10, false, milliseconds(3000), 0.5).has_value());
}

}  // namespace
}  // namespace walhook
