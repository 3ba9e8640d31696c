#include "walhook/bridge.h"

#include <poll.h>

#include <chrono>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "walhook/backfill.h"
#include "walhook/backfill_runner.h"
#include "walhook/batch_writer.h"
#include "walhook/decoder.h"
#include "walhook/delivery.h"
#include "walhook/errors.h"
#include "walhook/event_batch.h"
#include "walhook/file_watcher.h"
#include "walhook/http_api.h"
#include "walhook/log.h"
#include "walhook/matcher.h"
#include "walhook/metrics.h"
#include "walhook/payload.h"
#include "walhook/queued_event.h"
#include "walhook/replication_stream.h"
#include "walhook/store.h"
#include "walhook/timestamp.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::atomic<bool> g_stop{false};

// A batch is written when the stream has nothing more right now, or when it
// holds this many events or bytes, or is this old.
constexpr size_t kBatchEvents = 5000;
constexpr size_t kBatchBytes = 16u << 20;
constexpr milliseconds kBatchAge{20};
// Connections writing batches at once: two keep both cores busy under load.
constexpr int kWriters = 2;
// A status update goes out at least every 10 s, quiet or not: sent every
// 5 s, a stall of the loop (a slow report write) does not break that.
constexpr milliseconds kStatusInterval{5000};
constexpr milliseconds kReportInterval{1000};
constexpr milliseconds kTriggerRecheck{10000};
constexpr auto kMaxBackoff = std::chrono::seconds(30);

