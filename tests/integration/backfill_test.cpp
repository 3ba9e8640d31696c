// Backfill (SPEC §10), end to end: a real Postgres, a real walhook and a
// real receiver. Every row gets exactly one backfill event, also with
// concurrent updates and a kill -9 in the middle; an ordered DB_UPDATE
// trigger's last delivered event per key carries the row's final state; a
// condition; cancel; every error in the caller's transaction; the SQL
// condition checker agrees with walhook's parser; a forged watermark makes
// nothing.
//
// Ports 21000-21099 (this file's range): receivers from 21000, 21010, …,
// walhook's API from 21050, 21060, …, each the first free of ten.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"
#include "walhook/backfill.h"

namespace walhook::test {
namespace {

constexpr const char* kSecret = "backfill-secret";

class Walhook {
 public:
  // Returns once node `node` is in `role` (another node may be streaming).
  Walhook(const std::string& db, int api_port, std::string chunk_rows = "", std::string node = "bf",
          std::string role = "streaming")
      : db_(db),
        api_port_(api_port),
        chunk_rows_(std::move(chunk_rows)),
        node_(std::move(node)),
        role_(std::move(role)) {
    Start();
  }

  void Start() {
    std::vector<std::string> args = {WalhookBinary(),
                                     "run",
                                     "--source",
                                     db_,
                                     "--secret",
                                     kSecret,
                                     "--node-id",
                                     node_,
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(api_port_),
                                     "--heartbeat-interval",
                                     "300ms"};
    std::vector<std::pair<std::string, std::string>> env;
    if (!chunk_rows_.empty()) env.emplace_back("WALHOOK_BACKFILL_CHUNK_ROWS", chunk_rows_);
    process_ = std::make_unique<Process>(args, env);
    const bool ok = WaitFor(
        [&] { return HasRole(db_, node_, role_) && Get("/healthz").first == 200; }, 20s, 100ms);
    INFO(process_->Output());
    REQUIRE(ok);
  }

  void Kill() {
    process_->Signal(SIGKILL);
    process_->Wait(10s);
  }

  std::pair<int, std::string> Get(const std::string& path) const {
    httplib::Client c("127.0.0.1", api_port_);
    c.set_read_timeout(2, 0);
    auto r = c.Get(path.c_str());
    if (!r) return {0, ""};
    return {r->status, r->body};
  }

  Process& process() { return *process_; }

