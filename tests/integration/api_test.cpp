// The HTTP API of walhook run, end to end: a real Postgres, the walhook
// binary, a real HTTP client and a real webhook receiver.

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"
#include "walhook/webhook_request.h"

namespace walhook::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSecret = "api-secret";
constexpr int kApiPort = 4491;
constexpr const char* kQueuePath = "/v1/api/default/eventing/queue";

int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Init(const std::string& db) {
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
}

void AddCustom(const std::string& db, const std::string& name, const std::string& type,
               const std::string& url, const std::string& extra = "") {
  Exec(db, "INSERT INTO eventing.triggers (name, type, url, timeout_ms) VALUES ('" + name + "', '" +
               type + "', '" + url + "', 20000)" + extra);
}

// walhook run with the API on kApiPort; returns once /healthz says 200.
std::unique_ptr<Process> StartApi(const std::string& db) {
  auto p = std::make_unique<Process>(std::vector<std::string>{
      WalhookBinary(), "run", "--source", db, "--secret", kSecret, "--node-id", "api", "--listen",
      "127.0.0.1:" + std::to_string(kApiPort), "--heartbeat-interval", "300ms"});
  httplib::Client c("127.0.0.1", kApiPort);
  // Its own answer (node "api"), not another process's on the same port.
  const bool ok = WaitFor(
      [&] {
        auto r = c.Get("/healthz");
        return r && r->status == 200 && r->body.find("\"node_id\":\"api\"") != std::string::npos;
      },
      20s, 100ms);
  INFO(p->Output());
  REQUIRE(p->Running());
  REQUIRE(ok);
  return p;
}

httplib::Result Queue(const std::string& body, const std::string& token,
                      const httplib::Headers& extra = {}) {
  httplib::Client c("127.0.0.1", kApiPort);
  c.set_read_timeout(30, 0);
  httplib::Headers h = extra;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  return c.Post(kQueuePath, h, body, "application/json");
}

size_t OnPathCount(const Receiver& r, const std::string& path) {
  size_t n = 0;
  for (const Arrival& a : r.Arrivals()) n += a.path == path ? 1 : 0;
  return n;
}

std::string Token() {
  return SignProjectToken(kSecret, NowS(), 3600);
}

