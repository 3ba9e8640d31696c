#pragma once
// EventBatch: captured events waiting to be written to event_logs in one
// transaction. Kept in two forms, both built as events arrive: Postgres array
// literals, for a single INSERT … SELECT FROM unnest(…) round trip, and COPY
// text rows, which a large batch is written with (COPY costs Postgres about
// two thirds of the INSERT per row, and one WAL record per page instead of
// one per row). Pure. Thread-safety: one thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/lsn.h"

namespace walhook {

// An event larger than this is stored 'failed' with a remark, not sent (SPEC §7).
constexpr size_t kMaxEventBytes = 8u << 20;

// How an event reaches the dispatcher once stored.
enum class Handoff {
  kSweep,    // found by the sweep (no lease at insert)
  kOwned,    // leased to this node at insert and handed over in memory on commit
  kParked,   // leased to this node at insert; only its id is kept, and the
             // sweep loads it by id (a backlog beyond what memory holds)
  kOrdered,  // an ordered trigger's event: stored with its order key, swept in order
};

// An event leased to this node at insert, kept until the batch commits.
struct OwnedEvent {
  std::string trigger;
  std::string type;
  std::string payload;
  Lsn lsn;
  int seq = 0;
};

// An owned event as stored: its id and due time (ms since the epoch).
struct StoredEvent {
  int64_t id = 0;
  Lsn lsn;
  int seq = 0;
  std::string trigger;
  int64_t ts_ms = 0;
};

// A leased (kOwned or kParked) event of a copyable batch: its row, and what
// the COPY path returns for it as the INSERT's RETURNING does (all but the
// id, which the write gives it).
struct LeasedRow {
  size_t row = 0;
  StoredEvent stored;
};

// When an event is due, if not at its commit time: greatest(commit time, at)
// + delay (custom events queued with a delay or a time).
struct Schedule {
  int64_t delay_ms = 0;
  std::optional<int64_t> at_ms;  // ms since the epoch
  bool later() const { return delay_ms > 0 || at_ms.has_value(); }
};

// A backfill's progress after a chunk (SPEC §10), written in the same
// transaction as the chunk's events, so a restart resumes exactly after the
// last chunk written.
struct BackfillProgress {
  int64_t backfill = 0;
  int64_t rows = 0;          // rows the chunk wrote (added to rows_done)
  std::string last_key;      // JSON array: the last key read in key order
  std::string pending_keys;  // JSON array of keys to read again
  bool done = false;         // the backfill is done
};

class EventBatch {
 public:
  EventBatch() { Clear(); }

  // Adds one event. `commit_ts` is a timestamptz text ("2026-11-28 04:06:36.9+00").
  // A payload over kMaxEventBytes is recorded as 'failed' with a remark and a
  // null payload (and is never owned).
  void Add(std::string_view trigger, std::string_view type, std::string_view payload,
           std::string_view commit_ts, Lsn commit_lsn, int seq, Handoff handoff = Handoff::kSweep,
           const Schedule& schedule = {});
  // Adds an event stored 'failed' with `remark` and a null payload, never
  // leased: one that could not be stored as it was (see BatchWriter).
  void AddFailed(std::string_view trigger, std::string_view type, std::string_view commit_ts,
                 Lsn commit_lsn, int seq, const std::string& remark);

  // The events [begin, end) as a batch of their own, written with INSERT
  // (never copyable), their owned events copied. For finding the event a
  // batch cannot be stored with; the reservations stay this batch's.
  EventBatch Slice(size_t begin, size_t end) const;
  // What names event `i` (REQUIRES: i < size()).
  struct EventRef {
    std::string trigger;
    std::string type;
    std::string commit_ts;
    Lsn lsn;
    int seq = 0;
  };
  EventRef Event(size_t i) const;

  // The backfill progress this batch writes with its events (at most one).
  void SetProgress(BackfillProgress p) { progress_ = std::move(p); }
  const std::optional<BackfillProgress>& progress() const { return progress_; }

  size_t size() const { return size_; }
  // The commit LSN of the first event (the lowest: the stream is in commit order).
  Lsn first_lsn() const { return first_lsn_; }
  bool empty() const { return size_ == 0; }
  size_t bytes() const { return payloads_.size(); }
  void Clear();