 private:
  std::string db_;
  int api_port_;
  std::string chunk_rows_;
  std::string node_;
  std::string role_;
  std::unique_ptr<Process> process_;
};

// A port of [first, first + 10) that can be listened on now (a port of this
// file's range may still be held by a previous test's connection).
int FreePort(int first) {
  for (int port = first; port < first + 10; ++port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return port;
  }
  throw std::runtime_error("no free port from " + std::to_string(first));
}

void Init(const std::string& db) {
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
}

std::string State(const std::string& db, long id) {
  return Q(db, "SELECT state FROM eventing.backfills WHERE id = " + std::to_string(id));
}

bool WaitState(const std::string& db, long id, const std::string& state,
               std::chrono::milliseconds timeout) {
  return WaitFor([&] { return State(db, id) == state; }, timeout, 100ms);
}

// walhook is alive, /healthz answers, and a row of table `unrelated`
// (with an insert trigger to path /row) arrives within seconds.
void CheckStillFlows(Walhook& w, const std::string& db, Receiver& hook, int n) {
  INFO(w.process().Output());
  REQUIRE(w.process().Running());
  CHECK(w.Get("/healthz").first == 200);
  Exec(db, "INSERT INTO unrelated VALUES (" + std::to_string(n) + ")");
  const bool delivered = hook.WaitForBody("/row", "\"id\":" + std::to_string(n) + "}", 10s);
  CHECK_MESSAGE(delivered, "row " << n << " of an unrelated table was not delivered");
}

void AddUnrelated(const std::string& db, const Receiver& hook) {
  Exec(db,
       "CREATE TABLE unrelated (id int PRIMARY KEY);"
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('unrelated', 'DB_INSERT', 'unrelated', '" +
           hook.Url("/row") + "')");
}

// The SQL error of `sql`, "" when it succeeded.
std::string ErrorOf(const std::string& db, const std::string& sql) {
  try {
    Exec(db, sql);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace

TEST_CASE(
    "backfill: 30,000 rows, concurrent updates and a kill -9: one backfill event per row, "
    "and the last delivered event per key carries the final state") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(FreePort(21000));
  AddUnrelated(db, hook);
  Exec(db,
       "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);"
       "INSERT INTO t SELECT g, 0 FROM generate_series(1, 30000) g;"
       "INSERT INTO eventing.triggers (name, type, table_name, url, ordered) VALUES "
       "('t_upd', 'DB_UPDATE', 't', '" +
           hook.Url("/t") + "', true)");
  // Small chunks: many windows for the updates to fall into.
  auto w = std::make_unique<Walhook>(db, FreePort(21050), "200");
  const long id = QL(db, "SELECT eventing.backfill('t_upd')");
  REQUIRE(id > 0);

  std::atomic<bool> stop{false};
  std::atomic<long> updates{0};
  auto updater = [&](int seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> key(1, 30000);
    pqxx::connection c(db);
    while (!stop) {
      try {
        pqxx::work tx(c);
        tx.exec("UPDATE t SET v = v + 1 WHERE id = " + std::to_string(key(rng)));
        tx.commit();
        ++updates;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(1ms);
    }
  };
  // And one that updates rows just ahead of the backfill's position: the
  // chunks about to be read, so changes fall between their watermarks.
  auto ahead = [&] {
    pqxx::connection c(db);
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> offset(1, 400);
    while (!stop) {
      try {
        pqxx::work tx(c);
        tx.exec(
            "UPDATE t SET v = v + 1 WHERE id = (SELECT coalesce((last_key->>0)::int, 0) "
            "FROM eventing.backfills WHERE id = " +
            std::to_string(id) + ") + " + std::to_string(offset(rng)));
        tx.commit();
        ++updates;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(1ms);
    }
  };
  std::thread u1(updater, 1), u2(updater, 2), u3(ahead);
  const bool midway = WaitFor(
      [&] {
        return QL(db, "SELECT rows_done FROM eventing.backfills WHERE id = " +
                          std::to_string(id)) >= 8000;
      },
      120s, 20ms);
  CHECK(midway);
  w->Kill();
  std::this_thread::sleep_for(500ms);
  w->Start();
  const bool done = WaitState(db, id, "done", 180s);
  stop = true;
  u1.join();
  u2.join();
  u3.join();
  INFO(w->process().Output());
  REQUIRE(done);
  CHECK(updates > 1000);

  // Exactly one backfill event per row.
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 't_upd' "
           "AND payload->>'backfill' IS NOT NULL") == 30000);
  CHECK(QL(db,
           "SELECT count(DISTINCT payload->'doc'->>'id') FROM eventing.event_logs "
           "WHERE trigger_name = 't_upd' AND payload->>'backfill' IS NOT NULL") == 30000);
  CHECK(QL(db, "SELECT rows_done FROM eventing.backfills WHERE id = " + std::to_string(id)) ==
        30000);

  // Everything delivered, then: the last delivered event per key is the row.
  REQUIRE(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 't_upd' "
                  "AND status = 'staged'") == 0;
      },
      300s, 500ms));
  const long events =
      QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 't_upd'");
  REQUIRE(hook.WaitForCount(static_cast<size_t>(events), 60s));
  std::map<int, int> last;
  const std::regex doc(R"re("doc":\{"id":(\d+),"v":(\d+)\})re");
  for (const Arrival& a : hook.Arrivals()) {
    if (a.path != "/t") continue;
    std::smatch m;
    if (std::regex_search(a.body, m, doc)) last[std::stoi(m[1])] = std::stoi(m[2]);
  }
  CHECK(last.size() == 30000);
  pqxx::connection c(db);
  pqxx::read_transaction tx(c);
  long wrong = 0;
  std::string example;
  for (const auto& row : tx.exec("SELECT id, v FROM t")) {
    const int key = row[0].as<int>();
    if (last[key] != row[1].as<int>()) {
      if (wrong++ == 0) {
        example = std::to_string(key) + ": delivered v=" + std::to_string(last[key]) +
                  ", row v=" + row[1].as<std::string>();
      }
    }
  }
  CHECK_MESSAGE(wrong == 0, wrong << " keys whose last delivered event is stale, e.g. " << example);
  CheckStillFlows(*w, db, hook, 1);
}

TEST_CASE(
    "backfill: a standby that takes over the stream takes over the running backfill; one "
    "event per row") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(FreePort(21020));
  AddUnrelated(db, hook);
  Exec(db,
       "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);"
       "INSERT INTO t SELECT g, 0 FROM generate_series(1, 20000) g;"
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('t_ins', 'DB_INSERT', 't', 'http://127.0.0.1:9/')");
  auto first = std::make_unique<Walhook>(db, FreePort(21070), "100");
  auto standby = std::make_unique<Walhook>(db, FreePort(21080), "100", "bf2", "standby");
  const long id = QL(db, "SELECT eventing.backfill('t_ins')");
  const auto rows_done = [&] {
    return QL(db, "SELECT rows_done FROM eventing.backfills WHERE id = " + std::to_string(id));
  };
  REQUIRE(WaitFor([&] { return rows_done() >= 4000; }, 120s, 20ms));
  first->Kill();
  // Killed midway: what follows is the standby's work.
  REQUIRE(State(db, id) == "running");
  const long at_kill = rows_done();
  REQUIRE(at_kill < 20000);
  INFO("rows done when the streaming node was killed: " << at_kill);
  const bool took_over = WaitFor([&] { return HasRole(db, "bf2"); }, 30s, 100ms);
  INFO(standby->process().Output());
  REQUIRE(took_over);
  REQUIRE(WaitState(db, id, "done", 120s));
  CHECK(rows_done() == 20000);
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 't_ins' "
           "AND payload->>'backfill' IS NOT NULL") == 20000);
  CHECK(QL(db,
           "SELECT count(DISTINCT payload->'doc'->>'id') FROM eventing.event_logs "
           "WHERE trigger_name = 't_ins' AND payload->>'backfill' IS NOT NULL") == 20000);
  CheckStillFlows(*standby, db, hook, 1);
}

