// The admin API's request and response shaping (SPEC §12): routes, the
// admin token, query parameters and their hostile forms, trigger bodies,
// masking, validation and the JSON of each answer.

#include "walhook/admin_api.h"

#include <doctest/doctest.h>

#include <string>

#include "walhook/json.h"
#include "walhook/webhook_request.h"

namespace walhook::admin {
namespace {

constexpr const char* kKey = "secret";
constexpr int64_t kNow = 1800000000;

std::optional<FieldError> Routed(std::string method, std::string path, AdminTarget* t) {
  return RouteAdmin(method, path, t);
}

int RouteStatus(std::string method, std::string path) {
  AdminTarget t;
  auto e = RouteAdmin(method, path, &t);
  return e ? e->status : 0;
}

HttpRequest Head(std::vector<std::pair<std::string, std::string>> headers) {
  HttpRequest r;
  r.method = "GET";
  r.path = "/v1/admin/triggers";
  r.target = r.path;
  r.headers = std::move(headers);
  return r;
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document d;
  REQUIRE_MESSAGE(ParseJson(text, &d).ok(), text);
  return d;
}

TEST_CASE("admin: routes, methods and path parameters") {
  AdminTarget t;
  CHECK_FALSE(Routed("GET", "/v1/admin/triggers", &t));
  CHECK(t.route == Route::kListTriggers);
  CHECK_FALSE(Routed("POST", "/v1/admin/triggers", &t));
  CHECK(t.route == Route::kCreateTrigger);
  CHECK_FALSE(Routed("PATCH", "/v1/admin/triggers/orders-1", &t));
  CHECK(t.route == Route::kUpdateTrigger);
  CHECK(t.name == "orders-1");
  CHECK_FALSE(Routed("POST", "/v1/admin/triggers/orders/disable", &t));
  CHECK(t.route == Route::kDisableTrigger);
  CHECK_FALSE(Routed("GET", "/v1/admin/events/42", &t));
  CHECK(t.route == Route::kGetEvent);
  CHECK(t.id == 42);
  CHECK_FALSE(Routed("POST", "/v1/admin/events/bulk", &t));
  CHECK(t.route == Route::kBulk);
  CHECK_FALSE(Routed("POST", "/v1/admin/events/9223372036854775807/redeliver", &t));
  CHECK(t.route == Route::kRedeliver);
  CHECK(t.id == INT64_MAX);
  CHECK_FALSE(Routed("POST", "/v1/admin/backfills/3/cancel", &t));
  CHECK(t.route == Route::kCancelBackfill);
  CHECK_FALSE(Routed("POST", "/v1/admin/queue", &t));
  CHECK(t.route == Route::kQueue);

  CHECK(RouteStatus("GET", "/v1/admin/") == 404);
  CHECK(RouteStatus("GET", "/v1/admin/nope") == 404);
  CHECK(RouteStatus("GET", "/v1/admin/triggers/a/b/c") == 404);
  CHECK(RouteStatus("DELETE", "/v1/admin/events") == 405);
  CHECK(RouteStatus("GET", "/v1/admin/events/1/redeliver") == 405);
  // Names that cannot be a trigger's are unknown, never a query.
  CHECK(RouteStatus("GET", "/v1/admin/triggers/x'%20OR%201=1") == 404);
  CHECK(RouteStatus("GET", "/v1/admin/triggers/") == 404);
  // Ids: positive 63-bit integers only.
  for (const char* id :
       {"0", "-1", "abc", "1e3", "9223372036854775808", "99999999999999999999", "", "1 ", "0x10"}) {
    AdminTarget bad;
    auto e = Routed("GET", std::string("/v1/admin/events/") + id, &bad);
    if (std::string(id).empty()) {
      CHECK(e->status == 404);  // "events/" is not a route
      continue;
    }
    REQUIRE_MESSAGE(e, id);
    CHECK(e->status == 400);
    CHECK(e->field == "id");
  }
  CHECK(IsAdminPath("/v1/admin"));
  CHECK(IsAdminPath("/v1/admin/x"));
  CHECK_FALSE(IsAdminPath("/v1/administrator"));
}

TEST_CASE("admin: the token must be an admin's") {
  const auto status = [](std::vector<std::pair<std::string, std::string>> h) {
    auto r = CheckAdminToken(Head(std::move(h)), kKey, kNow);
    if (!r) return 0;
    CHECK(r->body.rfind("{\"error\":\"", 0) == 0);
    return r->status;
  };
  CHECK(status({}) == 401);
  CHECK(status({{"Authorization", "Bearer x.y.z"}}) == 401);
  CHECK(status({{"Authorization", "Bearer " + SignProjectToken("other", kNow, 60, "admin")}}) ==
        401);
  CHECK(status({{"Authorization", "Bearer " + SignProjectToken(kKey, kNow - 120, 60, "admin")}}) ==
        401);
  const std::string admin = "Bearer " + SignProjectToken(kKey, kNow, 60, "admin");
  CHECK(status({{"Authorization", admin}, {"Authorization", admin}}) == 401);
  CHECK(status({{"Authorization", "Bearer " + SignProjectToken(kKey, kNow, 60)}}) == 403);
  CHECK(status({{"Authorization", "Bearer " + SignProjectToken(kKey, kNow, 60, "SpaceCloud")}}) ==
        403);
  CHECK(status({{"Authorization", "Bearer " + SignProjectToken(kKey, kNow, 60, "Admin")}}) == 403);
  CHECK(status({{"Authorization", admin}}) == 0);
  CHECK(status({{"authorization", "bearer " + SignProjectToken(kKey, kNow, 60, "admin")}}) == 0);
}

TEST_CASE("admin: query strings, decoded and bounded") {
  std::map<std::string, std::string> q;
  CHECK_FALSE(ParseQuery("/v1/admin/events?trigger=a%20b&type=X+Y&status=", &q));
  CHECK(q["trigger"] == "a b");
  CHECK(q["type"] == "X Y");
  CHECK(q["status"].empty());
  CHECK_FALSE(ParseQuery("/v1/admin/events", &q));
  CHECK(q.empty());
  CHECK_FALSE(ParseQuery("/x?&&a=1&", &q));
  CHECK(q["a"] == "1");
  auto e = ParseQuery("/x?trigger=%zz", &q);
  REQUIRE(e);
  CHECK(e->field == "trigger");
  CHECK(ParseQuery("/x?trigger=%", &q));
  CHECK(ParseQuery("/x?trigger=%4", &q));
  CHECK(ParseQuery("/x?trigger=%00", &q));     // NUL
  CHECK(ParseQuery("/x?trigger=%ff%fe", &q));  // invalid UTF-8
  auto twice = ParseQuery("/x?limit=1&limit=2", &q);
  REQUIRE(twice);
  CHECK(twice->field == "limit");
}

TEST_CASE("admin: event filters; hostile page sizes and cursors") {
  const auto parse = [](std::map<std::string, std::string> q, EventFilter* f) {
    return ParseEventFilter(q, f);
  };
  EventFilter f;
  CHECK_FALSE(parse({}, &f));
  CHECK(f.limit == kDefaultPage);
  CHECK_FALSE(f.before);
  CHECK_FALSE(parse({{"limit", "999999999999999999999999"}}, &f));
  CHECK(f.limit == kMaxPage);
  CHECK_FALSE(parse({{"limit", "501"}}, &f));
  CHECK(f.limit == kMaxPage);
  CHECK_FALSE(parse({{"limit", "007"}}, &f));
  CHECK(f.limit == 7);
  for (const char* bad : {"0", "-5", "1.5", "ten", "1e9", " 1"}) {
    auto e = parse({{"limit", bad}}, &f);
    REQUIRE_MESSAGE(e, bad);
    CHECK(e->field == "limit");
  }
  for (const char* forged :
       {"abc", "-1", "0", "99999999999999999999", "1;DROP TABLE x", "eyJpZCI6MX0"}) {
    auto e = parse({{"before", forged}}, &f);
    REQUIRE_MESSAGE(e, forged);
    CHECK(e->status == 400);
    CHECK(e->field == "before");
  }
  CHECK_FALSE(parse({{"before", "1234"}}, &f));
  CHECK(f.before == 1234);
  // SQL-ish values are values: kept as they are, bound as parameters.
  CHECK_FALSE(parse({{"trigger", "x' OR '1'='1"}, {"type", "A\"; DROP"}}, &f));
  CHECK(f.trigger == "x' OR '1'='1");
  CHECK(f.type == "A\"; DROP");
  auto status = parse({{"status", "failed' OR 1=1"}}, &f);
  REQUIRE(status);
  CHECK(status->field == "status");
  CHECK(parse({{"trigger", std::string(kMaxFilterBytes + 1, 'a')}}, &f)->field == "trigger");
  CHECK_FALSE(parse({{"from", "2026-12-07T10:00:00Z"}, {"to", "1800000000000"}}, &f));
  CHECK(f.from_ms == 1796637600000);
  CHECK(f.to_ms == 1800000000000);
  CHECK(parse({{"from", "2024-02-30T00:00:00Z"}}, &f)->field == "from");
  CHECK(parse({{"to", "yesterday"}}, &f)->field == "to");
  CHECK(parse({{"to", "999999999999999999"}}, &f)->field == "to");
}

TEST_CASE("admin: a trigger as shown, its secrets masked") {
  const std::string row =
      R"({"url": "http://h/x", "name": "t", "type": "DB_INSERT", "owner": "walhook",
          "headers": {"X-Api-Key": "k-123", "Authorization": "Bearer s"}, "columns": null,
          "enabled": true, "ordered": false, "retries": 3, "condition": null,
          "table_name": "orders", "timeout_ms": 5000, "path_prefix": null,
          "retry_interval_ms": 5000})";
  TriggerStatus st;
  st.active = true;
  st.failed = 2;
  st.last_success_at_ms = 0;
  st.last_error = "<img src=x onerror=alert(1)>";
  const std::string out = TriggerJson(row, &st);
  CHECK(out.find("k-123") == std::string::npos);
  CHECK(out.find("Bearer s") == std::string::npos);
  auto d = Json(out);
  CHECK(std::string(d["headers"]["X-Api-Key"].GetString()) == kMask);
  CHECK(std::string(d["name"].GetString()) == "t");
  CHECK(d["retries"].GetInt() == 3);
  CHECK(d["columns"].IsNull());
  // Columns of later migrations are left out when the row has none.
  CHECK_FALSE(d.HasMember("request_transform"));
  CHECK(d["status"]["failed"].GetInt() == 2);
  CHECK(std::string(d["status"]["last_success_at"].GetString()) == "1970-01-01T00:00:00.000Z");
  CHECK(std::string(d["status"]["last_error"].GetString()) == "<img src=x onerror=alert(1)>");
  CHECK(d["status"]["oldest_staged_age_ms"].IsNull());

