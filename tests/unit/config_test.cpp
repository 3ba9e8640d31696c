#include "walhook/config.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace walhook {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Args = std::vector<std::string>;
using Env = std::map<std::string, std::string>;

EnvLookup Lookup(Env env) {
  return [env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

Result<Config> Parse(const Args& args, const Env& env = {}) {
  return ParseConfig(args, Lookup(env), "host-1234");
}

// Parses and requires success.
Config Ok(const Args& args, const Env& env = {}) {
  Result<Config> r = Parse(args, env);
  INFO("error: " << (r.ok() ? std::string() : r.error()));
  REQUIRE(r.ok());
  return *r;
}

// Parses and requires an error mentioning `needle`.
std::string Fails(const Args& args, std::string_view needle, const Env& env = {}) {
  Result<Config> r = Parse(args, env);
  REQUIRE_FALSE(r.ok());
  INFO("error: " << r.error());
  CHECK(r.error().find(needle) != std::string::npos);
  return r.error();
}

const Args kMinimal = {"run", "--source", "host=src dbname=app", "--secret", "s3cret"};

Args With(Args args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
  return args;
}

// A file removed when the test ends.
class TempFile {
 public:
  explicit TempFile(std::string_view content) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "walhook_secret_XXXXXX").string();
    const int fd = mkstemp(pattern.data());
    REQUIRE(fd >= 0);
    close(fd);
    path_ = pattern;
    std::ofstream out(path_, std::ios::binary);
    out << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_CASE("config: defaults") {
  const Config c = Ok(kMinimal);
  CHECK(c.command == "run");
  CHECK(c.source == "host=src dbname=app");
  CHECK(c.eventing_db == "host=src dbname=app");  // defaults to the source
  CHECK(c.slot == "walhook");
  CHECK(c.schema == "eventing");
  CHECK(c.secret == "s3cret");
  CHECK(c.signing_secret.empty());
  CHECK(c.node_id == "host-1234");
  CHECK(c.project == "default");
  CHECK(c.listen == "127.0.0.1:4122");
  CHECK(c.watch_dirs.empty());
  CHECK(c.retention == seconds(7 * 24 * 3600));
  CHECK(c.failed_retention == seconds(30 * 24 * 3600));
  CHECK(c.log_format == LogFormat::kText);
  CHECK(c.heartbeat_interval == milliseconds(10000));
  CHECK_FALSE(c.schema_too);
}

TEST_CASE("config: every flag") {
  const Config c = Ok({"run",
                       "--source",
                       "postgres://a/b",
                       "--eventing-db",
                       "postgres://c/d",
                       "--slot",
                       "my_slot",
                       "--schema",
                       "ev2",
                       "--secret",
                       "x",
                       "--signing-secret",
                       "whsec_abc",
                       "--node-id",
                       "n1",
                       "--project",
                       "p",
                       "--listen",
                       "0.0.0.0:80",
                       "--watch-dir",
                       "/a",
                       "--retention",
                       "12h",
                       "--failed-retention",
                       "90d",
                       "--log-format",
                       "json",
                       "--heartbeat-interval",
                       "250ms"});
  CHECK(c.source == "postgres://a/b");
  CHECK(c.eventing_db == "postgres://c/d");
  CHECK(c.slot == "my_slot");
  CHECK(c.schema == "ev2");
  CHECK(c.secret == "x");
  CHECK(c.signing_secret == "whsec_abc");
  CHECK(c.node_id == "n1");
  CHECK(c.project == "p");
  CHECK(c.listen == "0.0.0.0:80");
  CHECK(c.watch_dirs == std::vector<std::string>{"/a"});
  CHECK(c.retention == seconds(12 * 3600));
  CHECK(c.failed_retention == seconds(90 * 24 * 3600));
  CHECK(c.log_format == LogFormat::kJson);
  CHECK(c.heartbeat_interval == milliseconds(250));
}

TEST_CASE("config: --flag=value form") {
  const Config c = Ok({"run", "--source=host=a port=5433", "--secret=a=b", "--slot=s1",
                       "--listen=off", "--watch-dir=/x", "--watch-dir=/y"});
  CHECK(c.source == "host=a port=5433");  // only the first '=' splits
  CHECK(c.secret == "a=b");
  CHECK(c.slot == "s1");
  CHECK(c.listen == "off");
  CHECK(c.watch_dirs == std::vector<std::string>{"/x", "/y"});
  SUBCASE("an empty inline value") {
    Fails({"run", "--source=", "--secret", "s"}, "--source");
  }
}

TEST_CASE("config: WALHOOK_* environment") {
  const Env env = {{"WALHOOK_SOURCE", "host=envsrc"},      {"WALHOOK_EVENTING_DB", "host=envev"},
                   {"WALHOOK_SECRET", "envsecret"},        {"WALHOOK_SLOT", "env_slot"},
                   {"WALHOOK_SCHEMA", "env_schema"},       {"WALHOOK_NODE_ID", "envnode"},
                   {"WALHOOK_PROJECT", "envproj"},         {"WALHOOK_LISTEN", "127.0.0.1:9000"},
                   {"WALHOOK_WATCH_DIR", "/a,/b,,/c"},     {"WALHOOK_RETENTION", "1d"},
                   {"WALHOOK_FAILED_RETENTION", "2d"},     {"WALHOOK_LOG_FORMAT", "json"},
                   {"WALHOOK_SIGNING_SECRET", "whsec_env"}};
  SUBCASE("read when no flag is given") {
    const Config c = Ok({"run"}, env);
    CHECK(c.source == "host=envsrc");
    CHECK(c.eventing_db == "host=envev");
    CHECK(c.secret == "envsecret");
    CHECK(c.slot == "env_slot");
    CHECK(c.schema == "env_schema");
    CHECK(c.node_id == "envnode");
    CHECK(c.project == "envproj");
    CHECK(c.listen == "127.0.0.1:9000");
    CHECK(c.watch_dirs == std::vector<std::string>{"/a", "/b", "/c"});
    CHECK(c.retention == seconds(24 * 3600));
    CHECK(c.failed_retention == seconds(2 * 24 * 3600));
    CHECK(c.log_format == LogFormat::kJson);
    CHECK(c.signing_secret == "whsec_env");
  }
  SUBCASE("a flag on the command line wins") {
    const Config c = Ok({"run", "--source", "host=cli", "--slot=cli_slot", "--watch-dir", "/cli",
                         "--log-format", "text", "--secret", "clisecret"},
                        env);
    CHECK(c.source == "host=cli");
    CHECK(c.slot == "cli_slot");
    CHECK(c.watch_dirs == std::vector<std::string>{"/cli"});
    CHECK(c.log_format == LogFormat::kText);
    CHECK(c.secret == "clisecret");
    // The others still come from the environment.
    CHECK(c.eventing_db == "host=envev");
    CHECK(c.schema == "env_schema");
  }
  SUBCASE("an empty variable counts as unset") {
    const Config c = Ok(kMinimal, {{"WALHOOK_SLOT", ""}, {"WALHOOK_WATCH_DIR", ""}});
    CHECK(c.slot == "walhook");
    CHECK(c.watch_dirs.empty());
  }
  SUBCASE("a bad value from the environment names the flag") {
    Fails(kMinimal, "--slot", {{"WALHOOK_SLOT", "Bad-Slot"}});
    Fails(kMinimal, "--retention", {{"WALHOOK_RETENTION", "soon"}});
  }
  SUBCASE("only WALHOOK_ variables are read") {
    Fails({"run", "--secret", "s"}, "--source", {{"SOURCE", "host=x"}, {"PGHOST", "x"}});
  }
}

TEST_CASE("config: repeatable --watch-dir") {
  const Config c =
      Ok(With(kMinimal, {"--watch-dir", "/srv/a", "--watch-dir", "/srv/b", "--watch-dir=/srv/c"}));
  CHECK(c.watch_dirs == std::vector<std::string>{"/srv/a", "/srv/b", "/srv/c"});
}

TEST_CASE("config: required flags") {
  SUBCASE("--source") {
    const std::string err = Fails({"run", "--secret", "s"}, "--source");
    CHECK(err.find("WALHOOK_SOURCE") != std::string::npos);
    Fails({"init"}, "--source");
    Fails({"status"}, "--source");
  }
  SUBCASE("--secret for run only") {
    Fails({"run", "--source", "x"}, "--secret");
    const Config c = Ok({"init", "--source", "x"});
    CHECK(c.command == "init");
    CHECK(c.secret.empty());
    CHECK(Ok({"status", "--source", "x"}).command == "status");
    CHECK(Ok({"drop", "--source", "x"}).command == "drop");
  }
  SUBCASE("a flag without its value") {
    Fails({"run", "--source"}, "--source");
    Fails(With(kMinimal, {"--slot"}), "--slot");
  }
}

TEST_CASE("config: unknown commands, flags and arguments") {
  Fails({}, "command");
  Fails({"start", "--source", "x"}, "start");
  Fails({"--source", "x", "run"}, "--source");
  Fails(With(kMinimal, {"--nope", "1"}), "--nope");
  Fails(With(kMinimal, {"--nope=1"}), "--nope");
  Fails(With(kMinimal, {"extra"}), "extra");
  Fails(With(kMinimal, {"-v"}), "-v");
  Fails(With(kMinimal, {"--Source", "x"}), "--Source");
  SUBCASE("a flag of another command") {
    Fails({"init", "--source", "x", "--secret", "s"}, "--secret");
    Fails({"status", "--source", "x", "--watch-dir", "/a"}, "--watch-dir");
    Fails(With(kMinimal, {"--schema-too"}), "--schema-too");
  }
  SUBCASE("a flag given twice") {
    Fails(With(kMinimal, {"--slot", "a", "--slot", "b"}), "--slot");
  }
}

TEST_CASE("config: --slot and --schema must be plain names") {
  for (const std::string& bad :
       std::vector<std::string>{"Walhook", "my-slot", "my slot", "", "slot!", "\xC3\xA9",
                                std::string(64, 'a'), "1slot"}) {
    CAPTURE(bad);
    Fails(With(kMinimal, {"--slot", bad}), "--slot");
    Fails(With(kMinimal, {"--schema", bad}), "--schema");
  }
  CHECK(Ok(With(kMinimal, {"--slot", std::string(63, 'a')})).slot == std::string(63, 'a'));
  CHECK(Ok(With(kMinimal, {"--slot", "_s_1"})).slot == "_s_1");
  CHECK(Ok(With(kMinimal, {"--schema", "ev_2"})).schema == "ev_2");
}

TEST_CASE("config: --listen") {
  for (const std::string& good : std::vector<std::string>{"127.0.0.1:4122", "0.0.0.0:0",
                                                          "localhost:65535", "[::1]:8080", "off"}) {
    CAPTURE(good);
    CHECK(Ok(With(kMinimal, {"--listen", good})).listen == good);
  }
  for (const std::string& bad :
       std::vector<std::string>{"4122", ":4122", "host:", "host:65536", "host:-1", "host:x",
                                "host:80x", "host: 80", "", "OFF"}) {
    CAPTURE(bad);
    Fails(With(kMinimal, {"--listen", bad}), "--listen");
  }
}

TEST_CASE("config: --retention, --failed-retention and --heartbeat-interval") {
  CHECK(Ok(With(kMinimal, {"--retention", "1h30m"})).retention == seconds(5400));
  CHECK(Ok(With(kMinimal, {"--retention", "1s"})).retention == seconds(1));
  CHECK(Ok(With(kMinimal, {"--failed-retention", "45s"})).failed_retention == seconds(45));
  for (const std::string& bad :
       std::vector<std::string>{"5x", "", "-1s", "7", "500ms", "0d", "1.5h", "d"}) {
    CAPTURE(bad);
    Fails(With(kMinimal, {"--retention", bad}), "--retention");
    Fails(With(kMinimal, {"--failed-retention", bad}), "--failed-retention");
  }
  CHECK(Ok(With(kMinimal, {"--heartbeat-interval", "100ms"})).heartbeat_interval ==
        milliseconds(100));
  CHECK(Ok(With(kMinimal, {"--heartbeat-interval", "1m"})).heartbeat_interval ==
        milliseconds(60000));
  Fails(With(kMinimal, {"--heartbeat-interval", "99ms"}), "--heartbeat-interval");
  Fails(With(kMinimal, {"--heartbeat-interval", "x"}), "--heartbeat-interval");
}

TEST_CASE("config: --log-format") {
  CHECK(Ok(With(kMinimal, {"--log-format", "json"})).log_format == LogFormat::kJson);
  CHECK(Ok(With(kMinimal, {"--log-format", "text"})).log_format == LogFormat::kText);
  CHECK(Ok({"init", "--source", "x", "--log-format", "json"}).log_format == LogFormat::kJson);
  Fails(With(kMinimal, {"--log-format", "xml"}), "--log-format");
  Fails(With(kMinimal, {"--log-format", "JSON"}), "--log-format");
}

TEST_CASE("config: --signing-secret") {
  CHECK(Ok(With(kMinimal, {"--signing-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
            .signing_secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  Fails(With(kMinimal, {"--signing-secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        "--signing-secret");
}

TEST_CASE("config: --ca-file") {
  CHECK(Ok(kMinimal).ca_file.empty());
  CHECK(Ok(With(kMinimal, {"--ca-file", "/etc/walhook/ca.pem"})).ca_file == "/etc/walhook/ca.pem");
  CHECK(Ok(kMinimal, {{"WALHOOK_CA_FILE", "/env/ca.pem"}}).ca_file == "/env/ca.pem");
  Fails({"sink", "--ca-file", "/x"}, "--ca-file");
}

TEST_CASE("config: --secret-file") {
  const Args base = {"run", "--source", "x"};
  SUBCASE("read, trailing newline and spaces trimmed") {
    const TempFile f("file-secret \t\r\n");
    const Config c = Ok(With(base, {"--secret-file", f.path()}));
    CHECK(c.secret == "file-secret");
  }
  SUBCASE("only the first line") {
    const TempFile f("first\nsecond\n");
    CHECK(Ok(With(base, {"--secret-file=" + f.path()})).secret == "first");
  }
  SUBCASE("from the environment") {
    const TempFile f("envfile");
    CHECK(Ok(base, {{"WALHOOK_SECRET_FILE", f.path()}}).secret == "envfile");
  }
  SUBCASE("an empty file is refused") {
    const TempFile empty("");
    const std::string err = Fails(With(base, {"--secret-file", empty.path()}), "--secret-file");
    CHECK(err.find("empty") != std::string::npos);
    const TempFile blank("\n  \n");
    Fails(With(base, {"--secret-file", blank.path()}), "--secret-file");
  }
  SUBCASE("a missing file is refused") {
    Fails(With(base, {"--secret-file", "/nonexistent/walhook/secret"}), "--secret-file");
  }
  SUBCASE("not both") {
    const TempFile f("x");
    Fails(With(base, {"--secret", "s", "--secret-file", f.path()}), "--secret");
    Fails(base, "--secret", {{"WALHOOK_SECRET", "s"}, {"WALHOOK_SECRET_FILE", f.path()}});
  }
  SUBCASE("the command line wins over the other one in the environment") {
    const TempFile f("from-file");
    CHECK(Ok(With(base, {"--secret-file", f.path()}), {{"WALHOOK_SECRET", "from-env"}}).secret ==
          "from-file");
    CHECK(Ok(With(base, {"--secret", "from-flag"}), {{"WALHOOK_SECRET_FILE", f.path()}}).secret ==
          "from-flag");
  }
  SUBCASE("the error never shows the secret") {
    const Result<Config> r =
        Parse({"run", "--source", "x", "--secret", "hunter2", "--signing-secret", "nope-hunter3"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("hunter3") == std::string::npos);
    CHECK(r.error().find("hunter2") == std::string::npos);
  }
}

TEST_CASE("config: drop --schema-too") {
  CHECK_FALSE(Ok({"drop", "--source", "x"}).schema_too);
  CHECK(Ok({"drop", "--source", "x", "--schema-too"}).schema_too);
  CHECK(Ok({"drop", "--schema-too", "--source", "x"}).schema_too);
  CHECK_FALSE(Ok({"drop", "--source", "x", "--schema-too=false"}).schema_too);
  CHECK(Ok({"drop", "--source", "x"}, {{"WALHOOK_SCHEMA_TOO", "true"}}).schema_too);
}

TEST_CASE("ParseDuration") {
  CHECK(ParseDuration("7d") == milliseconds(7LL * 24 * 3600 * 1000));
  CHECK(ParseDuration("30d") == milliseconds(30LL * 24 * 3600 * 1000));
  CHECK(ParseDuration("1h30m") == milliseconds(90 * 60 * 1000));
  CHECK(ParseDuration("30m") == milliseconds(30 * 60 * 1000));
  CHECK(ParseDuration("45s") == milliseconds(45000));
  CHECK(ParseDuration("500ms") == milliseconds(500));
  CHECK(ParseDuration("1m1ms") == milliseconds(60001));
  CHECK(ParseDuration("1ms1m") == milliseconds(60001));
  CHECK(ParseDuration("0s") == milliseconds(0));
  CHECK(ParseDuration("1d2h3m4s5ms") == milliseconds(((24 + 2) * 3600 + 3 * 60 + 4) * 1000LL + 5));
  for (std::string_view bad : {"", "5x", "-1s", "7", "d", "ms", "1.5h", "1h 30m", " 1h", "1h ",
                               "+1s", "1H", "1hm", "1msx", "99999999999999999999d", "0x10s"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseDuration(bad));
  }
  SUBCASE("overflow is refused, not wrapped") {
    // Each term alone fits; their sum does not fit in 64-bit milliseconds.
    CHECK_FALSE(ParseDuration("53375995583d53375995583d53375995583d"));
    CHECK_FALSE(ParseDuration("106751991167d"));
    // The largest term allowed is about INT64_MAX / 2 ms; a second one would
    // take the sum past that bound and is refused.
    std::string text;
    for (int terms = 1; terms <= 8; ++terms) {
      text += "1281023894007h";
      CAPTURE(text);
      const auto d = ParseDuration(text);
      CHECK(d.has_value() == (terms == 1));
      if (d) CHECK(d->count() == 1281023894007LL * 3600000);
    }
    CHECK(ParseDuration("1281023894007h1h").has_value() == false);
    CHECK(ParseDuration("1281023894006h1h") == milliseconds(1281023894007LL * 3600000));
  }
}

TEST_CASE("Usage names the commands and flags") {
  const std::string u = Usage();
  for (std::string_view s :
       {"run", "init", "status", "drop", "sink", "token", "--source", "--secret-file",
        "--watch-dir", "--listen", "--retention", "--fail-rate", "--ttl", "WALHOOK_"}) {
    CAPTURE(s);
    CHECK(u.find(s) != std::string::npos);
  }
}

TEST_CASE("CommandUsage: each command says what it does and lists only its flags") {
  for (std::string_view c : {"run", "init", "status", "drop", "sink", "token"}) {
    CAPTURE(c);
    const auto u = CommandUsage(c);
    REQUIRE(u.has_value());
    CHECK(u->starts_with(fmt::format("usage: walhook {} ", c)));
    CHECK(u->find("--log-format") != std::string::npos);  // every command's
  }
  CHECK(CommandUsage("run")->find("--watch-dir DIR") != std::string::npos);
  CHECK(CommandUsage("run")->find("--ttl") == std::string::npos);
  CHECK(CommandUsage("token")->find("--ttl DURATION") != std::string::npos);
  CHECK(CommandUsage("token")->find("--source") == std::string::npos);
  CHECK(CommandUsage("drop")->find("--schema-too") != std::string::npos);
  CHECK_FALSE(CommandUsage("nope").has_value());
  CHECK(CommandUsage("render")->starts_with("usage: walhook render TEMPLATE_FILE [JSON_FILE] "));
  CHECK(CommandUsage("render")->find("--string") != std::string::npos);
  CHECK(CommandUsage("render")->find("--source") == std::string::npos);
}

TEST_CASE("render: TEMPLATE_FILE [JSON_FILE] and --string; no database flags") {
  auto one = Parse({"render", "t.kriti"});
  REQUIRE(one.ok());
  CHECK(one->args == std::vector<std::string>{"t.kriti"});
  CHECK_FALSE(one->render_string);
  auto two = Parse({"render", "--string", "t.kriti", "in.json"});
  REQUIRE(two.ok());
  CHECK(two->args == std::vector<std::string>{"t.kriti", "in.json"});
  CHECK(two->render_string);
  CHECK(Parse({"render"}).error() == "render: needs TEMPLATE_FILE [JSON_FILE]");
  CHECK(Parse({"render", "a", "b", "c"}).error() == "unexpected argument \"c\"");
  CHECK(Parse({"render", "a", "--source", "x"}).error() ==
        "--source: unknown flag for walhook render");
  // Other commands still take no positional arguments.
  CHECK(Parse({"token", "x"}).error() == "unexpected argument \"x\"");
}

}  // namespace
}  // namespace walhook

namespace walhook {
namespace {

TEST_CASE("config: sink, token, and status without --source") {
  const Config sink = Ok({"sink"});
  CHECK(sink.listen == "127.0.0.1:4123");
  CHECK(sink.secret.empty());
  CHECK(sink.sink_fail_rate == 0);
  CHECK(sink.sink_status == 500);
  const Config busy =
      Ok({"sink", "--listen", "0.0.0.0:9000", "--secret", "s", "--signing-secret", "whsec_abc",
          "--fail-rate", "0.25", "--status", "503", "--delay-ms", "20"});
  CHECK(busy.listen == "0.0.0.0:9000");
  CHECK(busy.sink_fail_rate == doctest::Approx(0.25));
  CHECK(busy.sink_status == 503);
  CHECK(busy.sink_delay == milliseconds(20));
  Fails({"sink", "--fail-rate", "1.5"}, "--fail-rate");
  Fails({"sink", "--fail-rate", "x"}, "--fail-rate");
  Fails({"sink", "--status", "99"}, "--status");
  Fails({"sink", "--delay-ms", "-1"}, "--delay-ms");
  Fails({"sink", "--listen", "off"}, "--listen");
  Fails({"sink", "--source", "x"}, "--source");

  CHECK(Ok({"token", "--secret", "s"}).token_ttl == seconds(3600));
  CHECK(Ok({"token", "--secret", "s", "--ttl", "10m"}).token_ttl == seconds(600));
  Fails({"token"}, "--secret");
  Fails({"token", "--secret", "s", "--ttl", "soon"}, "--ttl");

  CHECK(Ok({"status", "--eventing-db", "e"}).eventing_db == "e");
  Fails({"status"}, "--source");
  Fails({"init", "--eventing-db", "e"}, "--source");
}

}  // namespace
}  // namespace walhook
