// SPEC §7 guarantees and the setup errors of SPEC §2, end to end: crashes,
// restarts, a 1 M-row transaction, standby takeover, an idle slot, and each
// setup a user can get wrong.

#include <signal.h>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "harness.h"

namespace walhook::test {
namespace {

constexpr const char* kSecret = "integration-secret";

std::vector<std::string> RunArgs(const std::string& source, const std::string& node,
                                 const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {
      WalhookBinary(),        "run",   "--source", source, "--secret", kSecret, "--node-id", node,
      "--heartbeat-interval", "300ms", "--listen", "off"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

bool IsStreaming(const std::string& eventing, const std::string& node) {
  return HasRole(eventing, node, "streaming");
}

bool IsStandby(const std::string& eventing, const std::string& node) {
  return HasRole(eventing, node, "standby");
}

std::unique_ptr<Process> StartWalhook(const std::string& source, const std::string& node,
                                      const std::vector<std::string>& extra = {},
                                      const std::string& eventing = "") {
  auto p = std::make_unique<Process>(RunArgs(source, node, extra));
  const bool ok =
      WaitFor([&] { return IsStreaming(eventing.empty() ? source : eventing, node); }, 20s, 100ms);
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

void Init(const std::string& source) {
  std::string out;
  REQUIRE_MESSAGE(RunToExit({WalhookBinary(), "init", "--source", source}, &out) == 0, out);
}

void AddInsertTrigger(const std::string& conninfo, const std::string& name,
                      const std::string& table) {
  Exec(conninfo, "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES ('" + name +
                     "', 'DB_INSERT', '" + table + "', 'http://127.0.0.1:9/')");
}

// A table t with an insert trigger, node "first" streaming it and node
// "second" standing by.
std::pair<std::unique_ptr<Process>, std::unique_ptr<Process>> StreamingAndStandby(
    const std::string& db) {
  Exec(db, "CREATE TABLE t (id int PRIMARY KEY)");
  AddInsertTrigger(db, "t_insert", "t");
  auto first = StartWalhook(db, "first");
  auto second = std::make_unique<Process>(RunArgs(db, "second"));
  REQUIRE(WaitFor([&] { return IsStandby(db, "second"); }, 10s));
  return {std::move(first), std::move(second)};
}

// A server whose slots may hold at most 1 MB of WAL.
TempPostgres::Options SmallSlotLimit() {
  TempPostgres::Options o;
  o.extra_conf = "max_slot_wal_keep_size = 1MB";
  return o;
}

// Writes past that limit and checkpoints: Postgres invalidates the slot
// (wal_status = lost) unless a consumer confirmed it meanwhile.
void OutgrowSlot(const std::string& db) {
  Exec(db, "CREATE TABLE filler (v text)");
  for (int i = 0; i < 4; ++i) Exec(db, "INSERT INTO filler VALUES ('x'); SELECT pg_switch_wal();");
  Exec(db, "CHECKPOINT");
}

long PeakRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// `walhook sink` on 127.0.0.1:port (extra flags: --fail-rate, --status …).
std::unique_ptr<Process> StartSink(int port, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {WalhookBinary(), "sink", "--listen",
                                   "127.0.0.1:" + std::to_string(port)};
  args.insert(args.end(), extra.begin(), extra.end());
  auto sink = std::make_unique<Process>(args);
  REQUIRE(WaitFor([&] { return sink->Output().find("listening") != std::string::npos; }, 10s));
  return sink;
}

// The distinct event ids a sink printed ("… id=42 …").
std::set<std::string> SinkIds(const std::string& output) {
  std::set<std::string> ids;
  for (size_t pos = output.find(" id="); pos != std::string::npos;
       pos = output.find(" id=", pos + 1)) {
    const size_t end = output.find(' ', pos + 4);
    ids.insert(output.substr(pos + 4, end - pos - 4));
  }
  return ids;
}

size_t CountLines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST_CASE("guarantee: kill -9 during a write load and a Postgres restart lose and double nothing") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, "CREATE TABLE load (id bigserial PRIMARY KEY, v int)");
  AddInsertTrigger(db, "load_insert", "load");
  AddInsertTrigger(db, "load_insert_too", "load");

  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) {
      try {
        pqxx::connection c(db);
        while (!stop) {
          pqxx::work tx(c);
          tx.exec(
              "INSERT INTO load (v) SELECT g FROM generate_series(1, 1 + (random() * 3)::int) g");
          tx.commit();
        }
      } catch (const std::exception&) {
        std::this_thread::sleep_for(50ms);  // Postgres restarting: connect again
      }
    }
  });

  std::unique_ptr<Process> walhook = StartWalhook(db, "k0");
  for (int round = 1; round <= 6; ++round) {
    std::this_thread::sleep_for(700ms);
    walhook->Signal(SIGKILL);
    walhook->Wait(5s);
    if (round == 3) pg.Restart();
    walhook = StartWalhook(db, "k" + std::to_string(round));
  }
  std::this_thread::sleep_for(500ms);
  stop = true;
  writer.join();

