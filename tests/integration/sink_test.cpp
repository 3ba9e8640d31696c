// walhook sink and walhook token, with real HTTP requests (curl).

#include <signal.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "harness.h"

namespace walhook::test {
namespace {

int Curl(const std::vector<std::string>& extra, std::string* out) {
  std::vector<std::string> args = {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"};
  args.insert(args.end(), extra.begin(), extra.end());
  Process p(args);
  const int code = p.Wait(10s);
  *out = p.Output();
  return code;
}

TEST_CASE("sink: verifies X-SC-Token, answers a share with an error, one line per delivery") {
  const std::string port = "4193";
  std::string token;
  {
    Process t({WalhookBinary(), "token", "--secret", "sink-secret", "--ttl", "10m"});
    REQUIRE(t.Wait(10s) == 0);
    token = t.Output();
    while (!token.empty() && token.back() == '\n') token.pop_back();
  }
  REQUIRE(std::count(token.begin(), token.end(), '.') == 2);

  Process sink(
      {WalhookBinary(), "sink", "--listen", "127.0.0.1:" + port, "--secret", "sink-secret"});
  REQUIRE(WaitFor([&] { return sink.Output().find("listening") != std::string::npos; }, 5s));
  const std::string body =
      R"({"specversion":"1.0","id":"42","type":"DB_INSERT","source":"n","time":"t",)"
      R"("data":{"db":"d","schema":"public","col":"signups"}})";
  std::string code;
  REQUIRE(Curl({"-H", "X-SC-Token: Bearer " + token, "-d", body, "http://127.0.0.1:" + port + "/"},
               &code) == 0);
  CHECK(code == "200");
  REQUIRE(Curl({"-H", "X-SC-Token: Bearer nope", "-d", body, "http://127.0.0.1:" + port + "/"},
               &code) == 0);
  REQUIRE(WaitFor([&] { return sink.Output().find("token=BAD") != std::string::npos; }, 5s));
  CHECK(sink.Output().find("200 DB_INSERT id=42 public.signups token=ok") != std::string::npos);
  sink.Signal(SIGTERM);
  CHECK(sink.Wait(5s) == 0);

  Process failing({WalhookBinary(), "sink", "--listen", "127.0.0.1:" + port, "--fail-rate", "1",
                   "--status", "503"});
  REQUIRE(WaitFor([&] { return failing.Output().find("listening") != std::string::npos; }, 5s));
  REQUIRE(Curl({"-d", body, "http://127.0.0.1:" + port + "/"}, &code) == 0);
  CHECK(code == "503");
}

}  // namespace
}  // namespace walhook::test
