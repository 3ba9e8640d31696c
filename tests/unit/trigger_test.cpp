#include "walhook/trigger.h"

#include <string>
#include <string_view>

#include <doctest/doctest.h>

namespace walhook {
namespace {

TEST_CASE("ParseEventKind and EventKindName") {
  struct Row {
    std::string_view name;
    EventKind kind;
  };
  for (const Row& row :
       {Row{"DB_INSERT", EventKind::kDbInsert}, Row{"DB_UPDATE", EventKind::kDbUpdate},
        Row{"DB_DELETE", EventKind::kDbDelete}, Row{"FILE_CREATE", EventKind::kFileCreate},
        Row{"FILE_DELETE", EventKind::kFileDelete}}) {
    CAPTURE(row.name);
    CHECK(ParseEventKind(row.name) == row.kind);
    CHECK(EventKindName(row.kind) == row.name);
    CHECK(EventKindName(ParseEventKind(row.name)) == row.name);
  }
  SUBCASE("anything else is custom, with an empty name") {
    for (std::string_view custom : {"ORDER_SHIPPED", "db_insert", "DB_INSERT ", "DB_",
                                    "DB_TRUNCATE", "FILE_", "", "dlq_orders"}) {
      CAPTURE(custom);
      CHECK(ParseEventKind(custom) == EventKind::kCustom);
    }
    CHECK(EventKindName(EventKind::kCustom).empty());
  }
}

struct Parsed {
  bool ok;
  std::string schema;
  std::string table;
};

Parsed Parse(std::string_view text) {
  Parsed p{false, "untouched", "untouched"};
  p.ok = ParseTableName(text, &p.schema, &p.table);
  return p;
}

TEST_CASE("ParseTableName accepts one or two identifiers") {
  auto check = [](std::string_view text, std::string_view schema, std::string_view table) {
    CAPTURE(text);
    const Parsed p = Parse(text);
    REQUIRE(p.ok);
    CHECK(p.schema == schema);
    CHECK(p.table == table);
  };
  check("orders", "public", "orders");
  check("shop.orders", "shop", "orders");
  check("Shop.Orders", "shop", "orders");
  check("ORDERS", "public", "orders");
  check("\"Shop\".\"Orders\"", "Shop", "Orders");
  check("\"Orders\"", "public", "Orders");
  check("shop.\"Orders\"", "shop", "Orders");
  check("\"Shop\".orders", "Shop", "orders");
  check("_t", "public", "_t");
  check("t1$x", "public", "t1$x");
  check("s_2.t_3", "s_2", "t_3");
  SUBCASE("quoted names keep what plain ones cannot hold") {
    check("\"a.b\"", "public", "a.b");
    check("\"with space\".\"1abc\"", "with space", "1abc");
    check("\"say \"\"hi\"\"\"", "public", "say \"hi\"");
  }
  SUBCASE("non-ASCII letters are identifier characters") {
    check("caf\xC3\xA9", "public", "caf\xC3\xA9");
  }
}

TEST_CASE("ParseTableName refuses what is not one or two identifiers") {
  for (std::string_view bad : {
           "a.b.c",  "",
           "1abc",   "a.",
           ".a",     ".",
           "a..b",   "s.1abc",
           "a b",    " a",
           "a ",     "a-b",
           "a;drop",
           "\"\"",    // empty quoted identifier
           "\"a",     // unterminated
           "\"a\"b",  // text after a quoted name
           "\"a\".", "\"a\".\"b\".\"c\"",
           "a.\"\"", "a.b\"",
           "*",
       }) {
    CAPTURE(bad);
    const Parsed p = Parse(bad);
    CHECK_FALSE(p.ok);
  }
}

TEST_CASE("TableInfo::is_partition") {
  TableInfo t;
  t.schema = t.root_schema = "public";
  t.table = t.root_table = "orders";
  CHECK_FALSE(t.is_partition());
  t.table = "orders_2026";
  CHECK(t.is_partition());
  t.table = "orders";
  t.root_schema = "other";
  CHECK(t.is_partition());
}

TEST_CASE("Trigger defaults") {
  Trigger t;
  CHECK(t.kind == EventKind::kCustom);
  CHECK(t.enabled);
  CHECK(t.active);
  CHECK(t.schema.empty());
  CHECK(t.table.empty());
  CHECK(t.columns.empty());
  CHECK_FALSE(t.condition);
  CHECK_FALSE(t.path_prefix);
  TableInfo info;
  CHECK(info.replica_identity == 'd');
}

TEST_CASE("CustomTrigger: its condition parsed, or nothing") {
  auto plain = CustomTrigger("t", "ORDER_SHIPPED", std::nullopt, true);
  REQUIRE(plain.has_value());
  CHECK(plain->kind == EventKind::kCustom);
  CHECK(plain->parsed_condition == nullptr);
  auto cond = CustomTrigger("t", "X", "payload.total > 10", false);
  REQUIRE(cond.has_value());
  CHECK_FALSE(cond->enabled);
  REQUIRE(cond->parsed_condition != nullptr);
  CHECK(cond->parsed_condition->Uses(Scope::kPayload));
  CHECK_FALSE(CustomTrigger("t", "X", "payload.total >", true).has_value());
  CHECK_FALSE(CustomTrigger("t", "X", "new.total > 1", true).has_value());
  CHECK_FALSE(CustomTrigger("t", "X", "old.total > 1", true).has_value());
}

// SPEC §9: a trigger's headers cannot set what walhook sends itself, nor
// smuggle a header or a body in with a line break.
TEST_CASE("CheckTriggerHeaders refuses walhook's headers and line breaks") {
  CHECK(CheckTriggerHeaders(R"({})") == "");
  CHECK(CheckTriggerHeaders(R"({"Authorization": "Bearer x", "X-Api-Key": "k"})") == "");
  CHECK(CheckTriggerHeaders(R"({"X-Webhook": "ok", "webhookid": "ok"})") == "");
  for (const std::string_view name :
       {"Host", "host", "HOST", "Content-Length", "content-length", "Transfer-Encoding",
        "Connection", "Content-Type", "X-SC-Token", "x-sc-token", "webhook-signature", "Webhook-Id",
        "WEBHOOK-TIMESTAMP", "webhook-anything"}) {
    CAPTURE(name);
    const std::string error =
        CheckTriggerHeaders("{\"a\": \"1\", \"" + std::string(name) + "\": \"x\"}");
    CHECK(error.find("\"" + std::string(name) + "\" is set by walhook") != std::string::npos);
    CHECK(IsReservedHeader(name));
  }
  CHECK(CheckTriggerHeaders(R"({"X-A": "a\r\nHost: evil"})") ==
        "headers: the value of \"X-A\" holds a line break or a NUL byte");
  CHECK(CheckTriggerHeaders(R"({"X-A": "a\nb"})").find("line break") != std::string::npos);
  CHECK(CheckTriggerHeaders(R"({"X-A": "a\u0000b"})").find("NUL") != std::string::npos);
  CHECK(CheckTriggerHeaders(R"({"X-A\r\nHost": "x"})") ==
        "headers: \"X-A\\x0d\\x0aHost\" is not a valid header name (letters, digits and "
        "!#$%&'*+-.^_`|~ only; no spaces, colons or line breaks)");
  CHECK(CheckTriggerHeaders(R"({"X A": "x"})").find("not a valid header name") !=
        std::string::npos);
  CHECK(CheckTriggerHeaders(R"({"X-A:": "x"})").find("not a valid header name") !=
        std::string::npos);
  CHECK(CheckTriggerHeaders(R"({"": "x"})") == "headers: a header name is empty");
  CHECK(CheckTriggerHeaders(R"({"X-N": 5})") == "headers: the value of \"X-N\" is not a string");
  CHECK(CheckTriggerHeaders(R"({"X-N": null})").find("not a string") != std::string::npos);
  CHECK(CheckTriggerHeaders(R"({"X-N": {"a": 1}})").find("not a string") != std::string::npos);
  CHECK(CheckTriggerHeaders(R"([1])") == "headers: not a JSON object");
  CHECK(CheckTriggerHeaders("{").rfind("headers: ", 0) == 0);
  // A long name is cut between characters, never inside one.
  const std::string name = "X-" + std::string(61, 'a') + "\xC3\xA9";  // é across byte 64
  const std::string error = CheckTriggerHeaders("{\"" + name + " \": \"x\"}");
  CHECK(error.find("\"X-" + std::string(61, 'a') + "...\"") != std::string::npos);
}

}  // namespace
}  // namespace walhook
