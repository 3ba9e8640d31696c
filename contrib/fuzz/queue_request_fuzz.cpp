// libFuzzer target: what the queue API reads from a client before and after
// the token check, as any bytes. Input: "<token>\n<body>": the token goes
// through VerifyToken (with the project key and an expired and a fresh clock),
// the body through ParseQueueRequest. Each gives a value or a one-line error,
// never a crash, a hang or an unbounded allocation.
#include <cstdint>
#include <string_view>

#include "walhook/chain.h"
#include "walhook/webhook_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view token = input.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  (void)walhook::VerifyToken(token, "fuzz-secret", 0);
  (void)walhook::VerifyToken(token, "fuzz-secret", 4102444800);  // 2100-01-01
  const auto q = walhook::ParseQueueRequest(body);
  if (q.ok() && q->event.delay_ms < 0) __builtin_trap();  // the contract says >= 0
  return 0;
}
