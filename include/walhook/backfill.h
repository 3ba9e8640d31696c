#pragma once
// Backfill (SPEC §10), the pure parts: the watermark messages, a row read
// from the source turned into the Change a live INSERT of it decodes to,
// primary keys as text, and what a chunk makes once its high watermark is
// seen. The runner (src/backfill/runner.cpp) is the adapter around them.
//
// How a backfill runs (DBLog): for each chunk the runner writes a low
// watermark L into the WAL (a transactional logical message), reads up to n
// rows in primary-key order after the last key written (plus the keys left
// pending by the chunk before), hands them to the stream side, and writes a
// high watermark H. The stream side notes the keys of the table changed
// between L and H; at H it makes events for the rows whose keys did not
// change, keyed on H's commit LSN and the row's position in the chunk, and
// leaves the changed keys pending: the next chunk reads them again, after
// their change. Progress is written with the chunk's events.
// Thread-safety: plain functions and values, except BackfillChannel.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "walhook/change.h"
#include "walhook/condition.h"
#include "walhook/result.h"

namespace walhook {

// The logical message prefix of watermarks: distinct from queue_event's
// "walhook.<schema>" (which always has a dot after "walhook").
std::string WatermarkPrefix(const std::string& schema);

struct Watermark {
  int64_t backfill = 0;
  int64_t chunk = 0;
  bool high = false;
  std::string nonce;  // random, known only to the runner: no one else can forge one
};
std::string WatermarkContent(const Watermark& w);
// nullopt for anything WatermarkContent did not write.
std::optional<Watermark> ParseWatermark(std::string_view content);

// A backfill's condition: the language of SPEC §3.1 over new.* only (a row
// has no old version and no payload). Error: why not.
Result<Condition> ParseBackfillCondition(std::string_view text);

// A column of the table being backfilled, as the catalog gives it.
struct BackfillColumn {
  std::string name;
  uint32_t type_oid = 0;
  std::string type;  // format_type(), as wal2json prints the type
};

// The table as a backfill reads it.
struct BackfillTable {
  std::string schema;  // the table the trigger names (a partitioned root, or a table)
  std::string table;
  std::vector<BackfillColumn> columns;  // live columns, in attnum order
  std::vector<size_t> key;              // indexes into columns: the primary key, in index order
};

// One row read: each column's text as Postgres printed it (nullopt: NULL),
// and the leaf table it lives in (a partition, or the table itself).
struct BackfillRow {
  std::vector<std::optional<std::string>> values;
  std::string leaf_schema;
  std::string leaf_table;
  size_t bytes() const;
};

// Fills *out as the decoder would for a live INSERT of `row` (kInsert, the
// leaf's schema and table, every column with wal2json's value kinds:
// numbers unquoted, NaN and ±Infinity null, booleans, bytea's hex without
// its "\x", the rest strings; the
// primary key's names). The views point into `table` and `row`.
void RowChange(const BackfillTable& table, const BackfillRow& row, Change* out);

// The primary key of a row change as text, the same for a row read by a
// backfill and for the WAL's changes of that row: the key's JSON values as
// PayloadBuilder writes them, in `key_names`' order. `row` is the new row
// (columns) or the old key (identity). nullopt when a key column is absent.
std::optional<std::string> KeyText(const std::vector<Column>& row,
                                   const std::vector<std::string_view>& key_names);

// The primary key of `row` as the runner's queries take it: a JSON array of
// the key columns' texts.
std::string RawKey(const BackfillTable& table, const BackfillRow& row);

// The event payload: `data` (a DB_INSERT's data object) with "backfill": id
// added as its last member. REQUIRES: data is a JSON object's text.
std::string BackfillPayload(std::string_view data, int64_t id);

// The keys a chunk's window saw change, bounded: past kMaxChangedKeys keys
// (or when a change's key cannot be known) it overflows and the chunk is
// read again.
class ChangedKeys {
 public:
  static constexpr size_t kMaxChangedKeys = 100000;
  void Clear() {
    keys_.clear();
    overflow_ = false;
  }
  void Add(std::optional<std::string> key);
  void Overflow() { overflow_ = true; }
  bool overflow() const { return overflow_; }
  bool Contains(const std::string& key) const { return keys_.count(key) > 0; }
  size_t size() const { return keys_.size(); }

