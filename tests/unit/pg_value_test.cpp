#include "walhook/pg_value.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <rapidjson/document.h>

namespace walhook {
namespace {

// Runs WritePgArray into a fresh writer; nullopt on failure, after checking nothing was written.
std::optional<std::string> ArrayJson(std::string_view literal, TypeClass element) {
  JsonBuffer buffer;
  JsonWriter writer(buffer);
  if (!WritePgArray(literal, element, writer)) {
    CHECK(buffer.GetSize() == 0);
    return std::nullopt;
  }
  return std::string(buffer.GetString(), buffer.GetSize());
}

bool IsValidJson(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  return !doc.HasParseError();
}

struct Classified {
  TypeClass type_class;
  bool is_array;
};

Classified Classify(std::string_view name) {
  bool is_array = true;  // must be overwritten for scalars
  const TypeClass type_class = ClassifyType(name, &is_array);
  return {type_class, is_array};
}

TEST_CASE("ClassifyType maps wal2json type names") {
  struct Row {
    std::string_view name;
    TypeClass type_class;
  };
  const Row rows[] = {
      {"smallint", TypeClass::kNumber},
      {"integer", TypeClass::kNumber},
      {"bigint", TypeClass::kNumber},
      {"real", TypeClass::kNumber},
      {"double precision", TypeClass::kNumber},
      {"numeric", TypeClass::kNumber},
      {"numeric(10,2)", TypeClass::kNumber},
      {"numeric(5)", TypeClass::kNumber},
      {"oid", TypeClass::kNumber},
      {"boolean", TypeClass::kBool},
      {"json", TypeClass::kJson},
      {"jsonb", TypeClass::kJson},
      {"text", TypeClass::kString},
      {"character varying(20)", TypeClass::kString},
      {"character(3)", TypeClass::kString},
      {"timestamp with time zone", TypeClass::kString},
      {"timestamp(3) without time zone", TypeClass::kString},
      {"uuid", TypeClass::kString},
      {"money", TypeClass::kString},
      {"jsonpath", TypeClass::kString},
      {"numeric_like", TypeClass::kString},
      {"public.mood", TypeClass::kString},
      {"\"MyType\"", TypeClass::kString},
      {"\"integer\"", TypeClass::kString},
      {"", TypeClass::kString},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    const Classified scalar = Classify(row.name);
    CHECK(scalar.type_class == row.type_class);
    CHECK_FALSE(scalar.is_array);

    const std::string array_name = std::string(row.name) + "[]";
    if (row.name.empty()) continue;
    const Classified array = Classify(array_name);
    CHECK(array.type_class == row.type_class);
    CHECK(array.is_array);
  }

  SUBCASE("repeated brackets are tolerated") {
    const Classified c = Classify("integer[][]");
    CHECK(c.type_class == TypeClass::kNumber);
    CHECK(c.is_array);
  }
  SUBCASE("box[] is reported as a scalar because it splits on ';'") {
    const Classified c = Classify("box[]");
    CHECK(c.type_class == TypeClass::kString);
    CHECK_FALSE(c.is_array);
  }
  SUBCASE("null out pointer is accepted") {
    CHECK(ClassifyType("integer[]", nullptr) == TypeClass::kNumber);
  }
}

TEST_CASE("WritePgArray: booleans") {
  CHECK(ArrayJson("{t,f}", TypeClass::kBool) == "[true,false]");
  CHECK(ArrayJson("{true,FALSE,NULL}", TypeClass::kBool) == "[true,false,null]");
  CHECK(ArrayJson("{{t,f},{f,t}}", TypeClass::kBool) == "[[true,false],[false,true]]");
  CHECK_FALSE(ArrayJson("{t,x}", TypeClass::kBool));
  CHECK_FALSE(ArrayJson("{yes}", TypeClass::kBool));
  CHECK_FALSE(ArrayJson("{\"NULL\"}", TypeClass::kBool));
}

TEST_CASE("WritePgArray: numbers") {
  CHECK(ArrayJson("{1,2}", TypeClass::kNumber) == "[1,2]");
  CHECK(ArrayJson("{{1,2},{3,4}}", TypeClass::kNumber) == "[[1,2],[3,4]]");
  CHECK(ArrayJson("{{{1},{2}},{{3},{4}}}", TypeClass::kNumber) == "[[[1],[2]],[[3],[4]]]");

  SUBCASE("digits pass through exactly") {
    CHECK(ArrayJson("{12.50,-3,0,0.001}", TypeClass::kNumber) == "[12.50,-3,0,0.001]");
    CHECK(ArrayJson("{9007199254740993}", TypeClass::kNumber) == "[9007199254740993]");
    CHECK(ArrayJson("{1e+20,1.5e-07,2E5}", TypeClass::kNumber) == "[1e+20,1.5e-07,2E5]");
    CHECK(ArrayJson("{123456789012345678901234567890.000000000000001}", TypeClass::kNumber) ==
          "[123456789012345678901234567890.000000000000001]");
  }
  SUBCASE("non-finite values and NULL become null") {
    CHECK(ArrayJson("{NaN,Infinity,-Infinity,1}", TypeClass::kNumber) == "[null,null,null,1]");
    CHECK(ArrayJson("{NULL,null,2}", TypeClass::kNumber) == "[null,null,2]");
  }
  SUBCASE("values that are not JSON numbers are malformed") {
    for (std::string_view bad : {"{+1}", "{01}", "{1.}", "{.5}", "{1e}", "{1e+}", "{-}", "{abc}",
                                 "{0x10}", "{1 2}", "{\"NULL\"}", "{\"\"}", "{--1}"}) {
      CAPTURE(bad);
      CHECK_FALSE(ArrayJson(bad, TypeClass::kNumber));
    }
  }
}

TEST_CASE("WritePgArray: strings") {
  CHECK(ArrayJson("{a,b}", TypeClass::kString) == R"(["a","b"])");

  SUBCASE("quotes, backslashes and commas") {
    CHECK(ArrayJson(R"({"say \"hi\"","back\\slash","a,b","{x}"})", TypeClass::kString) ==
          R"(["say \"hi\"","back\\slash","a,b","{x}"])");
  }
  SUBCASE("NULL versus \"NULL\"") {
    CHECK(ArrayJson(R"({NULL,"NULL",null,"",N\ULL})", TypeClass::kString) ==
          R"([null,"NULL",null,"","NULL"])");
  }
  SUBCASE("whitespace around elements is dropped, inside is kept") {
    CHECK(ArrayJson("{  a b  , \"  c \" ,d\\ }", TypeClass::kString) == R"(["a b","  c ","d "])");
    CHECK(ArrayJson(" { a , b } \n", TypeClass::kString) == R"(["a","b"])");
  }
  SUBCASE("non-ASCII and control characters") {
    CHECK(ArrayJson("{\"caf\xC3\xA9\",\"tab\there\"}", TypeClass::kString) ==
          "[\"caf\xC3\xA9\",\"tab\\there\"]");
  }
  SUBCASE("uuid and timestamp arrays") {
    CHECK(ArrayJson("{\"2024-01-02 03:04:05+00\"}", TypeClass::kString) ==
          R"(["2024-01-02 03:04:05+00"])");
  }
}

