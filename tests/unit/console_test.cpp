#include "walhook/console.h"

#include <doctest/doctest.h>

#include <regex>
#include <string>

#include "walhook/api_request.h"

namespace walhook {
namespace {

HttpRequest Get(std::string path) {
  HttpRequest r;
  r.method = "GET";
  r.target = path;
  r.path = std::move(path);
  return r;
}

}  // namespace

TEST_CASE("console: index.html at /console and /console/, each file with its type") {
  for (const char* root : {"/console", "/console/"}) {
    const HttpResponse r = ConsoleResponse("GET", root);
    CHECK(r.status == 200);
    CHECK(r.content_type == "text/html; charset=utf-8");
    CHECK(r.body.find("<title>walhook console</title>") != std::string::npos);
  }
  const HttpResponse js = ConsoleResponse("GET", "/console/app.js");
  CHECK(js.status == 200);
  CHECK(js.content_type == "text/javascript; charset=utf-8");
  CHECK(ConsoleResponse("GET", "/console/app.css").content_type == "text/css; charset=utf-8");
  CHECK(ConsoleResponse("GET", "/console/favicon.svg").content_type == "image/svg+xml");
  CHECK(ConsoleContentType("x.bin") == "application/octet-stream");
}

TEST_CASE("console: unknown names, other directories and other methods are refused") {
  for (const char* path : {"/console/nope.js", "/console/../sql/001_init.sql", "/console//app.js",
                           "/console/app.js/", "/console/sub/app.js", "/console/%2e%2e/x"}) {
    const HttpResponse r = ConsoleResponse("GET", path);
    CHECK_MESSAGE(r.status == 404, path);
    CHECK(r.content_type == "application/json");
    CHECK(r.body.find("\"error\"") != std::string::npos);
  }
  CHECK(ConsoleResponse("POST", "/console/").status == 405);
  CHECK(ConsoleResponse("DELETE", "/console/app.js").status == 405);
}

TEST_CASE("console: the route needs no token; paths that only start alike are not the console") {
  CHECK(IsConsolePath("/console"));
  CHECK(IsConsolePath("/console/app.js"));
  CHECK_FALSE(IsConsolePath("/consoles"));
  CHECK_FALSE(IsConsolePath("/console.js"));
  CHECK_FALSE(IsConsolePath("/"));
  CHECK(RouteOf(Get("/console/")) == ApiRoute::kConsole);
  CHECK(RouteOf(Get("/consolex")) == ApiRoute::kNone);
  CHECK_FALSE(CheckApiHead(Get("/console/app.js"), "default", "secret", 0).has_value());
}

// SPEC §12: the page runs under `default-src 'self'`, so it has no inline
// script or style, and builds the page from text nodes only (dom.js).
TEST_CASE("console: no inline script, no inline style, no HTML parsed from strings") {
  const std::regex inline_script(R"(<script(?![^>]*\bsrc=)[^>]*>)", std::regex::icase);
  const std::regex handler(R"(<[^>]*\son[a-z]+\s*=)", std::regex::icase);
  const std::regex style_attr(R"(<[^>]*\sstyle\s*=)", std::regex::icase);
  const std::regex remote(R"((src|href)\s*=\s*"(https?:)?//)", std::regex::icase);
  const std::regex html_sink(
      R"(\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(|setAttribute\(\s*'(on|style))");
  CHECK(ConsoleFiles().size() >= 4);
  for (const ConsoleFile& f : ConsoleFiles()) {
    const std::string body(f.body);
    INFO(f.name);
    CHECK_FALSE(body.empty());
    if (f.name.ends_with(".html")) {
      CHECK_FALSE(std::regex_search(body, inline_script));
      CHECK_FALSE(std::regex_search(body, handler));
      CHECK_FALSE(std::regex_search(body, style_attr));
      CHECK_FALSE(std::regex_search(body, remote));
    }
    if (f.name.ends_with(".js")) {
      CHECK_FALSE(std::regex_search(body, html_sink));
      CHECK(body.find("document.cookie") == std::string::npos);
      CHECK(body.find("localStorage") == std::string::npos);
    }
  }
}

}  // namespace walhook
