#pragma once
// Command-line flags and WALHOOK_* environment variables → Config (SPEC §2).
// Pure: the environment is passed in. Thread-safety: plain values.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/log.h"
#include "walhook/result.h"

namespace walhook {

struct Config {
  std::string command;            // run | init | status | drop | sink | token | render
  std::vector<std::string> args;  // render: TEMPLATE_FILE [JSON_FILE]
  bool render_string = false;     // render --string: a string template
  std::string source;
  std::string eventing_db;  // defaults to source
  std::string slot = "walhook";
  std::string schema = "eventing";
  std::string secret;
  std::string signing_secret;
  std::string ca_file;  // PEM certificates trusted for https webhooks; "" = the system's
  std::string node_id;
  std::string project = "default";
  std::string listen = "127.0.0.1:4122";
  std::vector<std::string> watch_dirs;
  std::chrono::seconds retention{7 * 24 * 3600};
  std::chrono::seconds failed_retention{30 * 24 * 3600};
  LogFormat log_format = LogFormat::kText;
  std::chrono::milliseconds heartbeat_interval{10000};
  bool schema_too = false;    // drop --schema-too
  bool accept_gap = false;    // init --accept-gap
  double sink_fail_rate = 0;  // sink: share of requests answered with sink_status
  int sink_status = 500;
  std::chrono::milliseconds sink_delay{0};
  std::chrono::seconds token_ttl{3600};  // token --ttl
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Parses argv[1..] (the subcommand first). Errors name the flag and why, for
// exit code 2. `hostname_pid` is the default node id.
Result<Config> ParseConfig(const std::vector<std::string>& args, const EnvLookup& env,
                           const std::string& hostname_pid);

// "7d", "30m", "1h30m", "45s", "500ms" → duration; nullopt when malformed.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The usage text printed by --help and `walhook help`: every command and flag.
std::string Usage();

// `walhook <command> --help`: what the command does and each flag it takes;
// nullopt for an unknown command.
std::optional<std::string> CommandUsage(std::string_view command);

}  // namespace walhook
