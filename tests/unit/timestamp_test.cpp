#include "walhook/timestamp.h"

#include <doctest/doctest.h>

namespace walhook {
namespace {

TEST_CASE("ParseRfc3339Ms") {
  CHECK(ParseRfc3339Ms("1970-01-01T00:00:00Z") == 0);
  CHECK(ParseRfc3339Ms("1970-01-01T00:00:01.5Z") == 1500);
  CHECK(ParseRfc3339Ms("1970-01-01T01:00:00+01:00") == 0);
  CHECK(ParseRfc3339Ms("1970-01-01T00:00:00-00:30") == 1800000);
  CHECK(ParseRfc3339Ms("2026-11-28T10:00:00.250Z") == 1795860000250);
  CHECK(ParseRfc3339Ms("2000-02-29 00:00:00.9999Z") == 951782400999);  // ms truncated
  CHECK(ParseRfc3339Ms("1969-12-31T23:59:59Z") == -1000);
  CHECK_FALSE(ParseRfc3339Ms("1970-01-01").has_value());
  CHECK_FALSE(ParseRfc3339Ms("1970-01-01T00:00:00").has_value());  // no zone
  CHECK_FALSE(ParseRfc3339Ms("1970-13-01T00:00:00Z").has_value());
  CHECK_FALSE(ParseRfc3339Ms("1970-01-01T00:00:00.Z").has_value());
  CHECK_FALSE(ParseRfc3339Ms("1970-01-01T00:00:00Zjunk").has_value());
}

TEST_CASE("ParseRfc3339Ms: only days that exist") {
  CHECK(ParseRfc3339Ms("2024-02-29T00:00:00Z").has_value());  // a leap year
  CHECK(ParseRfc3339Ms("2000-02-29T00:00:00Z").has_value());  // divisible by 400
  CHECK(ParseRfc3339Ms("2024-04-30T00:00:00Z").has_value());
  CHECK(ParseRfc3339Ms("2024-12-31T00:00:00Z").has_value());
  for (const char* text : {"2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
                           "2024-04-31T00:00:00Z", "2024-06-31T00:00:00Z", "2024-09-31T00:00:00Z",
                           "2024-11-31T00:00:00Z", "2024-01-32T00:00:00Z", "2024-01-00T00:00:00Z",
                           "2024-00-10T00:00:00Z"}) {
    CAPTURE(text);
    CHECK_FALSE(ParseRfc3339Ms(text).has_value());
  }
  CHECK_FALSE(PgTimestampMs("2024-02-30 00:00:00+00").has_value());
}

TEST_CASE("PgTimestampMs reads Postgres's ISO text as (extract(epoch FROM t) * 1000)::int8") {
  // Each value is what Postgres 15 answered for the same text.
  CHECK(PgTimestampMs("2026-11-28 04:06:36.900285+00") == 1795838796900);
  CHECK(PgTimestampMs("2026-11-28 04:06:36.9+00") == 1795838796900);
  CHECK(PgTimestampMs("2026-11-28 04:06:36+00") == 1795838796000);
  CHECK(PgTimestampMs("2024-12-31 23:59:59.999999+00") == 1735689600000);
  CHECK(PgTimestampMs("2000-02-29 12:00:00+05:30") == 951805800000);
  CHECK(PgTimestampMs("1900-03-01 00:00:00-03:00:30") == -2203880370000);
  CHECK(PgTimestampMs("0001-01-01 00:00:00+00") == -62135596800000);
  SUBCASE("half a millisecond rounds away from zero") {
    CHECK(PgTimestampMs("1970-01-01 00:00:00.0005+00") == 1);
    CHECK(PgTimestampMs("1970-01-01 00:00:00.000499+00") == 0);
    CHECK(PgTimestampMs("1969-12-31 23:59:59.9995+00") == -1);
    CHECK(PgTimestampMs("1969-12-31 23:59:59.9996+00") == 0);
  }
  SUBCASE("anything else is not read") {
    for (const char* text :
         {"", "ts", "2026-11-28 04:06:36", "2026-11-28T04:06:36+00", "2026-11-28 04:06:36.+00",
          "2026-11-28 04:06:36.1234567+00", "2026-13-28 04:06:36+00", "2026-11-28 24:00:00+00",
          "2026-11-28 04:06:36+0", "2026-11-28 04:06:36+00:", "2026-11-28 04:06:36+00 BC",
          "12026-11-28 04:06:36+00", "2026-11-28 04:06:36Z", "28/11/2026 04:06:36 UTC"}) {
      CAPTURE(text);
      CHECK_FALSE(PgTimestampMs(text).has_value());
    }
  }
}

}  // namespace
}  // namespace walhook
