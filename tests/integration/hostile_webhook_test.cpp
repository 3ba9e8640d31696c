// Hostile webhooks (SPEC §9 "Slow webhooks", "Webhook responses"; §7): a real
// Postgres, the walhook binary and in-process receivers that answer as an
// attacker would. After each hostile answer: walhook is alive, and an
// unrelated trigger's event is delivered within seconds, also after a
// restart of walhook.
//
// Receivers use ports 4750-4799.

#include <signal.h>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"
#include "walhook/delivery.h"

namespace walhook::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSecret = "hostile-secret";

struct Hook {
  std::string name{};
  std::string table{};  // "" for a custom trigger
  std::string url{};
  std::string type = "DB_INSERT";
  int retries = 3;
  int timeout_ms = 5000;
  int retry_interval_ms = 100;
};

void AddHook(const std::string& db, const Hook& h) {
  pqxx::connection c(db);
  pqxx::nontransaction tx(c);
  tx.exec(
      "INSERT INTO eventing.triggers (name, type, table_name, url, retries, timeout_ms, "
      "retry_interval_ms) VALUES (" +
      tx.quote(h.name) + ", " + tx.quote(h.type) + ", " +
      (h.table.empty() ? "NULL" : tx.quote(h.table)) + ", " + tx.quote(h.url) + ", " +
      std::to_string(h.retries) + ", " + std::to_string(h.timeout_ms) + ", " +
      std::to_string(h.retry_interval_ms) + ")");
}

void Init(const std::string& db) {
  Process p({WalhookBinary(), "init", "--source", db});
  const int code = p.Wait(30s);
  REQUIRE_MESSAGE(code == 0, p.Output());
}

long TryQL(const std::string& db, const std::string& sql) {
  try {
    return QL(db, sql);
  } catch (const std::exception&) {
    return -1;
  }
}

std::unique_ptr<Process> StartWalhook(const std::string& db, const std::string& node) {
  auto p = std::make_unique<Process>(std::vector<std::string>{
      WalhookBinary(), "run", "--source", db, "--secret", kSecret, "--node-id", node,
      "--heartbeat-interval", "300ms", "--listen", "off"});
  const bool ok = WaitFor(
      [&] {
        return TryQL(db,
                     "SELECT count(*) FROM eventing.bridge_status WHERE role = 'streaming' AND "
                     "node_id = '" +
                         node + "'") == 1;
      },
      20s, 100ms);
  INFO(p->Output());
  REQUIRE(ok);
  return p;
}

// Stops walhook (SIGTERM) and starts it again under the same node id.
void Restart(std::unique_ptr<Process>* walhook, const std::string& db, const std::string& node) {
  (*walhook)->Signal(SIGTERM);
  const int code = (*walhook)->Wait(30s);
  CHECK_MESSAGE(code == 0, (*walhook)->Output());
  walhook->reset();
  *walhook = StartWalhook(db, node);
}

std::string Status(const std::string& db, long id) {
  return Q(db, "SELECT status FROM eventing.event_logs WHERE id = " + std::to_string(id));
}

std::string Remark(const std::string& db, long id) {
  return Q(db, "SELECT remark FROM eventing.event_logs WHERE id = " + std::to_string(id));
}

long WaitEventId(const std::string& db, const std::string& trigger) {
  long id = 0;
  WaitFor(
      [&] {
        id = TryQL(db, "SELECT id FROM eventing.event_logs WHERE trigger_name = '" + trigger +
                           "' ORDER BY id LIMIT 1");
        return id > 0;
      },
      15s, 100ms);
  return id;
}

bool WaitStatus(const std::string& db, long id, const std::string& status,
                std::chrono::milliseconds timeout = 15s) {
  return WaitFor([&] { return Status(db, id) == status; }, timeout, 100ms);
}

// The unrelated trigger every test keeps an eye on: table calm_rows, its
// receiver answering 200 at /calm.
constexpr const char* kCalmTable = "CREATE TABLE calm_rows (id int PRIMARY KEY)";

