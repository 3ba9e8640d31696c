// The binary as an operator meets it (SPEC §13): --version and help exit 0,
// and the systemd unit that `meson install` puts beside the binary passes
// `systemd-analyze verify` with its restart and sandboxing policy intact.

#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace walhook::test {
namespace {

namespace fs = std::filesystem;

struct Ran {
  int code;
  std::string output;
};

Ran RunToEnd(const std::vector<std::string>& argv) {
  Process p(argv);
  const int code = p.Wait(60s);
  return {code, p.Output()};
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("cli: --version, help and every command's --help exit 0 and say what they do") {
  Ran v = RunToEnd({WalhookBinary(), "--version"});
  CHECK(v.code == 0);
  CHECK(v.output.starts_with("walhook "));
  Ran help = RunToEnd({WalhookBinary(), "help"});
  CHECK(help.code == 0);
  CHECK(help.output.find("--source") != std::string::npos);
  for (const char* command : {"run", "init", "status", "drop", "sink", "token", "render"}) {
    CAPTURE(command);
    for (const char* flag : {"--help", "-h"}) {
      Ran r = RunToEnd({WalhookBinary(), command, flag});
      INFO(r.output);
      CHECK(r.code == 0);
      CHECK(r.output.starts_with(std::string("usage: walhook ") + command));
    }
    Ran r = RunToEnd({WalhookBinary(), "help", command});
    CHECK(r.code == 0);
    CHECK(r.output.starts_with(std::string("usage: walhook ") + command));
  }
  // A bad flag stays exit 2, with one line naming it.
  Ran bad = RunToEnd({WalhookBinary(), "run", "--no-such-flag"});
  CHECK(bad.code == 2);
  CHECK(bad.output.find("--no-such-flag") != std::string::npos);
}

TEST_CASE("cli: meson install puts walhook.service beside the binary; systemd-analyze accepts it") {
  char tmpl[] = "/tmp/walhook-install-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const fs::path dest = tmpl;
  Ran install = RunToEnd(
      {"meson", "install", "-C", WALHOOK_BUILD_ROOT, "--no-rebuild", "--destdir", dest.string()});
  INFO(install.output);
  REQUIRE(install.code == 0);
  fs::path unit, binary, sysusers;
  for (const auto& e : fs::recursive_directory_iterator(dest)) {
    if (e.path().filename() == "walhook.service") unit = e.path();
    if (e.path().filename() == "walhook" && e.is_regular_file()) binary = e.path();
    if (e.path().parent_path().filename() == "sysusers.d") sysusers = e.path();
  }
  REQUIRE(!unit.empty());
  REQUIRE(!binary.empty());
  REQUIRE(!sysusers.empty());
  CHECK(ReadFile(sysusers).find("u walhook ") != std::string::npos);

  std::string text = ReadFile(unit);
  // ExecStart names the installed path (the prefix's bindir): the same file
  // as installed under --destdir.
  const std::string exec = "ExecStart=";
  const size_t at = text.find(exec);
  REQUIRE(at != std::string::npos);
  const size_t end = text.find(' ', at);
  const std::string installed = text.substr(at + exec.size(), end - at - exec.size());
  CHECK(dest.string() + installed == binary.string());
  for (const char* line :
       {"User=walhook", "LoadCredential=secret:", "WALHOOK_SECRET_FILE=%d/secret",
        "EnvironmentFile=", "Restart=on-failure", "RestartPreventExitStatus=1 2",
        "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"}) {
    CAPTURE(line);
    CHECK(text.find(line) != std::string::npos);
  }
  // verify checks that ExecStart is executable: point it at the file
  // installed under --destdir. Any warning (an unknown key, a bad value)
  // counts as a failure.
  text.replace(at + exec.size(), installed.size(), binary.string());
  const fs::path checked = dest / "walhook.service";
  std::ofstream(checked) << text;
  Ran verify = RunToEnd({"systemd-analyze", "verify", checked.string()});
  INFO(verify.output);
  CHECK(verify.code == 0);
  CHECK(verify.output.empty());
  fs::remove_all(dest);
}

}  // namespace
}  // namespace walhook::test

