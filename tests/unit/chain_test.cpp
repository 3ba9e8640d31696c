#include "walhook/chain.h"

#include <doctest/doctest.h>

namespace walhook {
namespace {

TEST_CASE("ParseResponseEvents: event and events") {
  SUBCASE("one event") {
    const ResponseEvents r =
        ParseResponseEvents(R"({"event": {"type": "NEXT", "payload": {"n": 12.50}}})");
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0].type == "NEXT");
    CHECK(r.events[0].payload == R"({"n": 12.50})");  // as written
    CHECK(r.events[0].delay_ms == 0);
    CHECK_FALSE(r.events[0].at_ms.has_value());
    CHECK(r.refused.empty());
  }
  SUBCASE("several, with delays and timestamps") {
    const ResponseEvents r = ParseResponseEvents(
        R"({"response": {"ok": true}, "events": [
              {"type": "A", "payload": [1, 2], "delay": 1500},
              {"type": "B", "timestamp": "2026-11-28T10:00:00.250Z"},
              {"type": "C", "timestamp": 1795000000123},
              {"type": "D", "timestamp": "2026-11-28T12:00:00+02:00"}]})");
    REQUIRE(r.events.size() == 4);
    CHECK(r.events[0].payload == "[1, 2]");
    CHECK(r.events[0].delay_ms == 1500);
    CHECK(r.events[1].payload == "null");
    CHECK(r.events[1].at_ms == 1795860000250);
    CHECK(r.events[2].at_ms == 1795000000123);
    CHECK(r.events[3].at_ms == 1795860000000);
    CHECK(r.refused.empty());
  }
  SUBCASE("both members") {
    const ResponseEvents r =
        ParseResponseEvents(R"({"event": {"type": "A"}, "events": [{"type": "B"}]})");
    CHECK(r.events.size() == 2);
  }
}

TEST_CASE("ParseResponseEvents: nothing asked, or refused entries") {
  for (const char* none : {"", "ok", "{}", "[]", R"({"response": 1})", R"({"event": null})",
                           "{\"event\": {\"type\": \"A\""}) {
    CAPTURE(none);
    const ResponseEvents r = ParseResponseEvents(none);
    CHECK(r.events.empty());
    CHECK(r.refused.empty());
  }
  const ResponseEvents r = ParseResponseEvents(
      R"({"events": [{"type": "DB_INSERT"}, {"type": "ok"}, {"payload": {}}, 7,
                     {"type": "A", "delay": -1}, {"type": "A", "timestamp": "tomorrow"},
                     {"type": "a b"}]})");
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].type == "ok");
  CHECK(r.refused.find("response event 1 refused: type \"DB_INSERT\"") != std::string::npos);
  CHECK(r.refused.find("response event 3 refused: no \"type\"") != std::string::npos);
  CHECK(r.refused.find("response event 4 refused: not an object") != std::string::npos);
  CHECK(r.refused.find("response event 5 refused: \"delay\"") != std::string::npos);
  CHECK(r.refused.find("response event 6 refused: \"timestamp\"") != std::string::npos);
  CHECK(r.refused.find("response event 7 refused") != std::string::npos);
  CHECK(ParseResponseEvents(R"({"events": {"type": "A"}})").refused.find("not an array") !=
        std::string::npos);
}

