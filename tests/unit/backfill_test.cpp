#include "walhook/backfill.h"

#include <doctest/doctest.h>

#include "walhook/payload.h"
#include "walhook/trigger.h"

namespace walhook {
namespace {

BackfillTable Orders() {
  BackfillTable t;
  t.schema = "public";
  t.table = "orders";
  t.columns = {{"id", 23, "integer"},  {"total", 1700, "numeric(10,2)"},   {"paid", 16, "boolean"},
               {"note", 25, "text"},   {"ratio", 701, "double precision"}, {"tags", 1009, "text[]"},
               {"meta", 3802, "jsonb"}};
  t.key = {0};
  return t;
}

BackfillRow Row(std::vector<std::optional<std::string>> values) {
  BackfillRow r;
  r.values = std::move(values);
  r.leaf_schema = "public";
  r.leaf_table = "orders";
  return r;
}

}  // namespace

TEST_CASE("backfill: a row becomes the Change a live insert of it decodes to") {
  const BackfillTable t = Orders();
  const BackfillRow row =
      Row({"7", "12.50", "t", "a \"quoted\" note", "NaN", "{a,b}", R"({"k": [1, 2]})"});
  Change c;
  RowChange(t, row, &c);
  CHECK(c.kind == ChangeKind::kInsert);
  CHECK(c.schema == "public");
  CHECK(c.table == "orders");
  REQUIRE(c.columns.size() == 7);
  CHECK(c.columns[0].kind == ValueKind::kNumber);
  CHECK(c.columns[1].kind == ValueKind::kNumber);
  CHECK(c.columns[1].text == "12.50");
  CHECK(c.columns[2].kind == ValueKind::kTrue);
  CHECK(c.columns[3].kind == ValueKind::kString);
  CHECK(c.columns[4].kind == ValueKind::kNull);  // wal2json writes NaN as null
  REQUIRE(c.pk.size() == 1);
  CHECK(c.pk[0] == "id");

  TableInfo info;
  info.schema = info.root_schema = "public";
  info.table = info.root_table = "orders";
  PayloadBuilder builder;
  const std::string payload = BackfillPayload(builder.Build(c, info, "shop"), 3);
  CHECK(payload == R"({"db":"shop","schema":"public","col":"orders","doc":{"id":7,"total":12.50,)"
                   R"("paid":true,"note":"a \"quoted\" note","ratio":null,"tags":["a","b"],)"
                   R"("meta":{"k": [1, 2]}},"find":{"id":7},"backfill":3})");
}

TEST_CASE("backfill: NULL, false, infinities and a domain over int") {
  BackfillTable t;
  t.columns = {{"id", 20, "bigint"},         {"f", 16, "boolean"}, {"x", 700, "real"},
               {"d", 90000, "positive_int"}, {"n", 25, "text"},    {"by", 17, "bytea"}};
  t.key = {0};
  Change c;
  const BackfillRow row = Row({"9007199254740993", "f", "-Infinity", "5", std::nullopt, "\\x00ff"});
  RowChange(t, row, &c);
  CHECK(c.columns[0].kind == ValueKind::kNumber);
  CHECK(c.columns[0].text == "9007199254740993");
  CHECK(c.columns[1].kind == ValueKind::kFalse);
  CHECK(c.columns[2].kind == ValueKind::kNull);
  CHECK(c.columns[3].kind == ValueKind::kString);  // wal2json quotes a domain's values
  CHECK(c.columns[4].kind == ValueKind::kNull);
  CHECK(c.columns[5].text == "00ff");  // as wal2json writes bytea
}

TEST_CASE("backfill: a key's text is the same from a row and from a WAL change") {
  BackfillTable t;
  t.columns = {{"a", 25, "text"}, {"b", 23, "integer"}, {"v", 25, "text"}};
  t.key = {1, 0};  // index order, not column order
  Change from_row;
  const BackfillRow row = Row({"x", "5", "y"});
  RowChange(t, row, &from_row);
  const auto k1 = KeyText(from_row.columns, from_row.pk);
  REQUIRE(k1);
  CHECK(*k1 == R"([5,"x"])");
  // A decoded change: the same values, the key named by wal2json's pk.
  Change wal;
  wal.columns = {{"a", "text", ValueKind::kString, "x"},
                 {"b", "integer", ValueKind::kNumber, "5"},
                 {"v", "text", ValueKind::kString, "z"}};
  wal.pk = {"b", "a"};
  CHECK(KeyText(wal.columns, wal.pk) == k1);
  // The old key of an update that changed it, or a delete's.
  wal.identity = {{"a", "text", ValueKind::kString, "x"}};
  CHECK_FALSE(KeyText(wal.identity, wal.pk).has_value());  // b is not there
  CHECK(RawKey(t, Row({"x", "5", "y"})) == R"(["5","x"])");
}

