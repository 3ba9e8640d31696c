#include "walhook/transform_request.h"

#include <doctest/doctest.h>

#include <chrono>

#include "walhook/webhook_request.h"

namespace walhook {
namespace {

// A CloudEvents body as delivery makes it.
const std::string kBody = BuildCloudEvent(
    42, "DB_INSERT", "node-1", 1795860000123,
    R"({"db":"shop","schema":"public","col":"products","doc":{"id":7,"name":"Café & Bar",)"
    R"("price":12.50,"tags":["a","b"]},"find":{"id":7}})");
const std::string kBaseUrl = "https://search.example.com/indexes/products";

std::shared_ptr<const RequestTransform> Parsed(const std::optional<std::string>& transform,
                                               const std::optional<std::string>& claims = {}) {
  auto t = ParseRequestTransform(transform, claims);
  INFO(transform.value_or(""), " ", claims.value_or(""));
  REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error()));
  REQUIRE(*t != nullptr);
  return *t;
}

ShapedRequest Shaped(const std::string& transform, const std::optional<std::string>& claims = {}) {
  auto t = Parsed(transform, claims);
  auto s = ShapeRequest(*t, kBody, kBaseUrl);
  INFO(transform);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error()));
  return *s;
}

std::string ShapeError(const std::string& transform,
                       const std::optional<std::string>& claims = {}) {
  auto t = Parsed(transform, claims);
  auto s = ShapeRequest(*t, kBody, kBaseUrl);
  INFO(transform);
  REQUIRE_FALSE(s.ok());
  return s.error();
}

std::string ParseError(const std::optional<std::string>& transform,
                       const std::optional<std::string>& claims = {}) {
  auto t = ParseRequestTransform(transform, claims);
  INFO(transform.value_or(""), " ", claims.value_or(""));
  REQUIRE_FALSE(t.ok());
  return t.error();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("transform: none is the standard request") {
  auto t = ParseRequestTransform(std::nullopt, std::nullopt);
  REQUIRE(t.ok());
  CHECK(*t == nullptr);
}

TEST_CASE("transform: an empty transform sends the standard body as a POST") {
  const ShapedRequest s = Shaped("{}");
  CHECK(s.method == "POST");
  CHECK(s.url == kBaseUrl);
  CHECK(s.has_body);
  CHECK(s.body == kBody);
  CHECK(s.content_type == "application/json");
  CHECK(s.headers.empty());
  CHECK(s.claims.empty());
}

TEST_CASE("transform: a PUT to a templated URL with query, headers and a body") {
  const ShapedRequest s = Shaped(R"({
    "method": "PUT",
    "url": "{{$base_url}}/documents/{{$body.data.doc.id}}",
    "query_params": {"primaryKey": "id", "note": "{{$body.data.doc.name}}"},
    "headers": {"X-Table": "{{$body.data.col}}", "Authorization": "Bearer abc"},
    "body": "{\"id\": {{$body.data.doc.id}}, \"price\": {{$body.data.doc.price}}, \"tags\": {{$body.data.doc.tags}}}"
  })");
  CHECK(s.method == "PUT");
  CHECK(s.url == kBaseUrl + "/documents/7?primaryKey=id&note=Caf%C3%A9%20%26%20Bar");
  REQUIRE(s.headers.size() == 2);
  CHECK(s.headers[0] == "X-Table: products");
  CHECK(s.headers[1] == "Authorization: Bearer abc");
  CHECK(s.has_body);
  // Numbers keep their text: 12.50 stays 12.50.
  CHECK(s.body.find("12.50") != std::string::npos);
  CHECK(s.body.find("\"id\"") != std::string::npos);
  CHECK(s.content_type == "application/json");
}

