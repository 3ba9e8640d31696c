// SPEC §13 "Source identity", end to end: walhook records the source it
// captures from, refuses to go on silently when the source changed under it
// (a slot dropped by hand, another server behind the same eventing
// database), and `walhook init --accept-gap` starts a new epoch whose events
// are never taken for duplicates of the old ones.

#include <signal.h>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "receiver.h"

namespace walhook::test {
namespace {

constexpr const char* kSecret = "identity-secret";
constexpr int kReceiverPort = 4810;

struct Ran {
  int code;
  std::string output;
};

Ran RunToEnd(const std::vector<std::string>& args) {
  Process p(args);
  const int code = p.Wait(60s);
  return {code, p.Output()};
}

std::vector<std::string> RunArgs(const std::string& source, const std::string& eventing) {
  return {WalhookBinary(),
          "run",
          "--source",
          source,
          "--eventing-db",
          eventing,
          "--secret",
          kSecret,
          "--node-id",
          "identity",
          "--listen",
          "off",
          "--heartbeat-interval",
          "300ms"};
}

bool Streaming(const std::string& eventing) {
  try {
    return QL(eventing,
              "SELECT count(*) FROM eventing.bridge_status WHERE role = 'streaming' AND "
              "node_id = 'identity'") == 1;
  } catch (const std::exception&) {
    return false;
  }
}

std::unique_ptr<Process> Start(const std::string& source, const std::string& eventing) {
  auto p = std::make_unique<Process>(RunArgs(source, eventing));
  const bool ok = WaitFor([&] { return Streaming(eventing); }, 20s, 100ms);
  INFO(p->Output());
  REQUIRE(ok);
  return p;
}

void Stop(std::unique_ptr<Process>& p) {
  p->Signal(SIGTERM);
  CHECK(p->Wait(15s) == 0);
  p.reset();
}

// The last LSN walhook captured: what it confirmed, or its last event's.
std::string LastCaptured(const std::string& eventing) {
  return Q(eventing,
           "SELECT greatest(i.confirmed_lsn, (SELECT max(source_lsn) FROM eventing.event_logs e "
           "WHERE e.source_epoch = i.epoch))::text FROM eventing.source_identity i");
}

size_t CountLines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// The one line of a refusal says what changed, the last LSN captured, that
// changes after it may be missing, and how to go on.
void CheckRefusal(const Ran& r, const std::string& what, const std::string& last_lsn) {
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(CountLines(r.output) == 1);
  CHECK(r.output.find(what) != std::string::npos);
  CHECK(r.output.find("up to LSN " + last_lsn) != std::string::npos);
  CHECK(r.output.find("may be missing") != std::string::npos);
  CHECK(r.output.find("walhook init --accept-gap") != std::string::npos);
}

TEST_CASE("operations: a slot dropped by hand after events were captured") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Receiver receiver(kReceiverPort);
  REQUIRE(RunToEnd({WalhookBinary(), "init", "--source", db}).code == 0);
  Exec(db, "CREATE TABLE signups (id int PRIMARY KEY)");
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES ('welcome', "
       "'DB_INSERT', 'signups', '" +
           receiver.Url() + "')");
  auto walhook = Start(db, db);
  Exec(db, "INSERT INTO signups VALUES (1)");
  REQUIRE(receiver.WaitForCount(1, 10s));
  // The confirmed position reaches source_identity with the node's report.
  REQUIRE(WaitFor(
      [&] {
        return Q(db, "SELECT confirmed_lsn IS NOT NULL FROM eventing.source_identity") == "t";
      },
      10s));
  Stop(walhook);
  const std::string last = LastCaptured(db);

  Exec(db, "SELECT pg_drop_replication_slot('walhook')");
  Exec(db, "INSERT INTO signups VALUES (2)");  // in the gap: nobody captures it
  CheckRefusal(RunToEnd(RunArgs(db, db)), "slot is missing", last);
  // Refused again, and nothing recreated the slot meanwhile.
  CHECK(RunToEnd({WalhookBinary(), "init", "--source", db}).code == 1);
  CHECK(QL(db, "SELECT count(*) FROM pg_replication_slots") == 0);