  const long rows = QL(db, "SELECT count(*) FROM load");
  INFO("rows written: " << rows);
  REQUIRE(rows > 100);
  const std::string events =
      "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'load_insert'";
  const bool all = WaitFor([&] { return QL(db, events) >= rows; }, 60s, 200ms);
  INFO(walhook->Output());
  CHECK(all);
  CHECK(QL(db, events) == rows);
  CHECK(QL(db,
           "SELECT count(DISTINCT payload->'doc'->>'id') FROM eventing.event_logs "
           "WHERE trigger_name = 'load_insert'") == rows);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'load_insert_too'") ==
        rows);
  // Every row of the table has its event.
  CHECK(QL(db,
           "SELECT count(*) FROM load l WHERE NOT EXISTS (SELECT 1 FROM eventing.event_logs e "
           "WHERE e.trigger_name = 'load_insert' AND (e.payload->'doc'->>'id')::bigint = l.id)") ==
        0);
}

TEST_CASE(
    "guarantee: a 1 M-row transaction is captured whole in bounded memory; a stop is prompt") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, "CREATE TABLE bulk (id int PRIMARY KEY, label text)");
  AddInsertTrigger(db, "bulk_insert", "bulk");
  auto walhook = StartWalhook(db, "bulk");
  const long before = PeakRssKiB(walhook->pid());
  const auto start = std::chrono::steady_clock::now();
  Exec(db, "INSERT INTO bulk SELECT g, 'row ' || g FROM generate_series(1, 1000000) g");
  const bool all = WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'bulk_insert'") ==
               1000000;
      },
      300s, 500ms);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long peak = PeakRssKiB(walhook->pid());
  MESSAGE("1 M-row transaction captured in " << secs << " s; walhook peak RSS " << peak / 1024
                                             << " MiB (at start " << before / 1024 << " MiB)");
  REQUIRE(all);
  CHECK(peak > 0);
  CHECK(peak < 200 * 1024);  // batches are bounded; the transaction is not held
  // The node holds leases on a backlog of up to 200k events (its endpoint
  // refuses them all), which it gives back when it stops. Each release is
  // made slow here (1 ms a row, 200 s for all): the stop still ends within
  // its bound, and the rest wait out their lease.
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE lease_owner = 'bulk'") > 100000);
  Exec(db,
       "CREATE FUNCTION slow_release() RETURNS trigger LANGUAGE plpgsql AS "
       "$$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$; "
       "CREATE TRIGGER slow_release BEFORE UPDATE ON eventing.event_logs FOR EACH ROW "
       "WHEN (OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL "
       "      AND NEW.attempts = OLD.attempts) EXECUTE FUNCTION slow_release()");
  const auto stop_at = std::chrono::steady_clock::now();
  walhook->Signal(SIGTERM);
  const int code = walhook->Wait(20s);
  MESSAGE("stopped " << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - stop_at)
                            .count()
                     << " ms after SIGTERM");
  CHECK_MESSAGE(code == 0, walhook->Output());
  CHECK_MESSAGE(walhook->Output().find("keep their lease until it runs out") != std::string::npos,
                walhook->Output());
}

TEST_CASE("guarantee: a standby that finds the slot invalidated exits 1 naming the LSN") {
  TempPostgres pg(SmallSlotLimit());
  const std::string db = pg.conninfo();
  Init(db);
  auto [first, second] = StreamingAndStandby(db);
  // The streaming node hangs; the WAL it holds outgrows max_slot_wal_keep_size
  // and Postgres invalidates the slot. Then the node dies, and the standby
  // takes the slot over.
  first->Signal(SIGSTOP);
  OutgrowSlot(db);
  REQUIRE(WaitFor(
      [&] {
        return Q(db, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'walhook'") ==
               "lost";
      },
      10s));
  const std::string confirmed = Q(
      db, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'walhook'");
  first->Signal(SIGKILL);
  first->Wait(5s);
  CHECK(second->Wait(20s) == 1);
  const std::string out = second->Output();
  INFO(out);
  CHECK(out.find("events since LSN " + confirmed + " were lost") != std::string::npos);
  CHECK(out.find("walhook init --accept-gap") != std::string::npos);
  CHECK(Q(db, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'walhook'") == "lost");
}

TEST_CASE("guarantee: a standby takes over within 10 s of the streaming node's exit") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  auto [first, second] = StreamingAndStandby(db);
  Exec(db, "INSERT INTO t VALUES (1)");
  REQUIRE(WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 1; }, 10s));

  first->Signal(SIGTERM);
  CHECK(first->Wait(15s) == 0);
  const auto exited = std::chrono::steady_clock::now();
  const bool took_over = WaitFor([&] { return IsStreaming(db, "second"); }, 10s, 100ms);
  MESSAGE("standby took over after "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - exited).count()
          << " s");
  INFO(second->Output());
  REQUIRE(took_over);
  Exec(db, "INSERT INTO t VALUES (2)");
  REQUIRE(WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 2; }, 10s));
  std::this_thread::sleep_for(500ms);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs") == 2);

  // kill -9 of the streaming node: its connection dies with it, the lock too.
  auto third = std::make_unique<Process>(RunArgs(db, "third"));
  REQUIRE(WaitFor([&] { return IsStandby(db, "third"); }, 10s));
  second->Signal(SIGKILL);
  REQUIRE(WaitFor([&] { return IsStreaming(db, "third"); }, 10s, 100ms));
  Exec(db, "INSERT INTO t VALUES (3)");
  REQUIRE(WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 3; }, 10s));
}