// The body is read once per event, only the parts some template reads: each
// member here reads a part no other one does.
TEST_CASE("transform: every template finds the parts of the body it reads") {
  const ShapedRequest s = Shaped(
      R"({"url": "{{$base_url}}/{{$body.data.col}}", "query_params": {"n": "{{$body.data.doc.name}}"},
          "headers": {"X-Id": "{{$body.id}}"}, "body": "{\"tags\": {{$body.data.doc.tags}}}"})",
      R"({"type": "{{$body['type']}}"})");
  CHECK(s.url == kBaseUrl + "/products?n=Caf%C3%A9%20%26%20Bar");
  REQUIRE(s.headers.size() == 1);
  CHECK(s.headers[0] == "X-Id: 42");
  CHECK(s.body == R"({"tags":["a","b"]})");
  CHECK(s.claims == R"({"type":"DB_INSERT"})");
}

TEST_CASE("transform: a body given as JSON is a template too") {
  const ShapedRequest s =
      Shaped(R"({"body": {"objectID": "{{$body.data.doc.id}}", "fixed": [1, 2]}})");
  CHECK(Contains(s.body, "objectID"));
  CHECK(Contains(s.body, "\"7\""));
  CHECK((Contains(s.body, "[1,2]") || Contains(s.body, "[1, 2]")));
}

TEST_CASE("transform: query parameters are added to a URL's own query, before its fragment") {
  auto t = Parsed(R"({"url": "http://h.example/p?a=1#frag", "query_params": {"b c": "x/y?"}})");
  auto s = ShapeRequest(*t, kBody, kBaseUrl);
  REQUIRE(s.ok());
  CHECK(s->url == "http://h.example/p?a=1&b%20c=x%2Fy%3F#frag");
}

TEST_CASE("transform: GET and DELETE send no body unless the template gives one") {
  const ShapedRequest get = Shaped(R"({"method": "GET", "body": null})");
  CHECK(get.method == "GET");
  CHECK_FALSE(get.has_body);
  CHECK(get.body.empty());
  CHECK(get.content_type.empty());
  const ShapedRequest del = Shaped(R"({"method": "DELETE", "body": null})");
  CHECK_FALSE(del.has_body);
  // Without a body member too: the standard body is not sent.
  CHECK_FALSE(Shaped(R"({"method": "GET"})").has_body);
  CHECK_FALSE(Shaped(R"({"method": "DELETE"})").has_body);
  CHECK(Shaped(R"({"method": "PATCH"})").body == kBody);
  const ShapedRequest with = Shaped(R"({"method": "DELETE", "body": "{\"id\": 1}"})");
  CHECK(with.has_body);
  CHECK(Contains(with.body, "\"id\""));
  // A POST may send none too.
  CHECK_FALSE(Shaped(R"({"body": null})").has_body);
}

TEST_CASE("transform: a form body is the object's members urlencoded") {
  const ShapedRequest s = Shaped(
      R"({"content_type": "application/x-www-form-urlencoded",
          "body": "{\"name\": {{$body.data.doc.name}}, \"price\": {{$body.data.doc.price}}, \"gone\": null, \"tags\": {{$body.data.doc.tags}}}"})");
  CHECK(s.content_type == "application/x-www-form-urlencoded");
  CHECK(s.body == "name=Caf%C3%A9+%26+Bar&price=12.50&tags=%5B%22a%22%2C%22b%22%5D");
  const std::string e =
      ShapeError(R"({"content_type": "application/x-www-form-urlencoded", "body": "[1, 2]"})");
  CHECK(e.rfind("transform: body: ", 0) == 0);
}

TEST_CASE("transform: a text/plain body is a string's text") {
  const ShapedRequest s =
      Shaped(R"({"content_type": "text/plain", "body": "\"New: {{$body.data.doc.name}}\""})");
  CHECK(s.content_type == "text/plain; charset=utf-8");
  CHECK(s.body == "New: Café & Bar");
  // Anything else: its JSON text.
  CHECK(Shaped(R"({"content_type": "text/plain", "body": "{{$body.data.doc.id}}"})").body == "7");
}

