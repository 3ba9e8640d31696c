#include "walhook/decoder.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include "sample_lines.h"
#include "walhook/matcher.h"
#include "walhook/payload.h"

namespace walhook {
namespace {

constexpr Lsn kPos(1);  // names lines in errors as "0/1"

// Owns the line buffer the Change's views point into. The Decoder is 64 KiB,
// so it lives on the heap.
class Harness {
 public:
  Status Decode(std::string_view line, Lsn pos = kPos) {
    buffer_.assign(line);  // std::string keeps a NUL after size()
    return decoder_->Decode(buffer_.data(), buffer_.size(), pos, &change_);
  }
  const Change& change() const { return change_; }
  const std::string& buffer() const { return buffer_; }
  bool boundary() const { return decoder_->boundary(); }

 private:
  std::unique_ptr<Decoder> decoder_ = std::make_unique<Decoder>();
  std::string buffer_;
  Change change_;
};

void CheckColumn(const Column& c, std::string_view name, std::string_view type, ValueKind kind,
                 std::string_view text) {
  CAPTURE(name);
  CHECK(c.name == name);
  CHECK(c.type == type);
  CHECK(c.kind == kind);
  CHECK(c.text == text);
}

void CheckSampleRow(const std::vector<Column>& row, bool f) {
  REQUIRE(row.size() == 7);
  CheckColumn(row[0], "id", "bigint", ValueKind::kNumber, "9007199254740993");
  CheckColumn(row[1], "n", "numeric", ValueKind::kNumber, "12.50");
  CheckColumn(row[2], "j", "jsonb", ValueKind::kString, R"({"a": [1, 2.0]})");
  CheckColumn(row[3], "a", "text[]", ValueKind::kString, R"({a,"b c",NULL})");
  CheckColumn(row[4], "b", "boolean[]", ValueKind::kString, "{t,f}");
  CheckColumn(row[5], "f", "boolean", f ? ValueKind::kTrue : ValueKind::kFalse, "");
  CheckColumn(row[6], "big", "text", ValueKind::kString, "x");
}

TEST_CASE("Decoder: begin and commit") {
  Harness h;
  SUBCASE("begin") {
    REQUIRE(h.Decode(samples::kBegin).ok());
    const Change& c = h.change();
    CHECK(c.kind == ChangeKind::kBegin);
    CHECK(c.lsn == *Lsn::Parse("0/1546F70"));
    CHECK(c.next_lsn == *Lsn::Parse("0/1546FA0"));
    CHECK(c.timestamp == "2026-11-28 04:06:36.900285+00");
    CHECK(c.xid == 726);
    CHECK(c.schema.empty());
    CHECK(c.table.empty());
    CHECK(c.columns.empty());
  }
  SUBCASE("commit") {
    REQUIRE(h.Decode(samples::kCommit).ok());
    const Change& c = h.change();
    CHECK(c.kind == ChangeKind::kCommit);
    CHECK(c.lsn == *Lsn::Parse("0/1546F70"));
    CHECK(c.next_lsn == *Lsn::Parse("0/1546FA0"));
    CHECK(c.timestamp == "2026-11-28 04:06:36.900285+00");
  }
}

TEST_CASE("Decoder: a begin or commit is known as one even when it does not decode") {
  // The capture loop restarts on a malformed begin or commit (it cannot be
  // skipped) and skips a malformed row: it must know which it was after the
  // in-place parse rewrote the line.
  Harness h;
  for (const char* line : {
           R"({"action":"B","xid":726,"lsn":"not an lsn","nextlsn":"0/1546FA0"})",
           R"({"action":"C","xid":726,"lsn":"0/1546F70"})",
           R"({"action":"B","xid":"726","lsn":"0/1546F70","nextlsn":"0/1546FA0"})",
           R"({"action":"C","lsn":"0/1546F70","nextlsn":"0/1546FA0",)",
       }) {
    CAPTURE(line);
    CHECK_FALSE(h.Decode(line).ok());
    CHECK(h.boundary());
  }
  for (const char* line : {
           R"({"action":"I","schema":"public","table":"t","columns":[{"name":"a",)",
           R"({"action":"M","transactional":"yes"})",
           "not json",
       }) {
    CAPTURE(line);
    CHECK_FALSE(h.Decode(line).ok());
    CHECK_FALSE(h.boundary());
  }
  REQUIRE(h.Decode(samples::kCommit).ok());
  CHECK(h.boundary());
  REQUIRE(h.Decode(samples::kInsert).ok());
  CHECK_FALSE(h.boundary());
}

TEST_CASE("Decoder: insert keeps exact digits and tells strings from numbers") {
  Harness h;
  REQUIRE(h.Decode(samples::kInsert).ok());
  const Change& c = h.change();
  CHECK(c.kind == ChangeKind::kInsert);
  CHECK(c.lsn == *Lsn::Parse("0/1546E10"));
  CHECK_FALSE(c.next_lsn.valid());
  CHECK(c.timestamp == "2026-11-28 04:06:36.900285+00");
  CHECK(c.schema == "public");
  CHECK(c.table == "t");
  CheckSampleRow(c.columns, true);
  CHECK(c.identity.empty());
  REQUIRE(c.pk.size() == 1);
  CHECK(c.pk[0] == "id");
}

TEST_CASE("Decoder: update has the new row, the identity and the key") {
  Harness h;
  REQUIRE(h.Decode(samples::kUpdate).ok());
  const Change& c = h.change();
  CHECK(c.kind == ChangeKind::kUpdate);
  CHECK(c.lsn == *Lsn::Parse("0/1546FA0"));
  CHECK(c.table == "t");
  CheckSampleRow(c.columns, false);
  REQUIRE(c.identity.size() == 1);
  CheckColumn(c.identity[0], "id", "bigint", ValueKind::kNumber, "9007199254740993");
  REQUIRE(c.pk.size() == 1);
  CHECK(c.pk[0] == "id");
}

TEST_CASE("Decoder: delete has the identity only") {
  Harness h;
  REQUIRE(h.Decode(samples::kDelete).ok());
  const Change& c = h.change();
  CHECK(c.kind == ChangeKind::kDelete);
  CHECK(c.lsn == *Lsn::Parse("0/15470B8"));
  CHECK(c.schema == "public");
  CHECK(c.table == "t");
  CHECK(c.columns.empty());
  REQUIRE(c.identity.size() == 1);
  CheckColumn(c.identity[0], "id", "bigint", ValueKind::kNumber, "9007199254740993");
  REQUIRE(c.pk.size() == 1);
}

TEST_CASE("Decoder: a table without a key has an empty pk") {
  Harness h;
  REQUIRE(h.Decode(samples::kInsertNoPk).ok());
  const Change& c = h.change();
  CHECK(c.kind == ChangeKind::kInsert);
  CHECK(c.table == "np");
  REQUIRE(c.columns.size() == 1);
  CheckColumn(c.columns[0], "x", "integer", ValueKind::kNumber, "1");
  CHECK(c.pk.empty());
}

TEST_CASE("Decoder: a table without columns") {
  Harness h;
  REQUIRE(h.Decode(R"({"action":"I","xid":9,"lsn":"0/10","schema":"public","table":"empty",)"
                   R"("columns":[],"pk":[]})")
              .ok());
  CHECK(h.change().kind == ChangeKind::kInsert);
  CHECK(h.change().columns.empty());
  CHECK_FALSE(h.Decode(R"({"action":"I","lsn":"0/10","schema":"public","table":"empty"})").ok());
}

TEST_CASE("Decoder: truncate") {
  Harness h;
  REQUIRE(h.Decode(samples::kTruncate).ok());
  const Change& c = h.change();
  CHECK(c.kind == ChangeKind::kTruncate);
  CHECK(c.lsn == *Lsn::Parse("0/15473F8"));
  CHECK(c.schema == "public");
  CHECK(c.table == "np");
  CHECK(c.columns.empty());
}

TEST_CASE("Decoder: logical messages") {
  Harness h;
  SUBCASE("transactional, content unescaped") {
    REQUIRE(h.Decode(samples::kMessage).ok());
    const Change& c = h.change();
    CHECK(c.kind == ChangeKind::kMessage);
    CHECK(c.lsn == *Lsn::Parse("0/15470B8"));
    CHECK(c.transactional);
    CHECK(c.prefix == "walhook.eventing");
    CHECK(c.content == R"({"x":1})");
    CHECK(c.xid == 727);
    CHECK(c.timestamp == "2026-11-28 04:06:36.982254+00");
  }
  SUBCASE("non-transactional heartbeat with null xid and timestamp") {
    REQUIRE(h.Decode(samples::kHeartbeat).ok());
    const Change& c = h.change();
    CHECK(c.kind == ChangeKind::kMessage);
    CHECK_FALSE(c.transactional);
    CHECK(c.lsn == *Lsn::Parse("0/15474D8"));
    CHECK(c.timestamp.empty());
    CHECK(c.prefix == "hb");
    CHECK(c.content.empty());
  }
}

TEST_CASE("Decoder: value kinds") {
  Harness h;
  auto decode_value = [&](std::string_view type, std::string_view json_value) -> const Column& {
    const std::string line =
        std::string(R"({"action":"I","lsn":"0/10","schema":"s","table":"t",)") +
        R"("columns":[{"name":"c","type":")" + std::string(type) + R"(","value":)" +
        std::string(json_value) + "}]}";
    const Status st = h.Decode(line);
    INFO(line);
    REQUIRE(st.ok());
    REQUIRE(h.change().columns.size() == 1);
    return h.change().columns[0];
  };

  SUBCASE("a string \"12\" is a string, 12 is a number") {
    const Column& s = decode_value("text", R"("12")");
    CHECK(s.kind == ValueKind::kString);
    CHECK(s.text == "12");
    const Column& n = decode_value("integer", "12");
    CHECK(n.kind == ValueKind::kNumber);
    CHECK(n.text == "12");
  }
  SUBCASE("numbers keep every digit Postgres printed") {
    for (std::string_view digits :
         {"0", "-0", "12.50", "-3", "0.000", "9007199254740993", "18446744073709551616",
          "123456789012345678901234567890.000000000000000000001", "1e+20", "1.5E-07", "-1.0e5"}) {
      CAPTURE(digits);
      const Column& c = decode_value("numeric", digits);
      CHECK(c.kind == ValueKind::kNumber);
      CHECK(c.text == digits);
    }
  }
  SUBCASE("numbers after white space, and strings that look like numbers") {
    const Column& n = decode_value("integer", "  42 ");
    CHECK(n.kind == ValueKind::kNumber);
    CHECK(n.text == "42");
    const Column& s = decode_value("text", R"( "42" )");
    CHECK(s.kind == ValueKind::kString);
    CHECK(s.text == "42");
    const Column& e = decode_value("text", R"("")");
    CHECK(e.kind == ValueKind::kString);
    CHECK(e.text.empty());
  }
  SUBCASE("booleans and null") {
    CHECK(decode_value("boolean", "true").kind == ValueKind::kTrue);
    CHECK(decode_value("boolean", "false").kind == ValueKind::kFalse);
    const Column& n = decode_value("text", "null");
    CHECK(n.kind == ValueKind::kNull);
    CHECK(n.text.empty());
  }
  SUBCASE("escaped strings are unescaped") {
    const Column& c = decode_value("text", R"("q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00")");
    CHECK(c.kind == ValueKind::kString);
    CHECK(c.text == "q\"b\\s/n\nt\tu\xC3\xA9\xF0\x9F\x98\x80");
  }
  SUBCASE("an escaped NUL stays inside the value") {
    const Column& c = decode_value("text", R"("a\u0000b")");
    CHECK(c.kind == ValueKind::kString);
    CHECK(c.text == std::string_view("a\0b", 3));
  }
  SUBCASE("type names are kept as printed") {
    CHECK(decode_value("numeric(10,2)", "1.00").type == "numeric(10,2)");
    CHECK(decode_value("character varying(20)", R"("x")").type == "character varying(20)");
    CHECK(decode_value("\\\"MyType\\\"", R"("x")").type == "\"MyType\"");
  }
}

TEST_CASE("Decoder: REPLICA IDENTITY FULL update and unchanged TOAST") {
  Harness h;
  // The whole old row in identity; "big" left out of columns (unchanged TOAST).
  const std::string_view line =
      R"({"action":"U","lsn":"0/20","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":1},{"name":"f","type":"boolean","value":true}],"identity":[{"name":"id","type":"bigint","value":1},{"name":"f","type":"boolean","value":false},{"name":"big","type":"text","value":"long"}],"pk":[{"name":"id","type":"bigint"}]})";
  REQUIRE(h.Decode(line).ok());
  const Change& c = h.change();
  CHECK(c.columns.size() == 2);
  REQUIRE(c.identity.size() == 3);
  CheckColumn(c.identity[2], "big", "text", ValueKind::kString, "long");
}

TEST_CASE("Decoder: optional parts may be missing or null") {
  Harness h;
  SUBCASE("no pk member at all") {
    REQUIRE(
        h.Decode(
             R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","type":"integer","value":1}]})")
            .ok());
    CHECK(h.change().pk.empty());
  }
  SUBCASE("null identity and pk") {
    REQUIRE(
        h.Decode(
             R"({"action":"U","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","type":"integer","value":1}],"identity":null,"pk":null})")
            .ok());
    CHECK(h.change().identity.empty());
    CHECK(h.change().pk.empty());
  }
  SUBCASE("a row change without lsn still decodes; its lsn is 0/0") {
    REQUIRE(
        h.Decode(R"({"action":"I","schema":"s","table":"t","columns":[{"name":"a","value":1}]})")
            .ok());
    CHECK_FALSE(h.change().lsn.valid());
    CHECK(h.change().columns[0].type.empty());
  }
  SUBCASE("members in another order, unknown members ignored") {
    REQUIRE(
        h.Decode(
             R"({"pk":[{"name":"a"}],"extra":{"x":[1,2]},"columns":[{"value":"v","type":"text","name":"a"}],"table":"t","schema":"s","lsn":"0/5","action":"I"})")
            .ok());
    CHECK(h.change().lsn == Lsn(5));
    CheckColumn(h.change().columns[0], "a", "text", ValueKind::kString, "v");
  }
}

TEST_CASE("Decoder: malformed lines are errors naming the position") {
  Harness h;
  const std::string_view cases[] = {
      // truncated JSON
      R"({"action":"B","lsn":"0/1546F70","nextlsn":"0/1546FA0")",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":1})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":"abc)",
      R"({)",
      // not an object
      R"([1,2])",
      R"("B")",
      R"(42)",
      R"(null)",
      // trailing garbage
      R"({"action":"B","lsn":"0/1","nextlsn":"0/2"} x)",
      // action
      R"({"lsn":"0/1"})",
      R"({"action":"X","lsn":"0/1"})",
      R"({"action":"","lsn":"0/1"})",
      R"({"action":"BB","lsn":"0/1","nextlsn":"0/2"})",
      R"({"action":1,"lsn":"0/1"})",
      R"({"action":null,"lsn":"0/1"})",
      // begin/commit without positions
      R"({"action":"B","nextlsn":"0/2"})",
      R"({"action":"C","lsn":"0/1"})",
      R"({"action":"C","lsn":null,"nextlsn":"0/2"})",
      R"({"action":"B","lsn":"0/0","nextlsn":"0/2"})",
      // bad lsn text or type
      R"({"action":"B","lsn":"zz","nextlsn":"0/2"})",
      R"({"action":"B","lsn":"0/1","nextlsn":"0/"})",
      R"({"action":"I","lsn":17,"schema":"s","table":"t","columns":[{"name":"a","value":1}]})",
      R"({"action":"B","lsn":"0/1","nextlsn":"0/2","timestamp":5})",
      // row changes without schema or table
      R"({"action":"I","lsn":"0/1","table":"t","columns":[{"name":"a","value":1}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","columns":[{"name":"a","value":1}]})",
      R"({"action":"I","lsn":"0/1","schema":"","table":"t","columns":[{"name":"a","value":1}]})",
      R"({"action":"T","lsn":"0/1","schema":"s"})",
      R"({"action":"I","lsn":"0/1","schema":1,"table":"t","columns":[{"name":"a","value":1}]})",
      // columns not an array, or with bad entries
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":{"name":"a","value":1}})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":"a"})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[1]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"type":"integer","value":1}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"","value":1}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":3,"value":1}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","type":7,"value":1}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","type":"integer"}]})",
      // a value of the wrong type
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":{"x":1}}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":[1]}]})",
      // missing rows
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t"})",
      R"({"action":"U","lsn":"0/1","schema":"s","table":"t","identity":[{"name":"a","value":1}]})",
      R"({"action":"D","lsn":"0/1","schema":"s","table":"t","pk":[{"name":"a"}]})",
      R"({"action":"D","lsn":"0/1","schema":"s","table":"t","identity":[]})",
      R"({"action":"D","lsn":"0/1","schema":"s","table":"t","identity":{}})",
      R"({"action":"U","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":1}],"identity":[{"name":"a","value":{}}]})",
      // bad pk
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":1}],"pk":{"name":"a"}})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":1}],"pk":["a"]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":1}],"pk":[{"type":"integer"}]})",
      // messages
      R"({"action":"M","lsn":"0/1","prefix":"p","content":"c"})",
      R"({"action":"M","lsn":"0/1","transactional":"true","prefix":"p","content":"c"})",
      R"({"action":"M","lsn":"0/1","transactional":true,"prefix":1,"content":"c"})",
      R"({"action":"M","lsn":"0/1","transactional":true,"prefix":"p","content":{}})",
      // JSON that is not JSON
      R"({'action':'B'})",
      R"({"action":"B","lsn":"0/1","nextlsn":"0/2",})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":01}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":NaN}]})",
      R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[{"name":"a","value":"\x"}]})",
      "   ",
  };
  for (std::string_view line : cases) {
    CAPTURE(line);
    const Status st = h.Decode(line, Lsn(0x1546F70));
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find("0/1546F70") != std::string::npos);
  }

  SUBCASE("empty line") {
    const Status st = h.Decode("", kPos);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find("0/1") != std::string::npos);
  }
  SUBCASE("a NUL byte inside the line") {
    std::string line(samples::kBegin);
    line[10] = '\0';
    const Status st = h.Decode(line, kPos);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find("0/1") != std::string::npos);
    CHECK(st.message().find("NUL") != std::string::npos);
  }
  SUBCASE("a NUL right after a complete object but before the end") {
    std::string line(samples::kBegin);
    line.push_back('\0');
    line.append("garbage");
    CHECK_FALSE(h.Decode(line, kPos).ok());
  }
  SUBCASE("the unknown action is named") {
    const Status st = h.Decode(R"({"action":"Z","lsn":"0/1"})", kPos);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find("\"Z\"") != std::string::npos);
  }
}

