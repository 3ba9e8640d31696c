// The Kriti engine's cost per event (SPEC §11: "a few microseconds"): a
// 10-path body template over walhook's standard body (SPEC §4), rendered as
// delivery does it, the parts of the body the template reads built once per
// event (Input::Bind with its BodyPaths) and the template rendered over
// them; the two parts on their own; and the same with the whole body read. Prints ns per
// event (this thread's CPU time), the best of 5 rounds. Not a test.
// Usage: kriti_bench [EVENTS per round, default 200000]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "walhook/json.h"
#include "walhook/kriti.h"

namespace {

// An UPDATE of a products row as walhook sends it (SPEC §4).
constexpr std::string_view kBody =
    R"({"specversion":"1.0","id":"1048576","type":"DB_UPDATE","source":"walhook-node-1",)"
    R"("time":"2026-12-07T12:00:00.123Z","data":{"db":"shop","schema":"public","col":"products",)"
    R"("doc":{"id":7,"sku":"CC-0007","name":"Café Crème","price":12.50,"stock":140,)"
    R"("tags":["coffee","sale"],"meta":{"color":"brown","origin":"Colombia"},)"
    R"("updated_at":"2026-12-07 12:00:00.12+00","active":true},"find":{"id":7},)"
    R"("before":{"id":7}}})";

constexpr std::string_view kTemplate = R"({
  "objectID": {{ $body.data.doc.id }},
  "sku": {{ $body.data.doc.sku }},
  "name": {{ $body.data.doc.name }},
  "price": {{ $body.data.doc.price }},
  "stock": {{ $body.data.doc.stock }},
  "tags": {{ $body.data.doc.tags }},
  "color": {{ $body.data.doc.meta.color }},
  "table": {{ $body.data.col }},
  "op": {{ $body.type }},
  "at": {{ $body.time }}
})";

// This thread's CPU time in ns: on a shared machine, time spent waiting for a
// core is not the engine's.
double CpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

template <typename F>
double BestNsPerCall(int n, F&& f) {
  double best = 1e300;
  for (int round = 0; round < 5; ++round) {
    const double t0 = CpuNs();
    for (int i = 0; i < n; ++i) f();
    best = std::min(best, (CpuNs() - t0) / n);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  auto t = walhook::kriti::Parse(kTemplate, walhook::kriti::Mode::kJson);
  if (!t.ok()) {
    std::fprintf(stderr, "parse: %s\n", t.error().c_str());
    return 1;
  }
  const walhook::kriti::Bindings bindings{kBody, "https://search.example"};
  auto input = walhook::kriti::Input::Bind(bindings);
  auto once = walhook::kriti::Render(**t, *input);
  if (!once.ok()) {
    std::fprintf(stderr, "render: %s\n", once.error().c_str());
    return 1;
  }
  size_t sink = 0;
  const double per_event = BestNsPerCall(n, [&] {
    auto in = walhook::kriti::Input::Bind(bindings);
    sink += walhook::kriti::Render(**t, *in)->size();
  });
  // As delivery does it: only what the template reads is built.
  walhook::kriti::BodyPaths paths;
  paths.Add(**t);
  const double per_event_paths = BestNsPerCall(n, [&] {
    auto in = walhook::kriti::Input::Bind(bindings, &paths);
    sink += walhook::kriti::Render(**t, *in)->size();
  });
  const double bind = BestNsPerCall(n, [&] { sink += walhook::kriti::Input::Bind(bindings).ok(); });
  const double bind_paths =
      BestNsPerCall(n, [&] { sink += walhook::kriti::Input::Bind(bindings, &paths).ok(); });
  const double render =
      BestNsPerCall(n, [&] { sink += walhook::kriti::Render(**t, *input)->size(); });
  // For scale: json.h's CheckJson over the same body, which Bind runs first.
  const double check = BestNsPerCall(n, [&] { sink += walhook::CheckJson(kBody).ok(); });
  std::printf("body %zu bytes, result %zu bytes: %s\n", kBody.size(), once->size(), once->c_str());
  if (*walhook::kriti::Render(**t, *walhook::kriti::Input::Bind(bindings, &paths)) != *once) {
    std::fprintf(stderr, "the template's paths alone render differently\n");
    return 1;
  }
  std::printf("per event (bind + render), as delivery does: %.0f ns\n", per_event_paths);
  std::printf("  bind, the template's paths only: %.0f ns\n", bind_paths);
  std::printf("  render (10 paths):               %.0f ns\n", render);
  std::printf("the whole body read instead:       %.0f ns\n", per_event);
  std::printf("  bind, the whole body:            %.0f ns\n", bind);
  std::printf("  (CheckJson alone:                %.0f ns)\n", check);
  return sink == 0 ? 1 : 0;
}
