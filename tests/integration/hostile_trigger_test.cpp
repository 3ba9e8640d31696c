// Hostile trigger authors and hostile rows (SPEC §9 "Trigger authors",
// "Trigger headers", "Row contents and conditions"), against a real walhook:
// a team that may write triggers sees only the tables it may SELECT, cannot
// set walhook's own headers, and no condition or trigger row stops capture.
// After each one walhook is alive, /healthz answers, and a row of an
// unrelated table is delivered within seconds. Ports 4700-4749.

#include <doctest/doctest.h>
#include <httplib.h>
#include <pqxx/pqxx>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"

namespace walhook::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSecret = "hostile-trigger-secret";

void Init(const std::string& db) {
  Process p({WalhookBinary(), "init", "--source", db});
  const int code = p.Wait(30s);
  REQUIRE_MESSAGE(code == 0, p.Output());
}

// `walhook run` with its API on `api_port`; returns once it streams.
std::unique_ptr<Process> StartWalhook(const std::string& db, int api_port) {
  auto p = std::make_unique<Process>(std::vector<std::string>{
      WalhookBinary(), "run", "--source", db, "--secret", kSecret, "--node-id", "n1",
      "--heartbeat-interval", "300ms", "--listen", "127.0.0.1:" + std::to_string(api_port)});
  const bool ok = WaitFor([&] { return HasRole(db, "n1"); }, 20s, 100ms);
  INFO(p->Output());
  REQUIRE(ok);
  return p;
}

// The team's role, with the README's grants for a team (as of issue 18).
void MakeTeam(const std::string& db, const std::string& role) {
  Exec(db, "CREATE ROLE " + role + " LOGIN; GRANT USAGE ON SCHEMA eventing TO " + role +
               "; GRANT SELECT, INSERT, UPDATE, DELETE ON eventing.triggers TO " + role +
               "; GRANT SELECT ON eventing.event_logs, eventing.trigger_status, "
               "eventing.bridge_status TO " +
               role +
               "; GRANT EXECUTE ON FUNCTION eventing.redeliver(bigint), "
               "eventing.cancel(bigint) TO " +
               role);
}

void AddTrigger(const std::string& conninfo, const std::string& name, const std::string& table,
                const std::string& url, const std::string& condition = "",
                const std::string& headers = "") {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  tx.exec(
      "INSERT INTO eventing.triggers (name, type, table_name, url, condition, headers) "
      "VALUES (" +
      tx.quote(name) + ", 'DB_INSERT', " + (table.empty() ? "NULL" : tx.quote(table)) + ", " +
      tx.quote(url) + ", " + (condition.empty() ? "NULL" : tx.quote(condition)) + ", " +
      (headers.empty() ? "NULL" : tx.quote(headers) + "::jsonb") + ")");
}

std::string LastError(const std::string& db, const std::string& trigger) {
  return Q(db,
           "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = '" + trigger + "'");
}

std::string Active(const std::string& db, const std::string& trigger) {
  return Q(db, "SELECT active::text FROM eventing.trigger_status WHERE trigger_name = '" + trigger +
                   "'");
}

// How many deliveries to `path` carry a row of table `col` with this id.
size_t Delivered(const Receiver& hook, const std::string& path, const std::string& col,
                 int id = -1) {
  size_t n = 0;
  for (const Arrival& a : hook.Arrivals()) {
    if (a.path != path) continue;
    if (a.body.find("\"col\":\"" + col + "\"") == std::string::npos) continue;
    if (id >= 0 && a.body.find("\"id\":" + std::to_string(id) + "}") == std::string::npos &&
        a.body.find("\"id\":" + std::to_string(id) + ",") == std::string::npos) {
      continue;
    }
    ++n;
  }
  return n;
}

// walhook is up, /healthz answers, and a row of `table` (with an int id and
// a trigger to `path`) reaches `hook` within seconds.
void CheckStillServing(Process& walhook, int api_port, const std::string& db, Receiver& hook,
                       const std::string& path, const std::string& table, int id) {
  REQUIRE_MESSAGE(walhook.Running(), walhook.Output());
  httplib::Client c("127.0.0.1", api_port);
  c.set_connection_timeout(2);
  c.set_read_timeout(2);
  const auto r = c.Get("/healthz");
  REQUIRE(r);
  CHECK(r->status == 200);
  Exec(db, "INSERT INTO " + table + " (id) VALUES (" + std::to_string(id) + ")");
  CHECK_MESSAGE(WaitFor([&] { return Delivered(hook, path, table, id) == 1; }, 5s),
                walhook.Output());
}

