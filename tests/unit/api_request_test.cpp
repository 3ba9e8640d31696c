// The API's judgement of a request head (SPEC §5, §9) and the queue body's
// checks on client mistakes.

#include "walhook/api_request.h"

#include <doctest/doctest.h>

#include <string>

#include "walhook/chain.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

constexpr const char* kKey = "secret";
constexpr int64_t kNow = 1800000000;

HttpRequest Head(std::string method, std::string path,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.target = r.path;
  r.headers = std::move(headers);
  return r;
}

int StatusOf(const HttpRequest& head) {
  const auto r = CheckApiHead(head, "default", kKey, kNow);
  if (!r) return 0;
  CHECK(r->content_type == "application/json");
  CHECK(r->body.rfind("{\"error\":\"", 0) == 0);
  return r->status;
}

TEST_CASE("CheckApiHead: routes, tokens and roles") {
  const std::string path = "/v1/api/default/eventing/queue";
  const std::string user = "Bearer " + SignProjectToken(kKey, kNow, 60);
  CHECK(StatusOf(Head("GET", "/healthz")) == 0);
  CHECK(StatusOf(Head("GET", "/metrics")) == 0);
  CHECK(StatusOf(Head("POST", path, {{"Authorization", user}})) == 0);
  CHECK(StatusOf(Head("POST", path, {{"authorization", "bearer " + user.substr(7)}})) == 0);
  CHECK(StatusOf(Head("GET", "/v1/nothing")) == 404);
  CHECK(StatusOf(Head("POST", "/v1/api/other/eventing/queue", {{"Authorization", user}})) == 404);
  CHECK(StatusOf(Head("POST", "/v1/api/a/b/eventing/queue", {{"Authorization", user}})) == 404);
  CHECK(StatusOf(Head("GET", path, {{"Authorization", user}})) == 405);
  CHECK(StatusOf(Head("POST", "/healthz")) == 405);
  CHECK(StatusOf(Head("POST", path)) == 401);
  CHECK(StatusOf(Head("POST", path, {{"Authorization", "Bearer \xff.a.b"}})) == 401);
  CHECK(StatusOf(Head("POST", path, {{"Authorization", "Basic abc"}})) == 401);
  CHECK(StatusOf(Head("POST", path, {{"Authorization", user}, {"Authorization", user}})) == 401);
  CHECK(StatusOf(Head("POST", path,
                      {{"Authorization", "Bearer " + SignProjectToken("other", kNow, 60)}})) ==
        401);
  CHECK(StatusOf(Head("POST", path,
                      {{"Authorization", "Bearer " + SignProjectToken(kKey, kNow - 120, 60)}})) ==
        401);
  // The token walhook sends to webhooks is not a token for its API.
  TokenSigner signer(kKey, "node");
  CHECK(StatusOf(Head("POST", path, {{"Authorization", signer.Header(kNow)}})) == 403);
  CHECK(StatusOf(
            Head("POST", path,
                 {{"Authorization", "Bearer " + SignProjectToken(kKey, kNow, 60, "admin")}})) == 0);
  // The message never echoes the token.
  const auto r =
      CheckApiHead(Head("POST", path, {{"Authorization", user + "x"}}), "default", kKey, kNow);
  REQUIRE(r);
  CHECK(r->body.find(user.substr(7)) == std::string::npos);
}

TEST_CASE("CheckApiHead: Idempotency-Key") {
  const std::string path = "/v1/api/default/eventing/queue";
  const std::pair<std::string, std::string> auth{"Authorization",
                                                 "Bearer " + SignProjectToken(kKey, kNow, 60)};
  CHECK(StatusOf(Head("POST", path, {auth, {"Idempotency-Key", "order-8"}})) == 0);
  CHECK(StatusOf(Head("POST", path, {auth, {"Idempotency-Key", std::string(255, 'k')}})) == 0);
  CHECK(StatusOf(Head("POST", path, {auth, {"Idempotency-Key", std::string(256, 'k')}})) == 400);
  CHECK(StatusOf(Head("POST", path, {auth, {"Idempotency-Key", std::string(3000, 'k')}})) == 400);
  CHECK(StatusOf(Head("POST", path, {auth, {"Idempotency-Key", "\xff"}})) == 400);
  CHECK(StatusOf(Head("POST", path, {auth, {"Idempotency-Key", ""}})) == 400);
  CHECK(StatusOf(Head("POST", path, {auth, {"Idempotency-Key", "a"}, {"Idempotency-Key", "b"}})) ==
        400);
  std::string wide;
  for (int i = 0; i < 255; ++i) wide += "\xc3\xa9";  // 255 characters, 510 bytes
  CHECK(CheckIdempotencyKey(wide).ok());
  CHECK_FALSE(CheckIdempotencyKey(wide + "e").ok());
  CHECK(RequestHash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("ParseQueueRequest: client mistakes are refused with a message") {
  struct Case {
    std::string body;
    const char* says;
  };
  const std::vector<Case> bad = {
      {"{\"type\":\"X\",\"payload\":{\"a\":\"\xff\"}}", "UTF-8"},
      {R"({"type":"X","payload":{"a":"\ud800"}})", "surrogate"},
      {R"({"type":"X","payload":)" + std::string(500000, '[') + std::string(500000, ']') + "}",
       "nested deeper"},
      {R"({"type":"X","delay":-1})", "negative"},
      {R"({"type":"X","delay":1e300})", "delay"},
      {R"({"type":"X","delay":3155760000001})", "delay"},
      {R"({"type":"X","delay":1e400})", "not JSON"},
      {R"({"type":"X","timestamp":"2024-02-30T00:00:00Z"})", "timestamp"},
      {R"({"type":"X","timestamp":"2023-02-29T00:00:00Z"})", "timestamp"},
      {R"({"type":"X","timestamp":"0000-01-01T00:00:00Z"})", "out of range"},
      {R"({"type":"X","timestamp":-1})", "out of range"},
      {R"({"type":"X","timestamp":253402300800000})", "out of range"},
      {R"({"type":"X","timestamp":1e300})", "out of range"},
  };
  for (const Case& c : bad) {
    CAPTURE(c.body.substr(0, 80));
    const auto q = ParseQueueRequest(c.body);
    REQUIRE_FALSE(q.ok());
    CHECK(q.error().find(c.says) != std::string::npos);
  }
  const auto edge = ParseQueueRequest(
      R"({"type":"X","delay":3155760000000,"timestamp":"9999-12-31T23:59:59.999Z"})");
  REQUIRE(edge.ok());
  CHECK(edge->event.delay_ms == kMaxDelayMs);
  CHECK(edge->event.at_ms == kMaxTimestampMs);
  const auto leap = ParseQueueRequest(R"({"type":"X","timestamp":"2024-02-29T00:00:00Z"})");
  CHECK(leap.ok());
}

}  // namespace
}  // namespace walhook
