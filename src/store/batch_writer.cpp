#include "walhook/batch_writer.h"

#include <optional>

#include <pqxx/pqxx>

#include "walhook/log.h"
#include "walhook/store.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

// Whether a failed insert is the fault of the rows' values, so the same rows
// would fail again however often they were replayed: a data exception
// (class 22), an integrity violation other than a duplicate key (class 23),
// or a program limit (class 54). A lost connection or a server shutting
// down is not: the session restarts and writes them again.
bool IsDataError(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  return state.starts_with("22") || (state.starts_with("23") && state != "23505") ||
         state.starts_with("54");
}

// The server's message, one line, as a text column holds it.
std::string Why(const pqxx::sql_error& e) {
  std::string_view what = e.what();
  what = what.substr(0, what.find('\n'));
  if (what.starts_with("ERROR:")) what.remove_prefix(6);
  while (!what.empty() && what.front() == ' ') what.remove_prefix(1);
  std::string out = StorableText(Utf8Prefix(what, 300));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';  // one line in the log and the remark
  }
  return out;
}

}  // namespace

size_t WriteOrRefuse(EventStore& store, const EventBatch& batch, bool replay,
                     std::vector<StoredEvent>* stored, const std::function<void()>& before_commit) {
  try {
    return store.Insert(batch, replay, stored, before_commit);
  } catch (const pqxx::sql_error& e) {
    if (!IsDataError(e)) throw;
    LogWarn(
        "a batch of {} events from {} could not be stored ({}); looking for the events at fault",
        batch.size(), batch.first_lsn(), Why(e));
  }
  // Halves until each part stores or is one event, in stream order (an
  // ordered trigger's events stay in order). The parts are replays: what a
  // crash half-way stored is skipped, and every event keeps its key.
  stored->clear();
  size_t inserted = 0;
  std::vector<StoredEvent> part;
  std::vector<std::pair<size_t, size_t>> todo = {{0, batch.size()}};
  while (!todo.empty()) {
    const auto [begin, end] = todo.back();
    todo.pop_back();
    std::optional<std::string> why;
    try {
      inserted += store.Insert(batch.Slice(begin, end), true, &part, before_commit);
      stored->insert(stored->end(), part.begin(), part.end());
      continue;
    } catch (const pqxx::sql_error& e) {
      if (!IsDataError(e)) throw;
      why = Why(e);
    }
    if (end - begin > 1) {
      const size_t mid = begin + (end - begin) / 2;
      todo.emplace_back(mid, end);
      todo.emplace_back(begin, mid);
      continue;
    }
    // The event that cannot be stored is refused on its own: a failed row
    // that says why, where it can be stored; the log line in any case.
    const EventBatch::EventRef e = batch.Event(begin);
    EventBatch failed;
    failed.AddFailed(e.trigger, e.type, e.commit_ts, e.lsn, e.seq,
                     "the event could not be stored: " + *why);
    try {
      inserted += store.Insert(failed, true, &part, before_commit);
      LogError(
          "event of trigger \"{}\" at {} (#{} in its transaction) could not be stored ({}); "
          "stored as failed",
          e.trigger, e.lsn, e.seq, *why);
    } catch (const pqxx::sql_error& again) {
      if (!IsDataError(again)) throw;
      LogError(
          "event of trigger \"{}\" at {} (#{} in its transaction) could not be stored ({}), "
          "nor as failed ({}); skipped",
          e.trigger, e.lsn, e.seq, *why, Why(again));
    }
  }
  // The parts were written without the backfill progress the batch
  // carries: it follows them (a crash before it makes the chunk be read and
  // written again, and the events' keys make that insert nothing twice).
  if (batch.progress()) store.WriteProgress(*batch.progress());
  return inserted;
}

BatchWriter::BatchWriter(std::vector<std::unique_ptr<EventStore>> stores,
                         std::vector<std::unique_ptr<EventStore>> chunk_stores, Lsn last_stored,
                         CommitListener* listener)
    : last_stored_(last_stored), listener_(listener) {
  stream_.threads = stores.size();
  chunks_.threads = chunk_stores.size();
  for (auto& store : stores) stores_.push_back(std::move(store));
  for (auto& store : chunk_stores) stores_.push_back(std::move(store));
  for (size_t i = 0; i < stores_.size(); ++i) {
    Lane* lane = i < stream_.threads ? &stream_ : &chunks_;
    threads_.emplace_back([this, s = stores_[i].get(), lane] { Loop(s, lane); });
  }
}