void AddCalmHook(const std::string& db, const Receiver& calm) {
  AddHook(db, {.name = "calm_hook", .table = "calm_rows", .url = calm.Url("/calm")});
}

// Inserts calm_rows row `id` and returns how long after the commit it
// arrived at `calm` (nullopt when not within `timeout`).
std::optional<std::chrono::milliseconds> CalmLatency(const std::string& db, const Receiver& calm,
                                                     int id,
                                                     std::chrono::milliseconds timeout = 5s) {
  const std::string marker = "\"id\":" + std::to_string(id) + "}";
  Exec(db, "INSERT INTO calm_rows VALUES (" + std::to_string(id) + ")");
  const auto committed = Clock::now();
  std::optional<std::chrono::milliseconds> latency;
  WaitFor(
      [&] {
        for (const Arrival& a : calm.Arrivals()) {
          if (a.path == "/calm" && a.body.find(marker) != std::string::npos) {
            latency = std::chrono::duration_cast<std::chrono::milliseconds>(a.at - committed);
            return true;
          }
        }
        return false;
      },
      timeout, 5ms);
  return latency;
}

// walhook is alive and the unrelated trigger delivers within seconds, now
// and after a restart of walhook.
void CheckStillDelivers(std::unique_ptr<Process>* walhook, const std::string& db,
                        const std::string& node, const Receiver& calm, int first_id) {
  REQUIRE_MESSAGE((*walhook)->Running(), (*walhook)->Output());
  CHECK_MESSAGE(CalmLatency(db, calm, first_id).has_value(), (*walhook)->Output());
  Restart(walhook, db, node);
  CHECK_MESSAGE(CalmLatency(db, calm, first_id + 1).has_value(), (*walhook)->Output());
  CHECK_MESSAGE((*walhook)->Running(), (*walhook)->Output());
  CHECK(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'calm_hook' AND "
                  "status <> 'processed'") == 0;
      },
      5s, 100ms));
}

// --- tests -------------------------------------------------------------------