TEST_CASE("Decoder: an error leaves no stale data from the previous line") {
  Harness h;
  REQUIRE(h.Decode(samples::kUpdate).ok());
  CHECK_FALSE(h.Decode(R"({"action":"Q"})").ok());
  CHECK(h.change().columns.empty());
  CHECK(h.change().identity.empty());
  CHECK(h.change().pk.empty());
  CHECK(h.change().schema.empty());
}

TEST_CASE("Decoder: deep nesting is an error, not a stack overflow") {
  Harness h;
  for (size_t depth : {size_t{1000}, size_t{200000}}) {
    CAPTURE(depth);
    std::string line = R"({"action":"I","lsn":"0/1","schema":"s","table":"t","x":)";
    line.append(depth, '[');
    CHECK_FALSE(h.Decode(line).ok());
    line.append(depth, ']');
    line.append(R"(,"columns":[{"name":"a","value":1}]})");
    // Balanced, it is valid JSON with an unknown member: decodes.
    CHECK(h.Decode(line).ok());
  }
}

TEST_CASE("Decoder: one Decoder decodes many lines") {
  Harness h;
  SUBCASE("the sample stream in order, many times") {
    for (int round = 0; round < 200; ++round) {
      for (std::string_view line : samples::kAll) {
        REQUIRE(h.Decode(line).ok());
      }
      // The last line wins: nothing from earlier lines is left.
      CHECK(h.change().kind == ChangeKind::kMessage);
      CHECK(h.change().columns.empty());
      CHECK(h.change().pk.empty());
    }
    REQUIRE(h.Decode(samples::kInsert).ok());
    CheckSampleRow(h.change().columns, true);
  }
  SUBCASE("a line bigger than the pool, then small ones again") {
    std::string big = R"({"action":"I","lsn":"0/1","schema":"s","table":"t","columns":[)";
    constexpr int kColumns = 5000;
    for (int i = 0; i < kColumns; ++i) {
      if (i > 0) big.push_back(',');
      big += R"({"name":"c)" + std::to_string(i) + R"(","type":"text","value":"v)" +
             std::to_string(i) + R"("})";
    }
    big += "]}";
    for (int round = 0; round < 3; ++round) {
      REQUIRE(h.Decode(big).ok());
      REQUIRE(h.change().columns.size() == kColumns);
      CHECK(h.change().columns[kColumns - 1].name == "c4999");
      CHECK(h.change().columns[kColumns - 1].text == "v4999");
      REQUIRE(h.Decode(samples::kDelete).ok());
      CHECK(h.change().identity.size() == 1);
    }
  }
  SUBCASE("two decoders do not share state") {
    Harness other;
    REQUIRE(h.Decode(samples::kInsert).ok());
    REQUIRE(other.Decode(samples::kDelete).ok());
    CheckSampleRow(h.change().columns, true);
    CHECK(other.change().kind == ChangeKind::kDelete);
  }
}

