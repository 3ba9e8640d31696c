// Request transforms and token claims (SPEC §11), end to end: a real
// Postgres, the walhook binary and a real receiver (receiver.h) that records
// what arrived. Templates that do not parse make their trigger inactive; one
// that does not evaluate for an event fails that event without a request;
// after each hostile one walhook is alive, /healthz answers and another
// trigger's event is still delivered. Ports 21100-21199.

#include <signal.h>

#include <doctest/doctest.h>
#include <httplib.h>
#include <rapidjson/document.h>
#include <pqxx/pqxx>

#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"
#include "walhook/kriti.h"
#include "walhook/webhook_request.h"

namespace walhook::test {
namespace {

constexpr const char* kSecret = "transform-secret";
constexpr const char* kSigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

void Init(const std::string& db) {
  Process p({WalhookBinary(), "init", "--source", db});
  const int code = p.Wait(30s);
  REQUIRE_MESSAGE(code == 0, p.Output());
}

// `walhook run` with its API on `api_port`; returns once it streams.
std::unique_ptr<Process> StartWalhook(const std::string& db, int api_port) {
  auto p = std::make_unique<Process>(std::vector<std::string>{
      WalhookBinary(), "run", "--source", db, "--secret", kSecret, "--node-id", "tn1",
      "--heartbeat-interval", "300ms", "--signing-secret", kSigningSecret, "--listen",
      "127.0.0.1:" + std::to_string(api_port)});
  const bool ok = WaitFor([&] { return HasRole(db, "tn1"); }, 20s, 100ms);
  INFO(p->Output());
  REQUIRE(ok);
  return p;
}

struct Hook {
  std::string name;
  std::string table;
  std::string url;
  std::string transform{};  // "" for NULL
  std::string claims{};     // "" for NULL
  int retries = 0;
  int retry_interval_ms = 100;
};

void AddHook(const std::string& db, const Hook& h) {
  pqxx::connection c(db);
  pqxx::nontransaction tx(c);
  tx.exec(
      "INSERT INTO eventing.triggers (name, type, table_name, url, request_transform, "
      "token_claims, retries, retry_interval_ms) VALUES (" +
      tx.quote(h.name) + ", 'DB_INSERT', " + tx.quote(h.table) + ", " + tx.quote(h.url) + ", " +
      (h.transform.empty() ? "NULL" : tx.quote(h.transform) + "::jsonb") + ", " +
      (h.claims.empty() ? "NULL" : tx.quote(h.claims) + "::jsonb") + ", " +
      std::to_string(h.retries) + ", " + std::to_string(h.retry_interval_ms) + ")");
}

std::string LastError(const std::string& db, const std::string& trigger) {
  return Q(db,
           "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = '" + trigger + "'");
}

std::string Active(const std::string& db, const std::string& trigger) {
  return Q(db, "SELECT active::text FROM eventing.trigger_status WHERE trigger_name = '" + trigger +
                   "'");
}

long EventId(const std::string& db, const std::string& trigger) {
  long id = 0;
  WaitFor(
      [&] {
        id = QL(db, "SELECT coalesce(min(id), 0) FROM eventing.event_logs WHERE trigger_name = '" +
                        trigger + "'");
        return id != 0;
      },
      15s, 50ms);
  return id;
}

std::string Status(const std::string& db, long id) {
  return Q(db, "SELECT status FROM eventing.event_logs WHERE id = " + std::to_string(id));
}

std::string Remark(const std::string& db, long id) {
  return Q(db, "SELECT remark FROM eventing.event_logs WHERE id = " + std::to_string(id));
}

size_t ArrivalsAt(const Receiver& hook, const std::string& path) {
  size_t n = 0;
  for (const Arrival& a : hook.Arrivals()) n += a.path == path ? 1 : 0;
  return n;
}

// walhook is up, /healthz answers, and a row of the plain trigger's table
// (`plain`, to `/plain` of `hook`) is delivered within seconds.
void CheckStillServing(Process& walhook, int api_port, const std::string& db, Receiver& hook,
                       int id) {
  REQUIRE_MESSAGE(walhook.Running(), walhook.Output());
  httplib::Client c("127.0.0.1", api_port);
  c.set_connection_timeout(2);
  c.set_read_timeout(2);
  const auto r = c.Get("/healthz");
  REQUIRE(r);
  CHECK(r->status == 200);
  const size_t before = ArrivalsAt(hook, "/plain");
  Exec(db, "INSERT INTO plain (id) VALUES (" + std::to_string(id) + ")");
  CHECK_MESSAGE(WaitFor([&] { return ArrivalsAt(hook, "/plain") == before + 1; }, 5s),
                walhook.Output());
}

std::string Base64UrlDecode(std::string in) {
  for (char& c : in) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int bits = 0;
  unsigned value = 0;
  for (char c : in) {
    const auto pos = kAlphabet.find(c);
    if (pos == std::string::npos) break;
    value = (value << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((value >> bits) & 0xff));
    }
  }
  return out;
}

// The standard body of event `id` as walhook builds it (node tn1).
std::string StandardBody(const std::string& db, long id) {
  const std::string sid = std::to_string(id);
  const std::string payload =
      Q(db, "SELECT payload::text FROM eventing.event_logs WHERE id = " + sid);
  const long ts_ms = QL(db,
                        "SELECT (extract(epoch FROM ts) * 1000)::int8 FROM eventing.event_logs "
                        "WHERE id = " +
                            sid);
  return BuildCloudEvent(id, "DB_INSERT", "tn1", ts_ms, payload);
}

struct Env {
  TempPostgres pg;
  std::string db;
  std::unique_ptr<Receiver> hook;
  std::unique_ptr<Process> walhook;
  int api_port = 0;
};

// A database with tables `items` (id, name, price numeric) and `plain`, a
// plain trigger on `plain`, the receiver on `port` and walhook's API on `port` + 1.
void Setup(Env* env, int port, Policy policy = {}) {
  env->db = env->pg.conninfo();
  Init(env->db);
  Exec(env->db,
       "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric, target text); "
       "CREATE TABLE plain (id int PRIMARY KEY)");
  env->hook = std::make_unique<Receiver>(port, std::move(policy));
  env->api_port = port + 1;
  AddHook(env->db, {.name = "plain", .table = "plain", .url = env->hook->Url("/plain")});
}

// SPEC §11: method, URL, query, headers, body and claims, checked at the receiver.
TEST_CASE("transform: a PUT with a templated URL, query, headers, body and token claims") {
  Env env;
  Setup(&env, 21100);
  const std::string transform = R"({
    "method": "PUT",
    "url": "{{$base_url}}/docs/{{$body.data.doc.id}}",
    "query_params": {"primaryKey": "id", "name": "{{$body.data.doc.name}}"},
    "headers": {"X-Table": "{{$body.data.col}}", "Authorization": "Bearer k-1"},
    "body": "{\"objectID\": {{$body.data.doc.id}}, \"name\": {{$body.data.doc.name}}, \"price\": {{$body.data.doc.price}}}"
  })";
  const std::string claims = R"({"table": "{{$body.data.col}}", "row": "{{$body.data.doc.id}}"})";
  AddHook(env.db, {.name = "index",
                   .table = "items",
                   .url = env.hook->Url("/indexes/items"),
                   .transform = transform,
                   .claims = claims});
  env.walhook = StartWalhook(env.db, env.api_port);
  REQUIRE(Active(env.db, "index") == "true");

  Exec(env.db, "INSERT INTO items (id, name, price) VALUES (7, 'Café & Bar', 12.50)");
  const long id = EventId(env.db, "index");
  REQUIRE(id != 0);
  REQUIRE_MESSAGE(WaitFor([&] { return Status(env.db, id) == "processed"; }, 15s),
                  env.walhook->Output());
  std::vector<Arrival> got;
  for (const Arrival& a : env.hook->Arrivals()) {
    if (a.path != "/plain") got.push_back(a);
  }
  REQUIRE(got.size() == 1);
  const Arrival& a = got[0];
  CHECK(a.method == "PUT");
  CHECK(a.path == "/indexes/items/docs/7");
  // In jsonb's order of keys (shorter first), which is the order kept.
  CHECK(a.query == "name=Caf%C3%A9%20%26%20Bar&primaryKey=id");
  CHECK(a.Header("X-Table") == "items");
  CHECK(a.Header("Authorization") == "Bearer k-1");
  CHECK(a.Header("Content-Type") == "application/json");

  // The body: exactly what the template renders from the standard body.
  auto tmpl = kriti::Parse(
      R"({"objectID": {{$body.data.doc.id}}, "name": {{$body.data.doc.name}}, "price": {{$body.data.doc.price}}})",
      kriti::Mode::kJson);
  REQUIRE(tmpl.ok());
  const std::string standard = StandardBody(env.db, id);
  const auto expected = kriti::Render(**tmpl, {standard, env.hook->Url("/indexes/items")});
  REQUIRE(expected.ok());
  CHECK(a.body == *expected);
  CHECK(a.body.find("12.50") != std::string::npos);  // the number's text kept
  rapidjson::Document body;
  body.Parse(a.body.c_str());
  REQUIRE_FALSE(body.HasParseError());
  REQUIRE(body.IsObject());
  REQUIRE((body.HasMember("objectID") && body["objectID"].IsInt()));
  REQUIRE((body.HasMember("name") && body["name"].IsString()));
  CHECK(body["objectID"].GetInt() == 7);
  CHECK(std::string(body["name"].GetString()) == "Café & Bar");

  // Standard Webhooks: the same webhook-id, the signature over the body sent.
  CHECK(a.Header("webhook-id") == std::to_string(id));
  const walhook::Status sig =
      VerifyStandardWebhook(kSigningSecret, a.Header("webhook-id"), a.Header("webhook-timestamp"),
                            a.body, a.Header("webhook-signature"));
  CHECK_MESSAGE(sig.ok(), (sig.ok() ? "" : sig.message()));
  CHECK_FALSE(VerifyStandardWebhook(kSigningSecret, a.Header("webhook-id"),
                                    a.Header("webhook-timestamp"), standard,
                                    a.Header("webhook-signature"))
                  .ok());

  // X-SC-Token: verifies, holds the templated claims, role/iat/exp walhook's.
  const std::string token = a.Header("X-SC-Token");
  REQUIRE(token.rfind("Bearer ", 0) == 0);
  const std::string jwt = token.substr(7);
  const walhook::Status good = VerifyToken(jwt, kSecret, std::time(nullptr));
  CHECK_MESSAGE(good.ok(), (good.ok() ? "" : good.message()));
  const size_t dot1 = jwt.find('.');
  const size_t dot2 = jwt.find('.', dot1 + 1);
  rapidjson::Document c;
  const std::string claims_text = Base64UrlDecode(jwt.substr(dot1 + 1, dot2 - dot1 - 1));
  c.Parse(claims_text.c_str());
  REQUIRE_FALSE(c.HasParseError());
  CAPTURE(claims_text);
  REQUIRE(c.IsObject());
  for (const char* name : {"table", "row", "role", "id"}) {
    REQUIRE_MESSAGE((c.HasMember(name) && c[name].IsString()), name);
  }
  REQUIRE((c.HasMember("exp") && c["exp"].IsInt64() && c.HasMember("iat") && c["iat"].IsInt64()));
  CHECK(std::string(c["table"].GetString()) == "items");
  CHECK(std::string(c["row"].GetString()) == "7");
  CHECK(std::string(c["role"].GetString()) == "SpaceCloud");
  CHECK(std::string(c["id"].GetString()) == "tn1");
  CHECK(c["exp"].GetInt64() - c["iat"].GetInt64() == 30 * 60);
  CheckStillServing(*env.walhook, env.api_port, env.db, *env.hook, 1);
}