TEST_CASE("backfill: a condition backfills exactly the matching rows, with a live insert's data") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(FreePort(21010));
  AddUnrelated(db, hook);
  Exec(db,
       "CREATE TABLE items (id int PRIMARY KEY, n numeric(10,2), f float8, r real, b bool, "
       "  t text, ts timestamptz, d date, j jsonb, js json, arr int[], tarr text[], u uuid, "
       "  by bytea, iv interval, big bigint, nn numeric);"
       "INSERT INTO items SELECT g, g / 4.0, g / 3.0, g / 7.0, g % 2 = 0, 'row \"' || g || "
       "  E'\\\\', '2026-01-02 03:04:05.678+02', '2026-01-02', jsonb_build_object('g', g), "
       "  '{\"a\": [1, 2.50]}', ARRAY[g, g + 1], ARRAY['x', NULL, 'y,z'], "
       "  '7b1d3b1e-4c3a-4d8e-9f00-0000000000ff', '\\x00ff'::bytea, '1 day 2 hours', "
       "  9007199254740993, 'NaN' FROM generate_series(2, 1000) g;");
  auto w = std::make_unique<Walhook>(db, FreePort(21060), "64");
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url, condition) VALUES "
       "('items_ins', 'DB_INSERT', 'items', '" +
           hook.Url("/items") + "', 'new.b IS NOT NULL')");
  std::this_thread::sleep_for(1500ms);  // the trigger is loaded
  // A live insert of a row like the others: its data is what a backfill of it makes.
  Exec(db,
       "INSERT INTO items SELECT g, g / 4.0, g / 3.0, g / 7.0, g % 2 = 0, 'row \"' || g || "
       "  E'\\\\', '2026-01-02 03:04:05.678+02', '2026-01-02', jsonb_build_object('g', g), "
       "  '{\"a\": [1, 2.50]}', ARRAY[g, g + 1], ARRAY['x', NULL, 'y,z'], "
       "  '7b1d3b1e-4c3a-4d8e-9f00-0000000000ff', '\\x00ff'::bytea, '1 day 2 hours', "
       "  9007199254740993, 'NaN' FROM generate_series(1, 1) g;");
  REQUIRE(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = "
                  "'items_ins'") == 1;
      },
      10s));
  const long id = QL(db, "SELECT eventing.backfill('items_ins', 'new.id > 700 OR new.id = 1')");
  INFO(w->process().Output());
  REQUIRE(WaitState(db, id, "done", 60s));
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'items_ins' "
           "AND payload->>'backfill' IS NOT NULL") == 301);
  CHECK(QL(db,
           "SELECT count(DISTINCT (payload->'doc'->>'id')::int) FROM eventing.event_logs "
           "WHERE trigger_name = 'items_ins' AND payload->>'backfill' IS NOT NULL "
           "AND ((payload->'doc'->>'id')::int > 700 OR (payload->'doc'->>'id')::int = 1)") == 301);
  CHECK(QL(db, "SELECT rows_done FROM eventing.backfills WHERE id = " + std::to_string(id)) ==
        1000);
  // The same row, live and backfilled: the same data, plus "backfill".
  const std::string live = Q(db,
                             "SELECT payload::text FROM eventing.event_logs WHERE trigger_name = "
                             "'items_ins' AND payload->>'backfill' IS NULL");
  const std::string filled = Q(db,
                               "SELECT payload::text FROM eventing.event_logs WHERE trigger_name "
                               "= 'items_ins' AND payload->>'backfill' IS NOT NULL "
                               "AND payload->'doc'->>'id' = '1'");
  CHECK(filled == live.substr(0, live.size() - 1) + ",\"backfill\":" + std::to_string(id) + "}");
  // The events are delivered like any other.
  CHECK(WaitFor([&] { return hook.Count() >= 302; }, 30s));
  // /healthz, /metrics and `walhook status` know it.
  CHECK(w->Get("/metrics").second.find("walhook_backfill_running 0") != std::string::npos);
  Process status({WalhookBinary(), "status", "--source", db});
  REQUIRE(status.Wait(20s) == 0);
  CHECK(status.Output().find("eventing.backfills") != std::string::npos);
  CHECK(status.Output().find("items_ins") != std::string::npos);
  CheckStillFlows(*w, db, hook, 1);
}

