// Capture, end to end: a real Postgres with wal2json, the walhook binary, and
// event_logs read back with SQL.

#include <signal.h>

#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <pqxx/pqxx>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "harness.h"

namespace walhook::test {
namespace {

constexpr const char* kSecret = "integration-secret";

std::vector<std::string> RunArgs(const TempPostgres& pg, const std::string& node,
                                 const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {WalhookBinary(), "run",      "--source",
                                   pg.conninfo(),   "--secret", kSecret,
                                   "--node-id",     node,       "--heartbeat-interval",
                                   "300ms",         "--listen", "off"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::unique_ptr<Process> StartWalhook(const TempPostgres& pg, const std::string& node = "n1",
                                      const std::vector<std::string>& extra = {}) {
  auto p = std::make_unique<Process>(RunArgs(pg, node, extra));
  // Ready once it reports itself as the streaming node.
  const bool ok = WaitFor([&] { return HasRole(pg.conninfo(), node); }, 20s, 100ms);
  INFO(p->Output());
  REQUIRE(ok);
  return p;
}

int RunToExit(const std::vector<std::string>& args, std::string* output,
              std::chrono::milliseconds timeout = 30s) {
  Process p(args);
  const int code = p.Wait(timeout);
  *output = p.Output();
  return code;
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  REQUIRE_MESSAGE(!d.HasParseError(), text);
  return d;
}

std::string Str(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return b.GetString();
}

std::string Payload(const std::string& conninfo, const std::string& where) {
  return Q(conninfo, "SELECT payload::text FROM eventing.event_logs WHERE " + where +
                         " ORDER BY id DESC LIMIT 1");
}

bool WaitCount(const std::string& conninfo, const std::string& sql, long want,
               std::chrono::milliseconds timeout = 10s) {
  return WaitFor([&] { return QL(conninfo, sql) == want; }, timeout);
}

void AddTrigger(const std::string& conninfo, const std::string& name, const std::string& type,
                const std::string& table, const std::string& extra_cols = "",
                const std::string& extra_vals = "") {
  Exec(conninfo, "INSERT INTO eventing.triggers (name, type, table_name, url" + extra_cols +
                     ") VALUES ('" + name + "', '" + type + "', " + table +
                     ", 'http://127.0.0.1:9/'" + extra_vals + ")");
}

// The walhook schema exists once init ran.
void Init(const TempPostgres& pg) {
  std::string out;
  REQUIRE(RunToExit({WalhookBinary(), "init", "--source", pg.conninfo()}, &out) == 0);
}

TEST_CASE("capture: row changes become event_logs rows with SPEC §4 data") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(pg);
  Exec(db,
       "CREATE TABLE items (id bigint PRIMARY KEY, price numeric, doc jsonb, tags text[], "
       "flags boolean[], ok bool, big text, note text);"
       "ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;"
       "CREATE TABLE items_full (id int PRIMARY KEY, big text, note text);"
       "ALTER TABLE items_full ALTER COLUMN big SET STORAGE EXTERNAL;"
       "ALTER TABLE items_full REPLICA IDENTITY FULL;"
       "CREATE TABLE nokey (x int, y text);"
       "CREATE TABLE measures (id int, city text, PRIMARY KEY (id, city)) PARTITION BY LIST (city);"
       "CREATE TABLE measures_paris PARTITION OF measures FOR VALUES IN ('paris');");
  for (const char* t : {"items", "items_full", "measures"}) {
    for (const char* k : {"INSERT", "UPDATE", "DELETE"}) {
      std::string name = std::string(t) + "_" + k;
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      AddTrigger(db, name, std::string("DB_") + k, std::string("'") + t + "'");
    }
  }
  AddTrigger(db, "nokey_insert", "DB_INSERT", "'nokey'");
  AddTrigger(db, "nokey_update", "DB_UPDATE", "'nokey'");
  auto walhook = StartWalhook(pg);

  SUBCASE("insert, update, delete with exact values") {
    Exec(db,
         "INSERT INTO items VALUES (9007199254740993, 12.50, '{\"a\": [1, 2.0], \"b\": null}', "
         "'{x,\"y z\",NULL,\"q\\\"uote\"}', '{t,f}', true, "
         "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i), 'first')");
    // The big value really lives out of line.
    CHECK(QL(db, "SELECT count(*) FROM pg_toast.pg_toast_" +
                     Q(db, "SELECT 'items'::regclass::oid") + "") > 0);
    Exec(db, "UPDATE items SET note = 'second' WHERE id = 9007199254740993");
    Exec(db, "DELETE FROM items WHERE id = 9007199254740993");
    REQUIRE(WaitCount(
        db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name LIKE 'items\\_%'", 3));

    auto ins = Json(Payload(db, "trigger_name = 'items_insert'"));
    CHECK(Str(ins["db"]) == "\"postgres\"");
    CHECK(Str(ins["schema"]) == "\"public\"");
    CHECK(Str(ins["col"]) == "\"items\"");
    CHECK(!ins.HasMember("before"));
    // Exact digits: read the stored text, not a double.
    const std::string raw = Payload(db, "trigger_name = 'items_insert'");
    CHECK(raw.find("\"id\":9007199254740993") != std::string::npos);
    CHECK(raw.find("\"price\":12.50") != std::string::npos);
    CHECK(Str(ins["doc"]["doc"]) == "{\"a\":[1,2.0],\"b\":null}");
    CHECK(Str(ins["doc"]["tags"]) == "[\"x\",\"y z\",null,\"q\\\"uote\"]");
    CHECK(Str(ins["doc"]["flags"]) == "[true,false]");
    CHECK(Str(ins["doc"]["ok"]) == "true");
    CHECK(ins["doc"]["big"].GetStringLength() == 400 * 32);
    CHECK(raw.find("\"find\":{\"id\":9007199254740993}") != std::string::npos);

    auto upd = Json(Payload(db, "trigger_name = 'items_update'"));
    CHECK(Str(upd["doc"]["note"]) == "\"second\"");
    // REPLICA IDENTITY DEFAULT: the unchanged TOAST value is not known.
    CHECK(!upd["doc"].HasMember("big"));
    CHECK(Str(upd["unchanged_toast"]) == "[\"big\"]");
    CHECK(
        Payload(db, "trigger_name = 'items_update'").find("\"before\":{\"id\":9007199254740993}") !=
        std::string::npos);

    auto del = Json(Payload(db, "trigger_name = 'items_delete'"));
    CHECK(del["doc"].IsNull());
    CHECK(Payload(db, "trigger_name = 'items_delete'").find("\"find\":{\"id\":9007199254740993}") !=
          std::string::npos);

    // Every row: staged, ts = event_ts = commit time, source position set.
    // (Delivery to the closed port may have made its first attempt already;
    // the next one is seconds away.)
    CHECK(QL(db,
             "SELECT count(*) FROM eventing.event_logs WHERE trigger_name LIKE 'items\\_%' "
             "AND status = 'staged' AND ts = event_ts AND source_lsn IS NOT NULL "
             "AND source_seq = 1 AND attempts <= 1") == 3);
  }

  SUBCASE("REPLICA IDENTITY FULL fills unchanged TOAST from the old row") {
    Exec(db,
         "INSERT INTO items_full VALUES (1, (SELECT string_agg(md5(i::text), '') FROM "
         "generate_series(1, 400) i), 'a')");
    Exec(db, "UPDATE items_full SET note = 'b'");
    REQUIRE(WaitCount(
        db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'items_full_update'",
        1));
    auto upd = Json(Payload(db, "trigger_name = 'items_full_update'"));
    CHECK(upd["doc"]["big"].GetStringLength() == 400 * 32);
    CHECK(!upd.HasMember("unchanged_toast"));
    CHECK(Str(upd["before"]["note"]) == "\"a\"");
    CHECK(upd["before"]["big"].GetStringLength() == 400 * 32);
  }

  SUBCASE("TRUNCATE makes no event; the changes around it do") {
    Exec(db, "INSERT INTO items (id) VALUES (1), (2)");
    Exec(db, "BEGIN; TRUNCATE items; INSERT INTO items (id) VALUES (3); COMMIT;");
    REQUIRE(WaitCount(
        db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'items_insert'", 3));
    std::this_thread::sleep_for(300ms);
    CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'items_delete'") ==
          0);
    CHECK(walhook->Output().find("TRUNCATE of public.items") != std::string::npos);
    // Position in the transaction counts the TRUNCATE: the insert after it is second.
    CHECK(QL(db, "SELECT source_seq FROM eventing.event_logs WHERE payload->'doc'->>'id' = '3'") ==
          2);
  }

  SUBCASE("a table without a primary key: inserts fire, last_error explains") {
    Exec(db, "INSERT INTO nokey VALUES (1, 'a')");
    Exec(db, "UPDATE nokey SET y = 'b'");
    REQUIRE(WaitCount(
        db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'nokey_insert'", 1));
    auto ins = Json(Payload(db, "trigger_name = 'nokey_insert'"));
    CHECK(ins["find"].IsNull());
    const std::string err =
        Q(db, "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'nokey_insert'");
    CHECK(err.find("REPLICA IDENTITY FULL") != std::string::npos);
    CHECK(Q(db, "SELECT active FROM eventing.trigger_status WHERE trigger_name = 'nokey_insert'") ==
          "t");
    CHECK(Q(db, "SELECT active FROM eventing.trigger_status WHERE trigger_name = 'nokey_update'") ==
          "f");
    std::this_thread::sleep_for(500ms);
    CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'nokey_update'") ==
          0);

    // Without a key but with REPLICA IDENTITY FULL: find is the whole row,
    // and the trigger's status says so.
    Exec(db, "ALTER TABLE nokey REPLICA IDENTITY FULL");
    Exec(db, "UPDATE eventing.triggers SET retries = 1 WHERE name = 'nokey_update'");  // reload
    REQUIRE(WaitFor(
        [&] {
          return Q(db,
                   "SELECT active FROM eventing.trigger_status WHERE trigger_name = "
                   "'nokey_update'") == "t";
        },
        3s));
    CHECK(Q(db,
            "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = "
            "'nokey_update'")
              .find("no primary key: find holds the whole row") != std::string::npos);
    Exec(db, "UPDATE nokey SET y = 'c'");
    REQUIRE(WaitCount(
        db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'nokey_update'", 1));
    auto upd = Json(Payload(db, "trigger_name = 'nokey_update'"));
    CHECK(upd["find"]["x"].GetInt() == 1);
    CHECK(std::string(upd["find"]["y"].GetString()) == "c");
  }

  SUBCASE("a partitioned table's trigger matches its partitions") {
    Exec(db, "INSERT INTO measures VALUES (1, 'paris')");
    REQUIRE(WaitCount(
        db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'measures_insert'", 1));
    auto ins = Json(Payload(db, "trigger_name = 'measures_insert'"));
    CHECK(Str(ins["col"]) == "\"measures\"");
    CHECK(Str(ins["partition"]) == "\"measures_paris\"");
    CHECK(Str(ins["find"]) == "{\"id\":1,\"city\":\"paris\"}");
  }

  SUBCASE("walhook's own tables never produce events, even for every-table triggers") {
    AddTrigger(db, "everything", "DB_INSERT", "NULL");
    std::this_thread::sleep_for(1500ms);
    Exec(db, "INSERT INTO nokey VALUES (7, 'seven')");
    REQUIRE(WaitCount(
        db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'everything'", 1));
    std::this_thread::sleep_for(1500ms);  // several node-status writes and batches later
    CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'everything'") ==
          1);
    CHECK(
        QL(db, "SELECT count(*) FROM eventing.event_logs WHERE payload->>'schema' = 'eventing'") ==
        0);
  }

  walhook->Signal(SIGTERM);
  CHECK(walhook->Wait(15s) == 0);
}

TEST_CASE("capture: trigger changes take effect within a second, without a restart") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(pg);
  Exec(db, "CREATE TABLE signups (id serial PRIMARY KEY, email text)");
  auto walhook = StartWalhook(pg);
  const std::string count =
      "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'welcome'";
  // Trigger changes reach walhook by NOTIFY, beside the stream: before the
  // next change, wait until walhook has confirmed the row just inserted, so
  // that the row is matched against the triggers of its time.
  const auto insert_handled = [&](const std::string& email) {
    Exec(db, "INSERT INTO signups (email) VALUES ('" + email + "')");
    const std::string lsn = Q(db, "SELECT pg_current_wal_lsn()");  // past its commit
    REQUIRE(WaitFor(
        [&] {
          return Q(db, "SELECT confirmed_flush_lsn >= '" + lsn +
                           "' FROM pg_replication_slots WHERE slot_name = 'walhook'") == "t";
        },
        10s, 20ms));
  };

  insert_handled("before@x");
  AddTrigger(db, "welcome", "DB_INSERT", "'signups'");
  std::this_thread::sleep_for(1s);
  Exec(db, "INSERT INTO signups (email) VALUES ('added@x')");
  REQUIRE(WaitCount(db, count, 1, 5s));

  Exec(db, "UPDATE eventing.triggers SET enabled = false WHERE name = 'welcome'");
  std::this_thread::sleep_for(1s);
  insert_handled("disabled@x");
  Exec(db, "UPDATE eventing.triggers SET enabled = true WHERE name = 'welcome'");
  std::this_thread::sleep_for(1s);
  Exec(db, "INSERT INTO signups (email) VALUES ('enabled@x')");
  REQUIRE(WaitCount(db, count, 2, 5s));
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE payload->'doc'->>'email' = "
           "'disabled@x'") == 0);

  Exec(db, "DELETE FROM eventing.triggers WHERE name = 'welcome'");
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'welcome' AND status = "
           "'cancel'") == 2);
  std::this_thread::sleep_for(1s);
  Exec(db, "INSERT INTO signups (email) VALUES ('deleted@x')");
  std::this_thread::sleep_for(1s);
  CHECK(QL(db, count) == 2);

  // Definition errors show in trigger_status; most leave the trigger inactive.
  AddTrigger(db, "ghost", "DB_INSERT", "'no_such_table'");
  AddTrigger(db, "cols", "DB_UPDATE", "'signups'", ", columns", ", '{nope}'");
  REQUIRE(WaitFor(
      [&] {
        return Q(db, "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'ghost'")
                   .find("does not exist") != std::string::npos;
      },
      3s));
  // Inactive while its table does not exist; a table created after its
  // trigger fires from its first row on, and the trigger shows active again.
  CHECK(Q(db, "SELECT active FROM eventing.trigger_status WHERE trigger_name = 'ghost'") == "f");
  Exec(db, "CREATE TABLE no_such_table (id int PRIMARY KEY); INSERT INTO no_such_table VALUES (1)");
  CHECK(WaitCount(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'ghost'", 1,
                  3s));
  CHECK(WaitFor(
      [&] {
        return Q(db,
                 "SELECT active::text || coalesce(last_error, '') FROM "
                 "eventing.trigger_status WHERE trigger_name = 'ghost'") == "true";
      },
      3s));
  CHECK(Q(db, "SELECT active FROM eventing.trigger_status WHERE trigger_name = 'cols'") == "f");
  CHECK(Q(db, "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'cols'")
            .find("nope") != std::string::npos);

  // Bad rows are refused by the database itself.
  CHECK_THROWS(AddTrigger(db, "Bad Name", "DB_INSERT", "'signups'"));
  CHECK_THROWS(AddTrigger(db, "badtype", "DB_SOMETHING", "'signups'"));
  CHECK_THROWS(Exec(
      db, "INSERT INTO eventing.triggers (name, type, url) VALUES ('x', 'DB_insert', 'ftp://a')"));
  CHECK_THROWS(Exec(db,
                    "INSERT INTO eventing.triggers (name, type, url, retries) VALUES ('x', "
                    "'DB_insert', 'http://a', -1)"));
  CHECK(walhook->Running());
}

TEST_CASE("capture: bytes that are not UTF-8 never stop capture") {
  // A SQL_ASCII source hands out its bytes as they are; event_logs is UTF-8.
  TempPostgres pg;
  const std::string evt = pg.conninfo();
  Exec(evt,
       "CREATE DATABASE legacy ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
       "TEMPLATE template0");
  const std::string src = pg.conninfo("legacy");
  std::string out;
  {
    Process init({WalhookBinary(), "init", "--source", src, "--eventing-db", evt});
    REQUIRE(init.Wait(30s) == 0);
  }
  Exec(src, "CREATE TABLE names (id int PRIMARY KEY, name text)");
  AddTrigger(evt, "names_insert", "DB_INSERT", "'names'");
  Process walhook({WalhookBinary(), "run", "--source", src, "--eventing-db", evt, "--secret",
                   kSecret, "--node-id", "legacy", "--listen", "off"});
  Exec(src, "INSERT INTO names VALUES (1, E'caf\\xe9')");
  Exec(src, "INSERT INTO names VALUES (2, 'plain')");
  REQUIRE(WaitCount(evt, "SELECT count(*) FROM eventing.event_logs", 2, 20s));
  CHECK(Q(evt,
          "SELECT payload->'doc'->>'name' FROM eventing.event_logs "
          "WHERE payload->'doc'->>'id' = '1'") == "caf\xEF\xBF\xBD");
  CHECK(walhook.Output().find("not UTF-8") != std::string::npos);
}

TEST_CASE("capture: DB_UPDATE columns are exact under REPLICA IDENTITY FULL") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(pg);
  Exec(db,
       "CREATE TABLE users (id int PRIMARY KEY, email text, seen int);"
       "CREATE TABLE users_full (id int PRIMARY KEY, email text, seen int);"
       "ALTER TABLE users_full REPLICA IDENTITY FULL;"
       "INSERT INTO users VALUES (1, 'a', 0); INSERT INTO users_full VALUES (1, 'a', 0);");
  AddTrigger(db, "email_changed", "DB_UPDATE", "'users'", ", columns", ", '{email}'");
  AddTrigger(db, "email_changed_full", "DB_UPDATE", "'users_full'", ", columns", ", '{email}'");
  auto walhook = StartWalhook(pg);
  Exec(db, "UPDATE users SET seen = 1; UPDATE users_full SET seen = 1;");
  Exec(db, "UPDATE users SET email = 'b'; UPDATE users_full SET email = 'b';");
  REQUIRE(WaitCount(
      db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'email_changed'", 2));
  REQUIRE(WaitCount(
      db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'email_changed_full'", 1));
  CHECK(Q(db, "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'email_changed'")
            .find("REPLICA IDENTITY FULL makes columns exact") != std::string::npos);
  CHECK(
      Q(db,
        "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'email_changed_full'")
          .empty());
}

TEST_CASE("capture: conditions let through exactly the rows they match") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(pg);
  Exec(db,
       "CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric, \"userId\" text);"
       "ALTER TABLE orders REPLICA IDENTITY FULL");
  auto add = [&](const std::string& name, const std::string& type, const std::string& cond) {
    pqxx::connection c(db);
    pqxx::nontransaction tx(c);
    tx.exec_params(
        "INSERT INTO eventing.triggers (name, type, table_name, condition, url) "
        "VALUES ($1, $2, 'orders', $3, 'http://127.0.0.1:9/')",
        name, type, cond);
  };
  add("paid_big", "DB_INSERT", "new.status = 'paid' AND new.total >= 100");
  add("friends", "DB_INSERT", "new.\"userId\" IN ('alice', 'bob') OR new.\"userId\" LIKE 'z\\_%'");
  add("shipped", "DB_UPDATE", "old.status <> 'shipped' AND new.status = 'shipped'");
  add("broken", "DB_INSERT", "new.status = ");
  add("unknown", "DB_INSERT", "new.nope = 1 OR new.status = 'paid'");
  add("payload", "DB_INSERT", "payload.kind = 'x'");
  auto walhook = StartWalhook(pg);

  // Postgres evaluates the same expressions over the same rows: the oracle.
  // Totals around 100 (99.99, 100, 100.00 written as 1e2), NULLs in every column.
  Exec(db,
       "INSERT INTO orders SELECT g, "
       "  (ARRAY['paid', 'new', NULL, 'shipped', 'PAID'])[1 + g % 5], "
       "  CASE WHEN g % 11 = 0 THEN NULL WHEN g % 4 = 0 THEN 1e2 "
       "    ELSE 99.99 + (g % 3) * 0.005 + (g % 13) END, "
       "  (ARRAY['alice', 'bob', 'carol', NULL, 'z_x', 'zax', 'Alice'])[1 + g % 7] "
       "FROM generate_series(1, 300) g");
  const std::string want_paid =
      "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders "
      "WHERE status = 'paid' AND total >= 100";
  const std::string want_friends =
      "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders "
      "WHERE \"userId\" IN ('alice', 'bob') OR \"userId\" LIKE 'z\\_%'";
  auto got = [&](const std::string& trigger) {
    return "SELECT string_agg(payload->'doc'->>'id', ',' ORDER BY (payload->'doc'->>'id')::int) "
           "FROM eventing.event_logs WHERE trigger_name = '" +
           trigger + "'";
  };
  const long paid = QL(db, "SELECT count(*) FROM orders WHERE status = 'paid' AND total >= 100");
  REQUIRE(paid > 10);
  REQUIRE(WaitCount(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'paid_big'",
                    paid));
  const std::string friends = Q(db, want_friends);
  REQUIRE(WaitFor([&] { return Q(db, got("friends")) == friends; }, 10s));
  std::this_thread::sleep_for(500ms);  // nothing more arrives
  CHECK(Q(db, got("paid_big")) == Q(db, want_paid));
  CHECK(Q(db, got("friends")) == friends);

  const std::string want_shipped = Q(db,
                                     "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders "
                                     "WHERE id % 3 = 0 AND status <> 'shipped'");
  Exec(db, "UPDATE orders SET status = 'shipped' WHERE id % 3 = 0");
  REQUIRE(WaitFor([&] { return Q(db, got("shipped")) == want_shipped; }, 10s));

  // Definition errors: inactive, with the reason; the others keep working.
  auto last_error = [&](const std::string& name) {
    return Q(db,
             "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = '" + name + "'");
  };
  CHECK(last_error("broken").find("condition: ") == 0);
  CHECK(last_error("unknown").find("new.nope") != std::string::npos);
  CHECK(last_error("payload").find("payload.*") != std::string::npos);
  CHECK(Q(db,
          "SELECT string_agg(trigger_name || '=' || active, ',' ORDER BY trigger_name) "
          "FROM eventing.trigger_status") ==
        "broken=false,friends=true,paid_big=true,payload=false,shipped=true,unknown=false");
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs "
           "WHERE trigger_name IN ('broken', 'unknown', 'payload')") == 0);

  // Fixed, the trigger fires within a second.
  Exec(db, "UPDATE eventing.triggers SET condition = 'new.total > 1000' WHERE name = 'broken'");
  REQUIRE(WaitFor([&] { return last_error("broken").empty(); }, 3s));
  Exec(db, "INSERT INTO orders VALUES (1001, 'new', 1000.5, NULL), (1002, 'new', 1000, NULL)");
  REQUIRE(WaitFor([&] { return Q(db, got("broken")) == "1001"; }, 5s));
  CHECK(walhook->Running());
}

}  // namespace
}  // namespace walhook::test