TEST_CASE("transform: headers the transform sets cannot be walhook's own") {
  for (const std::string name : {"Host", "content-length", "Transfer-Encoding", "Connection",
                                 "Content-Type", "X-SC-Token", "webhook-signature", "Webhook-Id"}) {
    const std::string e = ParseError(R"({"headers": {")" + name + R"(": "x"}})");
    CHECK(e.rfind("request_transform.headers: \"" + name + "\" is set by walhook", 0) == 0);
  }
  CHECK(Contains(ParseError(R"({"headers": {"Bad Name": "x"}})"), "not a valid header name"));
  CHECK(Contains(ParseError(R"({"headers": {"X-A": 1}})"),
                 "request_transform.headers.X-A: not a string"));
}

TEST_CASE("transform: a header value with a line break fails the event") {
  const std::string e = ShapeError(R"({"headers": {"X-A": "a{{\"\\r\\nX-Evil: 1\"}}"}})");
  CHECK(e == "transform: headers.X-A: the value holds a line break or a NUL byte");
}

TEST_CASE("transform: what one event renders is bounded") {
  const std::string body =
      BuildCloudEvent(1, "DB_INSERT", "n", 0, R"({"big":")" + std::string(70000, 'x') + R"("})");
  auto error = [&](const std::string& transform, const std::optional<std::string>& claims) {
    auto t = Parsed(transform, claims);
    auto s = ShapeRequest(*t, body, kBaseUrl);
    return s.ok() ? std::string("ok") : s.error();
  };
  CHECK(error(R"({"headers": {"X-A": "{{$body.data.big}}"}})", std::nullopt) ==
        "transform: headers.X-A: longer than 8192 bytes");
  CHECK(error(R"({"url": "http://h/{{$body.data.big}}"})", std::nullopt) ==
        "transform: url: longer than 65536 bytes");
  CHECK(error("{}", R"({"a": "{{$body.data.big}}"})") ==
        "transform: token_claims: longer than 4096 bytes");
  // Under the bounds: sent.
  CHECK(error(R"({"headers": {"X-A": "{{$body.id}}"}})", std::nullopt) == "ok");
}

TEST_CASE("transform: a URL that does not parse or is not http(s) fails the event") {
  CHECK(ShapeError(R"({"url": "ftp://h.example/x"})").rfind("transform: url: ", 0) == 0);
  CHECK(Contains(ShapeError(R"({"url": "file:///etc/passwd"})"), "not an http or https URL"));
  CHECK(Contains(ShapeError(R"({"url": "http://h.example/a b"})"), "space"));
  CHECK(Contains(ShapeError(R"({"url": "{{$body.data.doc.name}}"})"), "transform: url:"));
  CHECK(Contains(ShapeError(R"({"url": "http://"})"), "no host"));
}

TEST_CASE("transform: parse errors name the member and the position") {
  const std::string body = ParseError(R"({"body": "{\"a\": {{ $body.x "})");
  CHECK(body.rfind("request_transform.body: line 1, column ", 0) == 0);
  CHECK(ParseError(R"({"url": "{{ if }}"})").rfind("request_transform.url: line 1, column ", 0) ==
        0);
  CHECK(ParseError(R"({"query_params": {"q": "{{"}})")
            .rfind("request_transform.query_params.q: line 1, column ", 0) == 0);
  CHECK(ParseError(R"({"headers": {"X-A": "{{ ) }}"}})")
            .rfind("request_transform.headers.X-A: line 1, column ", 0) == 0);
  CHECK(ParseError(std::nullopt, R"("{{ $body. }}")").rfind("token_claims: line 1, column ", 0) ==
        0);
}

TEST_CASE("transform: members and values the database would refuse are refused here too") {
  CHECK(Contains(ParseError(R"({"verb": "PUT"})"), "unknown member \"verb\""));
  CHECK(Contains(ParseError(R"({"method": "HEAD"})"), "request_transform.method"));
  CHECK(Contains(ParseError(R"({"content_type": "text/html"})"), "request_transform.content_type"));
  CHECK(Contains(ParseError(R"([1])"), "not a JSON object"));
  CHECK(Contains(ParseError(std::nullopt, "[1]"), "token_claims"));
  CHECK(Contains(ParseError(R"({"url": 5})"), "request_transform.url: not a string"));
}

TEST_CASE("transform: evaluation errors fail the event with the member named") {
  // A type error (not a missing path, which is null).
  const std::string e = ShapeError(R"({"body": "{{ toUpper($body.data.doc.id) }}"})");
  CHECK(e.rfind("transform: body: line 1, column ", 0) == 0);
  // A missing path is null, not an error.
  CHECK(Shaped(R"({"body": "{{ $body.data.nothing.here }}"})").body == "null");
}

TEST_CASE("transform: token claims render to an object merged into walhook's") {
  const ShapedRequest s =
      Shaped("{}", R"({"table": "{{$body.data.col}}", "id_of_row": "{{$body.data.doc.id}}"})");
  CHECK(Contains(s.claims, "\"table\""));
  CHECK(Contains(s.claims, "products"));
  // Given as a string holding the template.
  const ShapedRequest t = Shaped("{}", R"("{\"n\": {{$body.data.doc.price}}}")");
  CHECK(Contains(t.claims, "12.50"));
  CHECK(ShapeError("{}", R"("{{$body.data.doc.id}}")") ==
        "transform: token_claims: does not render to an object");
}

TEST_CASE("transform: the token's claims keep id, role, iat and exp walhook's") {
  const std::string claims = TokenClaimsJson(
      "node-1", 100, 1900,
      R"({"role":"admin","exp":99999999999,"iat":1,"id":"x","n":12.50,"o":{"a":[1,"}"]},"n":2})");
  CHECK(claims ==
        R"({"id":"node-1","role":"SpaceCloud","n":12.50,"o":{"a":[1,"}"]},"iat":100,"exp":1900})");
  CHECK(TokenClaimsJson("n", 1, 2, "") == R"({"id":"n","role":"SpaceCloud","iat":1,"exp":2})");
  // An escaped name is the same name.
  CHECK(TokenClaimsJson("n", 1, 2, R"({"r\u006fle":"admin"})") ==
        R"({"id":"n","role":"SpaceCloud","iat":1,"exp":2})");
}

TEST_CASE("transform: a token with claims verifies and is refused by walhook's API role check") {
  TokenSigner signer("project-secret", "node-1");
  const std::string header = signer.HeaderWithClaims(1000000, R"({"tenant":"t1","role":"admin"})");
  REQUIRE(header.rfind("Bearer ", 0) == 0);
  TokenClaims claims;
  const Status st = VerifyToken(header.substr(7), "project-secret", 1000000, &claims);
  REQUIRE_MESSAGE(st.ok(), (st.ok() ? "" : st.message()));
  CHECK(claims.role == "SpaceCloud");
  CHECK(claims.exp == 1000000 + TokenSigner::kLifetimeS);
  CHECK_FALSE(VerifyToken(header.substr(7), "another-secret", 1000000).ok());
}

TEST_CASE("transform: URLs walhook sends to") {
  for (const char* good :
       {"http://h", "https://h.example:8443/a/b?c=d&e=%20#f", "HTTP://127.0.0.1:1/",
        "http://[::1]:41100/x", "http://h/a;b=c/~d/@e!$'()*+,"}) {
    CAPTURE(good);
    CHECK(CheckHttpUrl(good).ok());
  }
  for (const char* bad :
       {"", "h.example", "ftp://h/", "javascript:alert(1)", "http:/h", "http://", "http://h:/",
        "http://h:99999/", "http://h:8a/", "http://user:pw@h/", "http://h/a b", "http://h/%zz",
        "http://h/%4", "http://h/\r\nX: 1", "http://h/é", "http://[::1/", "http://h\\x/",
        "http://h/a\"b", "http://h/<x>"}) {
    CAPTURE(bad);
    CHECK_FALSE(CheckHttpUrl(bad).ok());
  }
}

TEST_CASE("transform: escaping for queries and forms") {
  CHECK(EscapeQuery("a b&c=d/é~") == "a%20b%26c%3Dd%2F%C3%A9~");
  CHECK(EscapeForm("a b&c=d/é~*") == "a+b%26c%3Dd%2F%C3%A9%7E*");
  CHECK(EscapeQuery("") == "");
}

TEST_CASE("transform: the cache parses a trigger's transform once per version") {
  TransformCache cache;
  const std::optional<std::string> v1 = R"({"method": "PUT"})";
  const std::optional<std::string> v2 = R"({"method": "PATCH"})";
  CHECK(cache.Get("a", v1, std::nullopt).ok());
  CHECK(cache.Get("a", v1, std::nullopt).ok());
  CHECK(cache.parses() == 1);
  const auto& changed = cache.Get("a", v2, std::nullopt);
  REQUIRE(changed.ok());
  CHECK((*changed)->method == "PATCH");
  CHECK(cache.parses() == 2);
  CHECK(cache.Get("a", v2, R"({"x": 1})").ok());  // claims are part of the version
  CHECK(cache.parses() == 3);
  // An error is kept too.
  CHECK_FALSE(cache.Get("b", R"({"method": "HEAD"})", std::nullopt).ok());
  CHECK_FALSE(cache.Get("b", R"({"method": "HEAD"})", std::nullopt).ok());
  CHECK(cache.parses() == 4);
  // Pruned: a trigger not asked for since the last prune is forgotten.
  cache.Prune();
  cache.Get("a", v2, R"({"x": 1})");
  cache.Prune();
  CHECK(cache.parses() == 4);
  cache.Get("b", R"({"method": "HEAD"})", std::nullopt);
  CHECK(cache.parses() == 5);
}

}  // namespace
}  // namespace walhook

namespace walhook {
namespace {

// A figure, not a limit (SPEC §11: a transform costs at most a few
// microseconds per event): what shaping one request with the delivery
// benchmark's 10-path transform costs here, beside building the standard body.
TEST_CASE("transform: the cost of shaping one request with a 10-path transform") {
  const std::string payload =
      R"({"db":"postgres","schema":"public","col":"bench","doc":{"id":1234567,"label":"row 1234567",)"
      R"("amount":1543208.75,"at":"2026-01-01 00:00:00.123456+00"},"find":{"id":1234567}})";
  auto t = ParseRequestTransform(
      R"({"method": "PUT", "body": "{\"objectID\": {{$body.data.doc.id}}, \"label\": {{$body.data.doc.label}}, \"amount\": {{$body.data.doc.amount}}, \"at\": {{$body.data.doc.at}}, \"table\": {{$body.data.col}}, \"schema\": {{$body.data.schema}}, \"db\": {{$body.data.db}}, \"type\": {{$body.type}}, \"event\": {{$body.id}}, \"key\": {{$body.data.find.id}}}"})",
      std::nullopt);
  REQUIRE(t.ok());
  constexpr int kRounds = 20000;
  size_t bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) {
    bytes += BuildCloudEvent(i, "DB_INSERT", "node", 1795860000123, payload).size();
  }
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) {
    const std::string body = BuildCloudEvent(i, "DB_INSERT", "node", 1795860000123, payload);
    auto s = ShapeRequest(**t, body, "http://127.0.0.1/hook");
    REQUIRE(s.ok());
    bytes += s->body.size();
  }
  const auto t2 = std::chrono::steady_clock::now();
  auto us = [](auto d) { return std::chrono::duration<double, std::micro>(d).count() / kRounds; };
  MESSAGE("standard body " << us(t1 - t0) << " us/event; with the 10-path transform " << us(t2 - t1)
                           << " us/event (" << bytes << " bytes)");
  CHECK(bytes > 0);
}

}  // namespace
}  // namespace walhook