TEST_CASE(
    "backfill: cancel stops a running backfill; /healthz and /metrics show it while it runs") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(FreePort(21020));
  AddUnrelated(db, hook);
  Exec(db,
       "CREATE TABLE big (id int PRIMARY KEY, v text);"
       "INSERT INTO big SELECT g, 'v' FROM generate_series(1, 200000) g;"
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('big_ins', 'DB_INSERT', 'big', 'http://127.0.0.1:9/')");
  auto w = std::make_unique<Walhook>(db, FreePort(21070), "10");  // slow: 10 rows a chunk
  const long id = QL(db, "SELECT eventing.backfill('big_ins')");
  REQUIRE(WaitFor(
      [&] {
        return QL(db, "SELECT rows_done FROM eventing.backfills WHERE id = " + std::to_string(id)) >
               50;
      },
      30s));
  const auto health = w->Get("/healthz");
  CHECK(health.second.find("\"backfill\":{\"id\":" + std::to_string(id)) != std::string::npos);
  CHECK(w->Get("/metrics").second.find("walhook_backfill_running 1") != std::string::npos);
  Process status({WalhookBinary(), "status", "--source", db});
  REQUIRE(status.Wait(20s) == 0);
  CHECK(status.Output().find("running") != std::string::npos);

  CHECK(Q(db, "SELECT eventing.cancel_backfill(" + std::to_string(id) + ")") == "t");
  CHECK(State(db, id) == "cancelled");
  CHECK(Q(db, "SELECT eventing.cancel_backfill(" + std::to_string(id) + ")") == "f");
  std::this_thread::sleep_for(2s);
  // (The rows' own inserts fire too: walhook decoded them after the trigger was made.)
  const std::string backfilled =
      "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'big_ins' "
      "AND payload->>'backfill' IS NOT NULL";
  const long after = QL(db, backfilled);
  std::this_thread::sleep_for(2s);
  CHECK(QL(db, backfilled) == after);
  CHECK(after < 200000);
  CHECK(after > 50);
  CHECK(State(db, id) == "cancelled");
  CHECK(w->Get("/metrics").second.find("walhook_backfill_running 0") != std::string::npos);
  // Another may start now (and be cancelled before walhook picks it up).
  const long again = QL(db, "SELECT eventing.backfill('big_ins')");
  CHECK(again > id);
  CHECK(Q(db, "SELECT eventing.cancel_backfill(" + std::to_string(again) + ")") == "t");
  CheckStillFlows(*w, db, hook, 1);
}

