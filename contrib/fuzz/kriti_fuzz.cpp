// libFuzzer target: any bytes through the Kriti parser (both modes) give a
// template or a one-line error starting with its position, never a crash;
// a template that parses renders against walhook's standard body, and
// against JSON from the input, without crashing, within the limits, and
// deterministically; a JSON result is valid JSON; and over only the parts of
// the input the template reads (BodyPaths, as delivery reads the body), it
// renders the same text or the same error.
//
// Input: "<template>" or "<template>\0<JSON input>": with a NUL byte, the
// rest is bound to $ and $body as well.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "walhook/json.h"
#include "walhook/kriti.h"
#include "walhook/utf8.h"

namespace {

constexpr std::string_view kBody = R"({"specversion":"1.0","id":"42","type":"DB_UPDATE",
  "source":"node-1","time":"2026-11-28T10:00:00.123Z","data":{"db":"shop","schema":"public",
  "col":"orders","doc":{"id":1,"status":"paid","total":12.50,"big":9007199254740993,
  "note":null,"flag":true,"name":"Zo\u00eb","tags":["x","y",["z"]],"meta":{"k":1,"a b":[]}},
  "find":{"id":1},"before":{"id":1,"status":"new"}}})";

void Check(bool ok) {
  if (!ok) std::abort();
}

bool IsPositioned(const std::string& error) {
  return error.starts_with("line ") && error.find(", column ") != std::string::npos &&
         error.find('\n') == std::string::npos && walhook::IsValidUtf8(error);
}

void RenderChecked(const walhook::kriti::Template& t, walhook::kriti::Mode mode,
                   std::string_view body) {
  walhook::kriti::Limits limits;
  limits.max_output_bytes = 64 * 1024;
  limits.max_steps = 20000;
  auto input = walhook::kriti::Input::Bind({body, "https://example.test/base"});
  if (!input.ok()) {
    Check(input.error().starts_with("input: "));
    return;
  }
  auto a = walhook::kriti::Render(t, *input, limits);
  auto b = walhook::kriti::Render(t, *input, limits);
  Check(a.ok() == b.ok());
  walhook::kriti::BodyPaths paths;
  paths.Add(t);
  auto part = walhook::kriti::Input::Bind({body, "https://example.test/base"}, &paths);
  Check(part.ok());
  auto c = walhook::kriti::Render(t, *part, limits);
  Check(c.ok() == a.ok());
  if (!a.ok()) {
    Check(IsPositioned(a.error()) && a.error() == b.error() && c.error() == a.error());
    return;
  }
  Check(*a == *b && *c == *a);
  Check(a->size() <= limits.max_output_bytes);
  Check(walhook::IsValidUtf8(*a));
  if (mode == walhook::kriti::Mode::kJson) Check(walhook::CheckJson(*a, 1 << 20).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  for (auto mode : {walhook::kriti::Mode::kJson, walhook::kriti::Mode::kString}) {
    auto t = walhook::kriti::Parse(text, mode);
    if (!t.ok()) {
      Check(IsPositioned(t.error()));
      continue;
    }
    RenderChecked(**t, mode, kBody);
    if (nul != std::string_view::npos) RenderChecked(**t, mode, input.substr(nul + 1));
  }
  return 0;
}
