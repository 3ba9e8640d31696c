// libFuzzer target: what the API server reads from a client, as any bytes.
// The first byte chooses the size of the pieces the input is fed in (as
// reads would cut it); the parser's head goes through CheckApiHead (routes,
// token, Idempotency-Key), its body through ParseQueueRequest. Each gives a
// request, an answer or a one-line error, never a crash, a hang or more
// memory than the limits allow.
#include <cstdint>
#include <string_view>

#include "walhook/api_request.h"
#include "walhook/chain.h"
#include "walhook/http_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  walhook::HttpLimits limits;
  walhook::HttpRequestParser parser(limits);
  using State = walhook::HttpRequestParser::State;
  while (!input.empty()) {
    const size_t used = parser.Feed(input.substr(0, piece));
    input.remove_prefix(used);
    if (parser.state() == State::kHeadDone) {
      (void)walhook::CheckApiHead(parser.request(), "default", "fuzz-secret", 1800000000);
      parser.ReadBody();
    } else if (parser.state() == State::kDone) {
      const walhook::HttpRequest r = parser.TakeRequest();
      if (r.body.size() > limits.max_body_bytes) __builtin_trap();
      (void)walhook::ParseQueueRequest(r.body);
    } else if (parser.state() == State::kError) {
      if (parser.error_status() < 400 || parser.error_status() > 499) __builtin_trap();
      break;
    } else if (used == 0) {
      __builtin_trap();  // no progress while reading
    }
  }
  return 0;
}
