// The HTTP API against a hostile client (SPEC §9 "HTTP clients",
// "Idempotency-Key"): raw sockets send what a well-behaved client would not,
// and after each attack walhook must be alive, /healthz must answer, and a
// custom event queued with a good token must still reach its webhook.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"
#include "walhook/json.h"
#include "walhook/webhook_request.h"

namespace walhook::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kSecret = "hostile-secret";
constexpr int kApiPort = 4600;
constexpr int kHookPort = 4601;
constexpr const char* kQueuePath = "/v1/api/default/eventing/queue";

int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Token() {
  return SignProjectToken(kSecret, NowS(), 3600);
}

// walhook's resident memory in KiB (VmRSS).
long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

int Connect() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(kApiPort);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Everything the server sends until it closes, or until `timeout`.
std::string ReadUntilClosed(int fd, milliseconds timeout) {
  std::string out;
  const auto end = Clock::now() + timeout;
  char buf[65536];
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
    if (poll(&p, 1, static_cast<int>(std::max<long>(left, 1))) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

int StatusOf(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string BodyOf(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

// The answer is `status` with a JSON {"error": …} body.
void CheckJsonError(const std::string& response, int status) {
  CHECK(StatusOf(response) == status);
  CHECK(response.find("Content-Type: application/json") != std::string::npos);
  rapidjson::Document doc;
  CHECK(ParseJson(BodyOf(response), &doc).ok());
  CHECK((doc.IsObject() && doc.HasMember("error") && doc["error"].IsString()));
}

// One request on a new connection; the whole answer (the connection closes).
std::string Raw(const std::string& request, milliseconds timeout = milliseconds(10000)) {
  const int fd = Connect();
  SendAll(fd, request);
  std::string out = ReadUntilClosed(fd, timeout);
  close(fd);
  return out;
}

std::string QueueRequest(const std::string& body, const std::string& extra_headers) {
  return std::string("POST ") + kQueuePath + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
         extra_headers +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string WithToken(const std::string& body, const std::string& extra = "") {
  return QueueRequest(body, "Authorization: Bearer " + Token() + "\r\n" + extra);
}

// Sends `head`, then `piece` again and again (up to `total` bytes) while
// another thread reads; returns what the server answered once it closed or
// stopped reading.
struct Flooded {
  std::string response;
  size_t sent = 0;
};
Flooded Flood(const std::string& head, const std::string& piece, size_t total) {
  const int fd = Connect();
  Flooded out;
  std::thread reader([&] { out.response = ReadUntilClosed(fd, milliseconds(60000)); });
  if (SendAll(fd, head)) {
    out.sent = head.size();
    while (out.sent < total && SendAll(fd, piece)) out.sent += piece.size();
  }
  shutdown(fd, SHUT_WR);
  reader.join();
  close(fd);
  return out;
}

void Init(const std::string& db) {
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
}

std::unique_ptr<Process> StartApi(const std::string& db, const std::string& node_id) {
  auto p = std::make_unique<Process>(std::vector<std::string>{
      WalhookBinary(), "run", "--source", db, "--secret", kSecret, "--node-id", node_id, "--listen",
      "127.0.0.1:" + std::to_string(kApiPort), "--heartbeat-interval", "300ms"});
  httplib::Client c("127.0.0.1", kApiPort);
  const bool ok = WaitFor(
      [&] {
        auto r = c.Get("/healthz");
        return r && r->status == 200;
      },
      20s, 100ms);
  INFO(p->Output());
  REQUIRE(p->Running());
  REQUIRE(ok);
  return p;
}

// What must hold after every attack: walhook runs, /healthz answers within
// a second, and a good custom event reaches the webhook.
struct Survivor {
  Process& walhook;
  Receiver& hook;
  int pings = 0;

  void Check(const char* after) {
    CAPTURE(after);
    REQUIRE_MESSAGE(walhook.Running(), walhook.Output());
    httplib::Client c("127.0.0.1", kApiPort);
    c.set_read_timeout(5, 0);
    const auto asked = Clock::now();
    auto health = c.Get("/healthz");
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - asked);
    REQUIRE(health);
    CHECK(health->status == 200);
    CHECK(took < milliseconds(1000));
    ++pings;
    const std::string answer =
        Raw(WithToken(R"({"type": "PING", "payload": {"n": )" + std::to_string(pings) + "}}"));
    CHECK(StatusOf(answer) == 200);
    CHECK(WaitFor(
        [&] {
          size_t n = 0;
          for (const Arrival& a : hook.Arrivals()) n += a.path == "/ping" ? 1 : 0;
          return n == static_cast<size_t>(pings);
        },
        5s));
  }
};

TEST_CASE("hostile http: bad tokens and client mistakes get a 4xx with a JSON error") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(kHookPort);
  Exec(db, "INSERT INTO eventing.triggers (name, type, url) VALUES ('ping', 'PING', '" +
               hook.Url("/ping") + "'), ('any', 'X', '" + hook.Url("/x") + "')");
  // A node id that needs escaping in /healthz's JSON.
  auto walhook = StartApi(db, "node \"one\"\\");
  Survivor survivor{*walhook, hook};

  {
    INFO("/healthz escapes the node id");
    httplib::Client c("127.0.0.1", kApiPort);
    auto r = c.Get("/healthz");
    REQUIRE(r);
    rapidjson::Document doc;
    const bool valid = ParseJson(r->body, &doc).ok();
    CHECK_MESSAGE(valid, r->body);
    if (valid) CHECK(std::string(doc["node_id"].GetString()) == "node \"one\"\\");
  }

  const std::string body = R"({"type": "X", "payload": {}})";
  auto b64 = [](std::string_view s) {
    std::string out;
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t bits = 0;
    int n = 0;
    for (const unsigned char c : s) {
      bits = (bits << 8) | c;
      n += 8;
      while (n >= 6) {
        n -= 6;
        out += kAlphabet[(bits >> n) & 63];
      }
    }
    if (n > 0) out += kAlphabet[(bits << (6 - n)) & 63];
    return out;
  };
  struct Bad {
    const char* what;
    std::string authorization;
    int status;
  };
  const std::vector<Bad> tokens = {
      {"\\xff.a.b", "Bearer \xff.a.b", 401},
      {"alg 1", "Bearer " + b64(R"({"alg":1})") + "." + b64(R"({"exp":9999999999})") + ".c2ln",
       401},
      {"claims array", "Bearer " + b64(R"({"alg":"HS256"})") + "." + b64("[1]") + ".c2ln", 401},
      {"another secret", "Bearer " + SignProjectToken("other", NowS(), 3600), 401},
      {"bytes", "Bearer \x01\x02\x80\xfe", 400},  // a control character in a header
      {"X-SC-Token", TokenSigner(kSecret, "node").Header(NowS()), 403},
  };
  for (const Bad& t : tokens) {
    INFO(t.what);
    const std::string r = Raw(QueueRequest(body, "Authorization: " + t.authorization + "\r\n"));
    CheckJsonError(r, t.status);
    CHECK(r.find("what()") == std::string::npos);
    CHECK(r.find("exception") == std::string::npos);
  }
  survivor.Check("bad tokens");
  // Bearer in any case.
  CHECK(StatusOf(Raw(QueueRequest(body, "Authorization: bearer " + Token() + "\r\n"))) == 200);

  struct Mistake {
    const char* what;
    std::string request;
    int status;
  };
  const std::vector<Mistake> mistakes = {
      {"invalid UTF-8", WithToken("{\"type\": \"X\", \"payload\": {\"a\": \"\xff\"}}"), 400},
      {"500,000 nested arrays",
       WithToken(R"({"type": "X", "payload": )" + std::string(500000, '[') +
                 std::string(500000, ']') + "}"),
       400},
      {"2024-02-30", WithToken(R"({"type": "X", "timestamp": "2024-02-30T00:00:00Z"})"), 400},
      {"negative delay", WithToken(R"({"type": "X", "delay": -5})"), 400},
      {"delay out of range", WithToken(R"({"type": "X", "delay": 1e300})"), 400},
      {"timestamp out of range", WithToken(R"({"type": "X", "timestamp": 1e16})"), 400},
      {"timestamp in 2262", WithToken(R"({"type": "X", "timestamp": 9223372036854})"), 200},
      {"the latest due time accepted",
       WithToken(
           R"({"type": "X", "delay": 3155760000000, "timestamp": "9999-12-31T23:59:59.999Z"})"),
       200},
      {"3 KB Idempotency-Key",
       WithToken(body, "Idempotency-Key: " + std::string(3000, 'k') + "\r\n"), 400},
      {"request line too long",
       "GET /" + std::string(70000, 'a') + " HTTP/1.1\r\nConnection: close\r\n\r\n", 431},
      {"101 headers",
       [] {
         std::string r = "GET /healthz HTTP/1.1\r\n";
         for (int i = 0; i < 101; ++i) r += "X-H: " + std::to_string(i) + "\r\n";
         return r + "\r\n";
       }(),
       431},
      {"not HTTP", std::string("\x16\x03\x01\x02\x00\x01\r\n\r\n", 10), 400},
      {"no such path", "GET /v1/nothing HTTP/1.1\r\n\r\n", 404},
  };
  for (const Mistake& m : mistakes) {
    INFO(m.what);
    const std::string r = Raw(m.request);
    if (m.status == 200) {
      CHECK(StatusOf(r) == 200);
      continue;
    }
    CheckJsonError(r, m.status);
  }
  survivor.Check("client mistakes");
  // Nothing refused was queued (the two in range were, and Postgres holds them).
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE type = 'X'") == 3);
  CHECK(Q(db, "SELECT max(ts) FROM eventing.event_logs WHERE type = 'X'").rfind("10099-12-", 0) ==
        0);
}

TEST_CASE("hostile http: huge and slow clients are bounded before any token") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(kHookPort);
  Exec(db, "INSERT INTO eventing.triggers (name, type, url) VALUES ('ping', 'PING', '" +
               hook.Url("/ping") + "')");
  auto walhook = StartApi(db, "slow");
  Survivor survivor{*walhook, hook};
  survivor.Check("start");
  const long base = RssKib(walhook->pid());
  REQUIRE(base > 0);
  auto grown_mib = [&] { return (RssKib(walhook->pid()) - base) / 1024; };

  const std::string chunk = "100000\r\n" + std::string(0x100000, 'a') + "\r\n";  // 1 MiB
  {
    INFO("a 400 MiB chunked body without a token");
    const auto f =
        Flood(std::string("POST ") + kQueuePath + " HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
              chunk, 400u << 20);
    CheckJsonError(f.response, 401);
    MESSAGE("chunked without a token: sent ", f.sent >> 20, " MiB before walhook closed");
    CHECK(f.sent < (64u << 20));
  }
  {
    INFO("a 400 MiB chunked body with a token");
    const auto f = Flood(std::string("POST ") + kQueuePath +
                             " HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer " +
                             Token() + "\r\n\r\n",
                         chunk, 400u << 20);
    CheckJsonError(f.response, 413);
    CHECK(f.sent < (64u << 20));
  }
  {
    INFO("a Content-Length of 400 MiB is refused before the body");
    const std::string r = Raw(std::string("POST ") + kQueuePath +
                              " HTTP/1.1\r\nContent-Length: 419430400\r\nAuthorization: Bearer " +
                              Token() + "\r\n\r\n");
    CheckJsonError(r, 413);
  }
  MESSAGE("RSS after the huge bodies: +", grown_mib(), " MiB");
  CHECK(grown_mib() < 32);
  survivor.Check("huge bodies");

  {
    INFO("3 requests of 12,000 headers of 8 KB each, never finished");
    std::vector<std::thread> floods;
    std::vector<Flooded> results(3);
    std::string header = "X-Big: " + std::string(8000, 'h') + "\r\n";
    for (int i = 0; i < 3; ++i) {
      floods.emplace_back([&, i] {
        results[i] = Flood("GET /healthz HTTP/1.1\r\n", header, 12000 * header.size());
      });
    }
    for (auto& t : floods) t.join();
    for (const Flooded& f : results) {
      CheckJsonError(f.response, 431);
      CHECK(f.sent < (16u << 20));
    }
  }
  MESSAGE("RSS after the huge headers: +", grown_mib(), " MiB");
  CHECK(grown_mib() < 32);
  survivor.Check("huge headers");

  {
    INFO("100 slow clients, one header line every 3 s");
    std::vector<int> slow;
    for (int i = 0; i < 100; ++i) {
      const int fd = Connect();
      SendAll(fd, std::string("POST ") + kQueuePath + " HTTP/1.1\r\n");
      slow.push_back(fd);
    }
    const auto opened = Clock::now();
    std::atomic<bool> stop{false};
    std::thread dribble([&] {
      while (!stop) {
        for (const int fd : slow) send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL);
        for (int i = 0; i < 30 && !stop; ++i) std::this_thread::sleep_for(100ms);
      }
    });
    // /healthz answers within a second all along.
    httplib::Client c("127.0.0.1", kApiPort);
    c.set_read_timeout(5, 0);
    int answered = 0;
    while (Clock::now() - opened < 8s) {
      const auto asked = Clock::now();
      auto r = c.Get("/healthz");
      const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - asked);
      CHECK(r);
      if (r) {
        CHECK(r->status == 200);
        answered += r->status == 200 ? 1 : 0;
      }
      CHECK(took < 1000ms);
      std::this_thread::sleep_for(500ms);
    }
    CHECK(answered >= 10);
    // Not a whole request within 10 s: each is answered 408 and closed.
    int closed = 0;
    for (const int fd : slow) {
      const std::string r = ReadUntilClosed(fd, 5000ms);
      closed += StatusOf(r) == 408 ? 1 : 0;
    }
    const auto took = Clock::now() - opened;
    stop = true;
    dribble.join();
    for (const int fd : slow) close(fd);
    CHECK(closed == 100);
    CHECK(took < 14s);
  }
  {
    INFO("a connection that sends nothing is closed after 10 s");
    const int fd = Connect();
    const auto opened = Clock::now();
    const std::string r = ReadUntilClosed(fd, 15000ms);
    close(fd);
    CHECK(r.empty());
    CHECK(Clock::now() - opened < 12s);
  }
  MESSAGE("RSS after the slow clients: +", grown_mib(), " MiB");
  CHECK(grown_mib() < 32);
  survivor.Check("slow clients");
}