TEST_CASE("ParseResponseEvents: a body read with a bounded depth and UTF-8 checked (SPEC §9)") {
  // Invalid UTF-8 in a chained event's payload: nothing queued, said why.
  const ResponseEvents bad =
      ParseResponseEvents("{\"event\":{\"type\":\"X\",\"payload\":{\"a\":\"\xff\"}}}");
  CHECK(bad.events.empty());
  CHECK(bad.refused.find("invalid UTF-8") != std::string::npos);
  // An escaped lone surrogate is no better: not JSON (RFC 8259 text
  // cannot spell it), so nothing is asked.
  CHECK(ParseResponseEvents(R"({"event":{"type":"X","payload":{"a":"\ud800"}}})").events.empty());
  // Nested past the bound: refused without recursing.
  const std::string deep = R"({"event":{"type":"X","payload":)" + std::string(200000, '[') +
                           std::string(200000, ']') + "}}";
  const ResponseEvents nested = ParseResponseEvents(deep);
  CHECK(nested.events.empty());
  CHECK(nested.refused.find("nested deeper") != std::string::npos);
  // A payload as deep as allowed is kept as written.
  const std::string ok_deep = std::string(500, '[') + std::string(500, ']');
  const ResponseEvents kept =
      ParseResponseEvents(R"({"event":{"type":"X","payload":)" + ok_deep + "}}");
  REQUIRE(kept.events.size() == 1);
  CHECK(kept.events[0].payload == ok_deep);
  // Valid UTF-8 passes untouched.
  const ResponseEvents accents =
      ParseResponseEvents("{\"event\":{\"type\":\"X\",\"payload\":{\"a\":\"caf\xc3\xa9\"}}}");
  REQUIRE(accents.events.size() == 1);
  CHECK(accents.events[0].payload == "{\"a\":\"caf\xc3\xa9\"}");
  // Parsed once by JudgeResponse's caller: the same answer.
  rapidjson::Document doc;
  REQUIRE(ParseJson(R"({"events":[{"type":"A"},{"type":"DB_X"}]})", &doc).ok());
  const ResponseEvents of = ResponseEventsOf(doc, R"({"events":[{"type":"A"},{"type":"DB_X"}]})");
  CHECK(of.events.size() == 1);
  CHECK(of.refused.find("response event 2 refused") != std::string::npos);
}

TEST_CASE("DlqPayload: a stored payload deeper than responses may be is still embedded") {
  const std::string deep = std::string(5000, '[') + std::string(5000, ']');
  CHECK(DlqPayload(1, "X", deep, 0, "t").find(deep) != std::string::npos);
}

TEST_CASE("DlqPayload") {
  CHECK(DlqPayload(42, "DB_INSERT", R"({"doc": {"n": 12.50}})", 1764324000250, "welcome") ==
        R"({"event_id":"42","event_type":"DB_INSERT","event_payload":{"doc": {"n": 12.50}},)"
        R"("event_timestamp":"2025-11-28T10:00:00.250Z","event_name":"welcome"})");
  CHECK(DlqPayload(1, "X", "not json", 0, "t").find(R"("event_payload":null)") !=
        std::string::npos);
  // Found by response_fuzz: a NUL byte ended the parse early, and the writer
  // asserted on the raw text it was handed.
  using namespace std::string_literals;
  CHECK(DlqPayload(1, "X", "{}\0x"s, 0, "t").find(R"("event_payload":null)") != std::string::npos);
}

TEST_CASE("ParseQueueRequest: what space-api and curl send") {
  auto q = ParseQueueRequest(
      R"({"type":"ORDER_SHIPPED","delay":1500,"payload":{"order":7,"total":12.50},)"
      R"("options":{},"isSynchronous":true,"timestamp":"2026-11-28T10:00:00.250Z"})");
  REQUIRE(q.ok());
  CHECK(q->event.type == "ORDER_SHIPPED");
  CHECK(q->event.payload == R"({"order":7,"total":12.50})");
  CHECK(q->event.delay_ms == 1500);
  CHECK(q->event.at_ms == 1795860000250);
  CHECK(q->synchronous);
  auto minimal = ParseQueueRequest(R"({"type": "X"})");
  REQUIRE(minimal.ok());
  CHECK(minimal->event.payload == "null");
  CHECK_FALSE(minimal->synchronous);
  for (const char* bad :
       {"", "{", "[]", R"({"type": 1})", R"({"type": "DB_UPDATE"})",
        R"({"type": "X", "delay": -5})", R"({"type": "X", "options": []})",
        R"({"type": "X", "isSynchronous": 1})", R"({"type": "X", "timestamp": true})"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseQueueRequest(bad).ok());
  }
}

TEST_CASE("RawJsonMember") {
  CHECK(RawJsonMember(R"({"a": 1, "response": {"x": 12.50}, "b": [1]})", "response") ==
        std::optional<std::string_view>(R"({"x": 12.50})"));
  CHECK(RawJsonMember(R"({"response": "s\"}"})", "response") ==
        std::optional<std::string_view>(R"("s\"}")"));
  CHECK_FALSE(RawJsonMember(R"({"a": 1})", "response").has_value());
  CHECK_FALSE(RawJsonMember("not json", "response").has_value());
  CHECK_FALSE(RawJsonMember("[1]", "response").has_value());
}

}  // namespace
}  // namespace walhook