// Views must point into the line's buffer (decoded in place), never past it.
void CheckViewsInside(const Change& c, const std::string& buffer) {
  const char* begin = buffer.data();
  const char* end = buffer.data() + buffer.size();
  auto inside = [&](std::string_view v) {
    return v.empty() || (v.data() >= begin && v.data() + v.size() <= end);
  };
  CHECK(inside(c.timestamp));
  CHECK(inside(c.schema));
  CHECK(inside(c.table));
  CHECK(inside(c.prefix));
  CHECK(inside(c.content));
  for (const auto* row : {&c.columns, &c.identity}) {
    for (const Column& col : *row) {
      CHECK(inside(col.name));
      CHECK(inside(col.type));
      CHECK(inside(col.text));
      CHECK(!col.name.empty());
      if (col.kind == ValueKind::kNumber) CHECK(!col.text.empty());
    }
  }
  for (std::string_view p : c.pk) CHECK(inside(p));
}

bool IsValidJson(std::string_view text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  return !doc.HasParseError();
}

std::string Mutate(std::string line, std::mt19937& rng) {
  static constexpr std::string_view kAlphabet =
      "{}[]\":,\\ 0123456789.-+eEtrufalsn/uUIDBCMTx\x80\xff";
  auto pick = [&](size_t n) {
    return n == 0 ? size_t{0} : std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  };
  static constexpr std::string_view kTokens[] = {"null",
                                                 "true",
                                                 "false",
                                                 "0",
                                                 "-1.50e3",
                                                 "\"\"",
                                                 "\"x\"",
                                                 "\"12\"",
                                                 "[]",
                                                 "{}",
                                                 "[{}]",
                                                 "[{\"name\":\"id\"}]",
                                                 "\"0/1\"",
                                                 "\"{1,2}\"",
                                                 "\"{\\\"a\\\":1}\"",
                                                 "\"\\u0000\"",
                                                 "9007199254740993"};
  // Half the cases only swap values, so that many lines still decode and reach
  // the payload builder; the other half edit bytes anywhere.
  const bool values_only = pick(2) == 0;
  const int edits = 1 + static_cast<int>(pick(3));
  for (int e = 0; e < edits; ++e) {
    switch (values_only ? 7 : pick(9)) {
      case 0:  // replace a byte with a significant one
        if (!line.empty()) line[pick(line.size())] = kAlphabet[pick(kAlphabet.size())];
        break;
      case 1:  // insert a byte
        line.insert(line.begin() + static_cast<std::ptrdiff_t>(pick(line.size() + 1)),
                    kAlphabet[pick(kAlphabet.size())]);
        break;
      case 2: {  // delete a range
        if (line.empty()) break;
        const size_t at = pick(line.size());
        line.erase(at, 1 + pick(16));
        break;
      }
      case 3:  // truncate
        line.resize(pick(line.size() + 1));
        break;
      case 4: {  // duplicate a range somewhere else
        if (line.empty()) break;
        const size_t at = pick(line.size());
        const std::string piece = line.substr(at, 1 + pick(40));
        line.insert(pick(line.size() + 1), piece);
        break;
      }
      case 5:  // flip a bit
        if (!line.empty()) line[pick(line.size())] ^= static_cast<char>(1u << pick(8));
        break;
      case 6:  // an unbalanced quote
        line.insert(pick(line.size() + 1), 1, '"');
        break;
      case 7:
      case 8: {  // replace a member's value with another JSON value: mostly still valid JSON
        std::vector<size_t> colons;
        for (size_t i = 0; i < line.size(); ++i) {
          if (line[i] == ':') colons.push_back(i);
        }
        if (colons.empty()) break;
        const size_t from = colons[pick(colons.size())] + 1;
        size_t to = from;
        int depth = 0;
        bool in_string = false;
        for (; to < line.size(); ++to) {
          const char ch = line[to];
          if (in_string) {
            if (ch == '\\')
              ++to;
            else if (ch == '"')
              in_string = false;
          } else if (ch == '"') {
            in_string = true;
          } else if (ch == '[' || ch == '{') {
            ++depth;
          } else if (ch == ']' || ch == '}' || ch == ',') {
            if (depth == 0) break;
            if (ch != ',') --depth;
          }
        }
        line.replace(from, std::min(to, line.size()) - from, kTokens[pick(std::size(kTokens))]);
        break;
      }
    }
  }
  return line;
}