// SPEC §9 "Trigger authors": with the README's grants a team inserted a
// trigger with table_name NULL and got every table's rows, also those it may
// not SELECT.
TEST_CASE("hostile trigger: a team's triggers see only the tables it may SELECT") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db,
       "CREATE TABLE open_t (id int PRIMARY KEY, v text); "
       "CREATE TABLE secret (id int PRIMARY KEY, v text); "
       "CREATE TABLE other_t (id int PRIMARY KEY)");
  MakeTeam(db, "team");
  Exec(db, "GRANT SELECT ON open_t TO team");
  const std::string team = pg.conninfo("postgres", "team");
  Receiver hook(4700);
  AddTrigger(team, "all_rows", "", hook.Url("/all"));
  AddTrigger(team, "named_secret", "secret", hook.Url("/named"));
  AddTrigger(db, "admin_other", "other_t", hook.Url("/other"));

  // The database says who wrote each trigger; the team cannot say otherwise.
  CHECK(Q(db, "SELECT owner FROM eventing.triggers WHERE name = 'all_rows'") == "team");
  CHECK(Q(db, "SELECT owner FROM eventing.triggers WHERE name = 'admin_other'") == "postgres");
  Exec(team,
       "INSERT INTO eventing.triggers (name, type, url, owner) "
       "VALUES ('forged', 'DB_INSERT', 'http://127.0.0.1:9/', 'postgres')");
  CHECK(Q(db, "SELECT owner FROM eventing.triggers WHERE name = 'forged'") == "team");
  Exec(team, "UPDATE eventing.triggers SET owner = 'postgres' WHERE name = 'forged'");
  CHECK(Q(db, "SELECT owner FROM eventing.triggers WHERE name = 'forged'") == "team");
  // Taking over the schema owner's trigger makes it the team's.
  Exec(team, "UPDATE eventing.triggers SET enabled = false WHERE name = 'admin_other'");
  CHECK(Q(db, "SELECT owner FROM eventing.triggers WHERE name = 'admin_other'") == "team");
  Exec(db,
       "UPDATE eventing.triggers SET enabled = true, owner = 'postgres' "
       "WHERE name = 'admin_other'");
  CHECK(Q(db, "SELECT owner FROM eventing.triggers WHERE name = 'admin_other'") == "postgres");
  Exec(db, "DELETE FROM eventing.triggers WHERE name = 'forged'");
  // A role that does not exist in the source may read nothing there.
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url, owner) VALUES "
       "('ghost_named', 'DB_INSERT', 'open_t', '" +
           hook.Url("/ghost") +
           "', 'no_such_role'), "
           "('ghost_all', 'DB_INSERT', NULL, '" +
           hook.Url("/ghost") + "', 'no_such_role')");

  auto walhook = StartWalhook(db, 4701);
  REQUIRE(WaitFor([&] { return !LastError(db, "named_secret").empty(); }, 5s));
  CHECK(LastError(db, "named_secret") ==
        "the trigger's owner, role \"team\", may not SELECT table public.secret in the source "
        "database: the trigger is inactive until it may (GRANT SELECT ON public.secret TO team)");
  CHECK(Active(db, "named_secret") == "false");
  CHECK(Active(db, "all_rows") == "true");
  CHECK(LastError(db, "ghost_named")
            .find("role \"no_such_role\", may not SELECT table "
                  "public.open_t") != std::string::npos);

  Exec(db, "INSERT INTO secret VALUES (1, 'salary')");
  Exec(db, "INSERT INTO open_t VALUES (1, 'hello')");
  REQUIRE_MESSAGE(WaitFor([&] { return Delivered(hook, "/all", "open_t") == 1; }, 5s),
                  walhook->Output());
  std::this_thread::sleep_for(500ms);
  CHECK(Delivered(hook, "/all", "secret") == 0);
  CHECK(Delivered(hook, "/named", "secret") == 0);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE payload->>'col' = 'secret'") == 0);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name LIKE 'ghost%'") == 0);

  // Granted later: within about 10 s the team's triggers see the table.
  Exec(db, "GRANT SELECT ON secret TO team");
  const auto granted = Clock::now();
  int id = 100;
  const bool seen = WaitFor(
      [&] {
        Exec(db, "INSERT INTO secret VALUES (" + std::to_string(++id) + ", 'x')");
        return Delivered(hook, "/all", "secret") > 0;
      },
      13s, 500ms);
  CHECK_MESSAGE(seen, walhook->Output());
  MESSAGE("a grant took effect after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - granted).count()
          << " ms");
  REQUIRE(WaitFor([&] { return LastError(db, "named_secret").empty(); }, 3s));
  Exec(db, "INSERT INTO secret VALUES (1000, 'y')");
  CHECK(WaitFor([&] { return Delivered(hook, "/named", "secret", 1000) == 1; }, 5s));
  CHECK(WaitFor([&] { return Delivered(hook, "/all", "secret", 1000) == 1; }, 5s));

  // Revoked: within about 10 s neither sees it any more.
  Exec(db, "REVOKE SELECT ON secret FROM team");
  REQUIRE_MESSAGE(WaitFor([&] { return !LastError(db, "named_secret").empty(); }, 13s),
                  walhook->Output());
  Exec(db, "INSERT INTO secret VALUES (2000, 'z')");
  Exec(db, "INSERT INTO open_t VALUES (2000, 'z')");
  REQUIRE(WaitFor([&] { return Delivered(hook, "/all", "open_t", 2000) == 1; }, 5s));
  std::this_thread::sleep_for(500ms);
  CHECK(Delivered(hook, "/all", "secret", 2000) == 0);
  CHECK(Delivered(hook, "/named", "secret", 2000) == 0);

  CheckStillServing(*walhook, 4701, db, hook, "/other", "other_t", 1);
}

