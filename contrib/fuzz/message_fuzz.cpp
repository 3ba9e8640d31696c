// libFuzzer target: the content of a logical message with walhook's prefix,
// as the capture loop reads it. Any role can write one (SPEC §9): any bytes
// give a queued event or an error, never a crash or a hang.
#include <cstdint>
#include <string_view>

#include "walhook/queued_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  const auto e = walhook::ParseQueuedEvent(content);
  if (e.ok() && (!walhook::IsCustomEventType(e->type) || e->delay_ms < 0)) __builtin_trap();
  return 0;
}