TEST_CASE("backfill: every error in the caller's transaction, and what walhook marks failed") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(FreePort(21030));
  AddUnrelated(db, hook);
  Exec(db,
       "CREATE TABLE keyed (id int PRIMARY KEY);"
       "INSERT INTO keyed SELECT generate_series(1, 10);"
       "CREATE TABLE nokey (id int);"
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('ins', 'DB_INSERT', 'keyed', 'http://127.0.0.1:9/'),"
       "('del', 'DB_DELETE', 'keyed', 'http://127.0.0.1:9/'),"
       "('every', 'DB_INSERT', NULL, 'http://127.0.0.1:9/'),"
       "('nokey_ins', 'DB_INSERT', 'nokey', 'http://127.0.0.1:9/'),"
       "('gone', 'DB_INSERT', 'not_there', 'http://127.0.0.1:9/');"
       "INSERT INTO eventing.triggers (name, type, url) VALUES "
       "('custom', 'ORDER_SHIPPED', 'http://127.0.0.1:9/')");
  auto w = std::make_unique<Walhook>(db, FreePort(21080), "3");
  CHECK(ErrorOf(db, "SELECT eventing.backfill('nope')").find("does not exist") !=
        std::string::npos);
  CHECK(ErrorOf(db, "SELECT eventing.backfill('del')").find("DB_INSERT and DB_UPDATE") !=
        std::string::npos);
  CHECK(ErrorOf(db, "SELECT eventing.backfill('custom')").find("DB_INSERT and DB_UPDATE") !=
        std::string::npos);
  CHECK(ErrorOf(db, "SELECT eventing.backfill('every')").find("no table_name") !=
        std::string::npos);
  CHECK(ErrorOf(db, "SELECT eventing.backfill('nokey_ins')").find("no primary key") !=
        std::string::npos);
  CHECK(ErrorOf(db, "SELECT eventing.backfill('ins', 'new.id >')").find("condition") !=
        std::string::npos);
  CHECK(ErrorOf(db, "SELECT eventing.backfill('ins', 'old.id > 1')").find("new.<column>") !=
        std::string::npos);
  // Refused in the caller's transaction: nothing stays behind.
  CHECK(QL(db, "SELECT count(*) FROM eventing.backfills") == 0);
  // One at a time per trigger. While the trigger is disabled its backfill
  // waits, running.
  Exec(db, "UPDATE eventing.triggers SET enabled = false WHERE name = 'ins'");
  std::this_thread::sleep_for(1500ms);
  const long first = QL(db, "SELECT eventing.backfill('ins', 'new.id > 5')");
  std::this_thread::sleep_for(2s);
  CHECK(State(db, first) == "running");
  CHECK(QL(db, "SELECT rows_done FROM eventing.backfills WHERE id = " + std::to_string(first)) ==
        0);
  CHECK(ErrorOf(db, "SELECT eventing.backfill('ins')").find("already running") !=
        std::string::npos);
  CHECK(QL(db, "SELECT count(*) FROM eventing.backfills") == 1);
  Exec(db, "UPDATE eventing.triggers SET enabled = true WHERE name = 'ins'");
  REQUIRE(WaitState(db, first, "done", 30s));
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'ins' "
           "AND payload->>'backfill' IS NOT NULL") == 5);
  // Not seen from SQL (a table of another database, here one that does not
  // exist): walhook marks it failed, with the reason.
  const long gone = QL(db, "SELECT eventing.backfill('gone')");
  CHECK(WaitState(db, gone, "failed", 30s));
  CHECK(Q(db, "SELECT error FROM eventing.backfills WHERE id = " + std::to_string(gone))
            .find("does not exist") != std::string::npos);
  // A condition naming a column the table lacks: failed, said why.
  const long col = QL(db, "SELECT eventing.backfill('ins', 'new.nope = 1')");
  CHECK(WaitState(db, col, "failed", 30s));
  CHECK(Q(db, "SELECT error FROM eventing.backfills WHERE id = " + std::to_string(col))
            .find("new.nope") != std::string::npos);
  // The trigger deleted while its backfill waits: failed.
  Exec(db, "UPDATE eventing.triggers SET enabled = false WHERE name = 'ins'");
  std::this_thread::sleep_for(1500ms);
  const long orphan = QL(db, "SELECT eventing.backfill('ins')");
  std::this_thread::sleep_for(1500ms);
  Exec(db, "DELETE FROM eventing.triggers WHERE name = 'ins'");
  CHECK(WaitState(db, orphan, "failed", 30s));
  CHECK(Q(db, "SELECT error FROM eventing.backfills WHERE id = " + std::to_string(orphan))
            .find("deleted") != std::string::npos);
  CheckStillFlows(*w, db, hook, 1);
}