// Triggers written before migration 015 belong to the schema's owner.
TEST_CASE("hostile trigger: triggers from before owners belong to the schema's owner") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  MakeTeam(db, "team");
  // As before 015: no owner column, no trigger setting it.
  Exec(db,
       "DROP TRIGGER set_owner ON eventing.triggers; "
       "ALTER TABLE eventing.triggers DROP COLUMN owner; "
       "DELETE FROM eventing.schema_migrations WHERE version >= 15");
  AddTrigger(pg.conninfo("postgres", "team"), "old_one", "", "http://127.0.0.1:9/");
  Init(db);
  CHECK(Q(db, "SELECT owner FROM eventing.triggers WHERE name = 'old_one'") == "postgres");
  CHECK(Q(db,
          "SELECT is_nullable FROM information_schema.columns "
          "WHERE table_schema = 'eventing' AND table_name = 'triggers' "
          "AND column_name = 'owner'") == "NO");
}

// SPEC §9 "Trigger headers": a trigger set Host and Content-Length (the body
// was cut) and added a second X-SC-Token or webhook-signature.
TEST_CASE("hostile trigger: headers walhook sends itself make the trigger inactive") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other_t (id int PRIMARY KEY)");
  Receiver hook(4702);
  struct Bad {
    std::string name;
    std::string headers;
    std::string shown;  // what last_error must say
  };
  const std::vector<Bad> bad = {
      {"host", R"({"Host": "evil.example"})", "\"Host\" is set by walhook"},
      {"length", R"({"content-length": "2"})", "\"content-length\" is set by walhook"},
      {"chunked", R"({"Transfer-Encoding": "chunked"})", "\"Transfer-Encoding\" is set"},
      {"conn", R"({"CONNECTION": "close"})", "\"CONNECTION\" is set by walhook"},
      {"ctype", R"({"Content-Type": "text/plain"})", "\"Content-Type\" is set by walhook"},
      {"token", R"({"X-SC-Token": "Bearer forged"})", "\"X-SC-Token\" is set by walhook"},
      {"sig", R"({"webhook-signature": "v1,forged"})", "\"webhook-signature\" is set"},
      {"crlf_value", R"({"X-A": "a\r\nHost: evil"})", "the value of \"X-A\" holds a line break"},
      {"crlf_name", R"({"X-A\r\nHost": "evil"})", "\"X-A\\x0d\\x0aHost\" is not a valid header"},
      {"number", R"({"X-N": 5})", "the value of \"X-N\" is not a string"},
  };
  for (const Bad& b : bad) AddTrigger(db, b.name, "t", hook.Url("/" + b.name), "", b.headers);
  AddTrigger(db, "good", "t", hook.Url("/good"), "", R"({"X-Api-Key": "k1"})");
  AddTrigger(db, "other", "other_t", hook.Url("/other"));
  auto walhook = StartWalhook(db, 4703);

  for (const Bad& b : bad) {
    CAPTURE(b.name);
    REQUIRE(WaitFor([&] { return !LastError(db, b.name).empty(); }, 5s));
    CHECK(LastError(db, b.name).find(b.shown) != std::string::npos);
    CHECK(Active(db, b.name) == "false");
  }
  Exec(db, "INSERT INTO t VALUES (1)");
  REQUIRE(WaitFor([&] { return Delivered(hook, "/good", "t", 1) == 1; }, 5s));
  std::this_thread::sleep_for(500ms);
  CHECK(hook.Count() == 1);  // none of the bad triggers made a request
  const Arrival good = hook.Arrivals().front();
  CHECK(good.Header("X-Api-Key") == "k1");
  CHECK(good.HeaderCount("X-SC-Token") == 1);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name <> 'good'") == 0);

  // A trigger that was fine and is edited to set one turns inactive too.
  Exec(db,
       "UPDATE eventing.triggers SET headers = '{\"Host\": \"evil\", \"X-B\": \"b\"}' "
       "WHERE name = 'good'");
  REQUIRE(WaitFor([&] { return !LastError(db, "good").empty(); }, 5s));
  CheckStillServing(*walhook, 4703, db, hook, "/other", "other_t", 1);
}