  const std::string with_transform =
      R"({"name": "t", "request_transform": {"method": "PUT", "headers": {"X-K": "sec"}},
          "token_claims": {"team": "a"}})";
  auto t = Json(TriggerJson(with_transform, nullptr));
  CHECK(std::string(t["request_transform"]["method"].GetString()) == "PUT");
  CHECK(std::string(t["request_transform"]["headers"]["X-K"].GetString()) == kMask);
  CHECK(std::string(t["token_claims"]["team"].GetString()) == "a");
  CHECK_FALSE(t.HasMember("status"));
  CHECK(TriggerJson("not json", nullptr) == "null");
}

TEST_CASE("admin: trigger bodies checked, each refusal naming its field") {
  TriggerWrite w;
  REQUIRE_FALSE(ParseTriggerWrite(
      R"({"name": "orders", "type": "DB_UPDATE", "url": "https://h/x", "table_name": "shop.orders",
          "columns": ["total"], "condition": "new.total > 10", "headers": {"X-K": "v"},
          "retries": 0, "timeout_ms": 1, "retry_interval_ms": 0, "ordered": true,
          "enabled": false, "status": {"failed": 3}})",
      std::nullopt, "", &w));
  CHECK(w.columns == std::vector<std::string>{"name", "type", "url", "table_name", "columns",
                                              "condition", "headers", "retries", "timeout_ms",
                                              "retry_interval_ms", "ordered", "enabled"});
  auto d = Json(w.json);
  CHECK_FALSE(d.HasMember("status"));
  CHECK(std::string(d["headers"]["X-K"].GetString()) == "v");

  struct Case {
    const char* body;
    const char* field;
  };
  const Case cases[] = {
      {R"({"type": "DB_INSERT", "url": "http://h"})", "name"},
      {R"({"name": "a", "url": "http://h"})", "type"},
      {R"({"name": "a", "type": "DB_INSERT"})", "url"},
      {R"({"name": "A b", "type": "DB_INSERT", "url": "http://h"})", "name"},
      {R"({"name": "a", "type": "DB_OTHER", "url": "http://h"})", "type"},
      {R"({"name": "a", "type": "X", "url": "ftp://h"})", "url"},
      {R"({"name": "a", "type": "X", "url": "http:///x"})", "url"},
      {R"({"name": "a", "type": "X", "url": "http://h", "retries": 101})", "retries"},
      {R"({"name": "a", "type": "X", "url": "http://h", "retries": 1.5})", "retries"},
      {R"({"name": "a", "type": "X", "url": "http://h", "retries": "3"})", "retries"},
      {R"({"name": "a", "type": "X", "url": "http://h", "timeout_ms": 0})", "timeout_ms"},
      {R"({"name": "a", "type": "X", "url": "http://h", "retry_interval_ms": -1})",
       "retry_interval_ms"},
      {R"({"name": "a", "type": "X", "url": "http://h", "ordered": 1})", "ordered"},
      {R"({"name": "a", "type": "X", "url": "http://h", "enabled": "yes"})", "enabled"},
      {R"({"name": "a", "type": "X", "url": "http://h", "columns": "a"})", "columns"},
      {R"({"name": "a", "type": "X", "url": "http://h", "columns": [1]})", "columns"},
      {R"({"name": "a", "type": "X", "url": "http://h", "condition": "payload.a ="})", "condition"},
      {R"({"name": "a", "type": "X", "url": "http://h", "condition": "new.a = 1"})", "condition"},
      {R"({"name": "a", "type": "DB_INSERT", "url": "http://h", "condition": "payload.a = 1"})",
       "condition"},
      {R"({"name": "a", "type": "DB_INSERT", "url": "http://h", "table_name": "a.b.c"})",
       "table_name"},
      {R"({"name": "a", "type": "X", "url": "http://h", "headers": {"Host": "evil"}})", "headers"},
      {R"({"name": "a", "type": "X", "url": "http://h", "headers": {"X": "a\r\nB: c"}})",
       "headers"},
      {R"({"name": "a", "type": "X", "url": "http://h", "headers": ["X"]})", "headers"},
      {R"({"name": "a", "type": "X", "url": "http://h", "headers": {"X": "********"}})",
       "headers.X"},
      {R"({"name": "a", "type": "X", "url": "http://h", "owner": null})", "owner"},
      {R"({"name": "a", "type": "X", "url": "http://h", "secret": 1})", "secret"},
      {R"({"name": "a", "type": "X", "url": "http://h",
           "request_transform": {"method": "TRACE"}})",
       "request_transform.method"},
      {R"({"name": "a", "type": "X", "url": "http://h", "request_transform": "x"})",
       "request_transform"},
      {R"([1])", ""},
      {R"({"name": "a")", ""},
  };
  for (const Case& c : cases) {
    auto e = ParseTriggerWrite(c.body, std::nullopt, "", &w);
    REQUIRE_MESSAGE(e, c.body);
    CHECK_MESSAGE(e->status == 400, c.body);
    CHECK_MESSAGE(e->field == c.field, c.body, " → ", e->field, ": ", e->message);
    CHECK_FALSE(e->message.empty());
  }
  // The condition's error says where.
  auto cond = ParseTriggerWrite(
      R"({"name": "a", "type": "DB_INSERT", "url": "http://h", "condition": "new.a >"})",
      std::nullopt, "", &w);
  REQUIRE(cond);
  CHECK(cond->message.find("offset 7") != std::string::npos);
}

TEST_CASE("admin: an update keeps masked header values and checks against the stored type") {
  const std::string stored =
      R"({"name": "t", "type": "DB_INSERT", "headers": {"X-K": "secret-1", "X-Old": "o"},
          "condition": "new.a = 1",
          "request_transform": {"headers": {"Authorization": "Bearer s2"}}})";
  TriggerWrite w;
  REQUIRE_FALSE(ParseTriggerWrite(
      R"({"name": "t", "headers": {"X-K": "********", "X-New": "n"}, "retries": 5})", stored, "t",
      &w));
  auto d = Json(w.json);
  CHECK(std::string(d["headers"]["X-K"].GetString()) == "secret-1");
  CHECK(std::string(d["headers"]["X-New"].GetString()) == "n");
  CHECK_FALSE(d["headers"].HasMember("X-Old"));  // the body gives the whole object
  CHECK(w.columns == std::vector<std::string>{"name", "headers", "retries"});

  auto renamed = ParseTriggerWrite(R"({"name": "u"})", stored, "t", &w);
  REQUIRE(renamed);
  CHECK(renamed->field == "name");
  CHECK(ParseTriggerWrite(R"({})", stored, "t", &w)->field.empty());
  CHECK(ParseTriggerWrite(R"({"status": {}})", stored, "t", &w));
  // A custom type now, with the stored DB condition left as it is.
  CHECK(ParseTriggerWrite(R"({"type": "ORDER"})", stored, "t", &w)->field == "condition");
  // The stored DB_INSERT type judges a new condition.
  CHECK(ParseTriggerWrite(R"({"condition": "payload.x = 1"})", stored, "t", &w)->field ==
        "condition");
  CHECK_FALSE(ParseTriggerWrite(R"({"condition": null, "table_name": null})", stored, "t", &w));
}

TEST_CASE("admin: constraint names to fields; primary messages") {
  using V = std::vector<std::string>;
  CHECK(ConstraintField({"retries"}, {"name", "retries"}) == "retries");
  CHECK(ConstraintField({"type", "columns"}, {"name", "type", "url", "columns"}) == "columns");
  CHECK(ConstraintField({"type", "columns"}, {"type"}) == "type");
  CHECK(ConstraintField({"type", "table_name"}, {"retries"}) == "table_name");
  CHECK(ConstraintField(V{}, {"retries"}) == "");
  CHECK(PrimaryMessage("ERROR:  backfill: no trigger x\nCONTEXT: PL/pgSQL…\n") ==
        "backfill: no trigger x");
  CHECK(PrimaryMessage(std::string(1000, 'a')).size() == 300);
  CHECK(PrimaryMessage("ERROR:  \xff\xfe") == "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("admin: validate reports conditions and templates with positions") {
  ValidateRequest v;
  REQUIRE_FALSE(ParseValidateRequest(
      R"({"type": "DB_INSERT", "condition": "new.a >", "event_id": "42",
          "request_transform": {"url": "{{$base_url}}"}, "token_claims": {"t": 1}})",
      &v));
  CHECK(v.type == "DB_INSERT");
  CHECK(v.event_id == 42);
  CHECK(v.request_transform == R"({"url":"{{$base_url}}"})");
  CHECK(ParseValidateRequest(R"({"event_id": "x"})", &v)->field == "event_id");
  CHECK(ParseValidateRequest(R"({"event_id": -3})", &v)->field == "event_id");
  CHECK(ParseValidateRequest(R"({"type": "DB_X"})", &v)->field == "type");
  CHECK(ParseValidateRequest(R"({"cond": "x"})", &v)->field == "cond");

  auto problems = CheckCondition("new.a > AND", std::nullopt);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].field == "condition");
  CHECK(problems[0].offset == 8);
  CHECK(CheckCondition("new.a = 1", std::string_view("DB_UPDATE")).empty());
  CHECK(CheckCondition("payload.a = 1", std::string_view("ORDER")).empty());
  CHECK(CheckCondition("new.a = 1", std::string_view("FILE_CREATE")).size() == 1);

  auto shape = CheckTransform(
      R"({"method": "TRACE", "content_type": "image/png", "query_params": [], "extra": 1,
          "headers": {"X-SC-Token": "x", "Y": 1}})");
  std::vector<std::string> fields;
  for (const Problem& p : shape) fields.push_back(p.field);
  CHECK(fields == std::vector<std::string>{
                      "request_transform.method", "request_transform.content_type",
                      "request_transform.query_params", "request_transform.extra",
                      "request_transform.headers.X-SC-Token", "request_transform.headers.Y"});
  CHECK(CheckTransform("[]").size() == 1);
  CHECK(CheckTransform(R"({"method": "PUT", "body": null})").empty());

  // Templates go to the Kriti engine, whose errors carry a line and column.
  auto url = CheckTransform(R"({"url": "{{ $body.id"})");
  if (!url.empty()) {
    CHECK(url[0].field == "request_transform.url");
    CHECK(url[0].line.has_value());
    CHECK(url[0].column.has_value());
  }
  auto claims = CheckTokenClaims(R"("{{ if }}")");
  REQUIRE(claims.size() == 1);
  CHECK(claims[0].field == "token_claims");
  CHECK(claims[0].line.has_value());

  Problem p{"condition", "condition: expected x at offset 3", 3, std::nullopt, std::nullopt};
  auto out = Json(ValidateJson({p}, std::nullopt));
  CHECK_FALSE(out["ok"].GetBool());
  CHECK(out["errors"][0]["offset"].GetInt() == 3);
  CHECK_FALSE(out["errors"][0].HasMember("line"));
  CHECK(out["preview"].IsNull());
  auto ok = Json(ValidateJson({}, std::string_view(R"({"url":"x"})")));
  CHECK(ok["ok"].GetBool());
  CHECK(std::string(ok["preview"]["url"].GetString()) == "x");
}

EventRow Event() {
  EventRow e;
  e.id = 1290;
  e.trigger_name = "orders";
  e.type = "DB_INSERT";
  e.status = "failed";
  e.attempts = 4;
  e.remark = "HTTP 500";
  e.ts_ms = 1796637600123;
  e.event_ts_ms = 1796637600000;
  e.created_at_ms = 1796637600001;
  e.origin_id = 7;
  e.payload_bytes = 20;
  return e;
}

TEST_CASE("admin: the request as sent, its secrets masked, its body exact") {
  const std::string payload = R"({"doc": {"total": 12.50, "n": "<img src=x onerror=alert(1)>"}})";
  const DeliveryTarget target{"https://h/x?a=1", R"({"X-Api-Key": "k-123"})"};
  const std::string sent = SentRequestJson(Event(), payload, target, "node-1", true);
  CHECK(sent.find("k-123") == std::string::npos);
  auto d = Json(sent);
  CHECK(std::string(d["method"].GetString()) == "POST");
  CHECK(std::string(d["url"].GetString()) == "https://h/x?a=1");
  const std::string body = d["body"].GetString();
  CHECK(body == BuildCloudEvent(1290, "DB_INSERT", "node-1", 1796637600123, payload));
  CHECK(body.find("12.50") != std::string::npos);
  std::map<std::string, std::string> headers;
  for (const auto& h : d["headers"].GetArray()) headers[h[0].GetString()] = h[1].GetString();
  CHECK(headers["X-SC-Token"] == "Bearer ********");
  CHECK(headers["X-Api-Key"] == "********");
  CHECK(headers["webhook-id"] == "1290");
  CHECK(headers["webhook-signature"] == "v1,********");
  CHECK(headers["Content-Type"] == "application/json");
  auto unsigned_ = Json(SentRequestJson(Event(), payload, target, "n", false));
  for (const auto& h : unsigned_["headers"].GetArray()) {
    CHECK(std::string(h[0].GetString()).rfind("webhook-", 0) != 0);
  }
}

TEST_CASE("admin: event pages and one event's detail") {
  auto page = Json(EventPageJson({Event()}, 1290, 50));
  CHECK(std::string(page["events"][0]["id"].GetString()) == "1290");
  CHECK(std::string(page["events"][0]["origin_id"].GetString()) == "7");
  CHECK(std::string(page["events"][0]["ts"].GetString()) == "2026-12-07T10:00:00.123Z");
  CHECK(page["events"][0]["processed_at"].IsNull());
  CHECK(std::string(page["next_before"].GetString()) == "1290");
  CHECK(page["limit"].GetInt() == 50);
  CHECK(Json(EventPageJson({}, std::nullopt, 5))["next_before"].IsNull());

  EventDetail d;
  d.event = Event();
  d.payload_json = R"({"a": 12.50})";
  d.target = DeliveryTarget{"http://h", "{}"};
  d.source = "n1";
  AttemptRow a;
  a.id = 5;
  a.attempt = 1;
  a.response_status_code = 500;
  a.response_body = "oops";
  d.attempts.push_back(a);
  EventRow dlq = Event();
  dlq.id = 1300;
  dlq.type = "dlq_orders";
  d.dlq.push_back(dlq);
  const std::string text = EventDetailJson(d);
  CHECK(text.find(R"("payload":{"a": 12.50})") != std::string::npos);
  auto doc = Json(text);
  const auto& e = doc["event"];
  CHECK(e["attempts"][0]["response_status_code"].GetInt() == 500);
  CHECK(e["attempt_count"].GetInt() == 4);  // "attempts" is the list here
  CHECK(e["attempts"][0]["error_msg"].IsNull());
  CHECK(std::string(e["dlq"][0]["id"].GetString()) == "1300");
  CHECK(e["chained"].Size() == 0);
  CHECK(e["request"].IsObject());
  d.target.reset();
  d.payload_json.reset();
  auto gone = Json(EventDetailJson(d));
  CHECK(gone["event"]["request"].IsNull());
  CHECK(gone["event"]["payload"].IsNull());
}

TEST_CASE("admin: a transformed trigger's event shows the request its transform shapes") {
  EventDetail d;
  d.event = Event();
  d.payload_json = R"({"a": 12.50})";
  d.target = DeliveryTarget{"http://h/base", R"({"X-Static": "s1", "X-Over": "s2"})"};
  d.source = "n1";
  d.with_signature = true;
  d.transformed = true;
  auto t = ParseRequestTransform(
      R"({"method": "PUT", "url": "{{$base_url}}/doc/{{$body.id}}",
          "query_params": {"q": "a b"}, "headers": {"x-over": "{{$body.data.a}}"},
          "body": "{\"a\": {{$body.data.a}}}"})",
      R"({"tenant": "{{$body.type}}"})");
  REQUIRE(t.ok());
  d.shaped = *ShapeRequest(**t, R"({"id": "1290", "type": "orders", "data": {"a": 12.50}})",
                           d.target->url);
  auto doc = Json(EventDetailJson(d));
  const auto& r = doc["event"]["request"];
  CHECK(std::string(r["method"].GetString()) == "PUT");
  CHECK(std::string(r["url"].GetString()) == "http://h/base/doc/1290?q=a%20b");
  CHECK(std::string(r["body"].GetString()) == R"({"a":12.50})");
  CHECK(r["transformed"].GetBool());
  CHECK(std::string(r["token_claims"]["tenant"].GetString()) == "orders");
  std::vector<std::string> names;
  for (const auto& h : r["headers"].GetArray()) {
    names.push_back(h[0].GetString());
    if (names.back() != "Content-Type" && names.back() != "webhook-id" &&
        names.back() != "webhook-timestamp") {
      CHECK(std::string(h[1].GetString()).find(kMask) != std::string::npos);
    }
  }
  // As delivery sends them: the trigger's X-Over is replaced by the
  // transform's x-over.
  CHECK(names == std::vector<std::string>{"Content-Type", "X-SC-Token", "webhook-id",
                                          "webhook-timestamp", "webhook-signature", "X-Static",
                                          "x-over"});
  CHECK(std::string(r["headers"][0][1].GetString()) == "application/json");

  // A transform that does not evaluate for this event: no request, the reason.
  d.shaped.reset();
  d.transform_error = "transform: body: line 1, column 3: not a number";
  auto failed = Json(EventDetailJson(d));
  CHECK(failed["event"]["request"]["body"].IsNull());
  CHECK(std::string(failed["event"]["request"]["transform_error"].GetString()) ==
        d.transform_error);
}

TEST_CASE("admin: bulk requests are counted before they act") {
  BulkRequest b;
  REQUIRE_FALSE(ParseBulkRequest(
      R"({"action": "redeliver", "trigger": "orders", "from": "2026-12-07T09:00:00Z",
          "to": 1796637600000, "dry_run": true})",
      &b));
  CHECK(b.Status() == "failed");
  CHECK(b.dry_run);
  CHECK(b.to_ms == 1796637600000);
  REQUIRE_FALSE(ParseBulkRequest(R"({"action": "cancel", "trigger": "o", "max_id": "9"})", &b));
  CHECK(b.Status() == "staged");
  CHECK(b.max_id == 9);
  CHECK(ParseBulkRequest(R"({"action": "cancel", "trigger": "o"})", &b)->field == "max_id");
  CHECK(ParseBulkRequest(R"({"action": "delete", "trigger": "o", "dry_run": true})", &b)->field ==
        "action");
  CHECK(ParseBulkRequest(R"({"trigger": "o", "dry_run": true})", &b)->field == "action");
  CHECK(ParseBulkRequest(R"({"action": "cancel", "dry_run": true})", &b)->field == "trigger");
  CHECK(ParseBulkRequest(R"({"action": "cancel", "trigger": "o", "max_id": "1 OR 1=1"})", &b)
            ->field == "max_id");
  CHECK(
      ParseBulkRequest(R"({"action": "cancel", "trigger": "o", "from": "x", "dry_run": true})", &b)
          ->field == "from");
}

TEST_CASE("admin: nodes, backfills, tables and errors as JSON") {
  NodeRow n;
  n.node_id = "n\xff";
  n.role = "streaming";
  n.slot_name = "walhook";
  n.events_per_s = "12.5";
  n.deliveries_per_s = "garbage";
  auto nodes = Json(NodesJson(0, {n}));
  CHECK(nodes["nodes"][0]["events_per_s"].GetDouble() == 12.5);
  CHECK(nodes["nodes"][0]["deliveries_per_s"].GetInt() == 0);
  CHECK(std::string(nodes["nodes"][0]["node_id"].GetString()) == "n\xEF\xBF\xBD");

  BackfillRow r;
  r.id = 3;
  r.trigger_name = "orders";
  r.state = "running";
  r.rows_done = 10;
  auto bf = Json(BackfillsJson({r}));
  CHECK(std::string(bf["backfills"][0]["id"].GetString()) == "3");
  CHECK(bf["backfills"][0]["finished_at"].IsNull());
  BackfillRequest breq;
  CHECK(ParseBackfillRequest(R"({"trigger": "t", "condition": "new.a >"})", &breq)->field ==
        "condition");
  CHECK(ParseBackfillRequest(R"({})", &breq)->field == "trigger");
  REQUIRE_FALSE(ParseBackfillRequest(R"({"trigger": "t", "condition": "new.id > 5"})", &breq));
  CHECK(breq.condition == "new.id > 5");

  TableEntry t{"shop", "orders", false, {"id"}, "default", {{"id", "bigint", false}}};
  auto tables = Json(TablesJson({t, TableEntry{"public", "a", true, {}, "full", {}}}, true));
  CHECK(std::string(tables["schemas"][0].GetString()) == "public");
  CHECK(std::string(tables["schemas"][1].GetString()) == "shop");
  CHECK(tables["truncated"].GetBool());
  CHECK_FALSE(tables["tables"][0]["columns"][0]["nullable"].GetBool());

  auto err = ErrorResponse(FieldError{400, "retries", "must be \"small\""});
  CHECK(err.status == 400);
  auto e = Json(err.body);
  CHECK(std::string(e["field"].GetString()) == "retries");
  CHECK_FALSE(Json(ErrorResponse(FieldError{404, "", "x"}).body).HasMember("field"));
}

}  // namespace
}  // namespace walhook::admin
