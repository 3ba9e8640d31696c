#include "walhook/matcher.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "walhook/file_event.h"

namespace walhook {
namespace {

// The role that owns the triggers of these tests, and may read their tables.
constexpr std::string_view kOwner = "app_team";

Trigger Make(std::string name, std::string_view type, std::string schema = "",
             std::string table = "", std::vector<std::string> columns = {}) {
  Trigger t;
  t.name = std::move(name);
  t.type = std::string(type);
  t.kind = ParseEventKind(type);
  t.schema = std::move(schema);
  t.table = std::move(table);
  t.columns = std::move(columns);
  t.owner = std::string(kOwner);
  return t;
}

TableInfo Table(std::string schema, std::string table, char replica_identity = 'd') {
  TableInfo info;
  info.schema = info.root_schema = std::move(schema);
  info.table = info.root_table = std::move(table);
  info.replica_identity = replica_identity;
  info.readers = {std::string(kOwner)};
  return info;
}

Column Num(std::string_view name, std::string_view digits) {
  return Column{name, "integer", ValueKind::kNumber, digits};
}
Column Str(std::string_view name, std::string_view text) {
  return Column{name, "text", ValueKind::kString, text};
}
Column Null(std::string_view name) {
  return Column{name, "text", ValueKind::kNull, {}};
}

Change RowChange(ChangeKind kind, std::string_view schema = "public",
                 std::string_view table = "orders") {
  Change c;
  c.kind = kind;
  c.schema = schema;
  c.table = table;
  if (kind != ChangeKind::kDelete) c.columns = {Num("id", "1"), Str("status", "new")};
  if (kind != ChangeKind::kInsert) c.identity = {Num("id", "1")};
  c.pk = {"id"};
  return c;
}

std::vector<std::string> Names(const Matcher& m, const Change& c, const TableInfo& t) {
  std::vector<const Trigger*> out;
  m.Match(c, t, &out);
  std::vector<std::string> names;
  for (const Trigger* p : out) names.push_back(p->name);
  std::sort(names.begin(), names.end());
  return names;
}

using Names_ = std::vector<std::string>;

TEST_CASE("Matcher: DB triggers match their kind of change") {
  const Matcher m({Make("ins", "DB_INSERT", "public", "orders"),
                   Make("upd", "DB_UPDATE", "public", "orders"),
                   Make("del", "DB_DELETE", "public", "orders")});
  const TableInfo orders = Table("public", "orders");
  CHECK(Names(m, RowChange(ChangeKind::kInsert), orders) == Names_{"ins"});
  CHECK(Names(m, RowChange(ChangeKind::kUpdate), orders) == Names_{"upd"});
  CHECK(Names(m, RowChange(ChangeKind::kDelete), orders) == Names_{"del"});
  SUBCASE("other change kinds fire nothing") {
    for (ChangeKind k :
         {ChangeKind::kTruncate, ChangeKind::kMessage, ChangeKind::kBegin, ChangeKind::kCommit}) {
      CHECK(Names(m, RowChange(k), orders).empty());
    }
  }
  SUBCASE("other tables fire nothing") {
    CHECK(Names(m, RowChange(ChangeKind::kInsert, "public", "items"), Table("public", "items"))
              .empty());
    CHECK(Names(m, RowChange(ChangeKind::kInsert, "shop", "orders"), Table("shop", "orders"))
              .empty());
    CHECK(Names(m, RowChange(ChangeKind::kInsert, "public", "Orders"), Table("public", "Orders"))
              .empty());
  }
}

TEST_CASE("Matcher: an empty table_name means every table") {
  const Matcher m(
      {Make("all_ins", "DB_INSERT"), Make("orders_ins", "DB_INSERT", "public", "orders")});
  CHECK(Names(m, RowChange(ChangeKind::kInsert), Table("public", "orders")) ==
        Names_{"all_ins", "orders_ins"});
  CHECK(Names(m, RowChange(ChangeKind::kInsert, "x", "y"), Table("x", "y")) == Names_{"all_ins"});
  CHECK(Names(m, RowChange(ChangeKind::kDelete, "x", "y"), Table("x", "y")).empty());
}

TEST_CASE("Matcher: keeps only enabled, active triggers") {
  Trigger disabled = Make("disabled", "DB_INSERT", "public", "orders");
  disabled.enabled = false;
  Trigger inactive = Make("inactive", "DB_INSERT", "public", "orders");
  inactive.active = false;
  Trigger any_disabled = Make("any_disabled", "DB_INSERT");
  any_disabled.enabled = false;
  Trigger file_disabled = Make("file_disabled", "FILE_CREATE");
  file_disabled.enabled = false;
  const Matcher m({disabled, inactive, any_disabled, Make("file", "FILE_CREATE"),
                   Make("custom", "ORDER_SHIPPED"), file_disabled,
                   Make("ok", "DB_INSERT", "public", "orders")});
  CHECK(Names(m, RowChange(ChangeKind::kInsert), Table("public", "orders")) == Names_{"ok"});
  REQUIRE(m.triggers().size() == 3);
  CHECK(m.triggers()[0].name == "file");
  CHECK(m.triggers()[1].name == "custom");
  CHECK(m.triggers()[2].name == "ok");
  CHECK_FALSE(m.empty());
  CHECK(m.has_db());
  CHECK(m.has_file());
  CHECK_FALSE(Matcher({Make("custom", "ORDER_SHIPPED")}).has_db());
  CHECK_FALSE(Matcher({Make("custom", "ORDER_SHIPPED")}).has_file());

  SUBCASE("nothing left is empty") {
    const Matcher none({disabled, file_disabled});
    CHECK(none.empty());
    CHECK(Names(none, RowChange(ChangeKind::kInsert), Table("public", "orders")).empty());
    const Matcher def;
    CHECK(def.empty());
    CHECK(Names(def, RowChange(ChangeKind::kInsert), Table("public", "orders")).empty());
  }
}

namespace {

Trigger FileTrigger(std::string name, std::string_view type,
                    std::optional<std::string> prefix = std::nullopt,
                    std::optional<std::string> condition = std::nullopt) {
  Trigger t = Make(std::move(name), type);
  t.path_prefix = std::move(prefix);
  t.condition = std::move(condition);
  REQUIRE(CheckPayloadTrigger(&t) == "");
  return t;
}

Names_ FileNames(const Matcher& m, EventKind kind, const std::string& path, bool dir = false) {
  FileEvent e;
  e.kind = kind;
  e.path = path;
  e.dir = dir;
  if (kind == EventKind::kFileCreate) e.meta = FileMeta{.size = 12, .mtime_ms = 0};
  std::string payload;
  AppendFilePayload("/srv", e, &payload);
  std::vector<const Trigger*> out;
  m.MatchFile(kind, path, payload, &out);
  Names_ names;
  for (const Trigger* t : out) names.push_back(t->name);
  return names;
}

}  // namespace

TEST_CASE("Matcher: file triggers by type, path_prefix and condition") {
  const Matcher m({FileTrigger("all", "FILE_CREATE"), FileTrigger("up", "FILE_CREATE", "/up/"),
                   FileTrigger("gone", "FILE_DELETE", "/up"),
                   FileTrigger("big", "FILE_CREATE", "/", "payload.meta.size > 10"),
                   FileTrigger("dirs", "FILE_CREATE", std::nullopt, "payload.type = 'dir'"),
                   Make("db", "DB_INSERT"), Make("custom", "FILE_UPLOADED")});
  CHECK(FileNames(m, EventKind::kFileCreate, "/up/a.txt") == Names_{"all", "up", "big"});
  CHECK(FileNames(m, EventKind::kFileCreate, "/up") == Names_{"all", "up", "big"});
  // Whole components only.
  CHECK(FileNames(m, EventKind::kFileCreate, "/uploads/a.txt") == Names_{"all", "big"});
  CHECK(FileNames(m, EventKind::kFileCreate, "/x", true) == Names_{"all", "big", "dirs"});
  CHECK(FileNames(m, EventKind::kFileDelete, "/up/a.txt") == Names_{"gone"});
  CHECK(FileNames(m, EventKind::kFileDelete, "/upx").empty());
  // A file event never fires DB or custom triggers, nor they file ones.
  std::vector<const Trigger*> out;
  m.MatchCustom("FILE_UPLOADED", "{}", &out);
  CHECK(out.size() == 1);
  CHECK(Names(m, RowChange(ChangeKind::kInsert), Table("public", "orders")) == Names_{"db"});
}

TEST_CASE("Matcher: partitions") {
  TableInfo leaf = Table("public", "orders_2026");
  leaf.root_schema = "sales";
  leaf.root_table = "orders";
  const Change c = RowChange(ChangeKind::kInsert, "public", "orders_2026");

  SUBCASE("a trigger on the root matches a leaf change") {
    const Matcher m({Make("root", "DB_INSERT", "sales", "orders")});
    CHECK(Names(m, c, leaf) == Names_{"root"});
  }
  SUBCASE("a trigger on the leaf matches the leaf") {
    const Matcher m({Make("leaf", "DB_INSERT", "public", "orders_2026")});
    CHECK(Names(m, c, leaf) == Names_{"leaf"});
  }
  SUBCASE("a trigger on another leaf does not") {
    const Matcher m({Make("other", "DB_INSERT", "public", "orders_2025")});
    CHECK(Names(m, c, leaf).empty());
  }
  SUBCASE("root, leaf and every-table triggers each fire once") {
    const Matcher m({Make("root", "DB_INSERT", "sales", "orders"),
                     Make("leaf", "DB_INSERT", "public", "orders_2026"), Make("all", "DB_INSERT")});
    std::vector<const Trigger*> out;
    m.Match(c, leaf, &out);
    CHECK(out.size() == 3);
    CHECK(Names(m, c, leaf) == Names_{"all", "leaf", "root"});
  }
  SUBCASE("a change on the root table itself, not a partition") {
    const Matcher m({Make("root", "DB_INSERT", "sales", "orders")});
    CHECK(Names(m, RowChange(ChangeKind::kInsert, "sales", "orders"), Table("sales", "orders")) ==
          Names_{"root"});
  }
}

TEST_CASE("Matcher: several triggers on one table all match, each once") {
  const Matcher m({Make("a", "DB_UPDATE", "public", "orders"),
                   Make("b", "DB_UPDATE", "public", "orders"),
                   Make("c", "DB_UPDATE", "public", "orders", {"status"}),
                   Make("d", "DB_INSERT", "public", "orders")});
  std::vector<const Trigger*> out;
  m.Match(RowChange(ChangeKind::kUpdate), Table("public", "orders"), &out);
  REQUIRE(out.size() == 3);
  std::vector<const Trigger*> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  for (const Trigger* t : out) {
    // The pointers are into the matcher's own list.
    CHECK(t >= m.triggers().data());
    CHECK(t < m.triggers().data() + m.triggers().size());
  }
}

TEST_CASE("Matcher: Match appends to what is already in out") {
  const Matcher m({Make("a", "DB_INSERT")});
  const Trigger outside = Make("outside", "DB_INSERT");
  std::vector<const Trigger*> out = {&outside};
  m.Match(RowChange(ChangeKind::kInsert), Table("public", "orders"), &out);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == &outside);
  CHECK(out[1]->name == "a");
  // A second Match appends again: the matcher does not dedupe across calls.
  m.Match(RowChange(ChangeKind::kInsert), Table("public", "orders"), &out);
  CHECK(out.size() == 3);
}

// An UPDATE of orders(id, status, note, big) under REPLICA IDENTITY FULL.
Change FullUpdate(std::vector<Column> now, std::vector<Column> before) {
  Change c;
  c.kind = ChangeKind::kUpdate;
  c.schema = "public";
  c.table = "orders";
  c.columns = std::move(now);
  c.identity = std::move(before);
  c.pk = {"id"};
  return c;
}

TEST_CASE("Matcher: DB_UPDATE with columns") {
  const Matcher m({Make("status", "DB_UPDATE", "public", "orders", {"status"}),
                   Make("note_or_big", "DB_UPDATE", "public", "orders", {"note", "big"}),
                   Make("any", "DB_UPDATE", "public", "orders")});
  const TableInfo full = Table("public", "orders", 'f');
  const TableInfo def = Table("public", "orders", 'd');
  const std::vector<Column> old_row = {Num("id", "1"), Str("status", "new"), Null("note"),
                                       Str("big", "long")};

  SUBCASE("FULL: a changed column fires") {
    const Change c = FullUpdate(
        {Num("id", "1"), Str("status", "paid"), Null("note"), Str("big", "long")}, old_row);
    CHECK(Names(m, c, full) == Names_{"any", "status"});
  }
  SUBCASE("FULL: unchanged values do not") {
    const Change c = FullUpdate(
        {Num("id", "1"), Str("status", "new"), Null("note"), Str("big", "long")}, old_row);
    CHECK(Names(m, c, full) == Names_{"any"});
  }
  SUBCASE("FULL: null to a value, and a value to null, are changes") {
    const Change to_value = FullUpdate(
        {Num("id", "1"), Str("status", "new"), Str("note", ""), Str("big", "long")}, old_row);
    CHECK(Names(m, to_value, full) == Names_{"any", "note_or_big"});
    const Change to_null =
        FullUpdate({Num("id", "1"), Null("status"), Null("note"), Str("big", "long")}, old_row);
    CHECK(Names(m, to_null, full) == Names_{"any", "status"});
  }
  SUBCASE("FULL: the same text as a number and as a string is a change") {
    const Change c = FullUpdate({Num("id", "1"), Str("status", "new"), Null("note"),
                                 Column{"big", "text", ValueKind::kNumber, "long"}},
                                old_row);
    CHECK(Names(m, c, full) == Names_{"any", "note_or_big"});
  }
  SUBCASE("FULL: a column absent from the new row (unchanged TOAST) is unchanged") {
    const Change c = FullUpdate({Num("id", "1"), Str("status", "new"), Null("note")}, old_row);
    CHECK(Names(m, c, full) == Names_{"any"});
  }
  SUBCASE("FULL: a column the old row lacks counts as changed") {
    const Change c =
        FullUpdate({Num("id", "1"), Str("status", "new"), Null("note"), Str("big", "long")},
                   {Num("id", "1"), Null("note"), Str("big", "long")});
    CHECK(Names(m, c, full) == Names_{"any", "status"});
  }
  SUBCASE("not FULL: every UPDATE fires, the old row being only the key") {
    const Change c = FullUpdate(
        {Num("id", "1"), Str("status", "new"), Null("note"), Str("big", "long")}, {Num("id", "1")});
    CHECK(Names(m, c, def) == Names_{"any", "note_or_big", "status"});
    CHECK(Names(m, c, Table("public", "orders", 'i')) == Names_{"any", "note_or_big", "status"});
  }
}

Trigger WithCondition(Trigger t, std::string_view text) {
  Result<Condition> c = ParseCondition(text);
  REQUIRE_MESSAGE(c.ok(), text);
  t.condition = std::string(text);
  t.parsed_condition = std::make_shared<const Condition>(std::move(*c));
  return t;
}

TEST_CASE("Matcher: conditions") {
  const TableInfo full = Table("public", "orders", 'f');
  SUBCASE("only rows for which the condition is true") {
    const Matcher m({WithCondition(Make("paid", "DB_INSERT", "public", "orders"),
                                   "new.status = 'paid' AND new.total >= 100.00"),
                     Make("all", "DB_INSERT", "public", "orders")});
    Change c = RowChange(ChangeKind::kInsert);
    c.columns = {Num("id", "1"), Str("status", "paid"), Num("total", "100")};
    CHECK(Names(m, c, full) == Names_{"all", "paid"});
    c.columns = {Num("id", "1"), Str("status", "paid"), Num("total", "99.999")};
    CHECK(Names(m, c, full) == Names_{"all"});
    c.columns = {Num("id", "1"), Str("status", "new"), Num("total", "500")};
    CHECK(Names(m, c, full) == Names_{"all"});
    // NULL (unknown) does not fire.
    c.columns = {Num("id", "1"), Str("status", "paid"), Null("total")};
    CHECK(Names(m, c, full) == Names_{"all"});
  }
  SUBCASE("old and new on an update") {
    const Matcher m({WithCondition(Make("shipped", "DB_UPDATE", "public", "orders"),
                                   "old.status IS DISTINCT FROM new.status AND new.status = "
                                   "'shipped'")});
    CHECK(Names(m,
                FullUpdate({Num("id", "1"), Str("status", "shipped")},
                           {Num("id", "1"), Str("status", "paid")}),
                full) == Names_{"shipped"});
    CHECK(Names(m,
                FullUpdate({Num("id", "1"), Str("status", "shipped")},
                           {Num("id", "1"), Str("status", "shipped")}),
                full)
              .empty());
  }
  SUBCASE("columns and a condition must both hold") {
    const Matcher m({WithCondition(Make("big", "DB_UPDATE", "public", "orders", {"total"}),
                                   "new.total > 1000")});
    CHECK(Names(m,
                FullUpdate({Num("id", "1"), Num("total", "2000")},
                           {Num("id", "1"), Num("total", "5")}),
                full) == Names_{"big"});
    // total unchanged: columns says no, whatever the condition says.
    CHECK(Names(m,
                FullUpdate({Num("id", "1"), Num("total", "2000")},
                           {Num("id", "1"), Num("total", "2000")}),
                full)
              .empty());
  }
  SUBCASE("a condition that validation did not parse never fires") {
    Trigger t = Make("broken", "DB_INSERT", "public", "orders");
    t.condition = "new.status = ";
    const Matcher m({t});
    CHECK(m.empty());
  }
}

TEST_CASE("Matcher: custom events by type, with conditions on the payload") {
  Trigger off = Make("off", "ORDER_SHIPPED");
  off.enabled = false;
  const Matcher m({Make("shipped", "ORDER_SHIPPED"), Make("other", "ORDER_PAID"), off,
                   WithCondition(Make("big", "ORDER_SHIPPED"), "payload.order.total >= 100.0"),
                   WithCondition(Make("eu", "ORDER_SHIPPED"), "payload.country IN ('DE', 'FR')"),
                   Make("db", "DB_INSERT")});
  auto custom = [&](std::string_view type, std::string_view payload) {
    std::vector<const Trigger*> out;
    m.MatchCustom(type, payload, &out);
    std::vector<std::string> names;
    for (const Trigger* t : out) names.push_back(t->name);
    std::sort(names.begin(), names.end());
    return names;
  };
  CHECK(custom("ORDER_SHIPPED", R"({"order": {"total": 100}, "country": "DE"})") ==
        Names_{"big", "eu", "shipped"});
  CHECK(custom("ORDER_SHIPPED", R"({"order": {"total": 99.99}, "country": "US"})") ==
        Names_{"shipped"});
  // Types are case-sensitive; a DB type is never a custom one.
  CHECK(custom("order_shipped", "{}").empty());
  CHECK(custom("DB_INSERT", "{}").empty());
  CHECK(custom("ORDER_PAID", "null") == Names_{"other"});
  // A payload that is not an object: names are NULL, conditions do not fire.
  CHECK(custom("ORDER_SHIPPED", "[1, 2]") == Names_{"shipped"});
  CHECK(custom("ORDER_SHIPPED", "not json") == Names_{"shipped"});
}

TEST_CASE("AnyColumnChanged") {
  const Change c = FullUpdate({Num("a", "1"), Num("b", "2.50")}, {Num("a", "1"), Num("b", "2.5")});
  CHECK_FALSE(AnyColumnChanged({"a"}, c, true));
  // Exact text: 2.50 and 2.5 print differently, so Postgres wrote a new value.
  CHECK(AnyColumnChanged({"b"}, c, true));
  CHECK(AnyColumnChanged({"a", "b"}, c, true));
  CHECK_FALSE(AnyColumnChanged({"nope"}, c, true));
  CHECK_FALSE(AnyColumnChanged({}, c, true));
  SUBCASE("without the complete old row, always true") {
    CHECK(AnyColumnChanged({"a"}, c, false));
    CHECK(AnyColumnChanged({"nope"}, c, false));
  }
}

}  // namespace
// SPEC §9: a trigger with no table sees only the tables its owner may read;
// one naming its table is checked when validated, not here.
TEST_CASE("matcher: a trigger on every table fires only for tables its owner may read") {
  Trigger mine = Make("mine", "DB_INSERT");
  Trigger theirs = Make("theirs", "DB_INSERT");
  theirs.owner = "other_team";
  Trigger named = Make("named", "DB_INSERT", "public", "orders");
  named.owner = "other_team";
  const Matcher m({mine, theirs, named});
  TableInfo orders = Table("public", "orders");
  const Change c = RowChange(ChangeKind::kInsert);
  CHECK(Names(m, c, orders) == std::vector<std::string>{"mine", "named"});
  orders.readers = {"other_team", std::string(kOwner)};
  CHECK(Names(m, c, orders) == std::vector<std::string>{"mine", "named", "theirs"});
  orders.readers.clear();  // no one (a table that is gone, a role that is not there)
  CHECK(Names(m, c, orders) == std::vector<std::string>{"named"});
  // A partition: its readers are those of the leaf or of the root.
  TableInfo leaf = Table("public", "orders_2026");
  leaf.root_table = "orders";
  leaf.readers = {"other_team"};
  CHECK(Names(m, RowChange(ChangeKind::kInsert, "public", "orders_2026"), leaf) ==
        std::vector<std::string>{"named", "theirs"});
}

}  // namespace walhook