// Holds back every packet to 127.0.0.2 on the loopback device while it
// lives: a network cut, seen by both ends as silence (nothing is closed).
// An HTB class of 8 bit/s with a one-packet queue lets one packet through
// and drops the rest (the drop action is not in every kernel; HTB is).
class LoopbackCut {
 public:
  // tc is there and may change lo (root, or CAP_NET_ADMIN).
  static bool Usable() {
    return std::system(
               "tc qdisc add dev lo root handle 1: htb >/dev/null 2>&1 && "
               "tc qdisc del dev lo root >/dev/null 2>&1") == 0;
  }
  LoopbackCut() {
    ok_ = std::system(
              "tc qdisc add dev lo root handle 1: htb default 10 && "
              "tc class add dev lo parent 1: classid 1:10 htb rate 10gbit 2>/dev/null && "
              "tc class add dev lo parent 1: classid 1:20 htb rate 8bit ceil 8bit "
              "burst 1b cburst 1b 2>/dev/null && "
              "tc qdisc add dev lo parent 1:20 handle 20: pfifo limit 1 && "
              "tc filter add dev lo parent 1: protocol ip prio 1 u32 "
              "match ip dst 127.0.0.2/32 flowid 1:20") == 0;
  }
  ~LoopbackCut() { (void)std::system("tc qdisc del dev lo root 2>/dev/null"); }
  LoopbackCut(const LoopbackCut&) = delete;
  LoopbackCut& operator=(const LoopbackCut&) = delete;
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
};

// SPEC §7: after a network cut (or a host crash) the streaming node's slot
// and lock are let go within about wal_sender_timeout, and a standby takes
// over. The lock's idle backend would otherwise live until TCP gives up on
// it, two hours by default.
TEST_CASE("guarantee: after a network cut, a standby takes over within wal_sender_timeout") {
  if (!LoopbackCut::Usable()) {
    MESSAGE("skipped: tc cannot change the loopback device here (needs root or CAP_NET_ADMIN)");
    return;
  }
  TempPostgres pg(TempPostgres::Options{
      .extra_conf = "listen_addresses = '127.0.0.1,127.0.0.2'\nwal_sender_timeout = '10s'"});
  const std::string db = pg.conninfo();
  std::string far = db;
  far.replace(far.find("127.0.0.1"), 9, "127.0.0.2");  // the node that gets cut off
  Init(db);
  Exec(db, "CREATE TABLE t (id int PRIMARY KEY)");
  AddInsertTrigger(db, "t_insert", "t");
  auto first = StartWalhook(far, "far", {}, db);
  Process second(RunArgs(db, "near"));
  REQUIRE(WaitFor([&] { return IsStandby(db, "near"); }, 10s));
  Exec(db, "INSERT INTO t VALUES (1)");
  REQUIRE(WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 1; }, 10s));

  LoopbackCut cut;
  REQUIRE(cut.ok());
  const auto from = std::chrono::steady_clock::now();
  const bool took_over = WaitFor([&] { return IsStreaming(db, "near"); }, 40s, 200ms);
  const double after =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
  MESSAGE("standby took over " << after << " s after the cut (wal_sender_timeout 10 s)");
  INFO(second.Output());
  REQUIRE(took_over);
  CHECK(after <= 25.0);
  Exec(db, "INSERT INTO t VALUES (2)");
  CHECK(WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 2; }, 10s));
}

TEST_CASE("setup: a slot held by another consumer is waited for, then streamed") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, "CREATE TABLE t (id int PRIMARY KEY)");
  AddInsertTrigger(db, "t_insert", "t");
  Process other({"/usr/lib/postgresql/15/bin/pg_recvlogical", "-d", db, "--slot", "walhook",
                 "--start", "-f", "/dev/null", "-o", "format-version=2"});
  REQUIRE(WaitFor(
      [&] {
        return Q(db, "SELECT active FROM pg_replication_slots WHERE slot_name = 'walhook'") == "t";
      },
      10s));
  Process walhook(RunArgs(db, "waiter"));
  REQUIRE(WaitFor(
      [&] { return walhook.Output().find("in use by another consumer") != std::string::npos; },
      15s));
  CHECK(walhook.Running());
  other.Signal(SIGTERM);
  CHECK(WaitFor([&] { return IsStreaming(db, "waiter"); }, 15s, 100ms));
  Exec(db, "INSERT INTO t VALUES (1)");
  CHECK(WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 1; }, 10s));
}

