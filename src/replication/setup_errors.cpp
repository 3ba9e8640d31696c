#include "walhook/errors.h"

#include <fmt/format.h>

namespace walhook {

std::string SetupHint(std::string_view err, std::string_view slot) {
  auto has = [&](std::string_view s) { return err.find(s) != std::string_view::npos; };
  if (has("output_plugin_libraries") || has("may not be used as an output plugin")) {
    return "the server does not allow the wal2json output plugin: run ALTER SYSTEM SET "
           "output_plugin_libraries = pgoutput, test_decoding, wal2json; then SELECT "
           "pg_reload_conf(); (or add wal2json to output_plugin_libraries in postgresql.conf)";
  }
  if (has("could not access file \"wal2json\"") || (has("wal2json") && has("No such file"))) {
    return "the wal2json output plugin is not installed on the source server: install it "
           "(Debian: apt-get install postgresql-15-wal2json) and try again";
  }
  if (has("wal_level")) {
    return "the source server's wal_level is not logical: set wal_level = logical in "
           "postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart Postgres";
  }
  if (has("replication role") || has("start WAL sender") || has("start walsender")) {
    return "the source role lacks the REPLICATION privilege: run ALTER ROLE <role> "
           "REPLICATION as a superuser, or connect as a role that has it";
  }
  if (has("can no longer get changes from replication slot") || has("has been invalidated")) {
    return fmt::format(
        "replication slot \"{}\" was invalidated by Postgres and events since its confirmed "
        "position are lost; run `walhook drop` and start again (then re-sync what changed)",
        slot);
  }
  return {};
}

}  // namespace walhook
