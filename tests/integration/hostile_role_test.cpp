// Database roles as an attacker would use them (SPEC §9 "Database roles"),
// and the capture stream's robustness: a login role with no rights on the
// eventing schema writes logical messages with walhook's prefix; legal calls
// of queue_event ask for due times Postgres cannot store; rows that cannot be
// stored; writer connections killed under load. After each: walhook runs,
// /healthz answers, no event was made that should not be, the slot moves
// past the input, and a row of an unrelated table is delivered in seconds.
//
// Ports 4660-4699 (the range 4650-4699 is this file's).

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"

namespace walhook::test {
namespace {

constexpr const char* kSecret = "hostile-secret";

std::string Hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// A transactional logical message with walhook's prefix, any bytes, written
// as `conninfo`'s role; returns the WAL position after its commit.
std::string Emit(const std::string& conninfo, std::string_view content) {
  pqxx::connection c(conninfo);
  pqxx::work tx(c);
  tx.exec("SELECT pg_logical_emit_message(true, 'walhook.eventing', decode('" + Hex(content) +
          "', 'hex'))");
  tx.commit();
  return Q(conninfo, "SELECT pg_current_wal_lsn()::text");
}

class Bridge {
 public:
  // `evt`: an eventing database other than the source `db`.
  Bridge(const std::string& db, int api_port, const std::string& evt = "")
      : db_(db), evt_(evt.empty() ? db : evt), api_port_(api_port) {
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
                                     "hostile",
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(api_port_),
                                     "--heartbeat-interval",
                                     "300ms"};
    if (evt_ != db_) args.insert(args.end(), {"--eventing-db", evt_});
    process_ = std::make_unique<Process>(args);
    const bool ok =
        WaitFor([&] { return HasRole(evt_, "hostile") && Health() == 200; }, 20s, 100ms);
    INFO(process_->Output());
    REQUIRE(ok);
  }

  void Restart() {
    process_->Signal(SIGTERM);
    REQUIRE(process_->Wait(20s) == 0);
    Start();
  }

  int Health() const {
    httplib::Client c("127.0.0.1", api_port_);
    c.set_read_timeout(2, 0);
    auto r = c.Get("/healthz");
    return r ? r->status : 0;
  }

  // The value of a gauge in /metrics, -1 when absent.
  long Metric(const std::string& name) const {
    httplib::Client c("127.0.0.1", api_port_);
    auto r = c.Get("/metrics");
    if (!r || r->status != 200) return -1;
    const std::string key = "\n" + name + " ";
    const size_t at = r->body.find(key);
    if (at == std::string::npos) return -1;
    return std::stol(r->body.substr(at + key.size()));
  }

  Process& process() { return *process_; }

 private:
  std::string db_;
  std::string evt_;
  int api_port_;
  std::unique_ptr<Process> process_;
};

// walhook is alive and answers, the slot is confirmed past `lsn`, and a
// row of an unrelated table (id `n`) reaches the receiver within seconds.
void CheckStillFlows(Bridge& bridge, const std::string& db, Receiver& hook, int n,
                     const std::string& lsn) {
  INFO(bridge.process().Output());
  REQUIRE(bridge.process().Running());
  CHECK(bridge.Health() == 200);
  if (!lsn.empty()) {
    CHECK(WaitFor(
        [&] {
          return QL(db,
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walhook' "
                    "AND confirmed_flush_lsn >= '" +
                        lsn + "'") == 1;
        },
        10s));
  }
  const size_t before = hook.Count();
  Exec(db, "INSERT INTO unrelated VALUES (" + std::to_string(n) + ")");
  const bool delivered = hook.WaitForBody("/row", "\"id\":" + std::to_string(n) + "}", 10s);
  CHECK_MESSAGE(delivered,
                "row " << n << " not delivered; " << hook.Count() - before << " requests since");
  REQUIRE(bridge.process().Running());
}

long ForgedEvents(const std::string& db) {
  return QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'forged'");
}

TEST_CASE("hostile role: forged logical messages make no event and never stop capture") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
  Exec(db,
       "CREATE TABLE unrelated (id int PRIMARY KEY);"
       "CREATE ROLE hostile LOGIN;"
       "CREATE ROLE app LOGIN;"
       "GRANT USAGE ON SCHEMA eventing TO app;"
       "GRANT EXECUTE ON FUNCTION eventing.queue_event(text, jsonb, interval, timestamptz) "
       "  TO app");
  Receiver hook(4660);
  Exec(db, "INSERT INTO eventing.triggers (name, type, url) VALUES ('forged', 'FORGED', '" +
               hook.Url("/forged") + "'), ('unrelated', 'DB_INSERT', '" + hook.Url("/row") +
               "');"
               "UPDATE eventing.triggers SET table_name = 'unrelated' WHERE name = 'unrelated'");
  const std::string hostile = pg.conninfo("postgres", "hostile");
  const std::string app = pg.conninfo("postgres", "app");
  Bridge bridge(db, 4661);
  int n = 0;
  CheckStillFlows(bridge, db, hook, ++n, "");