// Migrations and the slot: nodes that start together on a new database
// each get the whole schema, applied once, and one slot.
TEST_CASE("setup: four nodes initializing one new database at once all succeed") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  std::vector<std::unique_ptr<Process>> nodes;
  for (int i = 0; i < 4; ++i) {
    nodes.push_back(std::make_unique<Process>(
        std::vector<std::string>{WalhookBinary(), "init", "--source", db}));
  }
  for (auto& node : nodes) CHECK_MESSAGE(node->Wait(30s) == 0, node->Output());
  CHECK(QL(db, "SELECT count(*) FROM eventing.schema_migrations") ==
        QL(db, "SELECT max(version) FROM eventing.schema_migrations"));
  CHECK(QL(db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walhook'") == 1);
  // Every attempt writes invocation_logs: one index entry (one WAL record,
  // which the walsender reads) per index. The key serves an event's attempts.
  CHECK(Q(db,
          "SELECT string_agg(indexdef, '; ') FROM pg_indexes "
          "WHERE schemaname = 'eventing' AND tablename = 'invocation_logs'") ==
        "CREATE UNIQUE INDEX invocation_logs_pkey ON eventing.invocation_logs USING btree "
        "(event_id, id)");
}

TEST_CASE("guarantee: an idle slot does not hold WAL written elsewhere") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  // A second slot on the source sees what walhook writes to its WAL.
  Exec(db, "SELECT pg_create_logical_replication_slot('watch', 'wal2json')");
  auto walhook = StartWalhook(db, "idle");
  Exec(db, "CREATE DATABASE other");
  const std::string other = pg.conninfo("other");
  Exec(other, "CREATE TABLE noise AS SELECT g FROM generate_series(1, 100000) g");
  std::string target = Q(db, "SELECT pg_current_wal_lsn()::text");
  // restart_lsn moves past a snapshot of running transactions, which a
  // checkpoint writes.
  Exec(db, "CHECKPOINT");
  const auto moved = [&](const char* column) {
    return WaitFor(
        [&] {
          return Q(db, std::string("SELECT ") + column + " >= '" + target +
                           "'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'walhook'") ==
                 "t";
        },
        10s, 100ms);
  };
  INFO(walhook->Output());
  CHECK(moved("confirmed_flush_lsn"));
  CHECK(moved("restart_lsn"));
  // Nothing but walhook wrote to the source's database meanwhile: its
  // heartbeat (every 300 ms here) writes messages to the WAL.
  CHECK(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM pg_logical_slot_peek_changes('watch', NULL, NULL, "
                  "'format-version', '2') WHERE data LIKE '%walhook.heartbeat%'") >= 1;
      },
      5s, 100ms));
  Exec(db, "SELECT pg_drop_replication_slot('watch')");
  // Changes in the source's own database that no trigger matches: the slot
  // moves past them too.
  Exec(db, "CREATE TABLE watched (id int PRIMARY KEY)");
  AddInsertTrigger(db, "elsewhere", "watched");
  Exec(db, "CREATE TABLE unwatched AS SELECT g FROM generate_series(1, 100000) g");
  Exec(db, "UPDATE unwatched SET g = g + 1");
  target = Q(db, "SELECT pg_current_wal_lsn()::text");
  CHECK(moved("confirmed_flush_lsn"));
}

// A source and an eventing database of their own, initialized.
struct SourceAndEventing {
  SourceAndEventing() {
    std::string out;
    REQUIRE_MESSAGE(
        RunToExit({WalhookBinary(), "init", "--source", src, "--eventing-db", evt}, &out) == 0,
        out);
  }
  TempPostgres source;
  TempPostgres eventing;
  const std::string src = source.conninfo();
  const std::string evt = eventing.conninfo();
};

