#include "walhook/payload.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include "sample_lines.h"
#include "walhook/decoder.h"

namespace walhook {
namespace {

// The sample row of t as doc, as SPEC §4 wants it.
constexpr std::string_view kRowTrue =
    R"({"id":9007199254740993,"n":12.50,"j":{"a": [1, 2.0]},"a":["a","b c",null],"b":[true,false],"f":true,"big":"x"})";
constexpr std::string_view kRowFalse =
    R"({"id":9007199254740993,"n":12.50,"j":{"a": [1, 2.0]},"a":["a","b c",null],"b":[true,false],"f":false,"big":"x"})";
constexpr std::string_view kKey = R"({"id":9007199254740993})";

TableInfo Table(std::string schema, std::string table, char replica_identity,
                std::vector<std::string> columns) {
  TableInfo info;
  info.schema = info.root_schema = std::move(schema);
  info.table = info.root_table = std::move(table);
  info.replica_identity = replica_identity;
  info.columns = std::move(columns);
  return info;
}

TableInfo TableT(char replica_identity = 'd') {
  return Table("public", "t", replica_identity, {"id", "n", "j", "a", "b", "f", "big"});
}

TableInfo TableNp(char replica_identity = 'd') {
  return Table("public", "np", replica_identity, {"x"});
}

// Decodes one line (kept alive here, since the Change points into it) and
// builds its payload.
class Harness {
 public:
  std::string Build(std::string_view line, const TableInfo& table, std::string_view db = "shop") {
    line_.assign(line);
    const Status st = decoder_->Decode(line_.data(), line_.size(), Lsn(1), &change_);
    INFO(line);
    REQUIRE(st.ok());
    return std::string(builder_.Build(change_, table, db));
  }
  const Change& change() const { return change_; }
  PayloadBuilder& builder() { return builder_; }