std::string EscapeFilter(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '.' || c == '*' || c == ' ' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void SleepUnlessStopped(milliseconds d) {
  const auto until = Clock::now() + d;
  while (!g_stop && Clock::now() < until) std::this_thread::sleep_for(milliseconds(50));
}

// Says refused input at most once a minute (SPEC §9): a flood of forged
// messages must not flood the log. The next line says how many were not said.
class RefusalLog {
 public:
  void Say(std::string line) {
    const auto now = Clock::now();
    if (said_ && now - last_ < std::chrono::minutes(1)) {
      ++unsaid_;
      return;
    }
    if (unsaid_ > 0) line += fmt::format(" ({} more refused since the last such line)", unsaid_);
    LogWarn("{}", line);
    said_ = true;
    last_ = now;
    unsaid_ = 0;
  }

 private:
  bool said_ = false;
  Clock::time_point last_;
  uint64_t unsaid_ = 0;
};

// Delivery takes each committed batch's events; a backfill runner waiting
// for its chunk to be written hears of a committed chunk at once.
class CommitFanout : public CommitListener {
 public:
  CommitFanout(Delivery& delivery, BackfillChannel& backfills)
      : delivery_(delivery), backfills_(backfills) {}
  void Committed(EventBatch& batch, const std::vector<StoredEvent>& stored) override {
    const bool chunk = batch.progress().has_value();
    delivery_.Committed(batch, stored);
    if (chunk) backfills_.NoteCommitted();
  }
  void Dropped(EventBatch& batch) override { delivery_.Dropped(batch); }

 private:
  Delivery& delivery_;
  BackfillChannel& backfills_;
};

// Everything one streaming session holds. Lives only inside Bridge::Session.
class Streamer {
 public:
  Streamer(const Config& cfg, EventStore& store, BatchWriter& writer, SourceCatalog& catalog,
           Delivery& delivery, BackfillChannel& backfills, Lsn confirmed)
      : cfg_(cfg),
        store_(store),
        writer_(writer),
        catalog_(catalog),
        delivery_(delivery),
        backfills_(backfills),
        message_prefix_(MessagePrefix(cfg.schema)),
        watermark_prefix_(WatermarkPrefix(cfg.schema)),
        confirmed_(confirmed) {
    db_ = catalog_.Database();
    ReadKeys();
  }

  // The batch being built holds what delivery reserved for its events
  // (Reserve, Park) until the writer takes it: a session that ends before
  // then, on any path (an error, a stop), gives them back here.
  ~Streamer() {
    if (!batch_.empty()) delivery_.Dropped(batch_);
  }
  Streamer(const Streamer&) = delete;
  Streamer& operator=(const Streamer&) = delete;

  void ReloadTriggers() {
    std::vector<Trigger> triggers = store_.LoadTriggers();
    const std::vector<TriggerHealth> health = catalog_.Validate(&triggers);
    store_.WriteTriggerHealth(health);
    waiting_for_.clear();
    for (const TriggerHealth& h : health) {
      if (!h.waiting_for.empty()) waiting_for_.insert(h.waiting_for);
    }
    matcher_ = Matcher(std::move(triggers));
    ReadKeys();  // a key added or removed (rotation)
    tables_.clear();
    last_reload_ = Clock::now();
    recheck_ = false;
  }

  void Stream(ReplicationStream& repl) {
    auto last_status = Clock::now();
    auto last_report = Clock::now() - kReportInterval;
    last_data_ = Clock::now();
    Lsn sent_status;
    ReplicationStream::Message msg;
    for (;;) {
      GlobalMetrics().Beat(NodeRole::kStreaming);
      bool drained = false;
      bool reply = false;
      for (int i = 0; i < 10000 && batch_.size() < kBatchEvents && batch_.bytes() < kBatchBytes;
           ++i) {
        const auto r = repl.Next(&msg);
        if (r == ReplicationStream::Read::kWouldBlock) {
          drained = true;
          break;
        }
        if (r == ReplicationStream::Read::kEnd) throw SessionError("the server ended the stream");
        reply |= Handle(msg.bytes.get(), msg.size);
      }
      const auto now = Clock::now();
      // A full batch goes to the writer at once. Otherwise a batch waits while
      // the writer is busy, so batches grow with the load instead of paying a
      // commit each; with the writer free, it goes when the stream is drained.
      const bool full = batch_.size() >= kBatchEvents || batch_.bytes() >= kBatchBytes;
      if (full || ((drained || now - batch_started_ >= kBatchAge) && writer_.CanTakeMore()))
        Flush();
      confirmed_ = std::max(confirmed_, writer_.Durable());
      if (g_stop) {
        Flush();
        writer_.Drain();
        confirmed_ = std::max(confirmed_, writer_.Durable());
        repl.SendStatus(confirmed_, false);
        repl.Finish();
        LogInfo("stopped; slot \"{}\" confirmed at {}", cfg_.slot, confirmed_);
        return;
      }
      if (reply || confirmed_ != sent_status || now - last_status >= kStatusInterval) {
        // Confirms are cheap but not free: at most every 100 ms unless asked.
        if (reply || now - last_status >= milliseconds(100)) {
          repl.SendStatus(confirmed_, reply);
          sent_status = confirmed_;
          last_status = now;
        }
      }
      if (now - last_report >= kReportInterval) {
        Report(now - last_report);
        last_report = now;
        if (store_.TriggersChanged() || recheck_ || now - last_reload_ >= kTriggerRecheck) {
          ReloadTriggers();
        }
      }
      if (!in_txn_ && Quiet() && now - last_data_ >= cfg_.heartbeat_interval) {
        catalog_.Heartbeat(HeartbeatPrefix());
        last_data_ = now;
      }
      if (drained) Wait(repl);
    }
  }

 private:
  std::string HeartbeatPrefix() const { return "walhook.heartbeat"; }

  // Nothing captured waits to be written: positions seen can be confirmed.
  bool Quiet() { return batch_.empty() && !batch_complete_.valid() && writer_.Idle(); }

  void Wait(ReplicationStream& repl) {
    pollfd fds[2] = {{repl.socket(), POLLIN, 0}, {store_.socket(), POLLIN, 0}};
    // While batches are being written, wake soon to confirm them.
    const int timeout = writer_.Idle() ? 100 : 2;
    const int n = ::poll(fds, 2, timeout);
    if (n > 0 && (fds[1].revents & POLLIN) != 0 && store_.TriggersChanged()) ReloadTriggers();
  }

  // Returns true when the server asked for an immediate reply.
  bool Handle(char* data, size_t size) {
    if (size == 0) return false;
    if (data[0] == 'k') {
      auto k = ParseKeepalive(data, size);
      if (!k) throw SessionError("malformed keepalive message from the server");
      server_end_ = std::max(server_end_, k->wal_end);
      // Nothing pending: everything up to the server's position is handled.
      if (!in_txn_ && Quiet()) confirmed_ = std::max(confirmed_, k->wal_end);
      return k->reply_requested;
    }
    if (data[0] != 'w') throw SessionError("unexpected message type from the server");
    auto x = ParseXLogData(data, size);
    if (!x) throw SessionError("malformed XLogData message from the server");
    last_data_ = Clock::now();
    server_end_ = std::max(server_end_, x->wal_end);
    Status st = decoder_.Decode(const_cast<char*>(x->data), x->size, x->data_start, &change_);
    if (!st.ok()) {
      // A begin or commit cannot be skipped: the transaction's position and
      // confirmation depend on it. Start over from the confirmed position.
      if (decoder_.boundary()) {
        throw SessionError(fmt::format("slot \"{}\": {}", cfg_.slot, st.message()));
      }
      // A row change came from wal2json itself; skipping it loses at most that
      // change, and the log names where.
      LogError("slot \"{}\": {}; change skipped", cfg_.slot, st.message());
      return false;
    }
    switch (change_.kind) {
      case ChangeKind::kBegin:
        in_txn_ = true;
        txn_lsn_ = change_.lsn;
        txn_end_ = change_.next_lsn;
        txn_ts_.assign(change_.timestamp);
        txn_xid_ = change_.xid;
        seq_ = 0;
        break;
      case ChangeKind::kCommit:
        in_txn_ = false;
        if (Quiet()) {
          confirmed_ = std::max(confirmed_, txn_end_);
        } else {
          batch_complete_ = txn_end_;
        }
        break;
      case ChangeKind::kInsert:
      case ChangeKind::kUpdate:
      case ChangeKind::kDelete:
        ++seq_;
        Capture();
        break;
      case ChangeKind::kTruncate:
        ++seq_;
        if (window_ && Watched()) window_keys_.Overflow();
        if (backfills_.Watching(&recent_schema_, &recent_table_, &recent_generation_) &&
            IsTable(recent_schema_, recent_table_)) {
          recent_overflow_ = true;
          recent_.clear();
        }
        LogInfo("TRUNCATE of {}.{} at {} makes no event", change_.schema, change_.table, txn_lsn_);
        break;
      case ChangeKind::kMessage:
        if (change_.transactional) {
          ++seq_;
          if (change_.prefix == message_prefix_) {
            CaptureQueued();
          } else if (change_.prefix == watermark_prefix_) {
            OnWatermark();
          }
        } else if (!in_txn_ && Quiet()) {
          confirmed_ = std::max(confirmed_, x->wal_end);
        }
        break;
    }
    return false;
  }

  const TableInfo& Table(std::string_view schema, std::string_view table) {
    key_.assign(schema);
    key_.push_back('.');
    key_.append(table);
    auto it = tables_.find(key_);
    if (it != tables_.end()) return it->second;
    TableInfo info = catalog_.LookupTable(std::string(schema), std::string(table));
    // A trigger waits for this table (or its partitioned root): now that it
    // exists, the trigger's status says so at the next report.
    if (!waiting_for_.empty() &&
        (waiting_for_.count(key_) > 0 ||
         waiting_for_.count(info.root_schema + "." + info.root_table) > 0)) {
      recheck_ = true;
    }
    return tables_.emplace(key_, std::move(info)).first->second;
  }

  // Whether change_ is of `schema`.`table` or one of its partitions.
  bool IsTable(const std::string& schema, const std::string& table) {
    if (change_.schema == schema && change_.table == table) return true;
    const TableInfo& info = Table(change_.schema, change_.table);
    return info.root_schema == schema && info.root_table == table;
  }
  // Whether change_ is of the table the open backfill window watches.
  bool Watched() { return IsTable(watch_schema_, watch_table_); }

  // While a backfill runs: its table's changed keys with their transaction,
  // until a chunk's snapshot has seen that transaction (the snapshot of a
  // chunk may miss one that committed just before its low watermark).
  void NoteRecentKey() {
    if (!backfills_.Watching(&recent_schema_, &recent_table_, &recent_generation_)) {
      if (!recent_.empty()) recent_.clear();
      return;
    }
    if (!IsTable(recent_schema_, recent_table_)) return;
    auto add = [&](std::optional<std::string> key) {
      if (!key || recent_.size() >= ChangedKeys::kMaxChangedKeys) {
        recent_overflow_ = true;
        recent_.clear();
        return;
      }
      if (!recent_overflow_) recent_.emplace_back(txn_xid_, std::move(*key));
    };
    if (change_.kind != ChangeKind::kDelete) add(KeyText(change_.columns, change_.pk));
    if (!change_.identity.empty()) add(KeyText(change_.identity, change_.pk));
  }

  // Between a chunk's watermarks: the keys of the backfilled table that
  // change (the new key, and the old one when the change had it).
  void NoteChangedKey() {
    if (!Watched()) return;
    if (change_.kind != ChangeKind::kDelete) window_keys_.Add(KeyText(change_.columns, change_.pk));
    if (!change_.identity.empty()) window_keys_.Add(KeyText(change_.identity, change_.pk));
  }

  // A backfill watermark (SPEC §10). Only the open chunk's count; anything
  // else (forged, or replayed from the slot after a restart, when no rows
  // are in memory) makes nothing.
  void OnWatermark() {
    const std::optional<Watermark> w = ParseWatermark(change_.content);
    if (!w) {
      refusals_.Say(
          fmt::format("slot \"{}\": a message with the prefix \"{}\" at {} is not a "
                      "watermark walhook wrote; skipped",
                      cfg_.slot, watermark_prefix_, txn_lsn_));
      return;
    }
    if (!w->high) {
      if (backfills_.Low(*w, &watch_schema_, &watch_table_)) {
        window_keys_.Clear();
        window_ = true;
      }
      return;
    }
    std::unique_ptr<BackfillChunk> chunk = backfills_.High(*w);
    if (chunk == nullptr) return;
    window_ = false;
    backfills_.Resolve(MakeBackfillEvents(*chunk));
  }

  // At a chunk's high watermark: an event for each row whose key did not
  // change between the watermarks, keyed on this transaction's position and
  // the row's place in the chunk; the changed keys are left to the next
  // chunk, which reads them after their change.
  ChunkResult MakeBackfillEvents(const BackfillChunk& chunk) {
    ChunkResult result;
    const Trigger* trigger = nullptr;
    for (const Trigger& t : matcher_.triggers()) {
      if (t.name == chunk.trigger) trigger = &t;
    }
    if (trigger == nullptr) {
      result.redo = true;
      result.why_redo = fmt::format(
          "trigger \"{}\" is disabled or inactive (see trigger_status.last_error)", chunk.trigger);
      return result;
    }
    if (window_keys_.overflow() || recent_overflow_) {
      recent_overflow_ = false;
      result.redo = true;
      result.why_redo = fmt::format("more than {} keys of the table changed while it was read",
                                    ChangedKeys::kMaxChangedKeys);
      return result;
    }
    // Keys changed by transactions the chunk's snapshot did not see count
    // as changed too; those it saw are seen by every later snapshot.
    size_t kept = 0;
    for (size_t i = 0; i < recent_.size(); ++i) {
      if (recent_[i].first != 0 && chunk.snapshot.Invisible(recent_[i].first)) {
        window_keys_.Add(recent_[i].second);
        if (kept != i) recent_[kept] = std::move(recent_[i]);
        ++kept;
      }
    }
    recent_.resize(kept);
    // The live events captured so far go to a writer of their own: they do
    // not wait for the chunk's events to be written (nor share its order).
    Flush();
    std::string pending = "[";
    batch_started_ = Clock::now();
    for (size_t i = 0; i < chunk.rows.size(); ++i) {
      const BackfillRow& row = chunk.rows[i];
      RowChange(*chunk.table, row, &backfill_change_);
      if (window_keys_.size() > 0 &&
          window_keys_.Contains(
              KeyText(backfill_change_.columns, backfill_change_.pk).value_or(""))) {
        if (pending.size() > 1) pending += ',';
        pending += RawKey(*chunk.table, row);
        continue;
      }
      ++result.emitted;
      const ChangeValueSource values(backfill_change_);
      if (trigger->parsed_condition != nullptr && !trigger->parsed_condition->Fires(values)) {
        continue;
      }
      if (chunk.condition != nullptr && !chunk.condition->Fires(values)) continue;
      const TableInfo& table = Table(row.leaf_schema, row.leaf_table);
      const std::string payload =
          BackfillPayload(payload_.Build(backfill_change_, table, db_), chunk.backfill);
      Handoff handoff = Handoff::kSweep;
      if (trigger->ordered) {
        handoff = Handoff::kOrdered;
      } else if (payload.size() <= kMaxEventBytes) {
        handoff = Take(trigger->name, payload.size());
      }
      batch_.Add(trigger->name, trigger->type, payload, txn_ts_, txn_lsn_, static_cast<int>(i) + 1,
                 handoff);
      ++result.events;
    }
    pending += ']';
    result.done = chunk.end_of_table && pending == "[]";
    result.pending_keys = pending;
    BackfillProgress progress;
    progress.backfill = chunk.backfill;
    progress.rows = result.emitted;
    progress.last_key = chunk.last_key;
    progress.pending_keys = pending;
    progress.done = result.done;
    batch_.SetProgress(std::move(progress));
    Flush();  // one chunk's progress per batch
    return result;
  }

  void Capture() {
    if (window_) NoteChangedKey();
    NoteRecentKey();
    if (!matcher_.has_db()) return;
    const TableInfo& table = Table(change_.schema, change_.table);
    matched_.clear();
    matcher_.Match(change_, table, &matched_);
    if (matched_.empty()) return;
    backfills_.NoteLive();
    const std::string_view payload = payload_.Build(change_, table, db_);
    if (payload_.replaced_invalid_utf8() && !said_invalid_utf8_) {
      LogWarn(
          "a change of {}.{} at {} held bytes that are not UTF-8 (is the source database "
          "SQL_ASCII?); they were replaced with U+FFFD (said once per session)",
          change_.schema, change_.table, txn_lsn_);
      said_invalid_utf8_ = true;
    }
    if (batch_.empty()) batch_started_ = Clock::now();
    for (const Trigger* t : matched_) {
      // Delivered straight from memory after the commit when there is room,
      // else leased at insert and loaded by id when room opens; ordered
      // triggers go through the sweep, which keeps each key in order.
      Handoff handoff = Handoff::kSweep;
      if (t->ordered) {
        handoff = Handoff::kOrdered;
      } else if (payload.size() <= kMaxEventBytes) {
        handoff = Take(t->name, payload.size());
      }
      batch_.Add(t->name, t->type, payload, txn_ts_, txn_lsn_, seq_, handoff);
    }
  }

  // The keys queue_event signs with. Unreadable, every message is refused
  // (and said) until they can be read: an event nobody can vouch for is not made.
  void ReadKeys() {
    keys_read_ = Clock::now();
    try {
      QueueEventKeys keys = catalog_.ReadQueueEventKeys(cfg_.schema);
      verifier_.SetKeys(std::move(keys.keys), keys.legacy_before);
      keys_error_.clear();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error& e) {
      std::string why = e.what();
      const std::string before = keys_error_;
      keys_error_ = fmt::format(
          "cannot read {}.queue_event_keys in the source database ({}): walhook's source role "
          "must own it (walhook init makes it) or be granted SELECT on it",
          cfg_.schema, StorableText(Utf8Prefix(why.substr(0, why.find('\n')), 200)));
      if (keys_error_ != before) {
        LogError("slot \"{}\": {}; until then every custom event queued with it is refused",
                 cfg_.slot, keys_error_);
      }
    }
  }

  // A custom event queued with eventing.queue_event in this transaction, if
  // queue_event wrote it: anything else with our prefix is refused (SPEC §9).
  void CaptureQueued() {
    const std::optional<int64_t> key = QueuedEventKeyId(change_.content);
    if (key && !verifier_.HasKey(*key) && Clock::now() - keys_read_ >= std::chrono::seconds(1)) {
      ReadKeys();  // a key made since they were read
    }
    Result<QueuedEvent> e = verifier_.Open(change_.content, txn_lsn_,
                                           txn_xid_ != 0 ? std::optional(txn_xid_) : std::nullopt);
    if (!e.ok()) {
      refusals_.Say(fmt::format(
          "slot \"{}\": a message with the prefix \"{}\" in the transaction at {} was not written "
          "by {}.queue_event ({}); skipped, no event made{}",
          cfg_.slot, message_prefix_, txn_lsn_, cfg_.schema, e.error(),
          keys_error_.empty() ? "" : "; " + keys_error_));
      return;
    }
    matched_.clear();
    matcher_.MatchCustom(e->type, e->payload, &matched_);
    if (matched_.empty()) return;
    if (batch_.empty()) batch_started_ = Clock::now();
    // Due at greatest(commit, at) + delay: one Postgres cannot store fails
    // the event, not its batch (queue_event refuses those since 014).
    const std::optional<int64_t> commit_ms = PgTimestampMs(txn_ts_);
    if (commit_ms && !DueMs(*e, *commit_ms)) {
      const std::string remark = fmt::format(
          "queued with a due time past what Postgres can store (delay {} ms, at {} ms since the "
          "epoch)",
          e->delay_ms, e->at_ms ? std::to_string(*e->at_ms) : "none");
      refusals_.Say(fmt::format("slot \"{}\": custom event {} at {}: {}; stored as failed",
                                cfg_.slot, e->type, txn_lsn_, remark));
      for (const Trigger* t : matched_) {
        batch_.AddFailed(t->name, t->type, txn_ts_, txn_lsn_, seq_, remark);
      }
      return;
    }
    const Schedule schedule{e->delay_ms, e->at_ms};
    for (const Trigger* t : matched_) {
      Handoff handoff = Handoff::kSweep;
      if (!schedule.later() && e->payload.size() <= kMaxEventBytes) {
        handoff = Take(t->name, e->payload.size());
      }
      batch_.Add(t->name, t->type, e->payload, txn_ts_, txn_lsn_, seq_, handoff, schedule);
    }
  }

  // How an event of `trigger` that delivery may take at once reaches it.
  Handoff Take(const std::string& trigger, size_t bytes) {
    if (delivery_.Reserve(trigger, bytes)) return Handoff::kOwned;
    if (delivery_.Park()) return Handoff::kParked;
    return Handoff::kSweep;
  }

  // Hands the batch and the position it completes to the writer thread.
  void Flush() {
    if (batch_.empty() && !batch_complete_.valid() && !batch_.progress()) return;
    writer_.Submit(&batch_, batch_complete_);
    batch_complete_ = Lsn();
  }

  void Report(Clock::duration since) {
    NodeReport r;
    r.role = "streaming";
    r.slot = cfg_.slot;
    r.confirmed = confirmed_;
    if (server_end_.valid() && server_end_ >= confirmed_) {
      r.lag_bytes = static_cast<int64_t>(server_end_.value() - confirmed_.value());
    }
    const double secs = std::chrono::duration<double>(since).count();
    const uint64_t captured = writer_.inserted();
    r.events_per_s = secs > 0 ? static_cast<double>(captured - reported_captured_) / secs : 0;
    GlobalMetrics().AddCaptured(captured - reported_captured_);
    GlobalMetrics().SetLagBytes(r.lag_bytes.value_or(0));
    reported_captured_ = captured;
    store_.Report(r);
  }

  const Config& cfg_;
  EventStore& store_;
  BatchWriter& writer_;
  SourceCatalog& catalog_;
  Delivery& delivery_;
  BackfillChannel& backfills_;
  std::string db_;
  const std::string message_prefix_;    // of events queued with queue_event
  const std::string watermark_prefix_;  // of backfill watermarks
  // The open backfill window: between a chunk's low and high watermarks.
  bool window_ = false;
  std::string watch_schema_, watch_table_;
  ChangedKeys window_keys_;
  // The backfilled table's changed keys by transaction, until a chunk's
  // snapshot saw that transaction (see NoteRecentKey).
  std::vector<std::pair<uint32_t, std::string>> recent_;
  bool recent_overflow_ = false;
  std::string recent_schema_, recent_table_;
  uint64_t recent_generation_ = 0;
  Change backfill_change_;
  Matcher matcher_;
  Decoder decoder_;
  Change change_;
  PayloadBuilder payload_;
  EventBatch batch_;
  std::vector<const Trigger*> matched_;
  std::unordered_map<std::string, TableInfo> tables_;
  std::unordered_set<std::string> waiting_for_;  // tables that triggers wait for
  bool recheck_ = false;                         // one of them has shown up
  std::string key_;

  Lsn confirmed_;       // durable: sent to Postgres as the flush position
  Lsn server_end_;      // the server's latest WAL end, for lag
  Lsn batch_complete_;  // end of the last whole transaction inside batch_
  bool in_txn_ = false;
  Lsn txn_lsn_;
  Lsn txn_end_;
  std::string txn_ts_;
  uint32_t txn_xid_ = 0;
  int seq_ = 0;
  QueuedEventVerifier verifier_;  // of queue_event's messages
  Clock::time_point keys_read_;
  std::string keys_error_;  // why the keys could not be read, if they could not
  RefusalLog refusals_;
  Clock::time_point batch_started_;
  Clock::time_point last_data_;
  Clock::time_point last_reload_;
  uint64_t reported_captured_ = 0;
  bool said_invalid_utf8_ = false;
};

}  // namespace