TEST_CASE("api: queue, with every bad request refused with a JSON error") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(4392);
  AddCustom(db, "shipped", "ORDER_SHIPPED", hook.Url("/shipped"));
  auto walhook = StartApi(db);

  auto r = Queue(R"({"type": "ORDER_SHIPPED", "payload": {"order": 7, "total": 12.50}})", Token());
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "{}");
  // Durable before the answer.
  CHECK(Q(db, "SELECT payload::text FROM eventing.event_logs WHERE trigger_name = 'shipped'") ==
        R"({"order": 7, "total": 12.50})");
  REQUIRE(hook.WaitForCount(1, 10s));
  CHECK(hook.Arrivals()[0].body.find(R"("data":{"order": 7, "total": 12.50})") !=
        std::string::npos);

  struct Bad {
    const char* what;
    std::string body;
    std::string token;
    int status;
    const char* says;
  };
  const std::vector<Bad> bad = {
      {"no token", R"({"type": "X"})", "", 401, "missing token"},
      {"another secret", R"({"type": "X"})", SignProjectToken("other", NowS(), 3600), 401,
       "bad token"},
      {"expired", R"({"type": "X"})", SignProjectToken(kSecret, NowS() - 7200, 3600), 401,
       "bad token"},
      {"not JSON", "{", Token(), 400, "not JSON"},
      {"not an object", "[1]", Token(), 400, "not a JSON object"},
      {"no type", R"({"payload": {}})", Token(), 400, "type"},
      {"DB type", R"({"type": "DB_INSERT"})", Token(), 400, "not a custom event type"},
      {"FILE type", R"({"type": "FILE_CREATE"})", Token(), 400, "not a custom event type"},
      {"delay type", R"({"type": "X", "delay": "soon"})", Token(), 400, "delay"},
      {"timestamp", R"({"type": "X", "timestamp": "yesterday"})", Token(), 400, "timestamp"},
      {"options", R"({"type": "X", "options": 3})", Token(), 400, "options"},
      {"isSynchronous", R"({"type": "X", "isSynchronous": "yes"})", Token(), 400, "isSynchronous"},
      {"too big", std::string(1100000, ' '), Token(), 413, "over"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.what);
    auto res = Queue(b.body, b.token);
    REQUIRE(res);
    CHECK(res->status == b.status);
    CHECK(res->get_header_value("Content-Type") == "application/json");
    CHECK(res->body.find("\"error\"") != std::string::npos);
    CHECK(res->body.find(b.says) != std::string::npos);
  }
  httplib::Client c("127.0.0.1", kApiPort);
  auto other =
      c.Post("/v1/api/elsewhere/eventing/queue",
             httplib::Headers{{"Authorization", "Bearer " + Token()}}, "{}", "application/json");
  REQUIRE(other);
  CHECK(other->status == 404);
  CHECK(other->body.find("unknown project") != std::string::npos);
  auto nowhere = c.Get("/v1/nothing");
  REQUIRE(nowhere);
  CHECK(nowhere->status == 404);
  CHECK(nowhere->body.find("\"error\"") != std::string::npos);
  // Nothing refused was queued.
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs") == 1);

  // Idempotency-Key: a retried request gets the first answer, one event.
  const httplib::Headers key{{"Idempotency-Key", "order-8"}};
  for (int i = 0; i < 3; ++i) {
    auto res = Queue(R"({"type": "ORDER_SHIPPED", "payload": {"order": 8}})", Token(), key);
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE payload->>'order' = '8'") == 1);

  // Delayed by the request's delay; the metrics count what happened.
  auto later =
      Queue(R"({"type": "ORDER_SHIPPED", "payload": {"order": 9}, "delay": 1500})", Token());
  REQUIRE(later);
  CHECK(later->status == 200);
  CHECK(Q(db,
          "SELECT round(extract(epoch FROM ts - event_ts) * 10) FROM eventing.event_logs "
          "WHERE payload->>'order' = '9'") == "15");
  REQUIRE(hook.WaitForCount(3, 10s));
  // The receiver counts a request before walhook has read the answer.
  std::string body;
  CHECK(WaitFor(
      [&] {
        auto metrics = c.Get("/metrics");
        body = metrics && metrics->status == 200 ? metrics->body : "";
        return body.find("walhook_deliveries_total{outcome=\"processed\"} 3") != std::string::npos;
      },
      5s));
  CHECK(body.find("walhook_events_queued_total 3") != std::string::npos);
  CHECK(body.find("walhook_delivery_latency_seconds_count 3") != std::string::npos);
  CHECK(walhook->Running());
}

TEST_CASE("api: synchronous calls wait for the webhook's response without blocking others") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  // A result larger than invocation_logs' 4 KiB of response_body.
  const std::string big = R"({"note": ")" + std::string(20000, 'x') + R"(", "n": 12.50})";
  Receiver hook(4393, [big](const Arrival& a) {
    Reply r;
    if (a.path == "/answer") r.body = R"({"response": {"welcome": "ada", "n": 12.50}})";
    if (a.path == "/big")
      r.body = R"({"padding": ")" + std::string(8000, 'p') + R"(", "response": )" + big + "}";
    if (a.path == "/hang") r.hang = true;
    return r;
  });
  AddCustom(db, "answer", "ASK", hook.Url("/answer"));
  AddCustom(db, "hang", "HANG", hook.Url("/hang"));
  AddCustom(db, "big", "ASK_BIG", hook.Url("/big"));
  auto walhook = StartApi(db);

  // The whole "response", however far past the first 4 KiB it sits.
  auto large = Queue(R"({"type": "ASK_BIG", "payload": {}, "isSynchronous": true})", Token());
  REQUIRE(large);
  CHECK(large->status == 200);
  CHECK(large->body == R"({"result":)" + big + "}");

  auto r = Queue(R"({"type": "ASK", "payload": {}, "isSynchronous": true})", Token());
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == R"({"result":{"welcome": "ada", "n": 12.50}})");
  auto none = Queue(R"({"type": "NOBODY_LISTENS", "isSynchronous": true})", Token());
  REQUIRE(none);
  CHECK(none->status == 200);
  CHECK(none->body == R"({"result":null})");

  // Ten calls wait on a webhook that never answers; /healthz still answers.
  std::vector<std::thread> callers;
  // Joined however the test ends (a failed REQUIRE must not leave them running).
  struct Joiner {
    std::vector<std::thread>& threads;
    ~Joiner() {
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{callers};
  std::atomic<int> timed_out{0};
  const auto start = Clock::now();
  for (int i = 0; i < 10; ++i) {
    callers.emplace_back([&] {
      auto res = Queue(R"({"type": "HANG", "isSynchronous": true})", Token());
      if (res && res->status == 504 && res->body.find("stays queued") != std::string::npos) {
        ++timed_out;
      }
    });
  }
  REQUIRE(hook.WaitForCount(11, 10s));  // all ten are on the wire
  httplib::Client c("127.0.0.1", kApiPort);
  const auto asked = Clock::now();
  auto health = c.Get("/healthz");
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - asked);
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body.find("\"role\":\"streaming\"") != std::string::npos);
  MESSAGE("/healthz answered in ", took.count(), " ms with ten synchronous calls waiting");
  CHECK(took < 1000ms);
  auto quick = Queue(R"({"type": "ASK", "payload": {}, "isSynchronous": true})", Token());
  REQUIRE(quick);
  CHECK(quick->status == 200);
  for (auto& t : callers) t.join();
  CHECK(timed_out.load() == 10);
  CHECK(Clock::now() - start >= 10s);
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE type = 'HANG' AND status = "
           "'staged'") == 10);

  // The eventing database down: /healthz says 503; back up: 200.
  pg.Stop();
  REQUIRE(WaitFor(
      [&] {
        auto res = c.Get("/healthz");
        return res && res->status == 503 && res->body.find("\"error\"") != std::string::npos;
      },
      10s, 200ms));
  pg.Start();
  REQUIRE(WaitFor(
      [&] {
        auto res = c.Get("/healthz");
        return res && res->status == 200;
      },
      40s, 200ms));
}

