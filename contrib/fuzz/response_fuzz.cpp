// libFuzzer target: a webhook's answer as delivery reads it (SPEC §4, §9):
// any bytes as a 2xx and a 5xx body through JudgeResponse, the events a body
// chains (ParseResponseEvents) and a dlq_ payload built around it. Each gives
// a verdict, events or refusals, never a crash or a hang.
#include <cstdint>
#include <string_view>

#include "walhook/chain.h"
#include "walhook/queued_event.h"
#include "walhook/webhook_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)walhook::JudgeResponse(200, body, "");
  (void)walhook::JudgeResponse(503, body, "");
  const walhook::ResponseEvents chained = walhook::ParseResponseEvents(body);
  for (const auto& e : chained.events) {
    if (!walhook::IsCustomEventType(e.type) || e.delay_ms < 0) __builtin_trap();
  }
  (void)walhook::DlqPayload(1, "X", body, 0, "t");
  return 0;
}
