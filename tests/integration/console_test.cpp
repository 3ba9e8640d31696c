// The web console (SPEC §12) in headless Chromium: a real Postgres, the
// walhook binary with its API on, a real webhook receiver, and
// tests/console/console_test.mjs driving Debian's chromium through
// playwright-core (contrib/test.sh installs both). Screenshots go to
// <build>/console-screenshots/.

#include <doctest/doctest.h>
#include <httplib.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "receiver.h"

namespace walhook::test {
namespace {

constexpr const char* kSecret = "console-secret";
constexpr int kApiPort = 21250;
constexpr int kHookPort = 21251;

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// `walhook token` as a user runs it; "" when it fails.
std::string TokenOf(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{WalhookBinary(), "token", "--secret", kSecret};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Process p(argv);
  REQUIRE_MESSAGE(p.Wait(10s) == 0, p.Output());
  std::string out = p.Output();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
}

TEST_CASE("console: log in, create a trigger, watch, redeliver, HTML rows as text, in Chromium") {
  const std::string modules = Env("WALHOOK_CONSOLE_MODULES",
                                  std::string(WALHOOK_BUILD_ROOT) + "/console-test/node_modules");
  const std::string chromium = Env("WALHOOK_CHROMIUM", "/usr/bin/chromium");
  const std::string no_modules =
      "playwright-core is not in " + modules +
      ": contrib/test.sh installs it (npm install --prefix build/console-test)";
  REQUIRE_MESSAGE(std::filesystem::exists(modules + "/playwright-core/package.json"), no_modules);
  const std::string no_chromium =
      chromium + " is missing: contrib/deps.sh installs Debian's chromium";
  REQUIRE_MESSAGE(std::filesystem::exists(chromium), no_chromium);

  TempPostgres pg;
  const std::string db = pg.conninfo();
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
  Receiver hook(kHookPort, [](const Arrival& a) {
    Reply r;
    if (a.path == "/fail") r.status = 500;
    if (a.path == "/ping") r.body = R"({"response": {"pong": true}})";
    return r;
  });
  Exec(db,
       "CREATE TABLE items (id serial PRIMARY KEY, note text);"
       "CREATE TABLE other (id serial PRIMARY KEY, v text);"
       "CREATE TABLE calm (id serial PRIMARY KEY, v text);"
       "INSERT INTO eventing.triggers (name, type, table_name, url, retries) VALUES "
       "('fail-hook', 'DB_INSERT', 'other', '" +
           hook.Url("/fail") +
           "', 0), "
           "('calm-hook', 'DB_INSERT', 'calm', '" +
           hook.Url("/calm") +
           "', 3);"
           "INSERT INTO eventing.triggers (name, type, url) VALUES ('ping', 'PING', '" +
           hook.Url("/ping") + "')");

  Process walhook({WalhookBinary(), "run", "--source", db, "--secret", kSecret, "--node-id",
                   "console", "--listen", "127.0.0.1:" + std::to_string(kApiPort),
                   "--heartbeat-interval", "300ms"});
  httplib::Client api("127.0.0.1", kApiPort);
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto r = api.Get("/healthz");
                        return r && r->status == 200 &&
                               r->body.find("\"node_id\":\"console\"") != std::string::npos;
                      },
                      20s, 100ms),
                  walhook.Output());

  const std::string shots = std::string(WALHOOK_BUILD_ROOT) + "/console-screenshots";
  std::filesystem::remove_all(shots);
  Process node({"node", SourceRoot() + "/tests/console/console_test.mjs"},
               {{"WALHOOK_URL", "http://127.0.0.1:" + std::to_string(kApiPort)},
                {"ADMIN_TOKEN", TokenOf({"--role", "admin"})},
                {"USER_TOKEN", TokenOf({})},
                {"SOURCE_DB", db},
                {"RECEIVER_URL", hook.Url("")},
                {"SCREENSHOTS", shots},
                {"PLAYWRIGHT_CORE", modules + "/playwright-core"},
                {"CHROMIUM", chromium}});
  const int code = node.Wait(240s);
  const std::string out = node.Output();
  MESSAGE(out);
  INFO(walhook.Output());
  CHECK(code == 0);

  // After everything the browser sent: walhook is alive, /healthz answers,
  // an unrelated row is delivered within seconds.
  REQUIRE(walhook.Running());
  auto health = api.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  Exec(db, "INSERT INTO calm (v) VALUES ('still here')");
  CHECK(WaitFor(
      [&] {
        for (const Arrival& a : hook.Arrivals()) {
          if (a.path == "/calm" && a.body.find("still here") != std::string::npos) return true;
        }
        return false;
      },
      10s));
}

}  // namespace
}  // namespace walhook::test