TEST_CASE("transform: a GET without a body, a DELETE, and a form post") {
  Env env;
  Setup(&env, 21110);
  AddHook(
      env.db,
      {.name = "get",
       .table = "items",
       .url = env.hook->Url("/get"),
       .transform =
           R"({"method": "GET", "body": null, "query_params": {"id": "{{$body.data.doc.id}}"}})"});
  AddHook(env.db,
          {.name = "del",
           .table = "items",
           .url = env.hook->Url("/del"),
           .transform = R"({"method": "DELETE", "url": "{{$base_url}}/{{$body.data.doc.id}}"})"});
  AddHook(env.db, {.name = "form",
                   .table = "items",
                   .url = env.hook->Url("/form"),
                   .transform = R"({"content_type": "application/x-www-form-urlencoded",
                            "body": "{\"text\": \"New item: {{$body.data.doc.name}}\", \"id\": {{$body.data.doc.id}}}"})"});
  env.walhook = StartWalhook(env.db, env.api_port);
  Exec(env.db, "INSERT INTO items (id, name, price) VALUES (8, 'a b&c', 1)");
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        return ArrivalsAt(*env.hook, "/get") == 1 &&
                               ArrivalsAt(*env.hook, "/del/8") == 1 &&
                               ArrivalsAt(*env.hook, "/form") == 1;
                      },
                      15s),
                  env.walhook->Output());
  for (const Arrival& a : env.hook->Arrivals()) {
    CAPTURE(a.path);
    if (a.path == "/get") {
      CHECK(a.method == "GET");
      CHECK(a.query == "id=8");
      CHECK(a.body.empty());
      CHECK(a.HeaderCount("Content-Type") == 0);
      CHECK((a.Header("Content-Length").empty() || a.Header("Content-Length") == "0"));
      // Signed over the empty body.
      CHECK(VerifyStandardWebhook(kSigningSecret, a.Header("webhook-id"),
                                  a.Header("webhook-timestamp"), "", a.Header("webhook-signature"))
                .ok());
    } else if (a.path == "/del/8") {
      // A DELETE without body null in its template: no body either.
      CHECK(a.method == "DELETE");
      CHECK(a.body.empty());
    } else if (a.path == "/form") {
      CHECK(a.method == "POST");
      CHECK(a.Header("Content-Type") == "application/x-www-form-urlencoded");
      CHECK(a.body == "text=New+item%3A+a+b%26c&id=8");
      CHECK(VerifyStandardWebhook(kSigningSecret, a.Header("webhook-id"),
                                  a.Header("webhook-timestamp"), a.body,
                                  a.Header("webhook-signature"))
                .ok());
    }
  }
  CheckStillServing(*env.walhook, env.api_port, env.db, *env.hook, 1);
}