BatchWriter::~BatchWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  if (listener_ != nullptr) {
    for (Lane* lane : {&stream_, &chunks_}) {
      for (Job& job : lane->queue) listener_->Dropped(job.batch);
    }
  }
}

void BatchWriter::RethrowLocked() {
  if (error_) std::rethrow_exception(error_);
}

void BatchWriter::Submit(EventBatch* batch, Lsn complete) {
  std::unique_lock<std::mutex> lock(mu_);
  Lane& lane = batch->progress() && chunks_.threads > 0 ? chunks_ : stream_;
  const size_t max_pending = &lane == &chunks_ ? chunks_.threads : kMaxPending;
  cv_.wait(lock, [&] { return lane.queue.size() + lane.busy < max_pending || error_; });
  RethrowLocked();
  lane.queue.push_back(Job{next_seq_++, std::move(*batch), complete});
  batch->Clear();
  cv_.notify_all();
}

Lsn BatchWriter::Durable() {
  std::lock_guard<std::mutex> lock(mu_);
  RethrowLocked();
  return durable_;
}

bool BatchWriter::Idle() {
  std::lock_guard<std::mutex> lock(mu_);
  // A failed writer is never idle: nothing after the failure may be confirmed.
  return stream_.Empty() && chunks_.Empty() && !error_;
}

bool BatchWriter::CanTakeMore() {
  std::lock_guard<std::mutex> lock(mu_);
  return stream_.queue.empty() && stream_.busy < stream_.threads;
}

void BatchWriter::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return (stream_.Empty() && chunks_.Empty()) || error_; });
  RethrowLocked();
}

uint64_t BatchWriter::inserted() {
  std::lock_guard<std::mutex> lock(mu_);
  return inserted_;
}

void BatchWriter::Loop(EventStore* store, Lane* lane) {
  std::vector<StoredEvent> stored;  // reused: owned events with their ids
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || (!lane->queue.empty() && !error_); });
    if (stop_) return;
    Job job = std::move(lane->queue.front());
    lane->queue.pop_front();
    ++lane->busy;
    // A batch with events of ordered triggers commits only once every earlier
    // batch has: whoever reads event_logs (the sweep, another node) never
    // sees an ordered key's later event while its earlier one is missing.
    // Other batches commit as soon as they are written (one statement, its
    // own transaction), so one batch's commit never waits for another's and
    // Postgres flushes commits that come together at once.
    // A backfill's progress too: it must never be durable before the
    // events of the chunks before it.
    const bool in_order =
        (job.batch.has_ordered() || job.batch.progress()) && durable_seq_ != job.seq;
    lock.unlock();
    size_t n = 0;
    std::exception_ptr error;
    auto in_turn = [&] {
      std::unique_lock<std::mutex> turn(mu_);
      cv_.wait(turn, [&] { return durable_seq_ == job.seq || error_ || stop_; });
      if (error_ || stop_) throw std::runtime_error("an earlier batch was not written");
    };
    stored.clear();  // an empty batch (a position only) stores nothing
    try {
      if (!job.batch.empty()) {
        n = WriteOrRefuse(*store, job.batch, job.batch.first_lsn() <= last_stored_, &stored,
                          in_order ? std::function<void()>(in_turn) : std::function<void()>());
      } else if (job.batch.progress()) {
        if (in_order) in_turn();
        store->WriteProgress(*job.batch.progress());
      }
    } catch (...) {
      error = std::current_exception();
    }
    if (listener_ != nullptr) {
      if (error) {
        listener_->Dropped(job.batch);
      } else {
        listener_->Committed(job.batch, stored);
      }
    }
    lock.lock();
    --lane->busy;
    if (error) {
      error_ = error;
    } else {
      inserted_ += n;
      done_.emplace(job.seq, job.complete);
      // Advance over the committed prefix only.
      for (auto it = done_.begin(); it != done_.end() && it->first == durable_seq_;
           it = done_.erase(it)) {
        if (it->second.valid() && it->second > durable_) durable_ = it->second;
        ++durable_seq_;
      }
    }
    cv_.notify_all();
  }
}

}  // namespace walhook
