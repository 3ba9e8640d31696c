#include "walhook/attempt.h"

#include <doctest/doctest.h>

#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

using std::chrono::seconds;

HeldEvent Event(int attempts = 0, int depth = 0) {
  HeldEvent e;
  e.id = 42;
  e.trigger = "welcome";
  e.type = "DB_INSERT";
  e.payload = R"({"doc": {"n": 12.50}})";
  e.ts_ms = 1795860000250;
  e.attempts = attempts;
  e.chain_depth = depth;
  return e;
}

AttemptResponse Response(long status, std::string_view body) {
  AttemptResponse r;
  r.status = status;
  r.body = body;
  return r;
}

const auto kNow = std::chrono::system_clock::time_point(seconds(784111777 - 90));

TEST_CASE("attempt: a long success keeps its whole \"response\" for a synchronous caller") {
  const std::string member = R"({"k": ")" + std::string(6000, 'v') + R"(", "n": 12.50})";
  const std::string body =
      R"({"pad": ")" + std::string(5000, 'p') + R"(", "response": )" + member + "}";
  const AttemptRecord r = JudgeAttempt(Event(), Response(200, body), {}, kNow, 0.5);
  CHECK(r.status == EventStatus::kProcessed);
  CHECK(r.response_body.size() == kResponseBodyKept);
  CHECK(r.response_result == member);
  // What response_body holds whole needs no copy.
  const AttemptRecord small =
      JudgeAttempt(Event(), Response(200, R"({"response": {"a": 1}})"), {}, kNow, 0.5);
  CHECK(small.response_result.empty());
  // Nor does a long body without one, or a failure.
  CHECK(JudgeAttempt(Event(), Response(200, R"({"pad": ")" + std::string(5000, 'p') + "\"}"), {},
                     kNow, 0.5)
            .response_result.empty());
  CHECK(JudgeAttempt(Event(), Response(500, body), {}, kNow, 0.5).response_result.empty());
}

TEST_CASE("attempt: a 2xx is processed; the events it asks for are queued one level deeper") {
  const AttemptRecord r = JudgeAttempt(
      Event(0, 3), Response(200, R"({"events":[{"type":"NEXT"},{"type":"DB_X"}]})"), {}, kNow, 0.5);
  CHECK(r.status == EventStatus::kProcessed);
  CHECK(r.event_id == 42);
  CHECK(r.trigger == "welcome");
  CHECK(r.attempt == 1);
  CHECK(r.http_status == 200);
  REQUIRE(r.queued.size() == 1);
  CHECK(r.queued[0].type == "NEXT");
  CHECK(r.queued_depth == 4);
  CHECK(r.remark.find("response event 2 refused") != std::string::npos);
  // At the deepest level, nothing more.
  const AttemptRecord deep = JudgeAttempt(
      Event(0, kMaxChainDepth), Response(200, R"({"event":{"type":"NEXT"}})"), {}, kNow, 0.5);
  CHECK(deep.status == EventStatus::kProcessed);
  CHECK(deep.queued.empty());
  CHECK(deep.remark.find("16 deep at most") != std::string::npos);
}

TEST_CASE("attempt: a hostile 2xx body is a success that says what was not read (SPEC §9)") {
  const AttemptRecord utf8 = JudgeAttempt(
      Event(), Response(200, "{\"event\":{\"type\":\"X\",\"payload\":{\"a\":\"\xff\"}}}"), {}, kNow,
      0.5);
  CHECK(utf8.status == EventStatus::kProcessed);
  CHECK(utf8.queued.empty());
  CHECK(utf8.remark.find("invalid UTF-8") != std::string::npos);
  CHECK(IsValidUtf8(StorableText(utf8.response_body)));

  AttemptResponse cut = Response(200, R"({"event":{"type":"X"}})");
  cut.body_cut = true;
  const AttemptRecord big = JudgeAttempt(Event(), cut, {}, kNow, 0.5);
  CHECK(big.status == EventStatus::kProcessed);
  CHECK(big.queued.empty());
  CHECK(big.remark.find("over 1024 KiB") != std::string::npos);

  // response_body: the first 4 KiB, never ending inside a character.
  std::string accents = R"({"ab":")";
  for (int i = 0; i < 3000; ++i) accents += "\xc3\xa9";
  accents += R"("})";
  const AttemptRecord kept = JudgeAttempt(Event(), Response(200, accents), {}, kNow, 0.5);
  CHECK(kept.response_body.size() == kResponseBodyKept - 1);
  CHECK(IsValidUtf8(kept.response_body));
}

TEST_CASE("attempt: failures are retried on the schedule or as Retry-After says, then failed") {
  const AttemptRecord first = JudgeAttempt(Event(0), Response(500, "down"),
                                           {.retries = 2, .retry_interval_ms = 1000}, kNow, 0.5);
  CHECK(first.status == EventStatus::kStaged);
  CHECK(first.retry_in_ms == 1000);
  CHECK(first.error == "HTTP 500");
  CHECK(first.remark == "HTTP 500 (attempt 1 of 3; next in 1.0 s)");
  CHECK(first.queued.empty());

  AttemptResponse later = Response(503, "");
  later.retry_after = "Sunday, 06-Nov-94 08:49:37 GMT";  // 90 s after kNow
  const AttemptRecord asked = JudgeAttempt(Event(0), later, {.retries = 2}, kNow, 0.5);
  CHECK(asked.status == EventStatus::kStaged);
  CHECK(asked.retry_in_ms == 90000);
  CHECK(asked.remark.find("as Retry-After asked") != std::string::npos);

  AttemptResponse none;
  none.transport_error = "Connection refused";
  const AttemptRecord last = JudgeAttempt(Event(2), none, {.retries = 2}, kNow, 0.5);
  CHECK(last.status == EventStatus::kFailed);
  CHECK(last.attempt == 3);
  CHECK(last.http_status == 0);
  CHECK(last.remark == "no response: Connection refused (attempt 3 of 3; no attempts left)");
  REQUIRE(last.queued.size() == 1);
  CHECK(last.queued[0].type == "dlq_welcome");
  CHECK(last.queued[0].payload.find(R"("event_payload":{"doc": {"n": 12.50}})") !=
        std::string::npos);

  const AttemptRecord gone = JudgeAttempt(Event(0), Response(410, ""), {.retries = 5}, kNow, 0.5);
  CHECK(gone.status == EventStatus::kFailed);
  CHECK(gone.remark == "HTTP 410 Gone: not retried");
  CHECK(gone.queued.size() == 1);
  // An "error" in a 2xx past the first 64 KiB is a failure too.
  const std::string late = R"({"pad":")" + std::string(100 << 10, 'x') + R"(","error":"late"})";
  const AttemptRecord error = JudgeAttempt(Event(0), Response(200, late), {}, kNow, 0.5);
  CHECK(error.status == EventStatus::kStaged);
  CHECK(error.error.find("late") != std::string::npos);
}

}  // namespace
}  // namespace walhook