Bridge::Bridge(Config config) : config_(std::move(config)) {}

void Bridge::RequestStop() {
  g_stop = true;
}

// A slot Postgres invalidated: the events since its confirmed position are
// gone, and walhook says from where (SPEC §7) instead of recreating it.
static void ThrowIfLost(const SlotState& state, const std::string& slot) {
  if (!state.exists || state.wal_status != "lost") return;
  throw FatalError(kExitSetup,
                   fmt::format("replication slot \"{}\" was invalidated by Postgres "
                               "(wal_status = lost): events since LSN {} were lost. walhook "
                               "will not recreate it silently: run `walhook init --accept-gap` "
                               "to start a new source epoch from now (and re-sync what changed)",
                               slot, state.confirmed_flush));
}

// Checks the source against what the eventing schema recorded of it (SPEC
// §13), prepares the slot and sets `store`'s epoch; throws FatalError for
// setups the user must fix. Returns the slot and the epoch.
static std::pair<SlotState, int64_t> PrepareSource(EventStore& store, SourceCatalog& catalog,
                                                   const Config& config) {
  const std::string& slot = config.slot;
  catalog.CheckSetup();
  const SourceId current = ReplicationStream(config.source, slot).IdentifySystem();
  // One node at a time: a slot being created shows in pg_replication_slots
  // before its plugin is set. An exception leaves the lock to the
  // connection, which the caller's catalog closes.
  catalog.LockSlotSetup(slot, true);
  SlotState state = catalog.Slot(slot);
  if (!config.accept_gap) ThrowIfLost(state, slot);
  if (state.exists && state.plugin != "wal2json") {
    throw FatalError(kExitSetup,
                     fmt::format("replication slot \"{}\" uses the plugin \"{}\", not wal2json: "
                                 "choose another --slot, or drop that slot",
                                 slot, state.plugin));
  }
  SourceFacts facts;
  facts.slot = slot;
  facts.current = current;
  facts.recorded = store.LoadSource(slot);
  facts.slot_exists = state.exists;
  facts.slot_lost = state.wal_status == "lost";
  if (const auto last = store.LastEpoch()) {
    facts.max_event_epoch = last->first;
    if (!facts.recorded || facts.recorded->epoch == last->first) facts.last_captured = last->second;
  }
  facts.accept_gap = config.accept_gap;
  const SourceDecision decision = DecideSource(facts);
  switch (decision.action) {
    case SourceDecision::Action::kRefuse: throw FatalError(kExitSetup, decision.message);
    case SourceDecision::Action::kGoOn:
      if (!decision.message.empty()) LogInfo("slot \"{}\": {}", slot, decision.message);
      break;
    case SourceDecision::Action::kRecord: store.SaveSource(slot, current, decision.epoch); break;
    case SourceDecision::Action::kNewEpoch:
      // A slot left from before the gap would replay what the old epoch
      // captured: the new epoch starts from now, with a new slot.
      if (state.exists) {
        catalog.DropSlot(slot);
        state = SlotState{};
      }
      store.SaveSource(slot, current, decision.epoch);
      LogWarn("{}", decision.message);
      break;
  }
  if (!state.exists) {
    catalog.CreateSlot(slot);
    LogInfo("created replication slot \"{}\" (wal2json)", slot);
    state = catalog.Slot(slot);
  }
  catalog.LockSlotSetup(slot, false);
  store.SetEpoch(decision.epoch);
  return {state, decision.epoch};
}

