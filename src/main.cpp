// walhook: flags → config → wiring; nothing else.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <pqxx/pqxx>

#include "walhook/bridge.h"
#include "walhook/config.h"
#include "walhook/errors.h"
#include "walhook/json.h"
#include "walhook/kriti.h"
#include "walhook/log.h"
#include "walhook/sink.h"
#include "walhook/store.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

void OnSignal(int sig) {
  Bridge::RequestStop();
  // A second signal ends the process at once (default action).
  signal(sig, SIG_DFL);
}

// For run: the first SIGTERM/SIGINT finishes the batch in hand and confirms.
void InstallSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns so the loop sees the stop
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

std::string DefaultNodeId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "walhook");
  return fmt::format("{}-{}", host, getpid());
}

void PrintTable(const pqxx::result& rows) {
  std::vector<size_t> width(static_cast<size_t>(rows.columns()));
  for (pqxx::row::size_type c = 0; c < rows.columns(); ++c) {
    width[static_cast<size_t>(c)] = std::string_view(rows.column_name(c)).size();
  }
  for (const auto& r : rows) {
    for (pqxx::row::size_type c = 0; c < rows.columns(); ++c) {
      width[static_cast<size_t>(c)] =
          std::max(width[static_cast<size_t>(c)], std::string_view(r[c].c_str()).size());
    }
  }
  std::string line;
  for (pqxx::row::size_type c = 0; c < rows.columns(); ++c) {
    line += fmt::format("{}{:<{}}", c == 0 ? "" : " | ", rows.column_name(c),
                        width[static_cast<size_t>(c)]);
  }
  fmt::print("{}\n{}\n", line, std::string(line.size(), '-'));
  for (const auto& r : rows) {
    line.clear();
    for (pqxx::row::size_type c = 0; c < rows.columns(); ++c) {
      line +=
          fmt::format("{}{:<{}}", c == 0 ? "" : " | ", r[c].c_str(), width[static_cast<size_t>(c)]);
    }
    fmt::print("{}\n", line);
  }
  fmt::print("({} row{})\n\n", rows.size(), rows.size() == 1 ? "" : "s");
}

int Status(const Config& cfg) {
  pqxx::connection conn(cfg.eventing_db);
  pqxx::read_transaction tx(conn);
  const std::string s = conn.quote_name(cfg.schema);
  fmt::print("{}.trigger_status\n", cfg.schema);
  PrintTable(tx.exec(fmt::format("SELECT * FROM {}.trigger_status", s)));
  fmt::print("{}.bridge_status\n", cfg.schema);
  PrintTable(tx.exec(fmt::format("SELECT * FROM {}.bridge_status", s)));
  // Backfills running, and those that ended in the last day (SPEC §10).
  if (!tx.exec_params1("SELECT to_regclass($1) IS NULL", s + ".backfills")[0].as<bool>()) {
    fmt::print("{}.backfills\n", cfg.schema);
    PrintTable(tx.exec(fmt::format(
        "SELECT id, trigger_name, state, rows_done, rows_estimate, started_at, finished_at, error "
        "FROM {}.backfills WHERE state = 'running' OR finished_at > now() - interval '1 day' "
        "ORDER BY id",
        s)));
  }
  return kExitOk;
}

int Drop(const Config& cfg) {
  SourceCatalog catalog(cfg.source);
  if (catalog.Slot(cfg.slot).exists) {
    catalog.DropSlot(cfg.slot);
    LogInfo("dropped replication slot \"{}\"", cfg.slot);
  } else {
    LogInfo("replication slot \"{}\" does not exist; nothing to drop", cfg.slot);
  }
  if (cfg.schema_too) {
    pqxx::connection conn(cfg.eventing_db);
    pqxx::work tx(conn);
    tx.exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", conn.quote_name(cfg.schema)));
    tx.commit();
    LogInfo("dropped schema {}", cfg.schema);
  }
  return kExitOk;
}