TEST_CASE("transform: a template that does not parse makes its trigger inactive") {
  Env env;
  Setup(&env, 21120);
  AddHook(env.db, {.name = "broken",
                   .table = "items",
                   .url = env.hook->Url("/broken"),
                   .transform = R"({"body": "{\"a\": {{ $body.data.doc.id "})"});
  AddHook(env.db, {.name = "bad_claims",
                   .table = "items",
                   .url = env.hook->Url("/claims"),
                   .claims = R"("{{ if }}")"});
  env.walhook = StartWalhook(env.db, env.api_port);
  REQUIRE(WaitFor([&] { return Active(env.db, "broken") == "false"; }, 10s));
  const std::string e = LastError(env.db, "broken");
  CAPTURE(e);
  CHECK(e.rfind("request_transform.body: line 1, column ", 0) == 0);
  REQUIRE(WaitFor([&] { return Active(env.db, "bad_claims") == "false"; }, 10s));
  CHECK(LastError(env.db, "bad_claims").rfind("token_claims: line 1, column ", 0) == 0);
  Exec(env.db, "INSERT INTO items (id, name) VALUES (1, 'x')");
  CheckStillServing(*env.walhook, env.api_port, env.db, *env.hook, 1);
  CHECK(QL(env.db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name IN ('broken', "
           "'bad_claims')") == 0);
  CHECK(ArrivalsAt(*env.hook, "/broken") == 0);

  // Fixed: active again, and it delivers.
  Exec(
      env.db,
      R"(UPDATE eventing.triggers SET request_transform = '{"body": "{{ $body.data.doc.id }}"}' WHERE name = 'broken')");
  REQUIRE(WaitFor([&] { return Active(env.db, "broken") == "true"; }, 10s));
  Exec(env.db, "INSERT INTO items (id, name) VALUES (2, 'y')");
  REQUIRE(WaitFor([&] { return ArrivalsAt(*env.hook, "/broken") == 1; }, 10s));
  CHECK(env.hook->Arrivals().back().body == "2");
}

TEST_CASE("transform: an evaluation error fails that event at once, without a request") {
  Env env;
  Setup(&env, 21130);
  // toUpper of a number: a type error, for every event of this trigger.
  AddHook(env.db, {.name = "typed",
                   .table = "items",
                   .url = env.hook->Url("/typed"),
                   .transform = R"({"body": "{{ toUpper($body.data.doc.price) }}"})",
                   .retries = 3});
  // Whoever listens to its dead letters.
  Exec(env.db,
       "INSERT INTO eventing.triggers (name, type, url) VALUES ('typed-dlq', 'dlq_typed', '" +
           env.hook->Url("/dlq") + "')");
  env.walhook = StartWalhook(env.db, env.api_port);
  REQUIRE(Active(env.db, "typed") == "true");
  Exec(env.db, "INSERT INTO items (id, name, price) VALUES (1, 'x', 2)");
  const long id = EventId(env.db, "typed");
  REQUIRE(id != 0);
  REQUIRE_MESSAGE(WaitFor([&] { return Status(env.db, id) == "failed"; }, 10s),
                  env.walhook->Output());
  const std::string remark = Remark(env.db, id);
  CAPTURE(remark);
  CHECK(remark.rfind("transform: body: line 1, column ", 0) == 0);
  // Not retried (retries 3, every 100 ms), and no request was made.
  std::this_thread::sleep_for(1s);
  CHECK(Status(env.db, id) == "failed");
  CHECK(QL(env.db, "SELECT attempts FROM eventing.event_logs WHERE id = " + std::to_string(id)) ==
        1);
  CHECK(ArrivalsAt(*env.hook, "/typed") == 0);
  // A failed event queues its dlq_ event as any other.
  CHECK(WaitFor([&] { return ArrivalsAt(*env.hook, "/dlq") == 1; }, 5s));
  CheckStillServing(*env.walhook, env.api_port, env.db, *env.hook, 1);
}

TEST_CASE("transform: reserved headers are refused; a URL that is not http(s) fails the event") {
  Env env;
  Setup(&env, 21140);
  AddHook(env.db,
          {.name = "token_header",
           .table = "items",
           .url = env.hook->Url("/token"),
           .transform = R"({"headers": {"X-SC-Token": "Bearer {{$body.data.doc.name}}"}})"});
  AddHook(env.db, {.name = "signature_header",
                   .table = "items",
                   .url = env.hook->Url("/sig"),
                   .transform = R"({"headers": {"Webhook-Signature": "v1,forged"}})"});
  AddHook(env.db, {.name = "content_type",
                   .table = "items",
                   .url = env.hook->Url("/ct"),
                   .transform = R"({"headers": {"content-type": "text/html"}})"});
  AddHook(env.db, {.name = "elsewhere",
                   .table = "items",
                   .url = env.hook->Url("/elsewhere"),
                   .transform = R"({"url": "{{$body.data.doc.target}}"})",
                   .retries = 2});
  env.walhook = StartWalhook(env.db, env.api_port);
  for (const char* name : {"token_header", "signature_header", "content_type"}) {
    CAPTURE(name);
    REQUIRE(WaitFor([&] { return Active(env.db, name) == "false"; }, 10s));
  }
  CHECK(LastError(env.db, "token_header")
            .rfind("request_transform.headers: \"X-SC-Token\" is set by walhook", 0) == 0);
  CHECK(LastError(env.db, "signature_header")
            .rfind("request_transform.headers: \"Webhook-Signature\" is set by walhook", 0) == 0);
  CHECK(LastError(env.db, "content_type")
            .rfind("request_transform.headers: \"content-type\" is set by walhook", 0) == 0);

  Exec(env.db,
       "INSERT INTO items (id, target) VALUES (1, 'file:///etc/passwd'), "
       "(2, 'gopher://127.0.0.1:21141/x'), (3, 'http://127.0.0.1:21140/elsewhere/ok'), "
       "(4, 'http://127.0.0.1:21140/a b')");
  std::vector<long> ids;
  REQUIRE(WaitFor(
      [&] {
        return QL(env.db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'elsewhere' "
                  "AND status <> 'staged'") == 4;
      },
      10s));
  for (int row = 1; row <= 4; ++row) {
    const std::string where =
        "trigger_name = 'elsewhere' AND payload->'doc'->>'id' = '" + std::to_string(row) + "'";
    const std::string status = Q(env.db, "SELECT status FROM eventing.event_logs WHERE " + where);
    const std::string remark = Q(env.db, "SELECT remark FROM eventing.event_logs WHERE " + where);
    CAPTURE(row);
    CAPTURE(remark);
    if (row == 3) {
      CHECK(status == "processed");
    } else {
      CHECK(status == "failed");
      CHECK(remark.rfind("transform: url: ", 0) == 0);
      CHECK(QL(env.db, "SELECT attempts FROM eventing.event_logs WHERE " + where) == 1);
    }
  }
  // Only row 3's request was made; none of the reserved-header triggers'.
  CHECK(ArrivalsAt(*env.hook, "/elsewhere/ok") == 1);
  for (const Arrival& a : env.hook->Arrivals()) {
    CHECK((a.path == "/elsewhere/ok" || a.path == "/plain"));
  }
  CheckStillServing(*env.walhook, env.api_port, env.db, *env.hook, 1);
}

TEST_CASE("transform: a changed transform applies to a waiting retry") {
  Env env;
  // The first request fails; the retry waits 2 s.
  Setup(&env, 21150, [](const Arrival& a) {
    Reply r;
    if (a.path == "/hook/v1") r.status = 500;
    return r;
  });
  AddHook(env.db, {.name = "moving",
                   .table = "items",
                   .url = env.hook->Url("/hook"),
                   .transform = R"({"method": "PUT", "url": "{{$base_url}}/v1"})",
                   .retries = 2,
                   .retry_interval_ms = 2000});
  env.walhook = StartWalhook(env.db, env.api_port);
  Exec(env.db, "INSERT INTO items (id, name) VALUES (5, 'x')");
  REQUIRE(WaitFor([&] { return ArrivalsAt(*env.hook, "/hook/v1") == 1; }, 10s));
  Exec(
      env.db,
      R"(UPDATE eventing.triggers SET request_transform = '{"method": "PATCH", "url": "{{$base_url}}/v2", "body": "{{$body.data.doc.id}}"}' WHERE name = 'moving')");
  const long id = EventId(env.db, "moving");
  REQUIRE_MESSAGE(WaitFor([&] { return Status(env.db, id) == "processed"; }, 10s),
                  env.walhook->Output());
  std::vector<Arrival> got;
  for (const Arrival& a : env.hook->Arrivals()) {
    if (a.path != "/plain") got.push_back(a);
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0].method == "PUT");
  CHECK(got[1].method == "PATCH");
  CHECK(got[1].path == "/hook/v2");
  CHECK(got[1].body == "5");
  CHECK(got[1].Header("webhook-id") == got[0].Header("webhook-id"));
  CheckStillServing(*env.walhook, env.api_port, env.db, *env.hook, 1);
}

// The body is read only where the trigger's templates look (BodyPaths): a
// column no template reads, however large, is left out, and what the
// templates read arrives exactly, hostile characters and all; a template
// reading the whole body still gets every byte of it.
TEST_CASE(
    "transform: a row's columns no template reads are left out; what it reads arrives exact") {
  Env env;
  Setup(&env, 21170);
  Exec(env.db, "CREATE TABLE docs (id int PRIMARY KEY, title text, blob text, extra jsonb)");
  AddHook(
      env.db,
      {.name = "titles",
       .table = "docs",
       .url = env.hook->Url("/titles"),
       .transform =
           R"({"body": "{\"id\": {{$body.data.doc.id}}, \"title\": {{$body.data.doc.title}}}"})"});
  AddHook(env.db, {.name = "whole",
                   .table = "docs",
                   .url = env.hook->Url("/whole"),
                   .transform = R"({"method": "PUT", "body": "{{$body}}"})"});
  env.walhook = StartWalhook(env.db, env.api_port);
  REQUIRE(Active(env.db, "titles") == "true");
  REQUIRE(Active(env.db, "whole") == "true");
  // 256 KiB no template of "titles" reads, a jsonb with keys that look like
  // the paths read, and a title with quotes, a backslash, a line break,
  // "}}" and text outside the BMP.
  Exec(env.db,
       "INSERT INTO docs VALUES (5, E'say \"}}{{\" \\\\ \\n caf\\u00e9 \\U0001F600', "
       "repeat('x', 262144), "
       "'{\"data\": {\"doc\": {\"id\": 666, \"title\": \"forged\"}}, \"deep\": [[[[1]]]]}')");
  const long titled = EventId(env.db, "titles");
  const long whole = EventId(env.db, "whole");
  REQUIRE((titled != 0 && whole != 0));
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        return Status(env.db, titled) == "processed" &&
                               Status(env.db, whole) == "processed";
                      },
                      15s),
                  env.walhook->Output());
  std::string titles_body;
  std::string whole_body;
  for (const Arrival& a : env.hook->Arrivals()) {
    if (a.path == "/titles") titles_body = a.body;
    if (a.path == "/whole") whole_body = a.body;
  }
  CHECK(titles_body == "{\"id\":5,\"title\":\"say \\\"}}{{\\\" \\\\ \\n café \xF0\x9F\x98\x80\"}");
  // The whole body: the standard body's values, the 256 KiB column included.
  rapidjson::Document got;
  got.Parse(whole_body.c_str());
  REQUIRE_FALSE(got.HasParseError());
  rapidjson::Document standard;
  const std::string standard_text = StandardBody(env.db, whole);
  standard.Parse(standard_text.c_str());
  REQUIRE_FALSE(standard.HasParseError());
  CHECK(got == standard);
  REQUIRE(got.HasMember("data"));
  CHECK(got["data"]["doc"]["blob"].GetStringLength() == 262144);
  CheckStillServing(*env.walhook, env.api_port, env.db, *env.hook, 1);
}