// queue_event writes to the source's WAL, so it lives in the source database.
static void InstallQueueEvent(const Config& config, SourceCatalog& catalog) {
  if (config.source == config.eventing_db) return;  // made by the migrations
  try {
    catalog.InstallQueueEvent(config.schema);
  } catch (const std::exception& e) {
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    LogWarn(
        "could not create {}.queue_event in the source database ({}): let this role "
        "CREATE in that database, or create the function as its owner with walhook init",
        config.schema, why);
  }
}

void Bridge::Init() {
  // An unreachable database is waited for, as by `run`: said once, retried
  // with backoff, so init can run before the database is up.
  auto backoff = milliseconds(500);
  bool said = false;
  for (;;) {
    try {
      EventStore store(config_.eventing_db, config_.schema, config_.node_id);
      store.Migrate();
      SourceCatalog catalog(config_.source);
      PrepareSource(store, catalog, config_);
      InstallQueueEvent(config_, catalog);
      return;
    } catch (const pqxx::broken_connection& e) {
      if (!said) LogError("{}; retrying with backoff", e.what());
      said = true;
      SleepUnlessStopped(backoff);
      if (g_stop) throw FatalError(kExitSetup, "stopped before the database could be reached");
      backoff = std::min<milliseconds>(backoff * 2, kMaxBackoff);
    }
  }
}

