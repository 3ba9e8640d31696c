#pragma once
// BatchWriter: writes event batches to event_logs on threads of their own, each
// with its own connection, so decoding overlaps writing and, under load, two
// batches are written at once (the walsender, the inserting backends and
// walhook then share both cores). Inserts overlap, and so do commits, except
// that a batch holding events of ordered triggers commits after every batch
// before it: for those triggers event_logs always holds a prefix of the
// stream. Durable() moves past a batch once it and every batch before it are
// committed. A backfill chunk's batch (one with progress, SPEC §10) goes to
// writers of its own, so the stream's batches never queue behind a chunk's
// thousands of rows; it commits after every batch before it, like an
// ordered one. Memory is bounded: Submit blocks while kMaxPending of the
// stream's batches are queued or being written (a backfill runner has at
// most as many chunks out as there are chunk writers). Thread-safety:
// Submit/Durable/Idle/CanTakeMore/Drain from one thread (the streamer).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "walhook/event_batch.h"
#include "walhook/lsn.h"

namespace walhook {

class EventStore;

// Told what became of each batch (delivery uses it to hand owned events over).
// Called on writer threads.
class CommitListener {
 public:
  virtual ~CommitListener() = default;
  // The batch committed; `stored` has the id of each of its owned events
  // that was inserted (a replayed one already stored is absent).
  virtual void Committed(EventBatch& batch, const std::vector<StoredEvent>& stored) = 0;
  // The batch will not be written (a failure, or shutdown).
  virtual void Dropped(EventBatch& batch) = 0;
};

// Writes `batch` as EventStore::Insert does, except that rows which cannot be
// stored (a data error: what Postgres refuses in their values, however often
// it is replayed) do not fail the batch: the batch is halved until each event
// that fails alone is found; each is logged and stored 'failed' with a
// remark saying why (or, if even that fails, only logged), and the others
// are stored. Other errors (a lost connection) are thrown. *stored and the
// count are as Insert's, over all the parts.
size_t WriteOrRefuse(EventStore& store, const EventBatch& batch, bool replay,
                     std::vector<StoredEvent>* stored, const std::function<void()>& before_commit);

class BatchWriter {
 public:
  static constexpr size_t kMaxPending = 3;

  // One writer thread per store; each store is used only by its thread:
  // `stores` write the stream's batches, `chunk_stores` backfill chunks'.
  // Batches whose events all have commit LSNs past `last_stored` are written
  // without conflict handling (nothing there can be stored already).
  // `listener` (may be null) must outlive the writer.
  BatchWriter(std::vector<std::unique_ptr<EventStore>> stores,
              std::vector<std::unique_ptr<EventStore>> chunk_stores, Lsn last_stored,
              CommitListener* listener);
  ~BatchWriter();  // stops the threads; batches not yet written are dropped

  // Queues `batch` (moved from; left empty). Once it and every batch before it
  // are committed, Durable() reaches `complete` (when valid): the end of the
  // last whole transaction the batch holds. A batch may be empty and carry
  // only `complete`. Rethrows a writer's failure, if any.
  void Submit(EventBatch* batch, Lsn complete);

  // The highest `complete` whose batch and all before it are committed.
  // Rethrows a failure.
  Lsn Durable();
  // Nothing queued or being written.
  bool Idle();
  // A writer of the stream's batches is free to start on one now.
  bool CanTakeMore();
  // Waits until Idle. Rethrows a failure.
  void Drain();
  // Events inserted so far (not counting replayed duplicates).
  uint64_t inserted();

 private:
  struct Job {
    uint64_t seq;
    EventBatch batch;
    Lsn complete;
  };
  // The stream's batches, or backfill chunks' (batches with progress).
  struct Lane {
    std::deque<Job> queue;
    size_t busy = 0;
    size_t threads = 0;
    bool Empty() const { return queue.empty() && busy == 0; }
  };
  void Loop(EventStore* store, Lane* lane);
  void RethrowLocked();

  std::vector<std::unique_ptr<EventStore>> stores_;
  const Lsn last_stored_;
  CommitListener* const listener_;
  std::mutex mu_;
  std::condition_variable cv_;
  Lane stream_;
  Lane chunks_;
  bool stop_ = false;
  uint64_t next_seq_ = 0;         // given to the next submitted batch
  uint64_t durable_seq_ = 0;      // every batch below this one is committed
  std::map<uint64_t, Lsn> done_;  // committed out of order, waiting for earlier ones
  Lsn durable_;
  uint64_t inserted_ = 0;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace walhook