// A condition whose parse error quotes text near a multi-byte character: the
// message was cut inside the character, writing last_error failed, and
// capture stopped for every trigger. And a last_error the database refuses
// for any other reason must not stop capture either.
TEST_CASE("hostile trigger: a last_error that cannot be written does not stop capture") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db,
       "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE other_t (id int PRIMARY KEY)");
  // Refuses one trigger's row, as a database may for reasons of its own.
  Exec(db,
       "ALTER TABLE eventing.trigger_health ADD CONSTRAINT no_boom "
       "CHECK (last_error NOT LIKE '%boom%')");
  Receiver hook(4704);
  std::string word = "a";
  for (int i = 0; i < 20; ++i) word += "\xC3\xA9";  // é: the 24-byte quote ends inside one
  AddTrigger(db, "multibyte", "t", hook.Url("/mb"), "new.v = 'x' " + word);
  AddTrigger(db, "boom", "t", hook.Url("/boom"), "new.v = boom");
  AddTrigger(db, "other", "other_t", hook.Url("/other"));
  auto walhook = StartWalhook(db, 4705);

  REQUIRE_MESSAGE(WaitFor([&] { return !LastError(db, "multibyte").empty(); }, 5s),
                  walhook->Output());
  CHECK(LastError(db, "multibyte") ==
        "condition: expected AND, OR or the end of the condition at offset 12, found 'a" +
            std::string("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                        "\xC3\xA9\xC3\xA9") +
            "...'");
  CHECK(Active(db, "multibyte") == "false");
  // The refused row is not there; the trigger is still inactive.
  CHECK(QL(db, "SELECT count(*) FROM eventing.trigger_health WHERE trigger_name = 'boom'") == 0);
  Exec(db, "INSERT INTO t VALUES (1, 'x')");
  CheckStillServing(*walhook, 4705, db, hook, "/other", "other_t", 1);
  CHECK(Delivered(hook, "/mb", "t") == 0);
  CHECK(Delivered(hook, "/boom", "t") == 0);
  // And it keeps going across the next reloads.
  std::this_thread::sleep_for(1500ms);
  CheckStillServing(*walhook, 4705, db, hook, "/other", "other_t", 2);
}

// SPEC §9 "Row contents and conditions": new.body LIKE '%aaaa…b' against a
// 1 MB value backtracked for 49 s on the capture path and held every other
// table's events meanwhile.
TEST_CASE("hostile trigger: a pathological LIKE does not hold other tables' events") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db,
       "CREATE TABLE big_t (id int PRIMARY KEY, body text); "
       "CREATE TABLE other_t (id int PRIMARY KEY)");
  Receiver hook(4706);
  // The condition limit is 16 KiB: about 16,000 pattern characters.
  const std::string pattern = "%" + std::string(16'000, 'a') + "b";
  std::string underscores;
  while (underscores.size() < 16'000) underscores += "_a";
  AddTrigger(db, "slow_like", "big_t", hook.Url("/big"), "new.body LIKE '" + pattern + "'");
  AddTrigger(db, "slow_under", "big_t", hook.Url("/big"),
             "new.body LIKE '%" + underscores.substr(0, 15'900) + "b%'");
  AddTrigger(db, "slow_ilike", "big_t", hook.Url("/big"),
             "new.body ILIKE '%" + std::string(16'000, 'A') + "B%'");
  AddTrigger(db, "other", "other_t", hook.Url("/other"));
  auto walhook = StartWalhook(db, 4707);
  REQUIRE(
      Q(db, "SELECT string_agg(coalesce(last_error, 'ok'), ',') FROM eventing.trigger_status") ==
      "ok,ok,ok,ok");

  for (int round = 1; round <= 3; ++round) {
    Exec(db, "INSERT INTO big_t VALUES (" + std::to_string(round) + ", repeat('a', 1000000))");
    const auto sent = Clock::now();
    Exec(db, "INSERT INTO other_t VALUES (" + std::to_string(round) + ")");
    REQUIRE_MESSAGE(
        WaitFor([&] { return Delivered(hook, "/other", "other_t", round) == 1; }, 60s, 10ms),
        walhook->Output());
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent).count();
    MESSAGE("round " << round << ": other_t's event arrived after " << ms << " ms");
    // About a second at most, on a busy shared machine; it was 49 s.
    CHECK(ms < 1500);
  }
  CHECK(Delivered(hook, "/big", "big_t") == 0);
  CheckStillServing(*walhook, 4707, db, hook, "/other", "other_t", 100);
}

}  // namespace
}  // namespace walhook::test