  // The role may not read the key, nor call queue_event.
  CHECK_THROWS(Q(hostile, "SELECT count(*) FROM eventing.queue_event_keys"));
  CHECK_THROWS(Exec(hostile, "SELECT eventing.queue_event('FORGED', '{}')"));

  SUBCASE("nested a million levels deep, unsigned and with a MAC line") {
    const std::string deep = std::string(500000, '[') + std::string(500000, ']');
    std::string lsn =
        Emit(hostile, "{\"type\" : \"FORGED\", \"delay_ms\" : 0, \"at\" : null}\n" + deep);
    CheckStillFlows(bridge, db, hook, ++n, lsn);
    lsn = Emit(hostile, "hmac-sha256 1 " + std::string(64, '0') +
                            "\n{\"type\" : \"FORGED\", \"xid\" : 1}\n" + deep);
    CheckStillFlows(bridge, db, hook, ++n, lsn);
    lsn = Emit(hostile, "{\"type\" : \"FORGED\"," + deep.substr(0, 400000) + "\n{}");
    CheckStillFlows(bridge, db, hook, ++n, lsn);
  }
  SUBCASE("well-formed, in queue_event's format of before 014 and of now") {
    std::string lsn = Emit(
        hostile, "{\"type\" : \"FORGED\", \"delay_ms\" : 0, \"at\" : null}\n{\"forged\": true}");
    CheckStillFlows(bridge, db, hook, ++n, lsn);
    const std::string xid = Q(db, "SELECT pg_current_xact_id()::xid::text::int8 + 2");
    lsn = Emit(hostile, "hmac-sha256 1 " + std::string(64, 'a') +
                            "\n{\"type\" : \"FORGED\", \"delay_ms\" : 0, \"at\" : null, "
                            "\"xid\" : " +
                            xid + "}\n{\"forged\": true}");
    CheckStillFlows(bridge, db, hook, ++n, lsn);
  }
  SUBCASE("invalid UTF-8 in the payload and in the header") {
    std::string lsn = Emit(
        hostile, "{\"type\" : \"FORGED\", \"delay_ms\" : 0, \"at\" : null}\n{\"a\": \"\xff\xfe\"}");
    CheckStillFlows(bridge, db, hook, ++n, lsn);
    lsn = Emit(hostile, "{\"type\" : \"FORGED\xc3\", \"delay_ms\" : 0}\n{}");
    CheckStillFlows(bridge, db, hook, ++n, lsn);
  }
  SUBCASE("a real queue_event message, altered or copied into another transaction") {
    // Read what queue_event wrote through a slot of the test's own.
    Exec(db, "SELECT pg_create_logical_replication_slot('spy', 'wal2json')");
    Exec(app, "SELECT eventing.queue_event('FORGED', '{\"amount\": 1}')");
    const std::string content =
        Q(db,
          "SELECT (data::json)->>'content' FROM pg_logical_slot_get_changes('spy', NULL, NULL, "
          "'format-version', '2', 'add-msg-prefixes', 'walhook.eventing') "
          "WHERE (data::json)->>'action' = 'M'");
    Exec(db, "SELECT pg_drop_replication_slot('spy')");
    REQUIRE(content.starts_with("hmac-sha256 "));
    REQUIRE(content.find("{\"amount\": 1}") != std::string::npos);
    // The real one makes its event.
    REQUIRE(WaitFor([&] { return ForgedEvents(db) == 1; }, 10s));
    std::string altered = content;
    altered.replace(altered.find("{\"amount\": 1}"), 13, "{\"amount\": 9}");
    std::string lsn = Emit(hostile, altered);
    CheckStillFlows(bridge, db, hook, ++n, lsn);
    lsn = Emit(hostile, content);  // the same bytes, another transaction
    CheckStillFlows(bridge, db, hook, ++n, lsn);
    CHECK(QL(db,
             "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'forged' "
             "AND payload->>'amount' = '1'") == 1);
    Exec(db, "DELETE FROM eventing.event_logs WHERE trigger_name = 'forged'");
  }

