// The API server's request parser (SPEC §9 "HTTP clients"): limits hold
// whatever the pieces, the encoding or the bytes.

#include "walhook/http_parser.h"

#include <doctest/doctest.h>

#include <string>

namespace walhook {
namespace {

using State = HttpRequestParser::State;

// Feeds `bytes` in pieces of `piece` bytes, reading the body once the head
// is whole. Returns the bytes left over after a request.
std::string FeedAll(HttpRequestParser& p, std::string_view bytes, size_t piece) {
  while (!bytes.empty()) {
    const size_t used = p.Feed(bytes.substr(0, piece));
    bytes.remove_prefix(used);
    if (p.state() == State::kHeadDone) {
      p.ReadBody();
      continue;
    }
    if (p.state() == State::kDone || p.state() == State::kError) break;
  }
  if (p.state() == State::kHeadDone) p.ReadBody();
  return std::string(bytes);
}

TEST_CASE("http parser: a request in pieces of any size") {
  const std::string req =
      "POST /v1/api/default/eventing/queue?x=1 HTTP/1.1\r\nHost: h\r\n"
      "Authorization:  Bearer t \r\nContent-Length: 11\r\n\r\n{\"type\":1}\n"
      "GET /healthz HTTP/1.1\r\n\r\n";
  for (size_t piece : {1, 2, 7, 64, 4096}) {
    CAPTURE(piece);
    HttpRequestParser p;
    const std::string rest = FeedAll(p, req, piece);
    REQUIRE(p.state() == State::kDone);
    CHECK(rest.rfind("GET /healthz", 0) == 0);
    const HttpRequest r = p.TakeRequest();
    CHECK(r.method == "POST");
    CHECK(r.target == "/v1/api/default/eventing/queue?x=1");
    CHECK(r.path == "/v1/api/default/eventing/queue");
    CHECK(r.Header("authorization") == "Bearer t");
    CHECK(r.body == "{\"type\":1}\n");
    CHECK(r.keep_alive);
    CHECK(p.state() == State::kHead);
    FeedAll(p, rest, piece);
    REQUIRE(p.state() == State::kDone);
    CHECK(p.request().path == "/healthz");
  }
}

TEST_CASE("http parser: chunked bodies are decoded and counted") {
  const std::string req =
      "POST /q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
  for (size_t piece : {1, 3, 4096}) {
    HttpRequestParser p;
    FeedAll(p, req, piece);
    REQUIRE(p.state() == State::kDone);
    CHECK(p.request().body == "hello world");
  }
}

TEST_CASE("http parser: over the limits") {
  HttpLimits limits;
  SUBCASE("a head over 64 KiB is 431, read no further") {
    HttpRequestParser p(limits);
    std::string req = "GET / HTTP/1.1\r\n";
    while (req.size() < 200000) req += "X-A: " + std::string(8000, 'a') + "\r\n";
    const size_t used = p.Feed(req);
    CHECK(p.state() == State::kError);
    CHECK(p.error_status() == 431);
    CHECK(used <= limits.max_head_bytes);
  }
  SUBCASE("a request line over 64 KiB is 431") {
    HttpRequestParser p(limits);
    p.Feed("GET /" + std::string(70000, 'a'));
    CHECK(p.error_status() == 431);
  }
  SUBCASE("101 headers are 431, 100 are fine") {
    std::string req = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 100; ++i) req += "X: y\r\n";
    HttpRequestParser ok(limits);
    ok.Feed(req + "\r\n");
    CHECK(ok.state() == State::kHeadDone);
    HttpRequestParser p(limits);
    p.Feed(req + "X: y\r\n\r\n");
    CHECK(p.state() == State::kError);
    CHECK(p.error_status() == 431);
  }
  SUBCASE("a Content-Length over 1 MiB is 413 before any body byte") {
    HttpRequestParser p(limits);
    p.Feed("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
    CHECK(p.state() == State::kError);
    CHECK(p.error_status() == 413);
    HttpRequestParser huge(limits);
    huge.Feed("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    CHECK(huge.state() == State::kError);
    CHECK(huge.error_status() == 400);
  }
  SUBCASE("a chunked body over 1 MiB is 413, counted as decoded") {
    HttpRequestParser p(limits);
    p.Feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    p.ReadBody();
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'a') + "\r\n";
    size_t fed = 0;
    while (p.state() == State::kBody && fed < 4 * 1024 * 1024) {
      p.Feed(chunk);
      fed += chunk.size();
    }
    CHECK(p.state() == State::kError);
    CHECK(p.error_status() == 413);
    CHECK(p.request().body.size() <= limits.max_body_bytes);
  }
  SUBCASE("one huge chunk size is 413 at once") {
    for (const char* size : {"100001", "ffffffffffffffffffffffff"}) {
      HttpRequestParser p(limits);
      p.Feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
      p.ReadBody();
      p.Feed(std::string(size) + "\r\n");
      CHECK(p.error_status() == 413);
    }
  }
  SUBCASE("an endless chunk-size line is 400") {
    HttpRequestParser p(limits);
    p.Feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    p.ReadBody();
    p.Feed("1" + std::string(10000, ';'));
    CHECK(p.error_status() == 400);
  }
  SUBCASE("trailers count against the head's limit") {
    HttpRequestParser p(limits);
    p.Feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    p.ReadBody();
    p.Feed("0\r\n");
    for (int i = 0; i < 100 && p.state() == State::kBody; ++i) {
      p.Feed("T: " + std::string(3000, 'x') + "\r\n");
    }
    CHECK(p.error_status() == 431);
  }
}

TEST_CASE("http parser: malformed requests are 400") {
  for (const char* req : {
           "GET\r\n\r\n",
           "GET /\r\n\r\n",
           "GET / HTTP/2.0\r\n\r\n",
           "GET  / HTTP/1.1\r\n\r\n",
           "G(T / HTTP/1.1\r\n\r\n",
           "GET / HTTP/1.1\r\nNo colon\r\n\r\n",
           "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
           "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
           "GET / HTTP/1.1\r\n: b\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
           "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
       }) {
    CAPTURE(req);
    HttpRequestParser p;
    p.Feed(req);
    CHECK(p.state() == State::kError);
    CHECK(p.error_status() == 400);
    CHECK_FALSE(p.error_message().empty());
  }
  HttpRequestParser bad_chunk;
  FeedAll(bad_chunk, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", 5);
  CHECK(bad_chunk.error_status() == 400);
  HttpRequestParser bad_hex;
  FeedAll(bad_hex, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 5);
  CHECK(bad_hex.error_status() == 400);
}

TEST_CASE("http parser: keep-alive, Expect and the head before the body") {
  HttpRequestParser p;
  p.Feed(
      "POST / HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\n"
      "Content-Length: 3\r\n\r\nabc");
  REQUIRE(p.state() == State::kHeadDone);
  CHECK(p.expects_continue());
  CHECK(p.content_length() == 3);
  CHECK(p.request().body.empty());
  CHECK_FALSE(p.request().keep_alive);
  HttpRequestParser old;
  old.Feed("GET / HTTP/1.0\r\n\r\n");
  CHECK_FALSE(old.request().keep_alive);
  HttpRequestParser old_kept;
  old_kept.Feed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  CHECK(old_kept.request().keep_alive);
  // Empty lines before a request are skipped, and not counted as started.
  HttpRequestParser blank;
  blank.Feed("\r\n\r\n");
  CHECK_FALSE(blank.started());
  CHECK(blank.state() == State::kHead);
}

TEST_CASE("http parser: every byte at every place is safe") {
  const std::string req =
      "POST /q HTTP/1.1\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  for (size_t i = 0; i < req.size(); ++i) {
    for (int b = 0; b < 256; b += 5) {
      std::string r = req;
      r[i] = static_cast<char>(b);
      HttpRequestParser p;
      FeedAll(p, r, 3);
      CHECK(p.request().body.size() <= 16);  // one hex digit of chunk size at most
    }
  }
}

TEST_CASE("HttpErrorJson escapes and repairs its message") {
  CHECK(HttpErrorJson("a \"b\"\n") == R"({"error":"a \"b\"\n"})");
  CHECK(HttpErrorJson("\xff") == "{\"error\":\"\xef\xbf\xbd\"}");
}

}  // namespace
}  // namespace walhook