TEST_CASE("api: Space Cloud's space-api client queues events unchanged") {
  // contrib/test.sh installs the package with npm (WALHOOK_SPACE_API_MODULES
  // points elsewhere).
  const char* env = std::getenv("WALHOOK_SPACE_API_MODULES");
  const std::string modules =
      env != nullptr && *env != '\0' ? env : SourceRoot() + "/build/space-api/node_modules";
  const std::string missing =
      "the space-api npm package is not in " + modules +
      ": contrib/test.sh installs it (npm install --prefix build/space-api)";
  REQUIRE_MESSAGE(std::filesystem::exists(modules + "/space-api/package.json"), missing);
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(4394, [](const Arrival& a) {
    Reply r;
    if (a.path == "/ask") r.body = R"({"response": {"hello": "space-api"}})";
    return r;
  });
  AddCustom(db, "shipped", "ORDER_SHIPPED", hook.Url("/shipped"));
  AddCustom(db, "ask", "ASK", hook.Url("/ask"));
  auto walhook = StartApi(db);

  Process node({"node", SourceRoot() + "/tests/integration/space_api/client.js",
                "http://127.0.0.1:" + std::to_string(kApiPort), "default", Token()},
               {{"NODE_PATH", modules}});
  const int code = node.Wait(60s);
  const std::string out = node.Output();
  INFO(out);
  REQUIRE(code == 0);
  // [plain, sync, delayed, dated], each {status, data}.
  CHECK(out.find(R"([{"status":200,"data":{}},)"
                 R"({"status":200,"data":{"result":{"hello":"space-api"}}},)"
                 R"({"status":200,"data":{}},{"status":200,"data":{}}])") != std::string::npos);
  CHECK(Q(db,
          "SELECT string_agg(payload->>'order', ',' ORDER BY payload->>'order') "
          "FROM eventing.event_logs WHERE type = 'ORDER_SHIPPED'") == "7,8,9");
  // delay(1500) is 1.5 s after the (client's) timestamp; date() sets the time.
  CHECK(QL(db,
           "SELECT round(extract(epoch FROM ts - event_ts) * 1000) FROM eventing.event_logs "
           "WHERE payload->>'order' = '8'") >= 1400);
  CHECK(QL(db,
           "SELECT round(extract(epoch FROM ts - event_ts) * 1000) FROM eventing.event_logs "
           "WHERE payload->>'order' = '9'") >= 1500);
  REQUIRE(WaitFor([&] { return OnPathCount(hook, "/shipped") == 3; }, 10s));
}

}  // namespace
}  // namespace walhook::test
