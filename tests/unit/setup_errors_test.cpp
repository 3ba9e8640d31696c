#include "walhook/errors.h"

#include <string>
#include <string_view>

#include <doctest/doctest.h>

namespace walhook {
namespace {

// The texts below are what Postgres 15.20 (Debian) and libpq print, captured
// on this machine.

TEST_CASE("SetupHint: wal_level") {
  const std::string hint =
      SetupHint("ERROR:  logical decoding requires wal_level >= logical", "walhook");
  REQUIRE_FALSE(hint.empty());
  CHECK(hint.find("wal_level = logical") != std::string::npos);
  CHECK(hint.find("restart") != std::string::npos);
}

TEST_CASE("SetupHint: wal2json not installed") {
  const std::string hint =
      SetupHint("ERROR:  could not access file \"wal2json\": No such file or directory", "walhook");
  REQUIRE_FALSE(hint.empty());
  CHECK(hint.find("not installed") != std::string::npos);
  CHECK(hint.find("postgresql-15-wal2json") != std::string::npos);
}

TEST_CASE("SetupHint: wal2json not allowed by output_plugin_libraries") {
  // pg_create_logical_replication_slot('…', 'wal2json') and START_REPLICATION
  // on a server whose output_plugin_libraries leaves wal2json out.
  const std::string_view primary =
      "ERROR:  library \"wal2json\" may not be used as an output plugin";
  const std::string full = std::string(primary) +
                           "\nHINT:  If it is safe for all REPLICATION users to use this library "
                           "as an output plugin, add it to \"output_plugin_libraries\" and reload "
                           "the server configuration.";
  for (std::string_view text : {std::string_view(full), primary}) {
    CAPTURE(text);
    const std::string hint = SetupHint(text, "walhook");
    REQUIRE_FALSE(hint.empty());
    CHECK(hint.find("output_plugin_libraries = pgoutput, test_decoding, wal2json") !=
          std::string::npos);
    CHECK(hint.find("pg_reload_conf") != std::string::npos);
  }
}

TEST_CASE("SetupHint: no REPLICATION privilege") {
  for (std::string_view text : {
           // the walsender refusing the connection, as PQerrorMessage has it
           "connection to server at \"127.0.0.1\", port 55432 failed: FATAL:  must be superuser "
           "or replication role to start walsender",
           "FATAL:  must be superuser or replication role to start walsender",
           // creating the slot through SQL as such a role
           "ERROR:  must be superuser or replication role to use replication slots",
       }) {
    CAPTURE(text);
    const std::string hint = SetupHint(text, "walhook");
    REQUIRE_FALSE(hint.empty());
    CHECK(hint.find("REPLICATION") != std::string::npos);
  }
}

TEST_CASE("SetupHint: an invalidated slot names the slot") {
  const std::string hint = SetupHint(
      "ERROR:  can no longer get changes from replication slot \"my_slot\"\n"
      "DETAIL:  This slot has been invalidated because it exceeded the maximum "
      "reserved size.",
      "my_slot");
  REQUIRE_FALSE(hint.empty());
  CHECK(hint.find("\"my_slot\"") != std::string::npos);
  CHECK(hint.find("walhook drop") != std::string::npos);
}

TEST_CASE("SetupHint: unrelated errors give no hint") {
  for (std::string_view text : {
           "",
           "ERROR:  relation \"eventing.triggers\" does not exist",
           "FATAL:  password authentication failed for user \"walhook\"",
           "connection to server at \"10.0.0.1\", port 5432 failed: Connection refused",
           "ERROR:  replication slot \"walhook\" does not exist",
           "ERROR:  replication slot \"walhook\" is active for PID 4242",
           "ERROR:  replication slot \"walhook\" already exists",
           "FATAL:  terminating connection due to administrator command",
           "server closed the connection unexpectedly",
           "ERROR:  could not access file \"other_plugin\": No such file or directory",
       }) {
    CAPTURE(text);
    CHECK(SetupHint(text, "walhook").empty());
  }
}

TEST_CASE("Exit codes and exceptions") {
  CHECK(kExitOk == 0);
  CHECK(kExitSetup == 1);
  CHECK(kExitUsage == 2);
  const FatalError f(kExitSetup, "set wal_level");
  CHECK(f.exit_code() == 1);
  CHECK(std::string(f.what()) == "set wal_level");
  const SessionError s("lost connection");
  CHECK(std::string(s.what()) == "lost connection");
}

}  // namespace
}  // namespace walhook