  CHECK(ForgedEvents(db) == 0);
  // After a restart: nothing replayed makes an event or stops capture.
  bridge.Restart();
  CheckStillFlows(bridge, db, hook, ++n, Q(db, "SELECT pg_current_wal_lsn()::text"));
  CHECK(ForgedEvents(db) == 0);
  for (const Arrival& a : hook.Arrivals()) {
    if (a.path == "/forged") CHECK(a.body.find("\"amount\": 1}") != std::string::npos);
  }
}

TEST_CASE("hostile role: queue_event is for the roles granted it; bad due times fail the call") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
  // The README's grants for a role that queues events; "nosy" has USAGE only.
  Exec(db,
       "CREATE TABLE unrelated (id int PRIMARY KEY);"
       "CREATE ROLE app LOGIN; CREATE ROLE nosy LOGIN;"
       "GRANT USAGE ON SCHEMA eventing TO app, nosy;"
       "GRANT EXECUTE ON FUNCTION eventing.queue_event(text, jsonb, interval, timestamptz) "
       "  TO app");
  Receiver hook(4662);
  Exec(db, "INSERT INTO eventing.triggers (name, type, url) VALUES ('shipped', 'SHIPPED', '" +
               hook.Url("/shipped") + "'), ('unrelated', 'DB_INSERT', '" + hook.Url("/row") +
               "');"
               "UPDATE eventing.triggers SET table_name = 'unrelated' WHERE name = 'unrelated'");
  const std::string app = pg.conninfo("postgres", "app");
  const std::string nosy = pg.conninfo("postgres", "nosy");
  Bridge bridge(db, 4663);

  auto refused = [&](const std::string& conninfo, const std::string& call) {
    try {
      Exec(conninfo, "SELECT eventing.queue_event(" + call + ")");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(refused(nosy, "'SHIPPED', '{}'").find("permission denied") != std::string::npos);
  CHECK(refused(app, "'SHIPPED', '{\"n\": 1}', delay => '10 years', at => '294270-01-01'")
            .find("out of range") != std::string::npos);
  CHECK(refused(app, "'SHIPPED', '{}', at => 'infinity'").find("out of range") !=
        std::string::npos);
  CHECK(refused(app, "'SHIPPED', '{}', delay => '200000000 years'").find("out of range") !=
        std::string::npos);
  CHECK(refused(app, "'SHIPPED', '{}', delay => '-1 s'").find("zero or more") != std::string::npos);
  CheckStillFlows(bridge, db, hook, 1, Q(db, "SELECT pg_current_wal_lsn()::text"));

  // The role granted EXECUTE queues events; the event is signed and delivered.
  CHECK(refused(app, "'SHIPPED', '{\"n\": 2}', at => '2001-01-01'") == "accepted");
  CHECK(refused(app, "'SHIPPED', '{\"n\": 3}', delay => '500 ms'") == "accepted");
  CHECK(WaitFor(
      [&] {
        size_t shipped = 0;
        for (const Arrival& a : hook.Arrivals()) shipped += a.path == "/shipped" ? 1 : 0;
        return shipped == 2;
      },
      10s));
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'shipped'") == 2);
  CheckStillFlows(bridge, db, hook, 2, Q(db, "SELECT pg_current_wal_lsn()::text"));
}

TEST_CASE(
    "capture: an event that cannot be stored is stored failed, its batch and the slot go on") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
  Exec(db,
       "CREATE TABLE unrelated (id int PRIMARY KEY);"
       "CREATE TABLE items (id int PRIMARY KEY, note text);"
       // Rows event_logs refuses, as a data error: whatever the cause, one
       // row that cannot be stored must not stop the others.
       "ALTER TABLE eventing.event_logs ADD CONSTRAINT test_poison "
       "  CHECK (payload::text NOT LIKE '%poison%')");
  Receiver hook(4664);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('items', 'DB_INSERT', 'items', '" +
           hook.Url("/items") + "'), ('unrelated', 'DB_INSERT', 'unrelated', '" + hook.Url("/row") +
           "')");
  Bridge bridge(db, 4665);
  // A small batch (one INSERT) and a large one (COPY), each with poison.
  Exec(db, "INSERT INTO items VALUES (1, 'fine'), (2, 'poison'), (3, 'fine')");
  Exec(db,
       "INSERT INTO items SELECT g, CASE WHEN g IN (150, 151) THEN 'poison' ELSE 'fine' END "
       "FROM generate_series(100, 299) g");
  CheckStillFlows(bridge, db, hook, 1, Q(db, "SELECT pg_current_wal_lsn()::text"));
  const std::string items = "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'items'";
  CHECK(QL(db, items) == 203);
  CHECK(QL(db, items + " AND status = 'failed' AND remark LIKE '%could not be stored%test_poison%'"
                       " AND source_lsn IS NOT NULL") == 3);
  CHECK(WaitFor([&] { return hook.Count() >= 201; }, 20s));
  // A restart replays nothing twice and keeps one row per event.
  bridge.Restart();
  CheckStillFlows(bridge, db, hook, 2, Q(db, "SELECT pg_current_wal_lsn()::text"));
  CHECK(QL(db, items) == 203);
  CHECK(QL(db,
           "SELECT count(DISTINCT (source_lsn, source_seq)) FROM eventing.event_logs "
           "WHERE trigger_name = 'items'") == 203);
}