// A chained event that cannot be stored used to fail the whole batch of
// outcomes, again and again: no outcome of any trigger was written on the
// node (its leases ran out, other nodes sent again).
TEST_CASE("hostile webhook: a chained event that cannot be stored fails only its own event") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, std::string(kCalmTable) +
               "; CREATE TABLE utf8_rows (id int PRIMARY KEY);"
               " CREATE TABLE far_rows (id int PRIMARY KEY);"
               " CREATE TABLE poison_rows (id int PRIMARY KEY)");
  // A chained event that passes every check of walhook's and that Postgres
  // still refuses (as a due time past its range did before the queue API's
  // bounds applied to responses too).
  Exec(db, "ALTER TABLE eventing.event_logs ADD CONSTRAINT no_poison CHECK (type <> 'POISON')");
  Receiver hostile(4750, [](const Arrival& a) {
    Reply r;
    if (a.path == "/utf8") {
      r.body = "{\"event\":{\"type\":\"X\",\"payload\":{\"a\":\"\xff\"}}}";
    } else if (a.path == "/far") {
      // A due time beyond what Postgres can hold: refused when read.
      r.body = R"({"event":{"type":"X","payload":{"far":true},)"
               R"("timestamp":"9999-12-31T00:00:00Z","delay":9000000000000000}})";
    } else if (a.path == "/poison") {
      r.body = R"({"event":{"type":"POISON","payload":{}}})";
    }
    return r;
  });
  Receiver calm(4751);
  AddCalmHook(db, calm);
  AddHook(db, {.name = "utf8_hook", .table = "utf8_rows", .url = hostile.Url("/utf8")});
  AddHook(db, {.name = "far_hook", .table = "far_rows", .url = hostile.Url("/far")});
  AddHook(db, {.name = "poison_hook", .table = "poison_rows", .url = hostile.Url("/poison")});
  AddHook(db, {.name = "x_hook", .url = hostile.Url("/x"), .type = "X"});
  AddHook(db, {.name = "poisoned", .url = hostile.Url("/x"), .type = "POISON"});
  const std::string node = "chainer";
  auto walhook = StartWalhook(db, node);

  Exec(db,
       "INSERT INTO utf8_rows VALUES (1); INSERT INTO far_rows VALUES (1); "
       "INSERT INTO poison_rows VALUES (1)");
  const long utf8 = WaitEventId(db, "utf8_hook");
  const long far = WaitEventId(db, "far_hook");
  const long poison = WaitEventId(db, "poison_hook");
  REQUIRE(utf8 > 0);
  REQUIRE(far > 0);
  REQUIRE(poison > 0);
  // Other triggers' outcomes go on being written meanwhile.
  for (int i = 1; i <= 5; ++i) {
    CHECK_MESSAGE(CalmLatency(db, calm, i).has_value(), walhook->Output());
  }
  CHECK(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'calm_hook' "
                  "AND status = 'processed'") == 5;
      },
      5s, 100ms));
  // The invalid UTF-8: the webhook took the event; what it asked for is refused.
  CHECK(WaitStatus(db, utf8, "processed"));
  CHECK(Remark(db, utf8).find("invalid UTF-8") != std::string::npos);
  // The overflow: refused as it is read, named in the remark.
  CHECK(WaitStatus(db, far, "processed"));
  CHECK(Remark(db, far).find("refused") != std::string::npos);
  // What Postgres refuses: that one event fails, saying why.
  CHECK(WaitStatus(db, poison, "failed"));
  const std::string poison_remark = Remark(db, poison);
  CHECK(poison_remark.find("could not be stored") != std::string::npos);
  CHECK(poison_remark.find("no_poison") != std::string::npos);
  // Nothing queued, nothing sent twice (a lease run out would send again).
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name IN ('x_hook', "
           "'poisoned')") == 0);
  CHECK(QL(db, "SELECT count(*) FROM eventing.invocation_logs WHERE event_id IN (" +
                   std::to_string(utf8) + ", " + std::to_string(far) + ", " +
                   std::to_string(poison) + ")") == 3);
  CHECK(hostile.Count() == 3);
  CHECK(calm.Count() == 5);

  CheckStillDelivers(&walhook, db, node, calm, 100);
  CHECK(hostile.Count() == 3);
  CHECK(calm.Count() == 7);
}