// `walhook sink` answered only POST: a transformed request's PUT, PATCH,
// DELETE or GET got 404 there.
TEST_CASE("transform: walhook sink takes and prints every method, with its query and body") {
  const std::string port = "21160";
  Process sink({WalhookBinary(), "sink", "--listen", "127.0.0.1:" + port});
  REQUIRE(WaitFor([&] { return sink.Output().find("listening") != std::string::npos; }, 5s));
  httplib::Client c("127.0.0.1", std::stoi(port));
  c.set_connection_timeout(2);
  c.set_read_timeout(2);
  const auto put = c.Put("/docs/7?primaryKey=id", R"({"objectID":7})", "application/json");
  REQUIRE(put);
  CHECK(put->status == 200);
  const auto patch = c.Patch("/docs/8", "a=1", "application/x-www-form-urlencoded");
  REQUIRE(patch);
  CHECK(patch->status == 200);
  const auto del = c.Delete("/docs/9");
  REQUIRE(del);
  CHECK(del->status == 200);
  const auto get = c.Get("/docs?id=10");
  REQUIRE(get);
  CHECK(get->status == 200);
  const auto post = c.Post("/plain?x=1", "{}", "application/json");
  REQUIRE(post);
  CHECK(post->status == 200);
  REQUIRE(
      WaitFor([&] { return sink.Output().find("200 POST /plain?x=1") != std::string::npos; }, 5s));
  const std::string out = sink.Output();
  CAPTURE(out);
  CHECK(out.find("200 PUT /docs/7?primaryKey=id") != std::string::npos);
  CHECK(out.find(R"({"objectID":7})") != std::string::npos);
  CHECK(out.find("200 PATCH /docs/8") != std::string::npos);
  CHECK(out.find("a=1") != std::string::npos);
  CHECK(out.find("200 DELETE /docs/9") != std::string::npos);
  CHECK(out.find("200 GET /docs?id=10") != std::string::npos);
  sink.Signal(SIGTERM);
  CHECK(sink.Wait(5s) == 0);
}