// `walhook render TEMPLATE_FILE [JSON_FILE]` (SPEC §11): the result as JSON
// on stdout, exit 0; a template that does not parse or evaluate, or input
// that is not JSON: one line on stderr, exit 1.
int Render(const Config& cfg) {
  auto read = [](const std::string& path, std::string* out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::stringstream ss;
    ss << in.rdbuf();
    *out = ss.str();
    return true;
  };
  const std::string& template_file = cfg.args[0];
  std::string text;
  if (!read(template_file, &text)) {
    std::fprintf(stderr, "walhook render: cannot read %s\n", template_file.c_str());
    return kExitSetup;
  }
  std::string json;
  const std::string json_name = cfg.args.size() > 1 ? cfg.args[1] : "stdin";
  if (cfg.args.size() > 1) {
    if (!read(cfg.args[1], &json)) {
      std::fprintf(stderr, "walhook render: cannot read %s\n", json_name.c_str());
      return kExitSetup;
    }
  } else {
    json.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  const kriti::Mode mode = cfg.render_string ? kriti::Mode::kString : kriti::Mode::kJson;
  auto t = kriti::Parse(text, mode);
  if (!t.ok()) {
    std::fprintf(stderr, "%s: %s\n", template_file.c_str(), t.error().c_str());
    return kExitSetup;
  }
  auto input = kriti::Input::Bind(kriti::Bindings{json, ""});
  if (!input.ok()) {
    std::fprintf(stderr, "%s: %s\n", json_name.c_str(), input.error().c_str());
    return kExitSetup;
  }
  auto out = kriti::Render(**t, *input);
  if (!out.ok()) {
    std::fprintf(stderr, "%s: %s\n", template_file.c_str(), out.error().c_str());
    return kExitSetup;
  }
  if (mode == kriti::Mode::kString) {
    // A string template's text, printed as a JSON string.
    JsonBuffer buf;
    JsonWriter w(buf);
    w.String(out->data(), static_cast<rapidjson::SizeType>(out->size()));
    fmt::print("{}\n", buf.GetString());
  } else {
    fmt::print("{}\n", *out);
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    // `walhook help run` is `walhook run --help`.
    const auto command = args.size() > 1 ? CommandUsage(args[1]) : std::nullopt;
    std::fputs(command ? command->c_str() : Usage().c_str(), args.empty() ? stderr : stdout);
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (std::find_if(args.begin() + 1, args.end(),
                   [](const std::string& a) { return a == "--help" || a == "-h"; }) != args.end()) {
    if (const auto usage = CommandUsage(args[0])) {
      std::fputs(usage->c_str(), stdout);
      return kExitOk;
    }
  }
  if (args[0] == "--version" || args[0] == "version") {
    fmt::print("walhook {}\n", WALHOOK_VERSION);
    return kExitOk;
  }
  auto env = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  Result<Config> cfg = ParseConfig(args, env, DefaultNodeId());
  if (!cfg.ok()) {
    std::fprintf(stderr, "walhook: %s\n", cfg.error().c_str());
    return kExitUsage;
  }
  SetLogFormat(cfg->log_format);
  signal(SIGPIPE, SIG_IGN);
  // libpq's default; a connection attempt to a silent host must not hang.
  setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);
  try {
    if (cfg->command == "run") {
      InstallSignals();
      return Bridge(*cfg).Run();
    }
    if (cfg->command == "init") {
      InstallSignals();
      Bridge(*cfg).Init();
      LogInfo("migrations applied and slot \"{}\" ready", cfg->slot);
      return kExitOk;
    }
    if (cfg->command == "status") return Status(*cfg);
    if (cfg->command == "sink") return RunSink(*cfg);
    if (cfg->command == "token") {
      const int64_t now = static_cast<int64_t>(std::time(nullptr));
      fmt::print("{}\n",
                 SignProjectToken(cfg->secret, now, cfg->token_ttl.count(), cfg->token_role));
      return kExitOk;
    }
    if (cfg->command == "drop") return Drop(*cfg);
    if (cfg->command == "render") return Render(*cfg);
  } catch (const FatalError& e) {
    LogError("{}", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    // status and drop do not retry: say what failed and exit.
    LogError("{}", e.what());
    return kExitSetup;
  }
  return kExitUsage;
}

}  // namespace
}  // namespace walhook

int main(int argc, char** argv) {
  return walhook::Main(argc, argv);
}