TEST_CASE("backfill: watermarks are read back only as written") {
  const Watermark w{12, 3, true, "00ff"};
  const std::string text = WatermarkContent(w);
  const auto back = ParseWatermark(text);
  REQUIRE(back);
  CHECK(back->backfill == 12);
  CHECK(back->chunk == 3);
  CHECK(back->high);
  CHECK(back->nonce == "00ff");
  CHECK_FALSE(ParseWatermark("").has_value());
  CHECK_FALSE(ParseWatermark("[1]").has_value());
  CHECK_FALSE(ParseWatermark(R"({"backfill":1,"chunk":1,"mark":"middle","nonce":"a"})"));
  CHECK_FALSE(ParseWatermark(R"({"backfill":1,"chunk":1,"mark":"low","nonce":""})"));
  CHECK_FALSE(ParseWatermark(R"({"backfill":"1","chunk":1,"mark":"low","nonce":"a"})"));
  CHECK_FALSE(ParseWatermark(R"({"backfill":1,"chunk":1,"mark":"low","nonce":{"a":[[[1]]]}})"));
  CHECK(WatermarkPrefix("eventing").rfind("walhook.", 0) == std::string::npos);
}

TEST_CASE("backfill: the channel takes only the open chunk's watermarks, in order") {
  BackfillChannel ch;
  std::string schema, table;
  const Watermark low{1, 1, false, "n1"};
  Watermark high = low;
  high.high = true;
  // Nothing open: nothing counts (a watermark replayed after a restart).
  CHECK_FALSE(ch.Low(low, &schema, &table));
  ch.Open(1, 1, "n1", "public", "t");
  // A forged one: another nonce, or the high one before the low one.
  CHECK_FALSE(ch.Low(Watermark{1, 1, false, "guess"}, &schema, &table));
  CHECK(ch.High(high) == nullptr);
  CHECK(ch.Low(low, &schema, &table));
  CHECK(schema == "public");
  CHECK(ch.window_open());
  CHECK_FALSE(ch.Low(low, &schema, &table));  // once
  CHECK(ch.High(high) == nullptr);            // no rows handed yet
  auto chunk = std::make_unique<BackfillChunk>();
  chunk->rows.resize(2);
  ch.Hand(std::move(chunk));
  auto taken = ch.High(high);
  REQUIRE(taken != nullptr);
  CHECK(taken->rows.size() == 2);
  CHECK_FALSE(ch.window_open());
  CHECK(ch.High(high) == nullptr);  // used once
  CHECK_FALSE(ch.Wait(0).has_value());
  ChunkResult r;
  r.emitted = 2;
  ch.Resolve(r);
  REQUIRE(ch.Wait(0).has_value());
  CHECK(ch.Wait(0)->emitted == 2);
}

TEST_CASE("backfill: changed keys are bounded; an unknown key overflows") {
  ChangedKeys keys;
  keys.Add(std::string("[1]"));
  CHECK(keys.Contains("[1]"));
  CHECK_FALSE(keys.overflow());
  keys.Add(std::nullopt);
  CHECK(keys.overflow());
  keys.Clear();
  for (size_t i = 0; i <= ChangedKeys::kMaxChangedKeys; ++i) keys.Add(std::to_string(i));
  CHECK(keys.overflow());
  CHECK(keys.size() == 0);  // memory given back
}

TEST_CASE("backfill: conditions over new only") {
  CHECK(ParseBackfillCondition("new.id > 10").ok());
  CHECK(ParseBackfillCondition("new.\"userId\" IS NOT NULL AND new.x IN (1, 2)").ok());
  CHECK_FALSE(ParseBackfillCondition("old.id > 10").ok());
  CHECK_FALSE(ParseBackfillCondition("payload.a = 1").ok());
  CHECK_FALSE(ParseBackfillCondition("new.id >").ok());
}

}  // namespace walhook

namespace walhook {

TEST_CASE("backfill: what a chunk's snapshot did not see") {
  SnapshotXids s;
  REQUIRE(ParseSnapshotXids("4294967400", "4294967390,4294967395", &s));
  CHECK(s.xmax == 104);  // the epoch is off: wal2json's xids are 32-bit
  CHECK(s.Invisible(94));
  CHECK(s.Invisible(99));
  CHECK_FALSE(s.Invisible(95));
  CHECK_FALSE(s.Invisible(103));
  CHECK(s.Invisible(104));
  CHECK(s.Invisible(200));
  CHECK(ParseSnapshotXids("10", "", &s));
  CHECK(s.xip.empty());
  // Around wraparound: 4294967290 is before xmax 5.
  REQUIRE(ParseSnapshotXids("5", "", &s));
  CHECK_FALSE(s.Invisible(4294967290u));
  CHECK(s.Invisible(7));
  CHECK_FALSE(ParseSnapshotXids("", "", &s));
  CHECK_FALSE(ParseSnapshotXids("1", "2,x", &s));
}

}  // namespace walhook
