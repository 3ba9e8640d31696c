#pragma once
// A custom event queued from SQL (eventing.queue_event) as it arrives in the
// replication stream: a transactional logical message with walhook's prefix.
// Any role may write such a message (pg_logical_emit_message is PUBLIC), so
// the message is authenticated (SPEC §9 "Database roles"). Since
// sql/014_queue_event_key.sql queue_event writes
//   hmac-sha256 <key id> <64 hex digits>\n<body>
// where the hex is HMAC-SHA256(key, body) with a key from
// <schema>.queue_event_keys (a table only the schema's owner can read), and
// the body is a JSON header line, "\n", then the payload as jsonb printed it:
//   {"type" : "ORDER_SHIPPED", "delay_ms" : 0, "at" : null, "xid" : 747}\n{"order": 7}
// "xid" is the writing transaction's id, so a message copied out of the WAL
// and written again by another transaction does not verify either.
// Before 014, queue_event wrote the body alone (no "xid"); such a message is
// accepted only from a transaction that committed before the key was made
// (legacy_before), so an upgrade keeps the events already in the slot.
// Pure (OpenSSL for the HMAC). Thread-safety: plain functions and values; a
// QueuedEventVerifier is used by one thread at a time.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "walhook/lsn.h"
#include "walhook/result.h"

namespace walhook {

// Due times (ms since the epoch) Postgres can store: timestamptz ends in
// the year 294276; walhook refuses what reaches past the start of that year
// (a due time also adds the commit time, which is not known in advance).
inline constexpr int64_t kMaxDueMs = 9224286393600000;  // 294276-01-01 00:00:00 UTC
inline constexpr int64_t kMinDueMs = -210866803200000;  // 4714-11-24 BC 00:00:00 UTC

struct QueuedEvent {
  std::string type;
  int64_t delay_ms = 0;          // >= 0
  std::optional<int64_t> at_ms;  // ms since the epoch: not due before then
  std::optional<uint32_t> xid;   // the writing transaction, when the header says
  std::string_view payload;      // JSON text, a view into the message content
};

// Parses a message body (the part the MAC covers, or a whole pre-014
// message). The payload is checked with CheckJson (bounded depth, valid
// UTF-8); "delay_ms" and "at" are checked to lie within
// [0, kMaxDueMs] and [kMinDueMs, kMaxDueMs] (see DueMs for their sum). Errors name what is wrong,
// for the log: a message with our prefix that is not one of ours is
// skipped, never fatal.
Result<QueuedEvent> ParseQueuedEvent(std::string_view body);

// When the event is due, in ms since the epoch, for a transaction that
// committed at `commit_ms`: greatest(commit, at) + delay, computed without
// overflow; nullopt when that is past what Postgres can store (kMaxDueMs).
std::optional<int64_t> DueMs(const QueuedEvent& e, int64_t commit_ms);

// Whether `type` is a custom event type: [A-Za-z0-9_-]+ and not DB_* or FILE_*.
bool IsCustomEventType(std::string_view type);

// The key id named by a message's MAC line, if it has a well-formed one.
std::optional<int64_t> QueuedEventKeyId(std::string_view content);

// HMAC-SHA256(key, data) as 64 lowercase hex digits (for tests and tools).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// Checks messages against the keys of queue_event_keys.
class QueuedEventVerifier {
 public:
  // Replaces the keys (id → raw key bytes). `legacy_before`: messages
  // without a MAC are accepted from transactions whose commit LSN is below
  // it; invalid (the default) accepts none.
  void SetKeys(std::map<int64_t, std::string> keys, Lsn legacy_before);
  bool HasKey(int64_t id) const { return keys_.count(id) > 0; }
  size_t key_count() const { return keys_.size(); }

  // Verifies `content`, written by the transaction `xid` (when wal2json said
  // it) that committed at `commit_lsn`, and parses its body. The MAC is
  // compared in constant time. Any message queue_event did not write
  // (altered, made up, replayed from another transaction, malformed, nested
  // too deep, invalid UTF-8) is an error that says why in a few words.
  Result<QueuedEvent> Open(std::string_view content, Lsn commit_lsn,
                           std::optional<uint32_t> xid) const;

 private:
  std::map<int64_t, std::string> keys_;
  Lsn legacy_before_;
};

}  // namespace walhook
