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

TEST_CASE("ParseQueuedEvent: payloads from outside are bounded and UTF-8") {
  // A million levels: an error, not a stack overflow.
  std::string deep = "{\"type\":\"X\"}\n" + std::string(1000000, '[') + std::string(1000000, ']');
  CHECK_FALSE(ParseQueuedEvent(deep).ok());
  CHECK_FALSE(ParseQueuedEvent("{\"type\":\"X\"}\n{\"a\":\"\xff\"}").ok());
  CHECK_FALSE(ParseQueuedEvent("{\"type\":\"X\"}\n{\"a\":\"\\ud800\"}").ok());
  CHECK_FALSE(ParseQueuedEvent("{\"type\":\"X\\u00ff\xfe\"}\n{}").ok());
  auto xid = ParseQueuedEvent("{\"type\":\"X\",\"xid\":4294967295}\n{}");
  REQUIRE(xid.ok());
  CHECK(xid->xid == 4294967295u);
  CHECK_FALSE(ParseQueuedEvent("{\"type\":\"X\",\"xid\":4294967296}\n{}").ok());
  CHECK_FALSE(ParseQueuedEvent("{\"type\":\"X\",\"xid\":-1}\n{}").ok());
}

TEST_CASE("ParseQueuedEvent and DueMs: due times Postgres cannot store are refused") {
  // queue_event('X', delay => '10 years', at => '294270-01-01'), as sent.
  auto e =
      ParseQueuedEvent("{\"type\":\"X\",\"delay_ms\":315576000000,\"at\":9224097091200000}\n{}");
  REQUIRE(e.ok());
  const int64_t commit = 1796000000000;  // 2026
  CHECK_FALSE(DueMs(*e, commit).has_value());
  e->delay_ms = 0;
  CHECK(DueMs(*e, commit) == 9224097091200000);
  e->at_ms.reset();
  e->delay_ms = kMaxDueMs;  // the largest delay a header may carry: no overflow
  CHECK_FALSE(DueMs(*e, commit).has_value());
  e->delay_ms = 1500;
  CHECK(DueMs(*e, commit) == commit + 1500);
  e->at_ms = commit + 10;  // later than the commit
  CHECK(DueMs(*e, commit) == commit + 1510);
  e->at_ms = commit - 10;  // earlier: the commit counts
  CHECK(DueMs(*e, commit) == commit + 1500);
  for (const char* bad : {
           "{\"type\":\"X\",\"delay_ms\":9223372036854775807}\n{}",
           "{\"type\":\"X\",\"delay_ms\":9224286393600001}\n{}",
           "{\"type\":\"X\",\"at\":9224286393600001}\n{}",
           "{\"type\":\"X\",\"at\":-9223372036854775808}\n{}",
           "{\"type\":\"X\",\"at\":1e300}\n{}",
       }) {
    CAPTURE(bad);
    CHECK_FALSE(ParseQueuedEvent(bad).ok());
  }
}

TEST_CASE("HmacSha256Hex: RFC 4231 test case 2") {
  CHECK(HmacSha256Hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// A message as queue_event (sql/014) writes it.
std::string Signed(std::string_view key, int64_t key_id, std::string_view body) {
  return "hmac-sha256 " + std::to_string(key_id) + " " + HmacSha256Hex(key, body) + "\n" +
         std::string(body);
}

TEST_CASE("QueuedEventVerifier: only what queue_event signed opens") {
  const std::string key(32, '\x5a');
  const std::string other_key(32, '\x33');
  QueuedEventVerifier v;
  v.SetKeys({{1, key}, {3, other_key}}, Lsn(100));
  const Lsn after(200);
  const std::string body =
      "{\"type\" : \"ORDER_SHIPPED\", \"delay_ms\" : 0, \"at\" : null, \"xid\" : 747}\n"
      "{\"order\": 7}";
  const std::string good = Signed(key, 1, body);

  auto e = v.Open(good, after, 747);
  REQUIRE(e.ok());
  CHECK(e->type == "ORDER_SHIPPED");
  CHECK(e->payload == "{\"order\": 7}");
  CHECK(v.Open(Signed(other_key, 3, body), after, 747).ok());
  CHECK(QueuedEventKeyId(good) == 1);

  SUBCASE("altered payload") {
    std::string altered = good;
    altered.replace(altered.find("7}"), 1, "8");
    CHECK(v.Open(altered, after, 747).error().find("does not verify") != std::string::npos);
  }
  SUBCASE("altered MAC") {
    std::string altered = good;
    altered[20] = altered[20] == 'a' ? 'b' : 'a';
    CHECK_FALSE(v.Open(altered, after, 747).ok());
  }
  SUBCASE("signed with the wrong key, or a key not known") {
    CHECK_FALSE(v.Open(Signed(other_key, 1, body), after, 747).ok());
    const std::string unknown = Signed(key, 2, body);
    CHECK(QueuedEventKeyId(unknown) == 2);
    CHECK_FALSE(v.HasKey(2));
    CHECK_FALSE(v.Open(unknown, after, 747).ok());
  }
  SUBCASE("copied into another transaction") {
    CHECK(v.Open(good, after, 748).error().find("another transaction") != std::string::npos);
    CHECK_FALSE(v.Open(good, after, std::nullopt).ok());
    const std::string no_xid =
        Signed(key, 1, "{\"type\" : \"ORDER_SHIPPED\", \"delay_ms\" : 0, \"at\" : null}\n{}");
    CHECK_FALSE(v.Open(no_xid, after, 747).ok());
  }
  SUBCASE("made up: no MAC, or a malformed MAC line") {
    CHECK(v.Open(body, after, 747).error() == "not signed by queue_event");
    for (const std::string& bad : {
             std::string("hmac-sha256 1 ") + std::string(64, 'g') + "\n" + body,
             std::string("hmac-sha256 1 ") + std::string(63, 'a') + "\n" + body,
             std::string("hmac-sha256 1 ") + std::string(64, 'A') + "\n" + body,
             std::string("hmac-sha256 -1 ") + std::string(64, 'a') + "\n" + body,
             std::string("hmac-sha256 x ") + std::string(64, 'a') + "\n" + body,
             std::string("hmac-sha256 1 ") + std::string(64, 'a'),
             std::string("hmac-sha256 "),
             std::string(""),
         }) {
      CAPTURE(bad);
      CHECK_FALSE(v.Open(bad, after, 747).ok());
    }
  }
  SUBCASE("signed but malformed inside") {
    const std::string deep = "{\"type\":\"X\",\"xid\":747}\n" + std::string(100000, '[');
    CHECK_FALSE(v.Open(Signed(key, 1, deep), after, 747).ok());
    CHECK_FALSE(
        v.Open(Signed(key, 1, "{\"type\":\"DB_INSERT\",\"xid\":747}\n{}"), after, 747).ok());
  }
  SUBCASE("written by the queue_event of before 014: only from before the key") {
    const std::string legacy =
        "{\"type\" : \"ORDER_SHIPPED\", \"delay_ms\" : 0, \"at\" : null}\n{}";
    CHECK(v.Open(legacy, Lsn(99), 5).ok());
    CHECK_FALSE(v.Open(legacy, Lsn(100), 5).ok());
    CHECK_FALSE(v.Open(legacy, Lsn(), 5).ok());
    QueuedEventVerifier none;
    none.SetKeys({{1, key}}, Lsn());
    CHECK_FALSE(none.Open(legacy, Lsn(99), 5).ok());
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
