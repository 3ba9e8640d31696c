#include "walhook/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace walhook {
namespace {

struct FlagSpec {
  std::string_view name;
  bool repeatable = false;
  bool boolean = false;
  std::vector<std::string_view> commands;  // empty: every command
  std::string_view arg;                    // the value's placeholder in help
  std::string_view help;
};

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> kSpecs = {
      {"source",
       false,
       false,
       {"run", "init", "status", "drop"},
       "CONNINFO",
       "the source database: a libpq URI or key=value string (required)"},
      {"eventing-db",
       false,
       false,
       {"run", "init", "status", "drop"},
       "CONNINFO",
       "where walhook's tables live (default: the source)"},
      {"slot",
       false,
       false,
       {"run", "init", "status", "drop"},
       "NAME",
       "the logical replication slot (default walhook)"},
      {"schema",
       false,
       false,
       {"run", "init", "status", "drop"},
       "NAME",
       "the schema of walhook's tables (default eventing)"},
      {"secret",
       false,
       false,
       {"run", "sink", "token"},
       "S",
       "the project secret (HS256); prefer --secret-file or WALHOOK_SECRET"},
      {"secret-file",
       false,
       false,
       {"run", "sink", "token"},
       "PATH",
       "a file holding the project secret"},
      {"signing-secret",
       false,
       false,
       {"run", "sink"},
       "whsec_...",
       "Standard Webhooks key: adds webhook-id, -timestamp, -signature"},
      {"ca-file",
       false,
       false,
       {"run"},
       "PATH",
       "PEM certificates to trust for https webhooks (default: the system's)"},
      {"node-id", false, false, {"run"}, "ID", "this node's name (default host name + pid)"},
      {"project",
       false,
       false,
       {"run"},
       "NAME",
       "the {project} of the queue API's path (default default)"},
      {"listen",
       false,
       false,
       {"run", "sink"},
       "ADDR:PORT",
       "the HTTP address (run: default 127.0.0.1:4122, off to disable; sink: 127.0.0.1:4123)"},
      {"watch-dir", true, false, {"run"}, "DIR", "file events from this tree (repeatable)"},
      {"retention",
       false,
       false,
       {"run"},
       "DURATION",
       "keep processed and cancelled events this long (default 7d)"},
      {"failed-retention",
       false,
       false,
       {"run"},
       "DURATION",
       "keep failed events this long (default 30d)"},
      {"log-format", false, false, {}, "text|json", "one line per record on stderr (default text)"},
      {"heartbeat-interval",
       false,
       false,
       {"run"},
       "DURATION",
       "idle time before a heartbeat lets the slot advance (default 10s)"},
      {"schema-too", false, true, {"drop"}, "", "drop the schema too"},
      {"accept-gap",
       false,
       true,
       {"init"},
       "",
       "start a new source epoch from now after the source changed (see docs/operations.md)"},
      {"fail-rate", false, false, {"sink"}, "F", "answer this share (0-1) with --status"},
      {"status", false, false, {"sink"}, "CODE", "the failing answer's status (default 500)"},
      {"delay-ms", false, false, {"sink"}, "N", "wait this long before each answer"},
      {"ttl", false, false, {"token"}, "DURATION", "the token's lifetime (default 1h)"},
      {"string",
       false,
       true,
       {"render"},
       "",
       "the template is a string template (a url, header or query parameter value)"},
  };
  return kSpecs;
}

struct CommandSpec {
  std::string_view name;
  std::string_view help;
  std::string_view args = {};  // positional arguments, for usage
};

constexpr CommandSpec kCommands[] = {
    {"run", "stream changes into event_logs and deliver them; serve the HTTP API"},
    {"init", "apply migrations and create the slot, then exit (idempotent)"},
    {"status", "print trigger_status and bridge_status as tables"},
    {"drop", "remove the replication slot (--schema-too: and the schema)"},
    {"sink", "a webhook receiver for trying things out: one line per delivery"},
    {"token", "print a JWT signed with the project secret, for the queue API"},
    {"render",
     "render a Kriti template with a JSON document (stdin without JSON_FILE) bound to $ and $body",
     " TEMPLATE_FILE [JSON_FILE]"},
};

