#include "walhook/queued_event.h"

#include <doctest/doctest.h>

namespace walhook {
namespace {

TEST_CASE("ParseQueuedEvent: what queue_event writes") {
  // As json_build_object(...)::text || E'\n' || payload::text prints it.
  auto e = ParseQueuedEvent(
      "{\"type\" : \"ORDER_SHIPPED\", \"delay_ms\" : 1500, \"at\" : null}\n"
      "{\"order\": 7, \"total\": 12.50, \"big\": 9007199254740993}");
  REQUIRE(e.ok());
  CHECK(e->type == "ORDER_SHIPPED");
  CHECK(e->delay_ms == 1500);
  CHECK_FALSE(e->at_ms.has_value());
  // The payload's text is kept as printed, every digit.
  CHECK(e->payload == "{\"order\": 7, \"total\": 12.50, \"big\": 9007199254740993}");

  auto at =
      ParseQueuedEvent("{\"type\" : \"a-b_C9\", \"delay_ms\" : 0, \"at\" : 1795000000123}\nnull");
  REQUIRE(at.ok());
  CHECK(at->at_ms == 1795000000123);
  CHECK(at->payload == "null");
}

TEST_CASE("ParseQueuedEvent: anything else is an error, never a crash") {
  for (const char* bad : {
           "",
           "{\"type\":\"X\"}",                       // no payload line
           "not json\n{}",                           // header
           "[1]\n{}",                                // header not an object
           "{\"delay_ms\":0}\n{}",                   // no type
           "{\"type\":7}\n{}",                       // type not a string
           "{\"type\":\"DB_INSERT\"}\n{}",           // reserved
           "{\"type\":\"FILE_CREATE\"}\n{}",         // reserved
           "{\"type\":\"a b\"}\n{}",                 // bad character
           "{\"type\":\"X\",\"delay_ms\":-1}\n{}",   // negative delay
           "{\"type\":\"X\",\"delay_ms\":1.5}\n{}",  // not an integer
           "{\"type\":\"X\",\"at\":\"soon\"}\n{}",   // at not a number
           "{\"type\":\"X\"}\n{\"a\":",              // payload not JSON
       }) {
    CAPTURE(bad);
    CHECK_FALSE(ParseQueuedEvent(bad).ok());
  }
}

TEST_CASE("IsCustomEventType") {
  CHECK(IsCustomEventType("ORDER_SHIPPED"));
  CHECK(IsCustomEventType("dlq_welcome"));
  CHECK(IsCustomEventType("db_lower_is_custom"));
  CHECK_FALSE(IsCustomEventType(""));
  CHECK_FALSE(IsCustomEventType("DB_UPDATE"));
  CHECK_FALSE(IsCustomEventType("FILE_X"));
  CHECK_FALSE(IsCustomEventType("a.b"));
}

}  // namespace
}  // namespace walhook