void Bridge::Session(Delivery& delivery) {
  EventStore store(config_.eventing_db, config_.schema, config_.node_id);
  store.Migrate();
  store.Listen();
  SourceCatalog catalog(config_.source);
  auto [slot, epoch] = PrepareSource(store, catalog, config_);
  InstallQueueEvent(config_, catalog);

  bool said_standby = false;
  while (!catalog.TryLockSlot(config_.slot)) {
    if (!said_standby) {
      LogInfo("slot \"{}\" is streamed by another node; standing by", config_.slot);
      said_standby = true;
    }
    NodeReport r;
    r.role = "standby";
    r.slot = config_.slot;
    store.Report(r);
    GlobalMetrics().Beat(NodeRole::kStandby);
    SleepUnlessStopped(milliseconds(1000));
    if (g_stop) return;
  }

  // The writer has a connection of its own, so writes overlap decoding.
  std::vector<std::unique_ptr<EventStore>> writer_stores;
  for (int i = 0; i < kWriters; ++i) {
    writer_stores.push_back(
        std::make_unique<EventStore>(config_.eventing_db, config_.schema, config_.node_id));
    writer_stores.back()->SetEpoch(epoch);
  }
  BackfillChannel backfills;
  CommitFanout committed(delivery, backfills);
  std::vector<std::unique_ptr<EventStore>> chunk_stores;
  for (int64_t i = 0; i < BackfillRunner::kChunksInFlight; ++i) {
    chunk_stores.push_back(
        std::make_unique<EventStore>(config_.eventing_db, config_.schema, config_.node_id));
    chunk_stores.back()->SetEpoch(epoch);
  }
  BatchWriter writer(std::move(writer_stores), std::move(chunk_stores), store.LastStoredLsn(),
                     &committed);
  // A standby waited: the streaming node moved the slot meanwhile, or
  // Postgres invalidated it.
  slot = catalog.Slot(config_.slot);
  ThrowIfLost(slot, config_.slot);
  Streamer streamer(config_, store, writer, catalog, delivery, backfills, slot.confirmed_flush);
  streamer.ReloadTriggers();
  // Backfills run on their own thread and connections while this node streams.
  BackfillRunner backfill_runner(config_, backfills);
  backfill_runner.Start();
  const std::vector<std::pair<std::string, std::string>> options = {
      {"format-version", "2"},
      {"include-lsn", "1"},
      {"include-xids", "1"},
      {"include-pk", "1"},
      {"include-timestamp", "1"},
      {"filter-tables", EscapeFilter(config_.schema) + ".*"},
      {"add-msg-prefixes", "walhook.heartbeat," + MessagePrefix(config_.schema) + "," +
                               WatermarkPrefix(config_.schema)},
  };
  // The previous consumer's walsender may take a moment to go away.
  for (int attempt = 0;; ++attempt) {
    try {
      ReplicationStream repl(config_.source, config_.slot);
      try {
        repl.Start(options);
      } catch (const FatalError&) {
        // Invalidated since it was read: say so with the position.
        ThrowIfLost(catalog.Slot(config_.slot), config_.slot);
        throw;
      }
      LogInfo("streaming slot \"{}\" from {} (node {}{})", config_.slot, slot.confirmed_flush,
              config_.node_id,
              config_.listen == "off" ? "" : ", HTTP API on http://" + config_.listen);
      streamer.Stream(repl);
      store.Forget();
      return;
    } catch (const SessionError& e) {
      const bool busy = std::string_view(e.what()).find("is active for PID") != std::string::npos;
      if (!busy || attempt >= 100 || g_stop) throw;
      if (attempt == 0) {
        LogInfo("slot \"{}\" is in use by another consumer; waiting for it", config_.slot);
      }
      SleepUnlessStopped(milliseconds(500));
      if (g_stop) return;
    }
  }
}