// A quiet stream still reports its position at least every 10 s: nothing
// to decode on the source (the eventing tables are elsewhere) and no
// heartbeat, so only walhook's own status updates refresh reply_time
// (Postgres would ask for one only every wal_sender_timeout / 2 = 30 s).
TEST_CASE("guarantee: a quiet stream sends a status update at least every 10 s") {
  SourceAndEventing dbs;
  const std::string& src = dbs.src;
  const std::string& evt = dbs.evt;
  Process walhook({WalhookBinary(), "run", "--source", src, "--eventing-db", evt, "--secret",
                   kSecret, "--node-id", "quiet", "--listen", "off", "--heartbeat-interval", "1h"});
  REQUIRE(WaitFor([&] { return IsStreaming(evt, "quiet"); }, 20s, 100ms));
  // reply_time is the send time walhook puts in each update: the gaps
  // between its values are walhook's own, free of this loop's sampling;
  // the age at each sample catches updates that stop.
  std::vector<double> sent;
  double oldest = 0;
  const auto until = std::chrono::steady_clock::now() + 13s;
  while (std::chrono::steady_clock::now() < until) {
    const std::string row = Q(src,
                              "SELECT extract(epoch FROM reply_time) || ' ' || "
                              "extract(epoch FROM now() - reply_time) FROM pg_stat_replication");
    double at = 0, age = 0;
    if (std::istringstream(row) >> at >> age) {
      if (sent.empty() || at != sent.back()) sent.push_back(at);
      oldest = std::max(oldest, age);
    }
    std::this_thread::sleep_for(200ms);
  }
  double longest = 0;
  for (size_t i = 1; i < sent.size(); ++i) longest = std::max(longest, sent[i] - sent[i - 1]);
  INFO(walhook.Output());
  MESSAGE(sent.size() << " status updates in 13 s; longest gap " << longest << " s; oldest seen "
                      << oldest << " s");
  CHECK(sent.size() >= 2);
  CHECK(longest <= 10.0);
  CHECK(oldest <= 10.0);
}

TEST_CASE("guarantee: the eventing database down pauses capture and delivery, nothing is lost") {
  SourceAndEventing dbs;
  const std::string& src = dbs.src;
  const std::string& evt = dbs.evt;
  TempPostgres& eventing = dbs.eventing;
  Exec(src, "CREATE TABLE orders (id int PRIMARY KEY)");
  auto sink = StartSink(4251);
  Exec(evt,
       "INSERT INTO eventing.triggers (name, type, table_name, url, retry_interval_ms) VALUES "
       "('orders_insert', 'DB_INSERT', 'orders', 'http://127.0.0.1:4251/', 200)");
  auto walhook = StartWalhook(src, "split", {"--eventing-db", evt}, evt);
  Exec(src, "INSERT INTO orders VALUES (1)");
  REQUIRE(WaitFor(
      [&] {
        return QL(evt, "SELECT count(*) FROM eventing.event_logs WHERE status = 'processed'") == 1;
      },
      10s));

  eventing.Stop();
  Exec(src, "INSERT INTO orders SELECT g FROM generate_series(2, 101) g");
  for (int i = 0; i < 100; ++i)
    Exec(src, "INSERT INTO orders VALUES (" + std::to_string(1000 + i) + ")");
  std::this_thread::sleep_for(2s);
  CHECK(walhook->Running());
  eventing.Start();
  const bool resumed = WaitFor(
      [&] {
        try {
          return QL(evt, "SELECT count(*) FROM eventing.event_logs") == 201;
        } catch (const std::exception&) {
          return false;
        }
      },
      60s, 250ms);
  INFO(walhook->Output());
  CHECK(resumed);
  CHECK(QL(evt, "SELECT count(DISTINCT payload->'doc'->>'id') FROM eventing.event_logs") == 201);
  // Delivery resumed too: every event processed, each received at least once.
  const bool delivered = WaitFor(
      [&] {
        return QL(evt, "SELECT count(*) FROM eventing.event_logs WHERE status = 'processed'") ==
               201;
      },
      30s, 250ms);
  INFO(QL(evt, "SELECT count(*) FROM eventing.event_logs WHERE status = 'staged'"));
  CHECK(delivered);
  CHECK(SinkIds(sink->Output()).size() == 201);
  CHECK(QL(evt, "SELECT count(DISTINCT event_id) FROM eventing.invocation_logs") == 201);
}

TEST_CASE("guarantee: retention deletes old processed events, keeps failed ones longer") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, "CREATE TABLE notes (id int PRIMARY KEY)");
  auto ok = StartSink(4252);
  auto gone = StartSink(4253, {"--fail-rate", "1", "--status", "410"});
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('notes_ok', 'DB_INSERT', 'notes', 'http://127.0.0.1:4252/'), "
       "('notes_gone', 'DB_INSERT', 'notes', 'http://127.0.0.1:4253/')");
  // The queue API's idempotency keys: kept for 24 h.
  Exec(db,
       "INSERT INTO eventing.idempotency_keys (key, reply_status, reply_body, created_at) "
       "VALUES ('old', 200, '{}', now() - interval '25 h'), ('fresh', 200, '{}', now())");
  // The first retention pass runs 5 s after the start.
  auto walhook = StartWalhook(db, "keeper", {"--retention", "1s", "--failed-retention", "1h"});
  Exec(db, "INSERT INTO notes SELECT g FROM generate_series(1, 50) g");
  REQUIRE(WaitFor(
      [&] {
        return QL(db, "SELECT count(*) FROM eventing.event_logs WHERE status <> 'staged'") == 100;
      },
      10s));
  REQUIRE(QL(db, "SELECT count(*) FROM eventing.invocation_logs") == 100);
  const bool deleted =
      WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 50; }, 20s, 250ms);
  INFO(walhook->Output());
  CHECK(deleted);
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE status = 'failed' "
           "AND trigger_name = 'notes_gone'") == 50);
  // Their invocation rows went with them; the failed events' stay.
  CHECK(QL(db, "SELECT count(*) FROM eventing.invocation_logs") == 50);
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.invocation_logs i JOIN eventing.event_logs e "
           "ON e.id = i.event_id WHERE e.status = 'failed'") == 50);
  CHECK(Q(db, "SELECT string_agg(key, ',') FROM eventing.idempotency_keys") == "fresh");
}