TEST_CASE("backfill: the SQL condition checker agrees with walhook's parser") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  const std::vector<std::string> corpus = {
      "new.id > 10",
      "new.id>10",
      "NEW.ID > 10",
      "new.\"userId\" = 'a'",
      "new.\"\" = 1",
      "new.5 = 1",
      "new.1e5 = 1",
      "new.a.b = 1",
      "new = 1",
      "new.",
      "old.id = 1",
      "payload.a = 1",
      "new.x = payload.a",
      "new.id > 10 AND new.id < 20",
      "new.id > 10 AND",
      "new.a OR new.b AND NOT new.c",
      "NOT NOT NOT new.a",
      "NOT 5",
      "NOT 'x'",
      "NOT (5)",
      "NOT NULL",
      "NOT TRUE",
      "5",
      "'x'",
      "(5)",
      "TRUE",
      "NULL",
      "new.a",
      "5 AND new.a",
      "new.a AND 'x'",
      "new.a OR (5)",
      "new.a IS NULL",
      "new.a IS NOT NULL",
      "5 IS NULL",
      "5 IS TRUE",
      "new.a IS TRUE",
      "new.a IS NOT UNKNOWN",
      "new.a IS DISTINCT FROM 5",
      "new.a IS NOT DISTINCT FROM NULL",
      "new.a IS DISTINCT 5",
      "new.a IS 5",
      "new.a IN (1, 2, 'x')",
      "new.a IN ()",
      "new.a IN (1,)",
      "new.a IN 1",
      "new.a NOT IN (1)",
      "new.a NOT LIKE 'a%'",
      "new.a NOT = 1",
      "new.a LIKE 'a\\'",
      "new.a LIKE 'a\\\\'",
      "new.a LIKE 'a\\%'",
      "new.a LIKE ('a\\')",
      "new.a LIKE 5",
      "new.a LIKE TRUE",
      "new.a LIKE NULL",
      "new.a ILIKE new.b",
      "new.a = 1 = 2",
      "new.a == 1",
      "new.a != 1",
      "new.a <> 1",
      "new.a <= -1.5e3",
      "new.a >= +.5",
      "new.a = 1e",
      "new.a = 1.2.3",
      "new.a = 12abc",
      "new.a = 1e1000000000000000000",
      "new.a = 1e1000000000000000001",
      "new.a = 1e-1000000000000000000",
      "new.a = - 5",
      "new.a = -x",
      "new.a = 'unterminated",
      "new.\"unterminated = 1",
      "new.a = 'it''s'",
      "new.a # 1",
      "new.a ! 1",
      "new.a = 1 )",
      "((new.a = 1)",
      "new.a = (1)",
      "new.a = ((((1))))",
      "and",
      "new.and = 1",
      "new.a = and",
      "",
      "   ",
      "new.a = true AND new.b = FALSE",
      "new.ä = 'ö'",
      "new.a\t=\n1",
      "new.a = 1 new",
      "new.a .5",
      "new.x$y = 1",
      "x = 1",
      "\"x\" = 1",
      "new.a IS NOT",
      "new.a BETWEEN 1 AND 2",
      std::string(70, '(') + "new.a" + std::string(70, ')'),
      std::string(60, '(') + "new.a" + std::string(60, ')'),
      [] {
        std::string s;
        for (int i = 0; i < 70; ++i) s += "NOT ";
        return s + "new.a";
      }(),
      std::string(17000, ' ') + "new.a",
  };
  pqxx::connection c(db);
  int disagree = 0;
  for (const std::string& text : corpus) {
    pqxx::work tx(c);
    const pqxx::field f = tx.exec_params1("SELECT eventing.backfill_condition_error($1)", text)[0];
    const bool sql_ok = f.is_null();
    const std::string sql_error = sql_ok ? "" : f.as<std::string>();
    tx.commit();
    const Result<Condition> parsed = ParseBackfillCondition(text);
    const bool cpp_ok = parsed.ok();
    if (sql_ok != cpp_ok) ++disagree;
    CHECK_MESSAGE(sql_ok == cpp_ok, "condition [" << text.substr(0, 80) << "]: SQL "
                                                  << (sql_ok ? "accepts" : sql_error)
                                                  << "; walhook "
                                                  << (cpp_ok ? "accepts" : parsed.error()));
  }
  CHECK(disagree == 0);
}