namespace walhook::test {
namespace {

// "pid: command line" of the processes whose command line mentions `needle`
// (and, when `cwd` is given, that run in that directory).
std::vector<std::string> ProcessesMentioning(const std::string& needle, const fs::path& cwd = {}) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code ec;
    if (!cwd.empty() && fs::read_symlink(e.path() / "cwd", ec) != cwd) continue;
    std::string cmdline = ReadFile(e.path() / "cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos) found.push_back(pid + ": " + cmdline);
  }
  return found;
}

TEST_CASE("cli: the quickstart's Ctrl-C stops and removes everything it started") {
  const fs::path root = WALHOOK_SOURCE_ROOT;
  const fs::path demo = root / ".walhook-demo";
  Process quickstart({"bash", (root / "contrib" / "quickstart.sh").string()});
  // Up when it says so: walhook, the sink and the demo Postgres running.
  const bool up = WaitFor(
      [&] { return quickstart.Output().find("Press Ctrl-C") != std::string::npos; }, 180s, 200ms);
  INFO(quickstart.Output());
  REQUIRE(up);
  CHECK(fs::exists(demo));
  CHECK_FALSE(ProcessesMentioning(demo.string()).empty());            // the demo's postgres
  CHECK(ProcessesMentioning("build/src/walhook", root).size() == 2);  // run and sink
  SUBCASE("Ctrl-C") {
    // The terminal signals the whole foreground process group.
    REQUIRE(kill(-quickstart.pid(), SIGINT) == 0);
  }
  SUBCASE("after walhook has stopped on its own") {
    // The cleanup must not stop at the process that is already gone.
    const auto run = ProcessesMentioning("build/src/walhook run", root);
    REQUIRE(run.size() == 1);
    REQUIRE(kill(std::stoi(run.front()), SIGTERM) == 0);
  }
  CHECK(quickstart.Wait(60s) != Process::kTimedOut);
  CHECK_FALSE(fs::exists(demo));
  const auto left = ProcessesMentioning(demo.string());
  CHECK_MESSAGE(left.empty(), left.front());
  const auto walhooks = ProcessesMentioning("build/src/walhook", root);
  CHECK_MESSAGE(walhooks.empty(), walhooks.front());
}

}  // namespace
}  // namespace walhook::test

namespace walhook::test {
namespace {

// `walhook render` (SPEC §11): how a user tries a template on a body.
TEST_CASE(
    "cli: walhook render prints a template's result as JSON; errors are one line with the "
    "position") {
  TempDir dir("render");
  const fs::path d = dir.path();
  std::ofstream(d / "body.json") << R"({"id":"42","type":"DB_INSERT","data":{"col":"products",)"
                                    R"("doc":{"id":7,"name":"Café","price":12.50}}})";
  std::ofstream(d / "ok.kriti")
      << R"({"objectID": {{ $body.data.doc.id }}, "price": {{ $.data.doc.price }},
 "name": {{ toUpper($body.data.doc.name) }}, "missing": {{ $body.data.doc.nothing }}})";
  Ran ok =
      RunToEnd({WalhookBinary(), "render", (d / "ok.kriti").string(), (d / "body.json").string()});
  INFO(ok.output);
  CHECK(ok.code == 0);
  CHECK(ok.output == "{\"objectID\":7,\"price\":12.50,\"name\":\"CAFÉ\",\"missing\":null}\n");

  // Standard input when no JSON file is given; --string for url templates.
  std::ofstream(d / "url.kriti")
      << "https://x.example/indexes/{{$body.data.col}}/documents/{{$body.data.doc.id}}";
  Ran url = RunToEnd({"bash", "-c", "\"$0\" render --string \"$1\" < \"$2\"", WalhookBinary(),
                      (d / "url.kriti").string(), (d / "body.json").string()});
  INFO(url.output);
  CHECK(url.code == 0);
  CHECK(url.output == "\"https://x.example/indexes/products/documents/7\"\n");

  // A parse error and an evaluation error: exit 1, one line with the position.
  std::ofstream(d / "bad.kriti") << "{\"a\": 1,\n \"b\": }";
  Ran bad =
      RunToEnd({WalhookBinary(), "render", (d / "bad.kriti").string(), (d / "body.json").string()});
  CHECK(bad.code == 1);
  CHECK(bad.output ==
        (d / "bad.kriti").string() + ": line 2, column 7: expected a value, found '}'\n");
  std::ofstream(d / "type.kriti") << "{{ $body.data.doc.id && true }}";
  Ran type = RunToEnd(
      {WalhookBinary(), "render", (d / "type.kriti").string(), (d / "body.json").string()});
  CHECK(type.code == 1);
  CHECK(type.output ==
        (d / "type.kriti").string() + ": line 1, column 4: && needs booleans, not a number\n");
  // Input that is not JSON, and no template at all.
  std::ofstream(d / "not.json") << "{";
  Ran notjson =
      RunToEnd({WalhookBinary(), "render", (d / "ok.kriti").string(), (d / "not.json").string()});
  CHECK(notjson.code == 1);
  CHECK(notjson.output.find("not JSON") != std::string::npos);
  Ran none = RunToEnd({WalhookBinary(), "render"});
  CHECK(none.code == 2);
}

}  // namespace
}  // namespace walhook::test