// With CURLOPT_PIPEWAIT every request to an endpoint waited behind the first
// (plain HTTP/1.1 tells nothing of multiplexing before an answer), and four
// such triggers filled the node's 256 in-flight slots with waiting handles.
TEST_CASE("hostile webhook: four hanging endpoints; another trigger still delivers within 1 s") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, kCalmTable);
  auto hang = [](const Arrival& a) {
    Reply r;
    r.hang = a.path == "/hang";
    return r;
  };
  std::vector<std::unique_ptr<Receiver>> hanging;
  for (int i = 0; i < 4; ++i) {
    hanging.push_back(std::make_unique<Receiver>(4752 + i, hang));
    const std::string table = "hang_rows_" + std::to_string(i);
    Exec(db, "CREATE TABLE " + table + " (id int PRIMARY KEY)");
    AddHook(db, {.name = "hang_hook_" + std::to_string(i),
                 .table = table,
                 .url = hanging.back()->Url("/hang"),
                 .timeout_ms = 60000});
  }
  Receiver calm(4756);
  AddCalmHook(db, calm);
  // The same server as a hanging endpoint, another path that answers.
  Exec(db, "CREATE TABLE near_rows (id int PRIMARY KEY)");
  AddHook(db, {.name = "near_hook", .table = "near_rows", .url = hanging[0]->Url("/near")});
  const std::string node = "hanger";
  auto walhook = StartWalhook(db, node);

  for (int i = 0; i < 4; ++i) {
    Exec(db,
         "INSERT INTO hang_rows_" + std::to_string(i) + " SELECT g FROM generate_series(1, 100) g");
  }
  // Requests to a hanging endpoint go out in parallel, not one after another.
  for (auto& r : hanging) {
    CHECK_MESSAGE(r->WaitForCount(16, 10s), "a hanging endpoint saw " << r->Count());
  }
  std::this_thread::sleep_for(1s);
  size_t hung = 0;
  for (auto& r : hanging) hung += r->Count();
  MESSAGE("requests hanging at the four endpoints: " << hung);
  CHECK(hung < static_cast<size_t>(Delivery::kMaxInFlight - 32));  // room left for others

  for (int i = 1; i <= 5; ++i) {
    const auto latency = CalmLatency(db, calm, i, 5s);
    REQUIRE_MESSAGE(latency.has_value(), "calm_rows " << i << " did not arrive");
    CHECK_MESSAGE(latency->count() < 1000, "calm_rows " << i << ": " << latency->count() << " ms");
    const auto before = Clock::now();
    Exec(db, "INSERT INTO near_rows VALUES (" + std::to_string(i) + ")");
    CHECK(WaitFor(
        [&] {
          size_t n = 0;
          for (const Arrival& a : hanging[0]->Arrivals()) n += a.path == "/near" ? 1 : 0;
          return n == static_cast<size_t>(i);
        },
        1s, 5ms));
    MESSAGE("same server, another path: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - before).count()
            << " ms");
  }
  REQUIRE_MESSAGE(walhook->Running(), walhook->Output());
  // After a restart, with the hanging backlog claimed again (the endpoints
  // still hang: their receivers' threads are all taken by now).
  Restart(&walhook, db, node);
  CHECK(WaitFor(
      [&] {
        return QL(db, "SELECT coalesce(sum(in_flight), 0) FROM eventing.bridge_status") >= 64;
      },
      10s, 100ms));
  for (int i = 100; i <= 102; ++i) {
    const auto latency = CalmLatency(db, calm, i, 5s);
    REQUIRE(latency.has_value());
    CHECK_MESSAGE(latency->count() < 1000, "calm_rows " << i << ": " << latency->count() << " ms");
  }
  CHECK_MESSAGE(walhook->Running(), walhook->Output());
}