TEST_CASE("WritePgArray: json elements") {
  CHECK(ArrayJson(R"({"{\"a\": 1}","[1, 2]",3,"\"s\"",NULL})", TypeClass::kJson) ==
        R"([{"a": 1},[1, 2],3,"s",null])");
  SUBCASE("text that is not JSON becomes a string") {
    CHECK(ArrayJson(R"({"{\"a\": 1","x y",""})", TypeClass::kJson) == R"(["{\"a\": 1","x y",""])");
    CHECK(ArrayJson(R"({"1 2"})", TypeClass::kJson) == R"(["1 2"])");
  }
  SUBCASE("embedded NUL cannot smuggle trailing text") {
    const std::string literal("{\"1\0x\"}", 7);
    const auto json = ArrayJson(literal, TypeClass::kJson);
    REQUIRE(json);
    CHECK(IsValidJson(*json));
    CHECK(*json == "[\"1\\u0000x\"]");
  }
}

TEST_CASE("WritePgArray: dimension decoration and empty arrays") {
  CHECK(ArrayJson("{}", TypeClass::kNumber) == "[]");
  CHECK(ArrayJson(" { } ", TypeClass::kString) == "[]");
  CHECK(ArrayJson("[0:1]={1,2}", TypeClass::kNumber) == "[1,2]");
  CHECK(ArrayJson("[-2:-1]={a,b}", TypeClass::kString) == R"(["a","b"])");
  CHECK(ArrayJson("[1:2][0:1]={{1,2},{3,4}}", TypeClass::kNumber) == "[[1,2],[3,4]]");
  CHECK(ArrayJson("[2]={1,2}", TypeClass::kNumber) == "[1,2]");

  SUBCASE("decoration that disagrees with the contents is malformed") {
    for (std::string_view bad :
         {"[0:2]={1,2}", "[0:1][0:1]={1,2}", "[0:1]={{1,2},{3,4}}", "[0:1]", "[0:1]{1,2}",
          "[a:b]={1,2}", "[0:1={1,2}", "[1:99999999999]={1}", "=[0:1]{1,2}", "[]={1}"}) {
      CAPTURE(bad);
      CHECK_FALSE(ArrayJson(bad, TypeClass::kNumber));
    }
  }
}

TEST_CASE("WritePgArray: malformed literals write nothing") {
  for (std::string_view bad : {
           "",           " ",       "1,2",     "{",           "}",           "{1,2",
           "{1,2}}",     "{{1,2}",  "{1,2} x", "{1,2}{3}",    "{\"abc}",     "{\"abc\\\"}",
           "{abc\\",     "{1,}",    "{,1}",    "{1,,2}",      "{a\"b\"}",    "{\"a\"b}",
           "{a{b}}",     "{{1},2}", "{1,{2}}", "{{1,2},{3}}", "{{1},{{2}}}", "{{{{{{{1}}}}}}}",
           "[0:0]={1}x",
       }) {
    CAPTURE(bad);
    for (TypeClass type_class :
         {TypeClass::kString, TypeClass::kNumber, TypeClass::kBool, TypeClass::kJson}) {
      CHECK_FALSE(ArrayJson(bad, type_class));
    }
  }
  SUBCASE("six dimensions, Postgres's maximum, are fine") {
    CHECK(ArrayJson("{{{{{{1}}}}}}", TypeClass::kNumber) == "[[[[[[1]]]]]]");
  }
  SUBCASE("a failed call leaves an existing payload untouched") {
    JsonBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartObject();
    writer.Key("v");
    CHECK_FALSE(WritePgArray("{1,x}", TypeClass::kNumber, writer));
    writer.String("{1,x}");
    writer.EndObject();
    CHECK(std::string(buffer.GetString()) == R"({"v":"{1,x}"})");
  }
}

// Quotes an element the way array_out does, so generated literals look like Postgres output.
std::string QuotePg(std::string_view value) {
  bool needs_quotes = value.empty() || (value.size() == 4 && (value[0] == 'N' || value[0] == 'n'));
  for (char c : value) {
    if (c == '"' || c == '\\' || c == '{' || c == '}' || c == ',' || c == ' ' || c == '\t') {
      needs_quotes = true;
    }
  }
  if (!needs_quotes) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

TEST_CASE("WritePgArray: generated text arrays round-trip") {
  std::mt19937 rng(12345);
  const std::string_view alphabet = "ab \"\\,{}N\tUL";
  for (int iteration = 0; iteration < 500; ++iteration) {
    const size_t count = rng() % 5;
    std::string literal = "{";
    JsonBuffer expected_buffer;
    JsonWriter expected(expected_buffer);
    expected.StartArray();
    for (size_t i = 0; i < count; ++i) {
      std::string value;
      const size_t length = rng() % 6;
      for (size_t j = 0; j < length; ++j) value.push_back(alphabet[rng() % alphabet.size()]);
      if (i > 0) literal.push_back(',');
      literal += QuotePg(value);
      expected.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    }
    literal.push_back('}');
    expected.EndArray();
    CAPTURE(literal);
    CHECK(ArrayJson(literal, TypeClass::kString) == std::string(expected_buffer.GetString()));
  }
}

TEST_CASE("WritePgArray: random garbage never crashes and success means valid JSON") {
  std::mt19937 rng(20240601);
  const std::string_view alphabet = "{{}},,\"\\ NULtfe.-+0123456789[]:=xa\n";
  const std::vector<std::string_view> seeds = {"{1,2}", "{{t,f},{f,t}}", R"({"a\"b",NULL,"NULL"})",
                                               "[0:1]={1.5e-07,NaN}",
                                               R"({"{\"k\": [1, 2]}",null})"};
  int successes = 0;
  for (int iteration = 0; iteration < 4000; ++iteration) {
    std::string literal;
    if (iteration % 2 == 0) {
      const size_t length = rng() % 24;
      for (size_t i = 0; i < length; ++i) literal.push_back(alphabet[rng() % alphabet.size()]);
    } else {
      // Mutate a valid literal: small edits reach deeper into the parser than pure noise.
      literal = std::string(seeds[rng() % seeds.size()]);
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !literal.empty(); ++e) {
        const size_t at = rng() % literal.size();
        switch (rng() % 3) {
          case 0: literal.erase(at, 1); break;
          case 1:
            literal.insert(literal.begin() + static_cast<std::ptrdiff_t>(at),
                           alphabet[rng() % alphabet.size()]);
            break;
          default: literal[at] = static_cast<char>(rng() % 256); break;
        }
      }
    }
    CAPTURE(literal);
    for (TypeClass type_class :
         {TypeClass::kString, TypeClass::kNumber, TypeClass::kBool, TypeClass::kJson}) {
      const auto json = ArrayJson(literal, type_class);
      if (json) {
        ++successes;
        CHECK(IsValidJson(*json));
      }
    }
  }
  // Guards against a generator so broken that it never exercises the writing path.
  CHECK(successes > 100);
}

TEST_CASE("WritePgArray: every prefix of valid literals is handled") {
  for (std::string_view full :
       {R"([1:2][0:1]={{"a\\b",NULL},{"c,d", e }})", R"({"{\"x\": 1}",NULL})"}) {
    for (size_t n = 0; n <= full.size(); ++n) {
      // Copy so ASan sees the exact bounds of each prefix.
      const std::string prefix(full.substr(0, n));
      CAPTURE(prefix);
      const auto json = ArrayJson(prefix, TypeClass::kJson);
      CHECK(json.has_value() == (n == full.size()));
    }
  }
}

}  // namespace
}  // namespace walhook