TEST_CASE("guarantee: retention reads what it changes, not the whole history") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  // A long history: one event old enough to go, then 100,000 younger ones
  // (ids follow the time events are stored). Staged: events of three
  // triggers that are gone, keyed (as an ordered trigger's are) and not, on
  // either side of a disabled trigger's, which stay.
  Exec(db, "CREATE TABLE notes (id int PRIMARY KEY)");
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url, enabled) "
       "VALUES ('mm_idle', 'DB_INSERT', 'notes', 'http://127.0.0.1:9/', false)");
  Exec(db,
       "INSERT INTO eventing.event_logs (trigger_name, type, payload, ts, event_ts, status, "
       "created_at) VALUES ('old_hook', 'DB_INSERT', '{}', now(), now(), 'processed', "
       "now() - interval '2 h')");
  Exec(db,
       "INSERT INTO eventing.event_logs (trigger_name, type, payload, ts, event_ts, status) "
       "SELECT 'young_hook', 'DB_INSERT', '{}', now(), now(), 'processed' "
       "FROM generate_series(1, 100000)");
  // (The ids come back from the inserts: reading event_logs here would
  // count among the reads measured below.)
  const std::string ghosts =
      Q(db,
        "WITH i AS (INSERT INTO eventing.event_logs (trigger_name, type, payload, ts, event_ts, "
        "order_key) VALUES ('aa_ghost', 'DB_DELETE', '{}', now(), now(), NULL), "
        "('zy_ghost', 'DB_DELETE', '{}', now(), now(), NULL), "
        "('zz_ghost', 'DB_DELETE', '{}', now(), now(), '[1]') RETURNING id) "
        "SELECT string_agg(id::text, ',') FROM i");
  const std::string idle =
      Q(db,
        "WITH i AS (INSERT INTO eventing.event_logs (trigger_name, type, payload, ts, event_ts, "
        "order_key) VALUES ('mm_idle', 'DB_INSERT', '{}', now(), now(), NULL), "
        "('mm_idle', 'DB_INSERT', '{}', now(), now(), '[2]') RETURNING id) "
        "SELECT string_agg(id::text, ',') FROM i");
  // The queue API's idempotency keys: 100,000 of the last day, one older.
  Exec(db,
       "INSERT INTO eventing.idempotency_keys (key, reply_status, reply_body, created_at) "
       "SELECT 'k' || g, 200, '{}', now() - interval '1 h' FROM generate_series(1, 100000) g "
       "UNION ALL SELECT 'old', 200, '{}', now() - interval '25 h'");
  Exec(db, "ANALYZE eventing.event_logs, eventing.idempotency_keys");
  const std::string old_id = Q(db, "SELECT min(id) FROM eventing.event_logs");
  // Rows read from a table by seq scans and through indexes, so far.
  const auto rows_read = [&](const std::string& table) {
    return QL(db,
              "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables "
              "WHERE relid = '" +
                  table + "'::regclass");
  };
  const int64_t before = rows_read("eventing.event_logs");
  const int64_t keys_before = rows_read("eventing.idempotency_keys");

  // The first retention pass runs 5 s after the start.
  auto walhook = StartWalhook(db, "tidy", {"--retention", "1h"});
  const bool done = WaitFor(
      [&] {
        return QL(db, "SELECT count(*) FROM eventing.event_logs WHERE id = " + old_id) == 0 &&
               QL(db, "SELECT count(*) FROM eventing.idempotency_keys WHERE key = 'old'") == 0 &&
               Q(db, "SELECT string_agg(status, ',') FROM eventing.event_logs WHERE id IN (" +
                         ghosts + ")") == "cancel,cancel,cancel";
      },
      20s, 250ms);
  INFO(walhook->Output());
  REQUIRE(done);
  // Its connections' counts reach the statistics when they close.
  walhook->Signal(SIGTERM);
  REQUIRE(walhook->Wait(20s) == 0);
  REQUIRE(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                  "AND pid <> pg_backend_pid()") == 0;
      },
      10s, 100ms));
  // What it deleted, cancelled and probed, not the 100,000 it keeps.
  const int64_t read = rows_read("eventing.event_logs") - before;
  CHECK(read < 1000);
  const int64_t keys_read = rows_read("eventing.idempotency_keys") - keys_before;
  CHECK(keys_read < 1000);
  CHECK(QL(db, "SELECT count(*) FROM eventing.idempotency_keys") == 100000);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE status = 'processed'") == 100000);
  CHECK(Q(db, "SELECT string_agg(status, ',') FROM eventing.event_logs WHERE id IN (" + idle +
                  ")") == "staged,staged");
}

