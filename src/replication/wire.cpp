#include "walhook/wire.h"

#include <chrono>

namespace walhook {
namespace {

uint64_t ReadU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void WriteU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

constexpr int64_t kPgEpochOffsetUs = 946684800LL * 1000000;  // 1970 → 2000

}  // namespace

std::optional<XLogData> ParseXLogData(const char* msg, size_t size) {
  constexpr size_t kHeader = 1 + 8 + 8 + 8;
  if (size < kHeader || msg[0] != 'w') return std::nullopt;
  XLogData x;
  x.data_start = Lsn(ReadU64(msg + 1));
  x.wal_end = Lsn(ReadU64(msg + 9));
  x.send_time = static_cast<int64_t>(ReadU64(msg + 17));
  x.data = msg + kHeader;
  x.size = size - kHeader;
  return x;
}

std::optional<Keepalive> ParseKeepalive(const char* msg, size_t size) {
  if (size != 1 + 8 + 8 + 1 || msg[0] != 'k') return std::nullopt;
  Keepalive k;
  k.wal_end = Lsn(ReadU64(msg + 1));
  k.send_time = static_cast<int64_t>(ReadU64(msg + 9));
  k.reply_requested = msg[17] != 0;
  return k;
}

std::string StandbyStatus(Lsn position, int64_t now_us, bool reply_requested) {
  std::string out;
  out.reserve(34);
  out.push_back('r');
  WriteU64(&out, position.value());  // written
  WriteU64(&out, position.value());  // flushed: this is what moves the slot
  WriteU64(&out, position.value());  // applied
  WriteU64(&out, static_cast<uint64_t>(now_us));
  out.push_back(reply_requested ? 1 : 0);
  return out;
}

int64_t PgNowMicros() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::microseconds>(now).count() - kPgEpochOffsetUs;
}

}  // namespace walhook