 private:
  std::unordered_set<std::string> keys_;
  bool overflow_ = false;
};

// What a chunk's high watermark made, from the stream side.
struct ChunkResult {
  bool redo = false;         // the chunk is to be read again (nothing was written)
  std::string why_redo;      // for the log
  int64_t emitted = 0;       // rows written (events made or the conditions said no)
  int64_t events = 0;        // events made
  std::string pending_keys;  // JSON array of RawKeys read again with the next chunk
  bool done = false;         // the last chunk: the backfill is done
};

// What the snapshot a chunk was read in did not see: transactions in
// progress (xip) and from xmax on, as 32-bit xids (what wal2json names).
struct SnapshotXids {
  uint32_t xmax = 0;
  std::unordered_set<uint32_t> xip;
  // Whether the snapshot did not see transaction `xid`'s changes.
  bool Invisible(uint32_t xid) const {
    return static_cast<int32_t>(xid - xmax) >= 0 || xip.count(xid) > 0;
  }
};
// Parses pg_snapshot_xmax and pg_snapshot_xip (xid8 texts; the xip list
// comma-separated). False for anything else.
bool ParseSnapshotXids(std::string_view xmax, std::string_view xip, SnapshotXids* out);

// A chunk handed from the runner to the stream side.
struct BackfillChunk {
  int64_t backfill = 0;
  int64_t chunk = 0;
  std::string nonce;
  std::string trigger;
  std::shared_ptr<const BackfillTable> table;
  std::shared_ptr<const Condition> condition;  // the backfill's own; null when none
  std::vector<BackfillRow> rows;               // the pending keys' rows, then the range's
  bool end_of_table = false;                   // the range read reached the table's end
  std::string last_key;                        // RawKey of the range's last row (or as before)
  SnapshotXids snapshot;                       // of the read
};

// The hand-off between the runner thread and the stream thread, one chunk
// at a time: the runner Opens a chunk before writing L, Hands it its rows
// before writing H and Waits for the stream side's result; the stream side
// Opens its window at L and Takes the chunk at H. Watermarks that do not
// match the open chunk (forged, replayed after a restart) do nothing.
// Thread-safety: all methods may be called from any thread.
class BackfillChannel {
 public:
  // Runner side.
  // `schema`.`table`: the table whose changes the window watches.
  void Open(int64_t backfill, int64_t chunk, const std::string& nonce, const std::string& schema,
            const std::string& table);
  void Hand(std::unique_ptr<BackfillChunk> chunk);
  // Waits up to `timeout_ms` for the result; nullopt when none came.
  std::optional<ChunkResult> Wait(int timeout_ms);
  // Forgets the chunk (the runner gives up on it).
  void Close();

  // Stream side. True when `w` is the open chunk's low watermark: its
  // window starts (the stream notes the changed keys of *schema.*table
  // until High).
  bool Low(const Watermark& w, std::string* schema, std::string* table);
  // For `w`, the open chunk's high watermark after its low one, returns the
  // chunk with its rows (and the channel waits for Resolve); else null.
  std::unique_ptr<BackfillChunk> High(const Watermark& w);
  void Resolve(ChunkResult result);
  // The table whose changes the open window watches, if a window is open.
  bool window_open() const { return window_open_.load(); }

  // The table a backfill reads, watched between chunks too (a change that
  // committed just before a low watermark may be missing from the chunk's
  // snapshot). Runner side: Watch when it starts, Unwatch when it ends.
  void Watch(const std::string& schema, const std::string& table);
  void Unwatch();
  // Stream side: a live change matched a trigger just now.
  void NoteLive();
  // Runner side: whether one did within the last `window`.
  bool LiveWithin(std::chrono::milliseconds window) const;

  // Writer side: a batch carrying a chunk's progress committed.
  void NoteCommitted();
  // Runner side: how many such commits so far, and a wait (up to
  // `timeout_ms`) until there are more than `seen`.
  uint64_t commits();
  void WaitCommitted(uint64_t seen, int timeout_ms);

  // Stream side: the watched table, if any; *generation is the caller's
  // copy's, refreshed when it changed. One relaxed load when none.
  bool Watching(std::string* schema, std::string* table, uint64_t* generation);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t backfill_ = 0;
  int64_t chunk_ = 0;
  std::string nonce_;
  std::string schema_, table_;
  bool low_seen_ = false;
  std::atomic<bool> window_open_{false};
  std::atomic<bool> watching_{false};
  std::atomic<uint64_t> watch_generation_{0};
  std::string watch_schema_, watch_table_;
  std::unique_ptr<BackfillChunk> handed_;
  std::optional<ChunkResult> result_;
  uint64_t commits_ = 0;
  std::atomic<std::chrono::steady_clock::rep> live_ticks_{0};  // 0: none yet
};

}  // namespace walhook