// The body used to be read up to 64 KiB only: a longer one failed to parse
// and counted as a success, its "error" unseen; response_body was cut
// inside a character.
TEST_CASE("hostile webhook: bodies up to 1 MiB are judged whole; beyond, invalid or deep, said") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, kCalmTable);
  std::string accents = R"({"ab":")";
  for (int i = 0; i < 3000; ++i) accents += "\xc3\xa9";  // é
  accents += R"("})";
  const std::string late =
      R"({"pad":")" + std::string(200 << 10, 'x') + R"(","error":"failed late"})";
  const std::string huge = R"({"pad":")" + std::string(3 << 20, 'x') + R"(","error":"unseen"})";
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  Receiver hostile(4757, [&](const Arrival& a) {
    Reply r;
    if (a.path == "/late") r.body = late;
    if (a.path == "/huge") r.body = huge;
    if (a.path == "/deep") r.body = deep;
    if (a.path == "/bytes") r.body = "{\"error\":\"\xff\"}";
    if (a.path == "/accents") r.body = accents;
    return r;
  });
  Receiver calm(4758);
  AddCalmHook(db, calm);
  for (const char* name : {"late", "huge", "deep", "bytes", "accents"}) {
    Exec(db, std::string("CREATE TABLE ") + name + "_rows (id int PRIMARY KEY)");
    AddHook(db, {.name = std::string(name) + "_hook",
                 .table = std::string(name) + "_rows",
                 .url = hostile.Url(std::string("/") + name),
                 .retries = 1});
  }
  const std::string node = "bodies";
  auto walhook = StartWalhook(db, node);
  for (const char* name : {"late", "huge", "deep", "bytes", "accents"}) {
    Exec(db, std::string("INSERT INTO ") + name + "_rows VALUES (1)");
  }
  // An "error" at 200 KiB is honoured: retried, then failed.
  const long late_id = WaitEventId(db, "late_hook");
  CHECK(WaitStatus(db, late_id, "failed"));
  CHECK(Remark(db, late_id).find("failed late") != std::string::npos);
  // Over 1 MiB: a success (the webhook took the event) that says so.
  const long huge_id = WaitEventId(db, "huge_hook");
  CHECK(WaitStatus(db, huge_id, "processed"));
  CHECK(Remark(db, huge_id).find("over 1024 KiB") != std::string::npos);
  // Nested too deep, and invalid UTF-8: the same.
  const long deep_id = WaitEventId(db, "deep_hook");
  CHECK(WaitStatus(db, deep_id, "processed"));
  CHECK(Remark(db, deep_id).find("nested deeper") != std::string::npos);
  const long bytes_id = WaitEventId(db, "bytes_hook");
  CHECK(WaitStatus(db, bytes_id, "processed"));
  CHECK(Remark(db, bytes_id).find("invalid UTF-8") != std::string::npos);
  // response_body: the first 4 KiB, cut between characters.
  const long accents_id = WaitEventId(db, "accents_hook");
  CHECK(WaitStatus(db, accents_id, "processed"));
  const std::string where = " FROM eventing.invocation_logs WHERE event_id = ";
  CHECK(QL(db, "SELECT octet_length(response_body)" + where + std::to_string(accents_id)) == 4095);
  CHECK(QL(db, "SELECT position(U&'\\FFFD' IN response_body)" + where +
                   std::to_string(accents_id)) == 0);
  CHECK(QL(db, "SELECT max(octet_length(response_body))" + where + std::to_string(huge_id)) ==
        4096);
  CHECK(hostile.Count() == 6);  // late twice, the others once

  CheckStillDelivers(&walhook, db, node, calm, 1);
}

// Large answers to many requests at once share 32 MiB: a request that
// finds none left waits for some, and every body is still read whole.
TEST_CASE("hostile webhook: many large answers at once are all read whole") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, std::string(kCalmTable) +
               "; CREATE TABLE ok_rows (id int PRIMARY KEY);"
               " CREATE TABLE err_rows (id int PRIMARY KEY)");
  const std::string pad = std::string(900 << 10, 'x');
  const std::string ok = R"({"pad":")" + pad + R"(","error":""})";
  const std::string err = R"({"pad":")" + pad + R"(","error":"bad"})";
  Receiver big(4763, [&](const Arrival& a) {
    Reply r;
    r.body = a.path == "/err" ? err : ok;
    r.delay = 200ms;  // so that many are out together
    return r;
  });
  Receiver calm(4764);
  AddCalmHook(db, calm);
  AddHook(db, {.name = "ok_hook", .table = "ok_rows", .url = big.Url("/ok")});
  AddHook(db, {.name = "err_hook", .table = "err_rows", .url = big.Url("/err"), .retries = 0});
  const std::string node = "answers";
  auto walhook = StartWalhook(db, node);
  Exec(db,
       "INSERT INTO ok_rows SELECT g FROM generate_series(1, 60) g;"
       " INSERT INTO err_rows SELECT g FROM generate_series(1, 60) g");
  CHECK(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.event_logs WHERE status <> 'staged' AND "
                  "trigger_name IN ('ok_hook', 'err_hook')") == 120;
      },
      60s, 200ms));
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'ok_hook' AND "
           "status = 'processed' AND remark IS NULL") == 60);
  CHECK(QL(db,
           "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = 'err_hook' AND "
           "status = 'failed' AND remark LIKE '%with error: bad%'") == 60);
  CHECK(big.Count() == 120);  // none timed out and was sent again

  CheckStillDelivers(&walhook, db, node, calm, 1);
}

