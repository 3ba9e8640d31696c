#pragma once
// Which source walhook captures from (SPEC §13). Events are keyed on the
// source's WAL positions; positions are only meaningful on one server and one
// timeline, and a slot that went missing means changes were not seen. So
// walhook records, per slot, the source's system identifier and timeline, the
// last LSN it confirmed, and an epoch; at each start it compares, and refuses
// to go on silently when the source changed under it. `walhook init
// --accept-gap` starts a new epoch; the epoch is part of event_logs' unique
// key, so no event of the new epoch is taken for a duplicate of an older one.
// Pure: the facts come in, a decision goes out.
// Thread-safety: plain functions and values.

#include <cstdint>
#include <optional>
#include <string>

#include "walhook/lsn.h"

namespace walhook {

// What IDENTIFY_SYSTEM says of the server.
struct SourceId {
  std::string system_identifier;
  int64_t timeline = 0;
};

// What the eventing schema recorded for a slot.
struct RecordedSource {
  SourceId id;
  int64_t epoch = 0;
  Lsn confirmed;  // invalid until walhook confirmed something on this slot
};

struct SourceFacts {
  std::string slot;
  SourceId current;
  std::optional<RecordedSource> recorded;
  bool slot_exists = false;
  bool slot_lost = false;  // wal_status = lost
  // The highest epoch of any WAL event in event_logs, if there is one.
  std::optional<int64_t> max_event_epoch;
  // The highest LSN stored for a WAL event, of the recorded epoch (for the
  // message; may be invalid).
  Lsn last_captured;
  bool accept_gap = false;  // walhook init --accept-gap
};

struct SourceDecision {
  enum class Action {
    kGoOn,      // the recorded source: use `epoch` as it is
    kRecord,    // write `epoch` and the current identity (first start, or upgrade)
    kNewEpoch,  // --accept-gap: drop the slot if it exists, record `epoch`, create the slot
    kRefuse,    // exit 1 with `message`
  };
  Action action = Action::kGoOn;
  int64_t epoch = 0;
  std::string message;  // kRefuse: one line; kNewEpoch: what was accepted
};

SourceDecision DecideSource(const SourceFacts& facts);

}  // namespace walhook