 private:
  std::unique_ptr<Decoder> decoder_ = std::make_unique<Decoder>();
  std::string line_;
  Change change_;
  PayloadBuilder builder_;
};

rapidjson::Document ParseJson(std::string_view text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  return doc;
}

// Every payload must be one valid JSON object, and exactly the text expected.
void CheckPayload(const std::string& got, std::string_view expected) {
  const rapidjson::Document doc = ParseJson(got);
  INFO("payload: " << got);
  REQUIRE_FALSE(doc.HasParseError());
  CHECK(doc.IsObject());
  CHECK(got == expected);
}

std::string Join(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

TEST_CASE("payload: INSERT has doc and find, no before") {
  Harness h;
  const std::string out = h.Build(samples::kInsert, TableT());
  CheckPayload(out, Join({R"({"db":"shop","schema":"public","col":"t","doc":)", kRowTrue,
                          R"(,"find":)", kKey, "}"}));
  const rapidjson::Document doc = ParseJson(out);
  CHECK_FALSE(doc.HasMember("before"));
  CHECK_FALSE(doc.HasMember("unchanged_toast"));
  CHECK_FALSE(doc.HasMember("partition"));
  SUBCASE("typed values as RapidJSON sees them") {
    const auto& d = doc["doc"];
    CHECK(d["j"].IsObject());
    CHECK(d["a"].IsArray());
    CHECK(d["a"][2].IsNull());
    CHECK(d["b"][0].IsTrue());
    CHECK(d["f"].IsTrue());
    CHECK(d["big"].IsString());
    CHECK(d["id"].IsUint64());
    CHECK(d["id"].GetUint64() == 9007199254740993ull);
  }
}

TEST_CASE("payload: UPDATE has before") {
  Harness h;
  SUBCASE("REPLICA IDENTITY DEFAULT: before is the key") {
    CheckPayload(h.Build(samples::kUpdate, TableT('d')),
                 Join({R"({"db":"shop","schema":"public","col":"t","doc":)", kRowFalse,
                       R"(,"find":)", kKey, R"(,"before":)", kKey, "}"}));
  }
  SUBCASE("REPLICA IDENTITY FULL: before is the whole old row") {
    const std::string_view line =
        R"({"action":"U","lsn":"0/2","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":5},{"name":"n","type":"numeric","value":1.10},{"name":"j","type":"jsonb","value":"[]"},{"name":"a","type":"text[]","value":"{}"},{"name":"b","type":"boolean[]","value":null},{"name":"f","type":"boolean","value":false},{"name":"big","type":"text","value":"new"}],"identity":[{"name":"id","type":"bigint","value":5},{"name":"n","type":"numeric","value":1.0},{"name":"j","type":"jsonb","value":"{}"},{"name":"a","type":"text[]","value":"{x}"},{"name":"b","type":"boolean[]","value":"{f}"},{"name":"f","type":"boolean","value":true},{"name":"big","type":"text","value":"old"}],"pk":[{"name":"id","type":"bigint"}]})";
    CheckPayload(h.Build(line, TableT('f')),
                 R"({"db":"shop","schema":"public","col":"t",)"
                 R"("doc":{"id":5,"n":1.10,"j":[],"a":[],"b":null,"f":false,"big":"new"},)"
                 R"("find":{"id":5},)"
                 R"("before":{"id":5,"n":1.0,"j":{},"a":["x"],"b":[false],"f":true,"big":"old"}})");
  }
  SUBCASE("a key change: find is the new key, before the old one") {
    const std::string_view line =
        R"({"action":"U","lsn":"0/2","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":2}],"identity":[{"name":"id","type":"bigint","value":1}],"pk":[{"name":"id","type":"bigint"}]})";
    CheckPayload(
        h.Build(line, Table("public", "t", 'd', {"id"})),
        R"({"db":"shop","schema":"public","col":"t","doc":{"id":2},"find":{"id":2},"before":{"id":1}})");
  }
  SUBCASE("no identity at all: before is null") {
    const std::string_view line =
        R"({"action":"U","lsn":"0/2","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":2}],"pk":[{"name":"id","type":"bigint"}]})";
    CheckPayload(
        h.Build(line, Table("public", "t", 'd', {"id"})),
        R"({"db":"shop","schema":"public","col":"t","doc":{"id":2},"find":{"id":2},"before":null})");
  }
}

TEST_CASE("payload: DELETE has doc null and find from the identity") {
  Harness h;
  SUBCASE("DEFAULT") {
    CheckPayload(h.Build(samples::kDelete, TableT('d')),
                 Join({R"({"db":"shop","schema":"public","col":"t","doc":null,"find":)", kKey,
                       R"(,"before":)", kKey, "}"}));
  }
  SUBCASE("FULL: find is the key, before the whole row") {
    const std::string_view line =
        R"({"action":"D","lsn":"0/3","schema":"public","table":"t","identity":[{"name":"id","type":"bigint","value":7},{"name":"n","type":"numeric","value":null},{"name":"big","type":"text","value":"b"}],"pk":[{"name":"id","type":"bigint"}]})";
    CheckPayload(h.Build(line, Table("public", "t", 'f', {"id", "n", "big"})),
                 R"({"db":"shop","schema":"public","col":"t","doc":null,"find":{"id":7},)"
                 R"("before":{"id":7,"n":null,"big":"b"}})");
  }
}

TEST_CASE("payload: a table without a primary key") {
  Harness h;
  SUBCASE("REPLICA IDENTITY DEFAULT: find is null") {
    CheckPayload(h.Build(samples::kInsertNoPk, TableNp('d')),
                 R"({"db":"shop","schema":"public","col":"np","doc":{"x":1},"find":null})");
  }
  SUBCASE("REPLICA IDENTITY NOTHING: find is null") {
    CheckPayload(h.Build(samples::kInsertNoPk, TableNp('n')),
                 R"({"db":"shop","schema":"public","col":"np","doc":{"x":1},"find":null})");
  }
  SUBCASE("REPLICA IDENTITY USING INDEX: find is the index columns") {
    TableInfo info = Table("public", "np2", 'i', {"x", "y", "z"});
    info.identity_columns = {"x", "y"};
    const std::string_view insert =
        R"({"action":"I","lsn":"0/4","schema":"public","table":"np2","columns":[{"name":"x","type":"integer","value":1},{"name":"y","type":"text","value":"a"},{"name":"z","type":"integer","value":3}],"pk":[]})";
    CheckPayload(
        h.Build(insert, info),
        R"({"db":"shop","schema":"public","col":"np2","doc":{"x":1,"y":"a","z":3},"find":{"x":1,"y":"a"}})");
    const std::string_view update =
        R"({"action":"U","lsn":"0/4","schema":"public","table":"np2","columns":[{"name":"x","type":"integer","value":1},{"name":"y","type":"text","value":"b"},{"name":"z","type":"integer","value":4}],"identity":[{"name":"x","type":"integer","value":1},{"name":"y","type":"text","value":"a"}],"pk":[]})";
    CheckPayload(h.Build(update, info),
                 R"({"db":"shop","schema":"public","col":"np2","doc":{"x":1,"y":"b","z":4},)"
                 R"("find":{"x":1,"y":"b"},"before":{"x":1,"y":"a"}})");
    const std::string_view del =
        R"({"action":"D","lsn":"0/4","schema":"public","table":"np2","identity":[{"name":"x","type":"integer","value":1},{"name":"y","type":"text","value":"b"}],"pk":[]})";
    CheckPayload(h.Build(del, info), R"({"db":"shop","schema":"public","col":"np2","doc":null,)"
                                     R"("find":{"x":1,"y":"b"},"before":{"x":1,"y":"b"}})");
  }
  SUBCASE("REPLICA IDENTITY FULL: find is the whole row") {
    CheckPayload(h.Build(samples::kInsertNoPk, TableNp('f')),
                 R"({"db":"shop","schema":"public","col":"np","doc":{"x":1},"find":{"x":1}})");
    const std::string_view update =
        R"({"action":"U","lsn":"0/5","schema":"public","table":"np","columns":[{"name":"x","type":"integer","value":2}],"identity":[{"name":"x","type":"integer","value":1}],"pk":[]})";
    CheckPayload(
        h.Build(update, TableNp('f')),
        R"({"db":"shop","schema":"public","col":"np","doc":{"x":2},"find":{"x":2},"before":{"x":1}})");
    const std::string_view del =
        R"({"action":"D","lsn":"0/5","schema":"public","table":"np","identity":[{"name":"x","type":"integer","value":2}],"pk":[]})";
    CheckPayload(
        h.Build(del, TableNp('f')),
        R"({"db":"shop","schema":"public","col":"np","doc":null,"find":{"x":2},"before":{"x":2}})");
  }
}

// An UPDATE of t that leaves the TOASTed "big" unchanged: wal2json leaves it
// out of "columns".
constexpr std::string_view kToastUpdateDefault =
    R"({"action":"U","lsn":"0/6","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":1},{"name":"f","type":"boolean","value":true}],"identity":[{"name":"id","type":"bigint","value":1}],"pk":[{"name":"id","type":"bigint"}]})";
constexpr std::string_view kToastUpdateFull =
    R"({"action":"U","lsn":"0/6","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":1},{"name":"f","type":"boolean","value":true}],"identity":[{"name":"id","type":"bigint","value":1},{"name":"f","type":"boolean","value":false},{"name":"big","type":"text","value":"long text"}],"pk":[{"name":"id","type":"bigint"}]})";

TEST_CASE("payload: unchanged TOAST columns") {
  Harness h;
  const TableInfo small = Table("public", "t", 'd', {"id", "f", "big"});
  SUBCASE("DEFAULT: absent from doc, listed in unchanged_toast") {
    CheckPayload(h.Build(kToastUpdateDefault, small),
                 R"({"db":"shop","schema":"public","col":"t","doc":{"id":1,"f":true},)"
                 R"("find":{"id":1},"before":{"id":1},"unchanged_toast":["big"]})");
  }
  SUBCASE("DEFAULT: several, in catalog order") {
    const TableInfo info = Table("public", "t", 'd', {"id", "t1", "f", "t2"});
    CheckPayload(h.Build(kToastUpdateDefault, info),
                 R"({"db":"shop","schema":"public","col":"t","doc":{"id":1,"f":true},)"
                 R"("find":{"id":1},"before":{"id":1},"unchanged_toast":["t1","t2"]})");
  }
  SUBCASE("FULL: filled from the old row, nothing listed") {
    TableInfo full = small;
    full.replica_identity = 'f';
    const std::string out = h.Build(kToastUpdateFull, full);
    CheckPayload(
        out,
        R"({"db":"shop","schema":"public","col":"t","doc":{"id":1,"f":true,"big":"long text"},)"
        R"("find":{"id":1},"before":{"id":1,"f":false,"big":"long text"}})");
  }
  SUBCASE("FULL without a key: find is the filled whole row") {
    TableInfo full = Table("public", "t", 'f', {"id", "f", "big"});
    const std::string_view line =
        R"({"action":"U","lsn":"0/6","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":1},{"name":"f","type":"boolean","value":true}],"identity":[{"name":"id","type":"bigint","value":1},{"name":"f","type":"boolean","value":false},{"name":"big","type":"text","value":"long text"}],"pk":[]})";
    CheckPayload(
        h.Build(line, full),
        R"({"db":"shop","schema":"public","col":"t","doc":{"id":1,"f":true,"big":"long text"},)"
        R"("find":{"id":1,"f":true,"big":"long text"},)"
        R"("before":{"id":1,"f":false,"big":"long text"}})");
  }
  SUBCASE("FULL, but the old row lacks the column too: listed") {
    TableInfo full = Table("public", "t", 'f', {"id", "f", "big", "other"});
    CheckPayload(
        h.Build(kToastUpdateFull, full),
        R"({"db":"shop","schema":"public","col":"t","doc":{"id":1,"f":true,"big":"long text"},)"
        R"("find":{"id":1},"before":{"id":1,"f":false,"big":"long text"},)"
        R"("unchanged_toast":["other"]})");
  }
  SUBCASE("an INSERT is never missing columns") {
    const std::string_view line =
        R"({"action":"I","lsn":"0/6","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":1}],"pk":[{"name":"id","type":"bigint"}]})";
    CheckPayload(h.Build(line, small),
                 R"({"db":"shop","schema":"public","col":"t","doc":{"id":1},"find":{"id":1}})");
  }
  SUBCASE("no catalog columns known: nothing listed") {
    CheckPayload(h.Build(kToastUpdateDefault, Table("public", "t", 'd', {})),
                 R"({"db":"shop","schema":"public","col":"t","doc":{"id":1,"f":true},)"
                 R"("find":{"id":1},"before":{"id":1}})");
  }
}

TEST_CASE("payload: a partition is reported as its root") {
  Harness h;
  TableInfo leaf;
  leaf.schema = "public";
  leaf.table = "t_2026";
  leaf.root_schema = "sales";
  leaf.root_table = "t";
  leaf.columns = {"id", "x"};
  REQUIRE(leaf.is_partition());
  const std::string_view line =
      R"({"action":"I","lsn":"0/7","schema":"public","table":"t_2026","columns":[{"name":"id","type":"bigint","value":1},{"name":"x","type":"integer","value":2}],"pk":[{"name":"id","type":"bigint"}]})";
  CheckPayload(h.Build(line, leaf),
               R"({"db":"shop","schema":"sales","col":"t","partition":"t_2026",)"
               R"("doc":{"id":1,"x":2},"find":{"id":1}})");
  SUBCASE("root in the same schema") {
    leaf.root_schema = "public";
    CheckPayload(h.Build(line, leaf),
                 R"({"db":"shop","schema":"public","col":"t","partition":"t_2026",)"
                 R"("doc":{"id":1,"x":2},"find":{"id":1}})");
  }
  SUBCASE("delete from a partition") {
    const std::string_view del =
        R"({"action":"D","lsn":"0/7","schema":"public","table":"t_2026","identity":[{"name":"id","type":"bigint","value":1}],"pk":[{"name":"id","type":"bigint"}]})";
    CheckPayload(h.Build(del, leaf),
                 R"({"db":"shop","schema":"sales","col":"t","partition":"t_2026",)"
                 R"("doc":null,"find":{"id":1},"before":{"id":1}})");
  }
}

TEST_CASE("payload: values keep their JSON types") {
  Harness h;
  auto one = [&](std::string_view type, std::string_view value) {
    const std::string line = std::string(R"({"action":"I","lsn":"0/8","schema":"s","table":"v",)") +
                             R"("columns":[{"name":"c","type":")" + std::string(type) +
                             R"(","value":)" + std::string(value) + "}],\"pk\":[]}";
    const std::string out = h.Build(line, Table("s", "v", 'd', {"c"}), "db");
    const std::string prefix = R"({"db":"db","schema":"s","col":"v","doc":{"c":)";
    const std::string suffix = R"(},"find":null})";
    INFO("payload: " << out);
    REQUIRE_FALSE(ParseJson(out).HasParseError());
    REQUIRE(out.starts_with(prefix));
    REQUIRE(out.ends_with(suffix));
    return out.substr(prefix.size(), out.size() - prefix.size() - suffix.size());
  };

  SUBCASE("numbers are exact") {
    CHECK(one("numeric", "12.50") == "12.50");
    CHECK(one("bigint", "9007199254740993") == "9007199254740993");
    CHECK(one("bigint", "-9223372036854775808") == "-9223372036854775808");
    CHECK(one("numeric(40,20)", "12345678901234567890.12345678901234567890") ==
          "12345678901234567890.12345678901234567890");
    CHECK(one("double precision", "1.5e-07") == "1.5e-07");
    CHECK(one("real", "-0") == "-0");
  }
  SUBCASE("a number type given as a string stays a string") {
    CHECK(one("numeric", R"("12.50")") == R"("12.50")");
  }
  SUBCASE("booleans and NULL") {
    CHECK(one("boolean", "true") == "true");
    CHECK(one("boolean", "false") == "false");
    CHECK(one("text", "null") == "null");
    CHECK(one("jsonb", "null") == "null");
    CHECK(one("integer[]", "null") == "null");
  }
  SUBCASE("json and jsonb are embedded") {
    CHECK(one("jsonb", R"("{\"a\": [1, 2.0]}")") == R"({"a": [1, 2.0]})");
    CHECK(one("json", R"("[1,\"x\",null]")") == R"([1,"x",null])");
    CHECK(one("json", R"("  {\"spaced\" : true}  ")") == R"(  {"spaced" : true}  )");
    CHECK(one("jsonb", R"("\"just a string\"")") == R"("just a string")");
    CHECK(one("jsonb", R"("3.0")") == "3.0");
    CHECK(one("jsonb", R"("null")") == "null");
    CHECK(one("jsonb", R"("{\"t\": \"a\\\"b\"}")") == R"({"t": "a\"b"})");
  }
  SUBCASE("arrays are typed") {
    CHECK(one("boolean[]", R"("{t,f}")") == "[true,false]");
    CHECK(one("integer[]", R"("{1,2}")") == "[1,2]");
    CHECK(one("numeric[]", R"("{12.50,NULL,NaN}")") == "[12.50,null,null]");
    CHECK(one("integer[]", R"("{{1,2},{3,4}}")") == "[[1,2],[3,4]]");
    CHECK(one("text[]", R"("{a,\"b c\",NULL,\"NULL\"}")") == R"(["a","b c",null,"NULL"])");
    CHECK(one("jsonb[]", R"("{\"{\\\"a\\\": 1}\"}")") == R"([{"a": 1}])");
    CHECK(one("numeric(10,2)[]", R"("{1.00}")") == "[1.00]");
    CHECK(one("text[]", R"("{}")") == "[]");
  }
  SUBCASE("a malformed array literal falls back to its text") {
    CHECK(one("integer[]", R"("{1,x}")") == R"("{1,x}")");
    CHECK(one("boolean[]", R"("not an array")") == R"("not an array")");
  }
  SUBCASE("other types are the text Postgres printed, escaped for JSON") {
    CHECK(one("timestamp with time zone", R"("2026-11-28 04:06:36.900285+00")") ==
          R"("2026-11-28 04:06:36.900285+00")");
    CHECK(one("uuid", R"("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")") ==
          R"("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")");
    CHECK(one("text", R"("quote \" backslash \\ newline \n tab \t")") ==
          R"("quote \" backslash \\ newline \n tab \t")");
    CHECK(one("text", R"("nul \u0000 inside")") == R"("nul \u0000 inside")");
    CHECK(one("text", R"("caf\u00e9")") == "\"caf\xC3\xA9\"");
    CHECK(one("character varying(20)", R"("")") == R"("")");
    CHECK(one("public.mood", R"("happy")") == R"("happy")");
  }
}

TEST_CASE("payload: names and db are escaped") {
  Harness h;
  const std::string_view line =
      R"({"action":"I","lsn":"0/9","schema":"we\"ird","table":"T a\\b","columns":[{"name":"Col \"1\"","type":"integer","value":1}],"pk":[{"name":"Col \"1\""}]})";
  CheckPayload(
      h.Build(line, Table("we\"ird", "T a\\b", 'd', {"Col \"1\""}), "d\"b"),
      R"({"db":"d\"b","schema":"we\"ird","col":"T a\\b","doc":{"Col \"1\"":1},"find":{"Col \"1\"":1}})");
}

TEST_CASE("payload: WriteColumnValue alone") {
  JsonBuffer buffer;
  JsonWriter writer(buffer);
  Column c;
  c.name = "n";
  c.type = "numeric";
  c.kind = ValueKind::kNumber;
  c.text = "12.50";
  writer.StartArray();
  WriteColumnValue(c, writer);
  c.kind = ValueKind::kNull;
  WriteColumnValue(c, writer);
  c.kind = ValueKind::kString;
  c.type = "integer[]";
  c.text = "{1,2}";
  WriteColumnValue(c, writer);
  writer.EndArray();
  CHECK(std::string(buffer.GetString(), buffer.GetSize()) == "[12.50,null,[1,2]]");
}

TEST_CASE("payload: one builder, many changes") {
  Harness h;
  const TableInfo small = Table("public", "t", 'd', {"id", "f", "big"});
  // unchanged_toast of one change must not leak into the next.
  for (int i = 0; i < 100; ++i) {
    CHECK(h.Build(kToastUpdateDefault, small).find("unchanged_toast") != std::string::npos);
    CheckPayload(h.Build(samples::kInsert, TableT()),
                 Join({R"({"db":"shop","schema":"public","col":"t","doc":)", kRowTrue,
                       R"(,"find":)", kKey, "}"}));
    CheckPayload(h.Build(samples::kDelete, TableT()),
                 Join({R"({"db":"shop","schema":"public","col":"t","doc":null,"find":)", kKey,
                       R"(,"before":)", kKey, "}"}));
  }
}

}  // namespace
}  // namespace walhook