TEST_CASE(
    "backfill: beside live changes it takes turns (chunks of at most 500 rows); alone, it "
    "reads 5,000 a chunk") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  // The rows are there before the slot: their inserts are not live changes.
  Exec(db,
       "CREATE TABLE wide (id int PRIMARY KEY, v text);"
       "INSERT INTO wide SELECT g, 'v' FROM generate_series(1, 10000) g");
  Init(db);
  Receiver hook(FreePort(21000));
  AddUnrelated(db, hook);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('wide_ins', 'DB_INSERT', 'wide', 'http://127.0.0.1:9/')");
  auto w = std::make_unique<Walhook>(db, FreePort(21050));  // chunks of up to 5,000
  const auto chunks = [&](long id) {
    return QL(db, "SELECT chunks FROM eventing.backfills WHERE id = " + std::to_string(id));
  };
  const long alone = QL(db, "SELECT eventing.backfill('wide_ins')");
  REQUIRE(WaitState(db, alone, "done", 60s));
  CHECK(chunks(alone) <= 3);

  // A live insert every 20 ms while the next one runs.
  std::atomic<bool> stop{false};
  std::atomic<int> inserted{0};
  std::thread live([&] {
    for (int n = 100; !stop; ++n) {
      Exec(db, "INSERT INTO unrelated VALUES (" + std::to_string(n) + ")");
      ++inserted;
      std::this_thread::sleep_for(20ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  const long beside = QL(db, "SELECT eventing.backfill('wide_ins')");
  const bool done = WaitState(db, beside, "done", 60s);
  stop = true;
  live.join();
  REQUIRE(done);
  CHECK(chunks(beside) >= 20);
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'wide_ins' "
           "AND payload->>'backfill' = '" +
               std::to_string(beside) + "'") == 10000);
  // Every live insert was captured and delivered meanwhile.
  CHECK(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'unrelated' "
                  "AND status = 'processed'") == inserted;
      },
      10s));
  CheckStillFlows(*w, db, hook, 1);
}