int Bridge::Run() {
  // Delivery runs for the whole process, whether this node streams or stands by.
  Delivery delivery(config_);
  // A --watch-dir that cannot be watched is the only line said.
  FileWatcher files(config_, delivery);
  files.Start();
  delivery.Start();
  std::unique_ptr<HttpApi> api;
  if (config_.listen != "off") {
    api = std::make_unique<HttpApi>(config_, delivery);
    api->Start();
  }
  auto backoff = std::chrono::milliseconds(500);
  std::string last_error;
  while (!g_stop) {
    const auto started = Clock::now();
    try {
      Session(delivery);
      if (g_stop) break;
    } catch (const FatalError&) {
      throw;
    } catch (const std::exception& e) {
      // Said once: the same error again is not repeated while we retry,
      // nor said again when delivery meets the same outage.
      if (e.what() != last_error) {
        if (ClaimMessage(e.what())) LogError("{}; retrying with backoff", e.what());
        last_error = e.what();
      }
      // A session that ran for a while starts the backoff over.
      if (Clock::now() - started > std::chrono::seconds(30)) backoff = milliseconds(500);
      SleepUnlessStopped(backoff);
      backoff = std::min<milliseconds>(backoff * 2, kMaxBackoff);
      continue;
    }
  }
  files.Stop();
  if (api != nullptr) api->Stop();
  delivery.Stop();
  return kExitOk;
}

}  // namespace walhook