TEST_CASE("sql: request_transform and token_claims hold what SPEC §11 allows") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  auto insert = [&](const std::string& transform, const std::string& claims) {
    try {
      Exec(db,
           "INSERT INTO eventing.triggers (name, type, url, request_transform, token_claims) "
           "VALUES ('t', 'x', 'http://h/', " +
               (transform.empty() ? std::string("NULL") : "'" + transform + "'") + ", " +
               (claims.empty() ? std::string("NULL") : "'" + claims + "'") + ")");
      Exec(db, "DELETE FROM eventing.triggers WHERE name = 't'");
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  CHECK(insert("", ""));
  CHECK(insert("{}", R"({"a": "{{$body.id}}"})"));
  CHECK(insert(R"({"method": "PUT", "url": "{{$base_url}}/x", "query_params": {"a": "b"},
                   "headers": {"X-A": "{{$body.id}}"}, "body": null,
                   "content_type": "text/plain"})",
               R"("{\"a\": 1}")"));
  CHECK(insert(R"({"body": {"a": [1, "{{$body.id}}"]}})", ""));
  CHECK_FALSE(insert("[]", ""));
  CHECK_FALSE(insert(R"("x")", ""));
  CHECK_FALSE(insert(R"({"verb": "PUT"})", ""));
  CHECK_FALSE(insert(R"({"method": "HEAD"})", ""));
  CHECK_FALSE(insert(R"({"method": "put"})", ""));
  CHECK_FALSE(insert(R"({"method": null})", ""));
  CHECK_FALSE(insert(R"({"url": 5})", ""));
  CHECK_FALSE(insert(R"({"query_params": []})", ""));
  CHECK_FALSE(insert(R"({"query_params": {"a": 1}})", ""));
  CHECK_FALSE(insert(R"({"headers": {"a": {"b": "c"}}})", ""));
  CHECK_FALSE(insert(R"({"content_type": "text/html"})", ""));
  CHECK_FALSE(insert("", "[1]"));
  CHECK_FALSE(insert("", "5"));
  // Migration 019 applied again changes nothing.
  Exec(db, "DELETE FROM eventing.schema_migrations WHERE version >= 19");
  Init(db);
  CHECK(QL(db,
           "SELECT count(*) FROM pg_constraint WHERE conname IN "
           "('triggers_request_transform_check', 'triggers_token_claims_check')") == 2);
  CHECK_FALSE(insert(R"({"method": "HEAD"})", ""));
  CHECK(insert(R"({"method": "GET"})", ""));
}

}  // namespace
}  // namespace walhook::test