TEST_CASE("backfill: a forged watermark makes nothing") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Receiver hook(FreePort(21040));
  AddUnrelated(db, hook);
  Exec(db,
       "CREATE TABLE t (id int PRIMARY KEY);"
       "INSERT INTO t SELECT generate_series(1, 100);"
       "CREATE ROLE hostile LOGIN;"
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('t_ins', 'DB_INSERT', 't', 'http://127.0.0.1:9/')");
  auto w = std::make_unique<Walhook>(db, FreePort(21090), "1");
  // A running backfill whose watermarks a hostile role tries to imitate.
  const long id = QL(db, "SELECT eventing.backfill('t_ins')");
  REQUIRE(WaitFor(
      [&] {
        return QL(db, "SELECT rows_done FROM eventing.backfills WHERE id = " + std::to_string(id)) >
               0;
      },
      30s));
  const std::string hostile = pg.conninfo("postgres", "hostile");
  const std::string prefix = "walhook-backfill.eventing";
  // While it runs: every chunk number, both marks, a guessed nonce.
  Exec(hostile, "SELECT pg_logical_emit_message(true, '" + prefix +
                    "', '{\"backfill\":" + std::to_string(id) +
                    ",\"chunk\":' || c || ',\"mark\":\"' || m || "
                    "'\",\"nonce\":\"00000000000000000000000000000000\"}') "
                    "FROM generate_series(0, 200) c, unnest(ARRAY['low', 'high']) m");
  Exec(hostile, "SELECT pg_logical_emit_message(true, '" + prefix + "', '" +
                    std::string(100000, '[') + "')");
  Exec(hostile, "SELECT pg_logical_emit_message(true, '" + prefix + "', 'not json')");
  REQUIRE(WaitState(db, id, "done", 60s));
  INFO(w->process().Output());
  // Exactly the table's rows, each once: the forged marks made no chunk.
  // (The rows' own inserts, decoded after the trigger was made, fired too.)
  const std::string backfilled =
      "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 't_ins' "
      "AND payload->>'backfill' IS NOT NULL";
  CHECK(QL(db, backfilled) == 100);
  CHECK(QL(db,
           "SELECT count(DISTINCT payload->'doc'->>'id') FROM eventing.event_logs "
           "WHERE trigger_name = 't_ins' AND payload->>'backfill' IS NOT NULL") == 100);
  const long all = QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 't_ins'");
  CheckStillFlows(*w, db, hook, 1);
  // After a restart the replayed marks (forged or real) make nothing either.
  w->Kill();
  w->Start();
  std::this_thread::sleep_for(2s);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 't_ins'") == all);
  CheckStillFlows(*w, db, hook, 2);
}

TEST_CASE("backfill: migration 018 applies twice") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, "DELETE FROM eventing.schema_migrations WHERE version >= 18");
  Init(db);
  CHECK(QL(db, "SELECT count(*) FROM eventing.schema_migrations WHERE version = 18") == 1);
}

}  // namespace walhook::test
