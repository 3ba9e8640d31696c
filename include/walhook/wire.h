#pragma once
// The streaming replication sub-protocol inside CopyData (pure encode/decode):
// 'w' XLogData and 'k' keepalive from the server, 'r' standby status from us.
// All integers are big-endian. Thread-safety: stateless functions.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "walhook/lsn.h"

namespace walhook {

struct XLogData {
  Lsn data_start;
  Lsn wal_end;
  int64_t send_time = 0;       // microseconds since 2000-01-01
  const char* data = nullptr;  // points into the message; NUL-terminated by libpq
  size_t size = 0;
};

struct Keepalive {
  Lsn wal_end;
  int64_t send_time = 0;
  bool reply_requested = false;
};

// REQUIRES: msg[0] == 'w'. nullopt when shorter than its 25-byte header.
std::optional<XLogData> ParseXLogData(const char* msg, size_t size);
// REQUIRES: msg[0] == 'k'. nullopt when not exactly 18 bytes.
std::optional<Keepalive> ParseKeepalive(const char* msg, size_t size);

// The 34-byte 'r' message: written, flushed and applied positions (walhook
// reports one position for all three: what is durable in event_logs), the
// client's clock, and whether the server should answer at once.
std::string StandbyStatus(Lsn position, int64_t now_us, bool reply_requested);

// Microseconds since 2000-01-01 00:00 UTC, Postgres's epoch.
int64_t PgNowMicros();

}  // namespace walhook