TEST_CASE("Decoder: random mutations of real lines never crash") {
  Harness h;
  PayloadBuilder payload;
  TableInfo table;
  table.schema = table.root_schema = "public";
  table.table = table.root_table = "t";
  table.replica_identity = 'f';
  table.columns = {"id", "n", "j", "a", "b", "f", "big", "x"};

  Trigger on_update;
  on_update.name = "u";
  on_update.kind = EventKind::kDbUpdate;
  on_update.columns = {"f", "big"};
  Trigger on_any;
  on_any.name = "any";
  on_any.kind = EventKind::kDbInsert;
  const Matcher matcher({on_update, on_any});
  std::vector<const Trigger*> matched;

  std::mt19937 rng(20261128);  // fixed seed: the same cases every run
  int ok = 0;
  int errors = 0;
  constexpr int kCases = 8000;
  for (int i = 0; i < kCases; ++i) {
    const std::string_view base = samples::kAll[static_cast<size_t>(i) % samples::kAll.size()];
    const std::string line = Mutate(std::string(base), rng);
    const Status st = h.Decode(line, Lsn(0xABCDEF));
    if (!st.ok()) {
      ++errors;
      if (st.message().find("0/ABCDEF") == std::string::npos) {
        FAIL("error does not name the position: " << st.message() << " for " << line);
      }
      continue;
    }
    ++ok;
    CheckViewsInside(h.change(), h.buffer());
    const ChangeKind k = h.change().kind;
    if (k == ChangeKind::kInsert || k == ChangeKind::kUpdate || k == ChangeKind::kDelete) {
      matched.clear();
      matcher.Match(h.change(), table, &matched);
      CHECK(matched.size() <= 1);
      const std::string_view out = payload.Build(h.change(), table, "db");
      // json/jsonb text is trusted to be JSON (Postgres validates it); other
      // values must always give a valid payload.
      bool has_json = false;
      for (const auto* row : {&h.change().columns, &h.change().identity}) {
        for (const Column& c : *row) {
          if (c.type.find("json") != std::string_view::npos) has_json = true;
        }
      }
      if (!has_json && !IsValidJson(out)) {
        FAIL("invalid payload " << out << " from " << line);
      }
    }
  }
  MESSAGE("mutations: " << ok << " decoded, " << errors << " refused");
  CHECK(ok > 0);
  CHECK(errors > 0);
}

}  // namespace
}  // namespace walhook