// Record used to write an outcome whatever the lease said: an event another
// node had taken over was marked with this node's outcome.
TEST_CASE("hostile webhook: an outcome is written only under this node's lease") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, std::string(kCalmTable) + "; CREATE TABLE slow_rows (id int PRIMARY KEY)");
  Receiver slow(4759, [](const Arrival&) {
    Reply r;
    r.delay = 3s;
    return r;
  });
  Receiver calm(4760);
  AddCalmHook(db, calm);
  AddHook(db, {.name = "slow_hook", .table = "slow_rows", .url = slow.Url("/slow")});
  const std::string node = "leaser";
  auto walhook = StartWalhook(db, node);
  Exec(db, "INSERT INTO slow_rows VALUES (1)");
  REQUIRE(slow.WaitForCount(1, 15s));
  const long id = WaitEventId(db, "slow_hook");
  // Another node takes the event over while this node's request is out.
  Exec(db,
       "UPDATE eventing.event_logs SET lease_owner = 'another-node', "
       "lease_until = now() + interval '1 min' WHERE id = " +
           std::to_string(id));
  // The answer comes: its attempt is logged, the event is left to its holder.
  CHECK(WaitFor(
      [&] {
        return QL(db, "SELECT count(*) FROM eventing.invocation_logs WHERE event_id = " +
                          std::to_string(id)) == 1;
      },
      10s, 100ms));
  std::this_thread::sleep_for(500ms);
  CHECK(Status(db, id) == "staged");
  CHECK(Q(db, "SELECT lease_owner FROM eventing.event_logs WHERE id = " + std::to_string(id)) ==
        "another-node");
  CHECK(QL(db, "SELECT attempts FROM eventing.event_logs WHERE id = " + std::to_string(id)) == 0);
  // Given back, it is sent again and done.
  Exec(db, "UPDATE eventing.event_logs SET lease_owner = NULL, lease_until = NULL WHERE id = " +
               std::to_string(id));
  CHECK(WaitStatus(db, id, "processed", 15s));
  CHECK(slow.Count() == 2);

  CheckStillDelivers(&walhook, db, node, calm, 1);
}

// The sweep used to load (or claim) up to 1,000 events per trigger before
// it looked at memory again: with large payloads, far past the node's 64 MiB.
TEST_CASE("hostile webhook: large events waiting on a hanging endpoint stay within 64 MiB") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Init(db);
  Exec(db, std::string(kCalmTable) + "; CREATE TABLE big_rows (id int PRIMARY KEY, body text)");
  Receiver hang(4761, [](const Arrival&) {
    Reply r;
    r.hang = true;
    return r;
  });
  Receiver calm(4762);
  AddCalmHook(db, calm);
  AddHook(db,
          {.name = "big_hook", .table = "big_rows", .url = hang.Url("/big"), .timeout_ms = 60000});
  const std::string node = "bigger";
  auto walhook = StartWalhook(db, node);
  // 30 events of 4 MiB: 120 MiB. At most 64 MiB of them are held (and sent).
  for (int i = 1; i <= 30; ++i) {
    Exec(db, "INSERT INTO big_rows VALUES (" + std::to_string(i) + ", repeat('x', 4 << 20))");
  }
  CHECK(WaitFor(
      [&] {
        return TryQL(db,
                     "SELECT count(*) FROM eventing.event_logs WHERE trigger_name = "
                     "'big_hook'") == 30;
      },
      60s, 200ms));
  REQUIRE(hang.WaitForCount(10, 20s));
  std::this_thread::sleep_for(3s);  // two sweeps at least
  MESSAGE("4 MiB requests out at once: " << hang.Count());
  CHECK(hang.Count() <= 16);

  CHECK_MESSAGE(CalmLatency(db, calm, 1).has_value(), walhook->Output());
  CHECK_MESSAGE(walhook->Running(), walhook->Output());
}

}  // namespace
}  // namespace walhook::test