TEST_CASE("capture: writer connections killed under load give back every reservation") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
  Exec(db,
       "CREATE TABLE unrelated (id int PRIMARY KEY);"
       "CREATE TABLE load (id int PRIMARY KEY)");
  Receiver hook(4666);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('load', 'DB_INSERT', 'load', '" +
           hook.Url("/load") + "'), ('unrelated', 'DB_INSERT', 'unrelated', '" + hook.Url("/row") +
           "')");
  Bridge bridge(db, 4667);

  std::atomic<bool> stop{false};
  std::atomic<int> rows{0};
  std::thread loader([&] {
    pqxx::connection c(db);
    while (!stop) {
      const int from = rows;
      pqxx::work tx(c);
      tx.exec("INSERT INTO load SELECT g FROM generate_series(" + std::to_string(from) + ", " +
              std::to_string(from + 49) + ") g");
      tx.commit();
      rows = from + 50;
    }
  });
  long killed = 0;
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(1500ms);
    killed += QL(db,
                 "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                 "AND backend_type = 'client backend' AND query ILIKE '%event_logs%' "
                 "AND query NOT ILIKE '%pg_terminate_backend%') k");
  }
  std::this_thread::sleep_for(1s);
  stop = true;
  loader.join();
  INFO("rows " << rows << ", backends killed " << killed);
  CHECK(killed >= 4);
  // Every row arrives, and what delivery held returns to zero.
  const std::string stored = "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'load'";
  CHECK(WaitFor([&] { return QL(db, stored) == rows; }, 60s, 250ms));
  CHECK(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'load' "
                  "AND status = 'processed'") == rows;
      },
      60s, 250ms));
  CHECK(WaitFor(
      [&] {
        return bridge.Metric("walhook_held_events") == 0 &&
               bridge.Metric("walhook_reserved_parked_events") == 0;
      },
      20s, 250ms));
  INFO("held " << bridge.Metric("walhook_held_events") << ", parked reserved "
               << bridge.Metric("walhook_reserved_parked_events"));
  CheckStillFlows(bridge, db, hook, 1, "");
  // That row's event is held until its answer is read, just after it arrived.
  CHECK(WaitFor([&] { return bridge.Metric("walhook_held_events") == 0; }, 10s, 50ms));
}