TEST_CASE("guarantee: a failing retention pass is said and skipped; delivery goes on") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, "CREATE TABLE notes (id int PRIMARY KEY)");
  auto sink = StartSink(4254);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url) "
       "VALUES ('notes_hook', 'DB_INSERT', 'notes', 'http://127.0.0.1:4254/')");
  // An old event for retention to delete, and a trigger of the user's that
  // refuses every delete from event_logs: each pass fails.
  Exec(db,
       "INSERT INTO eventing.event_logs (trigger_name, type, payload, ts, event_ts, status, "
       "created_at) VALUES ('old_hook', 'DB_INSERT', '{}', now(), now(), 'processed', "
       "now() - interval '2 h')");
  Exec(db,
       "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
       "$$ BEGIN RAISE EXCEPTION 'deletes refused by the test'; END $$");
  Exec(db,
       "CREATE TRIGGER refuse BEFORE DELETE ON eventing.event_logs "
       "FOR EACH ROW EXECUTE FUNCTION refuse()");
  // The first pass runs 5 s after the start, the next a minute later.
  auto walhook = StartWalhook(db, "upkeep", {"--retention", "1h"});
  INFO(walhook->Output());
  Exec(db, "INSERT INTO notes SELECT generate_series(1, 20)");
  REQUIRE(WaitFor([&] { return SinkIds(sink->Output()).size() == 20; }, 10s, 100ms));
  REQUIRE(WaitFor(
      [&] { return walhook->Output().find("deletes refused by the test") != std::string::npos; },
      15s, 100ms));
  // Delivery went on through it: rows committed now arrive at once.
  Exec(db, "INSERT INTO notes SELECT generate_series(21, 40)");
  CHECK(WaitFor([&] { return SinkIds(sink->Output()).size() == 40; }, 5s, 50ms));
  const std::string out = walhook->Output();
  CHECK(CountLines(out, "retention: ") == 1);
  CHECK(out.find("tried again at its next turn") != std::string::npos);
  // The session was not ended: no reconnect.
  CHECK(out.find("retrying with backoff") == std::string::npos);
  CHECK(out.find("answers again") == std::string::npos);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'old_hook'") == 1);
}

TEST_CASE("setup: an unreachable source is retried and said once, then streams") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  pg.Stop();
  Process walhook(RunArgs(db, "patient"));
  // init too: it may run before the database is up.
  Process init({WalhookBinary(), "init", "--source", db});
  std::this_thread::sleep_for(4s);
  CHECK(walhook.Running());
  CHECK(init.Running());
  CHECK(CountLines(walhook.Output(), "retrying") == 1);
  CHECK(CountLines(init.Output(), "retrying") == 1);
  pg.Start();
  CHECK(WaitFor([&] { return IsStreaming(db, "patient"); }, 40s, 200ms));
  CHECK_MESSAGE(init.Wait(40s) == 0, init.Output());
}

