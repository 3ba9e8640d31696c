// libFuzzer target: the content of a logical message with walhook's prefix,
// as the capture loop reads it. Any role can write one (SPEC §9): any bytes
// give a queued event or an error, never a crash or a hang. The input goes
// through the verifier as it is (forged), as a pre-014 message, and wrapped
// in a valid MAC (so the body's parser is reached as queue_event's would be).
#include <cstdint>
#include <string>
#include <string_view>

#include "walhook/queued_event.h"

namespace {

constexpr std::string_view kKey = "0123456789abcdef0123456789abcdef";

void Check(const walhook::Result<walhook::QueuedEvent>& e) {
  if (!e.ok()) return;
  if (!walhook::IsCustomEventType(e->type) || e->delay_ms < 0) __builtin_trap();
  (void)walhook::DueMs(*e, 0);
  (void)walhook::DueMs(*e, walhook::kMaxDueMs);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const walhook::QueuedEventVerifier verifier = [] {
    walhook::QueuedEventVerifier v;
    v.SetKeys({{1, std::string(kKey)}}, walhook::Lsn(100));
    return v;
  }();
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  Check(verifier.Open(content, walhook::Lsn(200), 747));
  Check(verifier.Open(content, walhook::Lsn(50), std::nullopt));  // legacy
  const std::string signed_content =
      "hmac-sha256 1 " + walhook::HmacSha256Hex(kKey, content) + "\n" + std::string(content);
  Check(verifier.Open(signed_content, walhook::Lsn(200), 747));
  Check(walhook::ParseQueuedEvent(content));
  return 0;
}