TEST_CASE("hostile http: an Idempotency-Key keeps the final answer") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(kHookPort, [](const Arrival& a) {
    Reply r;
    if (a.path == "/gone") r.status = 410;
    if (a.path == "/slow") r.delay = 3000ms;
    if (a.path == "/slow") r.body = R"({"response": {"slow": true}})";
    return r;
  });
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, url, retries) VALUES "
       "('ping', 'PING', '" +
           hook.Url("/ping") +
           "', 0), "
           "('gone', 'GONE', '" +
           hook.Url("/gone") +
           "', 0), "
           "('slow', 'SLOW', '" +
           hook.Url("/slow") + "', 0)");
  auto walhook = StartApi(db, "keys");
  Survivor survivor{*walhook, hook};

  const std::string gone = R"({"type": "GONE", "payload": {}, "isSynchronous": true})";
  const std::string first = Raw(WithToken(gone, "Idempotency-Key: k-gone\r\n"));
  CheckJsonError(first, 502);
  const std::string again = Raw(WithToken(gone, "Idempotency-Key: k-gone\r\n"));
  CHECK(StatusOf(again) == 502);
  CHECK(BodyOf(again) == BodyOf(first));
  // The same key with another body.
  const std::string other =
      Raw(WithToken(R"({"type": "GONE", "payload": {"x": 1}, "isSynchronous": true})",
                    "Idempotency-Key: k-gone\r\n"));
  CheckJsonError(other, 422);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE type = 'GONE'") == 1);

  // A duplicate while the first waits: 409 (or the first's answer).
  const std::string slow = R"({"type": "SLOW", "payload": {}, "isSynchronous": true})";
  std::string slow_first;
  std::thread caller([&] { slow_first = Raw(WithToken(slow, "Idempotency-Key: k-slow\r\n")); });
  REQUIRE(WaitFor([&] { return hook.Count() >= 2; }, 5s));
  const std::string during = Raw(WithToken(slow, "Idempotency-Key: k-slow\r\n"));
  caller.join();
  CHECK(StatusOf(slow_first) == 200);
  CHECK(BodyOf(slow_first) == R"({"result":{"slow": true}})");
  CHECK((StatusOf(during) == 409 || BodyOf(during) == BodyOf(slow_first)));
  const std::string after = Raw(WithToken(slow, "Idempotency-Key: k-slow\r\n"));
  CHECK(StatusOf(after) == 200);
  CHECK(BodyOf(after) == BodyOf(slow_first));
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE type = 'SLOW'") == 1);
  survivor.Check("idempotency keys");
}

}  // namespace
}  // namespace walhook::test