const CommandSpec* FindCommand(std::string_view name) {
  for (const CommandSpec& c : kCommands) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

bool TakesFlag(const FlagSpec& spec, std::string_view command) {
  return spec.commands.empty() ||
         std::find(spec.commands.begin(), spec.commands.end(), command) != spec.commands.end();
}

std::string EnvName(std::string_view flag) {
  std::string out = "WALHOOK_";
  for (char c : flag) out.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return out;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool ValidIdentifier(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  if (!(std::islower(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t total_ms = 0;
  while (!text.empty()) {
    int64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || n < 0) return std::nullopt;
    text.remove_prefix(static_cast<size_t>(ptr - text.data()));
    int64_t unit_ms = 0;
    if (text.substr(0, 2) == "ms") {
      unit_ms = 1;
      text.remove_prefix(2);
    } else if (!text.empty()) {
      switch (text.front()) {
        case 's': unit_ms = 1000; break;
        case 'm': unit_ms = 60 * 1000; break;
        case 'h': unit_ms = 3600 * 1000; break;
        case 'd': unit_ms = 24 * 3600 * 1000; break;
        default: return std::nullopt;
      }
      text.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    // The sum, not only each term, stays under INT64_MAX / 2 ("…d…d…d" must not overflow).
    if (n > INT64_MAX / unit_ms / 2 || total_ms > INT64_MAX / 2 - n * unit_ms) {
      return std::nullopt;
    }
    total_ms += n * unit_ms;
  }
  return std::chrono::milliseconds(total_ms);
}

std::string Usage() {
  std::string out =
      "usage: walhook <command> [flags]    (walhook <command> --help: its flags)\n"
      "commands:\n";
  for (const CommandSpec& c : kCommands) out += fmt::format("  {:<8}{}\n", c.name, c.help);
  out +=
      "  help    this text; walhook --version prints the version\n"
      "Every flag also reads WALHOOK_<FLAG> (--eventing-db: WALHOOK_EVENTING_DB; a\n"
      "repeatable flag takes a comma-separated list); the command line wins.\n"
      "flags:\n";
  for (const FlagSpec& f : Specs()) {
    const std::string left = fmt::format("--{} {}", f.name, f.arg);
    out += fmt::format("  {:<30} {}\n", left, f.help);
  }
  return out;
}

std::optional<std::string> CommandUsage(std::string_view command) {
  const CommandSpec* c = FindCommand(command);
  if (c == nullptr) return std::nullopt;
  std::string out = fmt::format(
      "usage: walhook {}{} [flags]\n{}\nflags (each also read from "
      "WALHOOK_<FLAG>, e.g. --log-format: WALHOOK_LOG_FORMAT):\n",
      c->name, c->args, c->help);
  for (const FlagSpec& f : Specs()) {
    if (!TakesFlag(f, command)) continue;
    const std::string left = fmt::format("--{} {}", f.name, f.arg);
    out += fmt::format("  {:<30} {}\n", left, f.help);
  }
  return out;
}

Result<Config> ParseConfig(const std::vector<std::string>& args, const EnvLookup& env,
                           const std::string& hostname_pid) {
  if (args.empty()) return Status::Error("no command given (run, init, status or drop)");
  Config cfg;
  cfg.command = args[0];
  if (FindCommand(cfg.command) == nullptr) {
    return Status::Error(fmt::format(
        "unknown command \"{}\" (run, init, status, drop, sink, token or render)", cfg.command));
  }
  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, bool> from_cli;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      if (cfg.command == "render" && cfg.args.size() < 2) {
        cfg.args.push_back(arg);
        continue;
      }
      return Status::Error(fmt::format("unexpected argument \"{}\"", arg));
    }
    arg = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto spec = std::find_if(Specs().begin(), Specs().end(),
                             [&](const FlagSpec& s) { return s.name == arg; });
    if (spec == Specs().end() || !TakesFlag(*spec, cfg.command)) {
      return Status::Error(fmt::format("--{}: unknown flag for walhook {}", arg, cfg.command));
    }
    std::string value;
    if (spec->boolean) {
      value = inline_value.value_or("true");
    } else if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= args.size()) return Status::Error(fmt::format("--{}: needs a value", arg));
      value = args[++i];
    }
    if (!spec->repeatable && !values[arg].empty() && from_cli[arg]) {
      return Status::Error(fmt::format("--{}: given more than once", arg));
    }
    values[arg].push_back(value);
    from_cli[arg] = true;
  }
  for (const FlagSpec& spec : Specs()) {
    const std::string name(spec.name);
    if (from_cli[name]) continue;
    if (!spec.commands.empty() &&
        std::find(spec.commands.begin(), spec.commands.end(), cfg.command) == spec.commands.end()) {
      continue;
    }
    if (auto v = env(EnvName(spec.name)); v && !v->empty()) {
      values[name] = spec.repeatable ? SplitComma(*v) : std::vector<std::string>{*v};
    }
  }
  auto get = [&](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  };

  // --secret or --secret-file (the command line wins over the environment).
  auto read_secret = [&](bool required) -> Status {
    auto secret = get("secret");
    auto secret_file = get("secret-file");
    if (secret && secret_file && from_cli["secret"] != from_cli["secret-file"]) {
      (from_cli["secret"] ? secret_file : secret).reset();
    }
    if (secret && secret_file) {
      return Status::Error("--secret and --secret-file: give one, not both");
    }
    if (secret_file) {
      std::ifstream in(*secret_file);
      if (!in) return Status::Error(fmt::format("--secret-file: cannot read {}", *secret_file));
      std::getline(in, cfg.secret);
      while (!cfg.secret.empty() && std::isspace(static_cast<unsigned char>(cfg.secret.back()))) {
        cfg.secret.pop_back();
      }
      if (cfg.secret.empty()) {
        return Status::Error(fmt::format("--secret-file: {} is empty", *secret_file));
      }
    } else if (secret) {
      cfg.secret = *secret;
    }
    if (cfg.secret.empty() && required) {
      return Status::Error(
          "--secret or --secret-file: required (the project secret for signing; "
          "prefer --secret-file or WALHOOK_SECRET, a flag shows in ps)");
    }
    return Status::Ok();
  };
  auto parse_listen = [&](const std::string& fallback, bool may_be_off) -> Status {
    cfg.listen = get("listen").value_or(fallback);
    if (may_be_off && cfg.listen == "off") return Status::Ok();
    const auto colon = cfg.listen.rfind(':');
    int port = 0;
    const std::string port_text = colon == std::string::npos ? "" : cfg.listen.substr(colon + 1);
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (colon == std::string::npos || colon == 0 || ec != std::errc() ||
        p != port_text.data() + port_text.size() || port < 0 || port > 65535) {
      return Status::Error(fmt::format("--listen: \"{}\" is not ADDR:PORT{}", cfg.listen,
                                       may_be_off ? " or off" : ""));
    }
    return Status::Ok();
  };
  auto signing_secret = [&]() -> Status {
    cfg.signing_secret = get("signing-secret").value_or("");
    if (!cfg.signing_secret.empty() && cfg.signing_secret.rfind("whsec_", 0) != 0) {
      return Status::Error("--signing-secret: must start with whsec_ (a Standard Webhooks key)");
    }
    return Status::Ok();
  };
  if (auto f = get("log-format")) {
    if (*f == "text") {
      cfg.log_format = LogFormat::kText;
    } else if (*f == "json") {
      cfg.log_format = LogFormat::kJson;
    } else {
      return Status::Error(fmt::format("--log-format: \"{}\" is not text or json", *f));
    }
  }

  if (cfg.command == "render") {
    if (cfg.args.empty()) return Status::Error("render: needs TEMPLATE_FILE [JSON_FILE]");
    cfg.render_string = get("string").value_or("false") == "true";
    return cfg;
  }
  if (cfg.command == "sink") {
    if (Status st = read_secret(false); !st.ok()) return st;
    if (Status st = signing_secret(); !st.ok()) return st;
    if (Status st = parse_listen("127.0.0.1:4123", false); !st.ok()) return st;
    if (auto v = get("fail-rate")) {
      char* end = nullptr;
      const double rate = std::strtod(v->c_str(), &end);
      if (v->empty() || *end != '\0' || !(rate >= 0 && rate <= 1)) {
        return Status::Error(fmt::format("--fail-rate: \"{}\" is not a number from 0 to 1", *v));
      }
      cfg.sink_fail_rate = rate;
    }
    if (auto v = get("status")) {
      int code = 0;
      auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), code);
      if (ec != std::errc() || p != v->data() + v->size() || code < 100 || code > 599) {
        return Status::Error(fmt::format("--status: \"{}\" is not an HTTP status code", *v));
      }
      cfg.sink_status = code;
    }
    if (auto v = get("delay-ms")) {
      int ms = 0;
      auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), ms);
      if (ec != std::errc() || p != v->data() + v->size() || ms < 0) {
        return Status::Error(fmt::format("--delay-ms: \"{}\" is not a whole number of ms", *v));
      }
      cfg.sink_delay = std::chrono::milliseconds(ms);
    }
    return cfg;
  }
  if (cfg.command == "token") {
    if (Status st = read_secret(true); !st.ok()) return st;
    if (auto v = get("ttl")) {
      auto d = ParseDuration(*v);
      if (!d || d->count() < 1000) {
        return Status::Error(fmt::format("--ttl: \"{}\" is not a duration like 1h or 30m", *v));
      }
      cfg.token_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    return cfg;
  }

  cfg.source = get("source").value_or("");
  // status reads only the eventing database.
  const bool needs_source = !(cfg.command == "status" && get("eventing-db").has_value());
  if (cfg.source.empty() && needs_source) {
    return Status::Error(
        "--source: required (a libpq connection string or URI; or set "
        "WALHOOK_SOURCE)");
  }
  cfg.eventing_db = get("eventing-db").value_or(cfg.source);
  cfg.slot = get("slot").value_or(cfg.slot);
  if (!ValidIdentifier(cfg.slot)) {
    return Status::Error(fmt::format(
        "--slot: \"{}\" is not a valid slot name (lower case letters, digits, _; at most 63)",
        cfg.slot));
  }
  cfg.schema = get("schema").value_or(cfg.schema);
  if (!ValidIdentifier(cfg.schema)) {
    return Status::Error(fmt::format(
        "--schema: \"{}\" is not a plain identifier (lower case letters, digits, _)", cfg.schema));
  }
  cfg.schema_too = get("schema-too").value_or("false") == "true";
  cfg.accept_gap = get("accept-gap").value_or("false") == "true";
  if (cfg.command != "run") return cfg;

  if (Status st = read_secret(true); !st.ok()) return st;
  if (Status st = signing_secret(); !st.ok()) return st;
  cfg.ca_file = get("ca-file").value_or("");
  cfg.node_id = get("node-id").value_or(hostname_pid);
  cfg.project = get("project").value_or(cfg.project);
  if (Status st = parse_listen(cfg.listen, true); !st.ok()) return st;
  if (auto it = values.find("watch-dir"); it != values.end()) cfg.watch_dirs = it->second;
  for (const auto& [name, target] : std::vector<std::pair<std::string, std::chrono::seconds*>>{
           {"retention", &cfg.retention}, {"failed-retention", &cfg.failed_retention}}) {
    if (auto v = get(name)) {
      auto d = ParseDuration(*v);
      if (!d || d->count() < 1000) {
        return Status::Error(
            fmt::format("--{}: \"{}\" is not a duration like 7d, 12h or 30m", name, *v));
      }
      *target = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
  }
  if (auto v = get("heartbeat-interval")) {
    auto d = ParseDuration(*v);
    if (!d || d->count() < 100) {
      return Status::Error(
          fmt::format("--heartbeat-interval: \"{}\" is not a duration of at least 100ms", *v));
    }
    cfg.heartbeat_interval = *d;
  }
  return cfg;
}

}  // namespace walhook