TEST_CASE("setup: errors a user can make get one line and the right exit code") {
  std::string out;
  SUBCASE("bad flags exit 2 naming the flag") {
    CHECK(RunToExit({WalhookBinary(), "run", "--secret", "s"}, &out) == 2);
    CHECK(out.find("--source") != std::string::npos);
    CHECK(
        RunToExit({WalhookBinary(), "run", "--source", "x", "--secret", "s", "--slot", "Bad-Slot"},
                  &out) == 2);
    CHECK(out.find("--slot") != std::string::npos);
    CHECK(RunToExit({WalhookBinary(), "run", "--source", "x"}, &out) == 2);
    CHECK(out.find("--secret") != std::string::npos);
    CHECK(RunToExit({WalhookBinary(), "frobnicate"}, &out) == 2);
    CHECK(RunToExit({WalhookBinary(), "run", "--source", "x", "--secret", "s", "--bogus", "1"},
                    &out) == 2);
    CHECK(out.find("--bogus") != std::string::npos);
  }
  SUBCASE("wal_level not logical") {
    TempPostgres::Options o;
    o.wal_level = "replica";
    TempPostgres pg(o);
    CHECK(RunToExit({WalhookBinary(), "run", "--source", pg.conninfo(), "--secret", "s"}, &out) ==
          1);
    CHECK(out.find("wal_level") != std::string::npos);
    CHECK(CountLines(out, "\n") == 1);
  }
  SUBCASE("wal2json not allowed as an output plugin") {
    TempPostgres::Options o;
    o.allow_wal2json = false;
    TempPostgres pg(o);
    if (QL(pg.conninfo(),
           "SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'") == 0) {
      // Before 15.19 the setting does not exist and every plugin is allowed.
      MESSAGE("server predates output_plugin_libraries; wal2json is always allowed");
      CHECK_MESSAGE(RunToExit({WalhookBinary(), "init", "--source", pg.conninfo()}, &out) == 0,
                    out);
      return;
    }
    CHECK(RunToExit({WalhookBinary(), "init", "--source", pg.conninfo()}, &out) == 1);
    CHECK(out.find("output_plugin_libraries") != std::string::npos);
    CHECK(CountLines(out, "\n") == 1);
  }
  SUBCASE("a role without REPLICATION") {
    TempPostgres pg;
    Init(pg.conninfo());
    Exec(pg.conninfo(), "CREATE ROLE app LOGIN");
    CHECK(RunToExit({WalhookBinary(), "run", "--source", pg.conninfo("postgres", "app"),
                     "--eventing-db", pg.conninfo(), "--secret", "s"},
                    &out) == 1);
    CHECK(out.find("REPLICATION") != std::string::npos);
    CHECK(CountLines(out, "\n") == 1);
  }
  SUBCASE("a slot of that name for another database") {
    TempPostgres pg;
    Exec(pg.conninfo(), "CREATE DATABASE other");
    Exec(pg.conninfo("other"), "SELECT pg_create_logical_replication_slot('walhook', 'wal2json')");
    CHECK(RunToExit({WalhookBinary(), "init", "--source", pg.conninfo()}, &out) == 1);
    CHECK(out.find("belongs to another database (other)") != std::string::npos);
    CHECK(CountLines(out, "\n") == 1);
  }
  SUBCASE("a slot Postgres invalidated is never recreated silently") {
    TempPostgres pg(SmallSlotLimit());
    const std::string db = pg.conninfo();
    Init(db);
    OutgrowSlot(db);
    REQUIRE(Q(db, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'walhook'") ==
            "lost");
    CHECK(RunToExit(RunArgs(db, "late"), &out) == 1);
    CHECK(out.find("lost") != std::string::npos);
    CHECK(out.find("walhook init --accept-gap") != std::string::npos);
    CHECK(Q(db, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'walhook'") ==
          "lost");
    // init alone does not recreate it either.
    CHECK(RunToExit({WalhookBinary(), "init", "--source", db}, &out) == 1);
    // The way back: a new source epoch, with a new slot.
    CHECK(RunToExit({WalhookBinary(), "init", "--source", db, "--accept-gap"}, &out) == 0);
    CHECK(QL(db, "SELECT count(*) FROM pg_replication_slots") == 1);
    CHECK(QL(db, "SELECT epoch FROM eventing.source_identity") == 1);
    CHECK(Q(db, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'walhook'") !=
          "lost");
  }
  SUBCASE("SIGTERM finishes, confirms and exits 0; status prints both views") {
    TempPostgres pg;
    const std::string db = pg.conninfo();
    Init(db);
    Exec(db, "CREATE TABLE polite_rows (id int PRIMARY KEY)");
    AddInsertTrigger(db, "polite_insert", "polite_rows");
    auto walhook = StartWalhook(db, "polite");
    CHECK(RunToExit({WalhookBinary(), "status", "--source", db}, &out) == 0);
    CHECK(out.find("trigger_status") != std::string::npos);
    CHECK(out.find("polite") != std::string::npos);
    // Stopped while a transaction's events are being written: the batch in
    // hand is written, what was stored whole is confirmed, and the rest of
    // the transaction comes after a restart, once.
    Exec(db, "INSERT INTO polite_rows VALUES (0)");
    REQUIRE(WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 1; }, 10s));
    const std::string first = Q(db, "SELECT source_lsn::text FROM eventing.event_logs");
    Exec(db, "INSERT INTO polite_rows SELECT generate_series(1, 50000)");
    REQUIRE(
        WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") > 1; }, 10s, 5ms));
    walhook->Signal(SIGTERM);
    CHECK(walhook->Wait(15s) == 0);
    CHECK(QL(db, "SELECT count(*) FROM pg_replication_slots WHERE active") == 0);
    CHECK(Q(db, "SELECT confirmed_flush_lsn >= '" + first +
                    "' FROM pg_replication_slots WHERE slot_name = 'walhook'") == "t");
    // SIGINT (Ctrl-C) stops it the same way.
    walhook = StartWalhook(db, "polite");
    CHECK(
        WaitFor([&] { return QL(db, "SELECT count(*) FROM eventing.event_logs") == 50001; }, 30s));
    walhook->Signal(SIGINT);
    CHECK(walhook->Wait(15s) == 0);
    CHECK(QL(db, "SELECT count(DISTINCT (source_lsn, source_seq)) FROM eventing.event_logs") ==
          50001);
    CHECK(RunToExit({WalhookBinary(), "drop", "--source", db, "--schema-too"}, &out) == 0);
    CHECK(QL(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'eventing'") == 0);
  }
}

}  // namespace
}  // namespace walhook::test