TEST_CASE("hostile role: with a separate eventing database, only queue_event's events are made") {
  TempPostgres source;
  TempPostgres eventing;
  const std::string src = source.conninfo();
  const std::string evt = eventing.conninfo();
  Process init({WalhookBinary(), "init", "--source", src, "--eventing-db", evt});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
  // queue_event, its key and its rights are made in the source database.
  CHECK(QL(src, "SELECT count(*) FROM eventing.queue_event_keys") == 1);
  Exec(src,
       "CREATE TABLE unrelated (id int PRIMARY KEY);"
       "CREATE ROLE hostile LOGIN; CREATE ROLE app LOGIN;"
       "GRANT USAGE ON SCHEMA eventing TO app, hostile;"
       "GRANT EXECUTE ON FUNCTION eventing.queue_event(text, jsonb, interval, timestamptz) "
       "  TO app");
  Receiver hook(4668);
  Exec(evt,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('forged', 'FORGED', NULL, '" +
           hook.Url("/forged") + "'), ('unrelated', 'DB_INSERT', 'unrelated', '" +
           hook.Url("/row") + "')");
  Bridge bridge(src, 4669, evt);
  const std::string hostile = source.conninfo("postgres", "hostile");
  CHECK_THROWS(Exec(hostile, "SELECT eventing.queue_event('FORGED', '{}')"));
  const std::string lsn =
      Emit(hostile, "{\"type\" : \"FORGED\", \"delay_ms\" : 0, \"at\" : null}\n{\"forged\": true}");
  Exec(source.conninfo("postgres", "app"), "SELECT eventing.queue_event('FORGED', '{\"n\": 1}')");
  CheckStillFlows(bridge, src, hook, 1, lsn);
  CHECK(WaitFor(
      [&] {
        return QL(evt,
                  "SELECT count(*) FROM eventing.event_logs WHERE "
                  "trigger_name = 'forged'") == 1;
      },
      10s));
  CHECK(Q(evt, "SELECT payload::text FROM eventing.event_logs WHERE trigger_name = 'forged'") ==
        "{\"n\": 1}");
  // A restart installs queue_event again and keeps its key and rights.
  bridge.Restart();
  CHECK(QL(src, "SELECT count(*) FROM eventing.queue_event_keys") == 1);
  CHECK_THROWS(Exec(hostile, "SELECT eventing.queue_event('FORGED', '{}')"));
  Exec(source.conninfo("postgres", "app"), "SELECT eventing.queue_event('FORGED', '{\"n\": 2}')");
  CHECK(WaitFor(
      [&] {
        return QL(evt,
                  "SELECT count(*) FROM eventing.event_logs WHERE "
                  "trigger_name = 'forged'") == 2;
      },
      10s));
}

TEST_CASE(
    "queue_event: messages of the queue_event before 014 still in the slot make their events") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
  Exec(db, "CREATE TABLE unrelated (id int PRIMARY KEY)");
  Receiver hook(4670);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('old', 'OLD', NULL, '" +
           hook.Url("/old") + "'), ('unrelated', 'DB_INSERT', 'unrelated', '" + hook.Url("/row") +
           "')");
  // As the old queue_event wrote it, while walhook was stopped for the
  // upgrade; the upgrade (migration 014) came after it.
  Emit(db, "{\"type\" : \"OLD\", \"delay_ms\" : 0, \"at\" : null}\n{\"n\": 1}");
  // What the old queue_event wrote for delay => '10 years', at => '294270-01-01':
  // due past what Postgres can store, it wedged the slot.
  Emit(db,
       "{\"type\" : \"OLD\", \"delay_ms\" : 315576000000, \"at\" : 9224097091200000}\n"
       "{\"n\": 3}");
  Exec(db, "UPDATE eventing.queue_event_keys SET legacy_before = pg_current_wal_lsn()");
  // The same, written after the upgrade: refused.
  const std::string lsn =
      Emit(db, "{\"type\" : \"OLD\", \"delay_ms\" : 0, \"at\" : null}\n{\"n\": 2}");
  Bridge bridge(db, 4671);
  CheckStillFlows(bridge, db, hook, 1, lsn);
  CHECK(Q(db,
          "SELECT string_agg(payload->>'n', ',') FROM eventing.event_logs "
          "WHERE trigger_name = 'old' AND status <> 'failed'") == "1");
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'old' "
           "AND status = 'failed' AND remark LIKE '%due time%'") == 1);
}

}  // namespace
}  // namespace walhook::test
