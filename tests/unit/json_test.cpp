#include "walhook/json.h"

#include <doctest/doctest.h>

#include <string>

namespace walhook {
namespace {

std::string Nested(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST_CASE("json: well-formed values pass, with exact numbers") {
  CHECK(CheckJson(R"({"a": [1, 2.50, "caf\u00e9", null, true]})").ok());
  CHECK(CheckJson("\"\xE2\x82\xAC\"").ok());
  rapidjson::Document doc;
  REQUIRE(ParseJson(R"({"n": 9007199254740993})", &doc).ok());
  CHECK(doc["n"].GetUint64() == 9007199254740993ULL);
}

TEST_CASE("json: nesting is bounded, also far past any stack") {
  CHECK(CheckJson(Nested(kMaxJsonDepth)).ok());
  const Status st = CheckJson(Nested(kMaxJsonDepth + 1));
  REQUIRE_FALSE(st.ok());
  CHECK(st.message() == "nested deeper than 512 levels");
  // 500,000 levels: refused without recursion (a recursive parse or DOM
  // destructor would overflow the stack here).
  CHECK_FALSE(CheckJson(Nested(500000)).ok());
  rapidjson::Document doc;
  CHECK_FALSE(ParseJson(Nested(500000), &doc).ok());
  CHECK(doc.IsNull());
  CHECK_FALSE(CheckJson(std::string(500000, '{')).ok());
}

TEST_CASE("json: invalid UTF-8 is refused, raw or escaped") {
  Status st = CheckJson("{\"a\": \"\xff\"}");
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().starts_with("invalid UTF-8"));
  CHECK_FALSE(CheckJson("{\"\xC0\xAF\": 1}").ok());  // overlong, in a key
  CHECK_FALSE(CheckJson(R"(["\udc00"])").ok());      // a lone low surrogate
  CHECK_FALSE(CheckJson(R"(["\ud800"])").ok());      // a lone high surrogate
  CHECK(CheckJson(R"(["\ud83d\ude00"])").ok());      // a pair
}

TEST_CASE("json: a NUL byte is not the end of the text") {
  using namespace std::string_literals;
  CHECK_FALSE(CheckJson("{}\0garbage"s).ok());
  CHECK_FALSE(CheckJson("[1]\0"s).ok());
  CHECK_FALSE(CheckJson("[\"a\0b\"]"s).ok());
  rapidjson::Document doc;
  CHECK_FALSE(ParseJson("{\"a\": 1}\0{"s, &doc).ok());
}

TEST_CASE("json: what is not one JSON value says so") {
  for (const char* bad : {"", "{", "{\"a\":1} x", "NaN", "[1,]", "'a'"}) {
    CAPTURE(bad);
    const Status st = CheckJson(bad);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().starts_with("not JSON"));
  }
}

}  // namespace
}  // namespace walhook