  // The array literals, closed ("{…}"), for the unnest() parameters.
  std::string triggers() const { return Closed(triggers_); }
  std::string types() const { return Closed(types_); }
  std::string statuses() const { return Closed(statuses_); }
  std::string payloads() const { return Closed(payloads_); }
  std::string timestamps() const { return Closed(timestamps_); }
  std::string lsns() const { return Closed(lsns_); }
  std::string seqs() const { return Closed(seqs_); }
  std::string remarks() const { return Closed(remarks_); }
  std::string owned_flags() const { return Closed(owned_flags_); }
  std::string ordered_flags() const { return Closed(ordered_flags_); }
  std::string delays() const { return Closed(delays_); }  // ms
  std::string ats() const { return Closed(ats_); }        // ms since the epoch, or NULL

  // Whether an event is kOrdered (the sweep must look soon).
  bool has_ordered() const { return has_ordered_; }
  // Whether an event is due later than its commit (the sweep must know when).
  bool has_scheduled() const { return has_scheduled_; }
  // How many events were added as kParked (the reservations to give back
  // once the batch is written or dropped).
  size_t parked() const { return parked_; }
  // Whether the batch can be written with COPY: every event is due at its
  // commit, none has an order key (both are computed in SQL), and each
  // leased event's commit time was read (PgTimestampMs). While it is, each
  // event has a COPY text row with the columns kCopyColumns, without a line
  // end; the writer adds the id before and lease_owner, lease_until after.
  bool copyable() const { return copyable_; }
  std::string_view copy_row(size_t i) const {
    return std::string_view(rows_).substr(row_starts_[i], row_starts_[i + 1] - row_starts_[i]);
  }
  // The leased events of a copyable batch, in batch order.
  const std::vector<LeasedRow>& leased() const { return leased_; }

  // The kOwned events, in batch order.
  std::vector<OwnedEvent>& owned() { return owned_; }
  const std::vector<OwnedEvent>& owned() const { return owned_; }

 private:
  static std::string Closed(const std::string& literal);
  // Where each event starts in the literals, and what it was, for Slice.
  struct Marks {
    std::array<uint32_t, 12> pos{};  // each literal's size before the event
    int32_t owned = -1;              // its index in owned_
    bool parked = false, ordered = false, scheduled = false;
  };
  void Append(std::string_view trigger, std::string_view type, std::string_view payload,
              std::string_view commit_ts, Lsn commit_lsn, int seq, Handoff handoff,
              const Schedule& schedule, const std::optional<std::string>& remark);
  std::array<std::string*, 12> Literals();
  std::array<const std::string*, 12> Literals() const;
  std::string_view ElementText(size_t literal, size_t i) const;
  std::string Element(size_t literal, size_t i) const;
  void AddCopyRow(std::string_view trigger, std::string_view type, std::string_view status,
                  std::string_view payload, std::string_view commit_ts, Lsn commit_lsn, int seq,
                  const std::optional<std::string>& remark, bool leased);
  void StopCopy();
  size_t size_ = 0;
  Lsn first_lsn_;
  std::string triggers_, types_, statuses_, payloads_, timestamps_, lsns_, seqs_, remarks_;
  std::string owned_flags_, ordered_flags_, delays_, ats_;
  std::vector<OwnedEvent> owned_;
  std::vector<Marks> marks_;
  size_t parked_ = 0;
  bool has_ordered_ = false;
  bool has_scheduled_ = false;
  bool copyable_ = true;
  std::optional<BackfillProgress> progress_;
  std::string rows_;                // COPY rows, back to back
  std::vector<size_t> row_starts_;  // where each begins, and where the last ends
  std::vector<LeasedRow> leased_;
  std::string last_commit_ts_;  // the commit time last read, and what it read as
  std::optional<int64_t> last_commit_ms_;
};

// The columns of EventBatch's COPY rows, in order.
inline constexpr const char* kCopyColumns[] = {"trigger_name", "type",       "status",
                                               "payload",      "ts",         "event_ts",
                                               "source_lsn",   "source_seq", "remark"};

// Appends `value` to a COPY text row as one field, escaped.
void AppendCopyField(std::string* row, std::string_view value);

// Appends `value` to an open array literal as a quoted element.
void AppendArrayElement(std::string* literal, std::string_view value);

}  // namespace walhook