  const Ran accept = RunToEnd({WalhookBinary(), "init", "--source", db, "--accept-gap"});
  INFO(accept.output);
  REQUIRE(accept.code == 0);
  CHECK(accept.output.find("source epoch 1 starts now") != std::string::npos);
  CHECK(QL(db, "SELECT epoch FROM eventing.source_identity") == 1);
  walhook = Start(db, db);
  Exec(db, "INSERT INTO signups VALUES (3), (4)");
  REQUIRE(receiver.WaitForCount(3, 10s));
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE source_epoch = 1") == 2);
  // Outcomes are written after the answer arrives (in batches): wait for them.
  CHECK(WaitFor(
      [&] {
        return QL(db, "SELECT count(*) FROM eventing.event_logs WHERE status = 'processed'") == 3;
      },
      10s));
  // And a second --accept-gap with nothing changed changes nothing.
  Stop(walhook);
  const Ran again = RunToEnd({WalhookBinary(), "init", "--source", db, "--accept-gap"});
  CHECK(again.code == 0);
  CHECK(again.output.find("no gap to accept") != std::string::npos);
  CHECK(QL(db, "SELECT epoch FROM eventing.source_identity") == 1);
}

TEST_CASE(
    "operations: another server behind the same eventing database, at positions that "
    "repeat the first one's") {
  TempPostgres first;   // the eventing database, and the first source
  TempPostgres second;  // a new server: its own system identifier, its own WAL
  const std::string eventing = first.conninfo();
  const std::string a = first.conninfo();
  const std::string b = second.conninfo();
  Receiver receiver(kReceiverPort + 1);
  REQUIRE(RunToEnd({WalhookBinary(), "init", "--source", a}).code == 0);
  for (const std::string& db : {a, b}) Exec(db, "CREATE TABLE orders (id int PRIMARY KEY)");
  Exec(eventing,
       "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES "
       "('order_created', 'DB_INSERT', 'orders', '" +
           receiver.Url() + "')");
  auto walhook = Start(a, eventing);
  Exec(a, "INSERT INTO orders VALUES (1)");
  REQUIRE(receiver.WaitForCount(1, 10s));
  REQUIRE(WaitFor(
      [&] {
        return Q(eventing, "SELECT confirmed_lsn IS NOT NULL FROM eventing.source_identity") == "t";
      },
      10s));
  Stop(walhook);
  const std::string last = LastCaptured(eventing);

  CheckRefusal(RunToEnd(RunArgs(b, eventing)), "another server", last);
  CheckRefusal(RunToEnd({WalhookBinary(), "init", "--source", b, "--eventing-db", eventing}),
               "another server", last);
  const Ran accept =
      RunToEnd({WalhookBinary(), "init", "--source", b, "--eventing-db", eventing, "--accept-gap"});
  INFO(accept.output);
  REQUIRE(accept.code == 0);

  // Events the first server's epoch holds at exactly the positions where the
  // second server's next commits will be: a key without the epoch would take
  // the new events for replays of these and drop them.
  const std::string at = Q(b, "SELECT pg_current_wal_insert_lsn()::text");
  Exec(eventing,
       "INSERT INTO eventing.event_logs (trigger_name, type, status, payload, ts, event_ts, "
       "source_lsn, source_seq, source_epoch) "
       "SELECT 'order_created', 'DB_INSERT', 'processed', '{}', now(), now(), '" +
           at + "'::pg_lsn + n, s, 0 FROM generate_series(0, 16383) n, generate_series(0, 2) s");
  walhook = Start(b, eventing);
  Exec(b, "INSERT INTO orders VALUES (2)");
  Exec(b, "INSERT INTO orders VALUES (3)");
  REQUIRE(receiver.WaitForCount(3, 10s));
  CHECK(QL(eventing, "SELECT count(*) FROM eventing.event_logs WHERE source_epoch = 1") == 2);
  // The test means what it says: the new events' keys are the old ones'.
  CHECK(QL(eventing,
           "SELECT count(*) FROM eventing.event_logs n JOIN eventing.event_logs o USING "
           "(source_lsn, source_seq, trigger_name) WHERE n.source_epoch = 1 AND "
           "o.source_epoch = 0") == 2);
  Stop(walhook);
}

}  // namespace
}  // namespace walhook::test
