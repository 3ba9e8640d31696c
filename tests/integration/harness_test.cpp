// Smoke tests for the integration harness itself.

#include <signal.h>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace walhook::test {
namespace {

std::string ShowSetting(pqxx::connection& conn, const std::string& name) {
  pqxx::nontransaction tx(conn);
  return tx.exec1("SHOW " + name)[0].as<std::string>();
}

// Consumes the slot's pending changes (wal2json format-version 2), one row per
// element. Polls because decoding stops at the flushed WAL position, which
// trails commits when synchronous_commit is off (PGTMP_FAST=1).
std::vector<std::string> GetChanges(pqxx::connection& conn, const std::string& slot) {
  std::vector<std::string> rows;
  WaitFor(
      [&] {
        pqxx::nontransaction tx(conn);
        pqxx::result result = tx.exec("SELECT data FROM pg_logical_slot_get_changes(" +
                                      tx.quote(slot) + ", NULL, NULL, 'format-version', '2')");
        for (const auto& row : result) rows.push_back(row[0].as<std::string>());
        return !rows.empty();
      },
      5s);
  return rows;
}

TEST_CASE("TempPostgres runs a logical cluster that decodes with wal2json") {
  std::string dir;
  {
    TempPostgres pg;
    dir = pg.dir();
    REQUIRE(pg.port() > 0);
    CHECK(pg.conninfo() == "host=127.0.0.1 port=" + std::to_string(pg.port()) +
                               " dbname=postgres user=postgres connect_timeout=5");

    {
      pqxx::connection conn(pg.conninfo());
      CHECK(ShowSetting(conn, "wal_level") == "logical");

      {
        pqxx::nontransaction tx(conn);
        tx.exec0("CREATE TABLE t (id int PRIMARY KEY, v text)");
        tx.exec("SELECT pg_create_logical_replication_slot('harness', 'wal2json')");
        tx.exec0("INSERT INTO t VALUES (1, 'one')");
      }
      // format-version 2 emits B, I, C as separate rows.
      std::vector<std::string> changes = GetChanges(conn, "harness");
      REQUIRE(changes.size() == 3);
      const std::string& insert = changes[1];
      CHECK(insert.find("\"action\":\"I\"") != std::string::npos);
      CHECK(insert.find("\"table\":\"t\"") != std::string::npos);
      CHECK(insert.find("\"one\"") != std::string::npos);
      pqxx::nontransaction tx(conn);
      tx.exec0("INSERT INTO t VALUES (2, 'two')");
    }

    pg.Restart();
    {
      pqxx::connection conn(pg.conninfo());
      pqxx::nontransaction tx(conn);
      CHECK(tx.exec1("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'harness'")[0]
                .as<int>() == 1);
    }

    pg.Kill();
    CHECK_THROWS_AS(pqxx::connection(pg.conninfo()), pqxx::broken_connection);
    pg.Start();
    {
      pqxx::connection conn(pg.conninfo());
      {
        pqxx::nontransaction tx(conn);
        CHECK(tx.exec1("SELECT count(*) FROM t")[0].as<int>() == 2);
      }
      std::vector<std::string> changes = GetChanges(conn, "harness");
      REQUIRE(changes.size() == 3);
      CHECK(changes[1].find("\"two\"") != std::string::npos);
    }

    pg.Stop();
    pg.Stop();  // Idempotent.
    pg.Start();
    pqxx::connection conn(pg.conninfo());
    CHECK(conn.is_open());
  }
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("TempPostgres without wal2json in output_plugin_libraries refuses the slot") {
  TempPostgres::Options options;
  options.allow_wal2json = false;
  options.extra_conf = "application_name = 'harness_test'";
  TempPostgres pg(options);
  pqxx::connection conn(pg.conninfo());
  CHECK(ShowSetting(conn, "application_name") == "harness_test");

  pqxx::nontransaction tx(conn);
  bool has_setting =
      tx.exec1("SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'")[0]
          .as<int>() == 1;
  if (!has_setting) {
    MESSAGE("server predates output_plugin_libraries; wal2json is always allowed");
    return;
  }
  // Postgres 15.20 says:
  //   ERROR:  library "wal2json" may not be used as an output plugin
  //   HINT:  If it is safe for all REPLICATION users to use this library as an
  //   output plugin, add it to "output_plugin_libraries" and reload the server
  //   configuration.
  // with SQLSTATE 42501 (insufficient_privilege; libpqxx 6.4 leaves
  // sqlstate() empty for it); the setting's name is only in the HINT.
  try {
    tx.exec("SELECT pg_create_logical_replication_slot('refused', 'wal2json')");
    FAIL("slot creation succeeded");
  } catch (const pqxx::insufficient_privilege& e) {
    std::string message = e.what();
    CHECK(message.find("may not be used as an output plugin") != std::string::npos);
    CHECK(message.find("output_plugin_libraries") != std::string::npos);
  }
}

TEST_CASE("TempPostgres reports a server that does not start") {
  TempPostgres::Options options;
  options.wal_level = "bogus";
  try {
    TempPostgres pg(options);
    FAIL("the server started with wal_level = bogus");
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    INFO(message);
    CHECK(message.find("invalid value for parameter \"wal_level\"") != std::string::npos);
  }
}

TEST_CASE("Process captures output and exit status") {
  Process echo({"/bin/sh", "-c", "echo hi; echo err >&2; exit 3"});
  CHECK(echo.pid() > 0);
  CHECK(echo.Wait(5s) == 3);
  CHECK(echo.Wait(0ms) == 3);
  CHECK_FALSE(echo.Running());
  CHECK(echo.Output() == "hi\nerr\n");

  Process env({"sh", "-c", "echo \"$HARNESS_VAR\"; exec sleep 30"}, {{"HARNESS_VAR", "from-env"}});
  CHECK(WaitFor([&] { return env.Output() == "from-env\n"; }, 5s));
  CHECK(env.Running());
  CHECK(env.Wait(10ms) == Process::kTimedOut);
  env.Signal(SIGTERM);
  CHECK(env.Wait(5s) == -SIGTERM);

  CHECK_THROWS_AS(Process({"/nonexistent/walhook-harness"}), std::runtime_error);
  CHECK_FALSE(WaitFor([] { return false; }, 20ms, 5ms));
}

}  // namespace
}  // namespace walhook::test
