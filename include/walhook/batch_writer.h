#pragma once
// BatchWriter: writes event batches to event_logs on a thread of its own, so
// decoding the next batch overlaps the write of the previous one (the
// walsender and the inserting backend then use both cores). Batches commit in
// the order submitted. Memory is bounded: Submit blocks while kMaxQueued
// batches wait.
// Thread-safety: Submit/Durable/Idle/Drain from one thread (the streamer).

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "walhook/event_batch.h"
#include "walhook/lsn.h"

namespace walhook {

class EventStore;

class BatchWriter {
 public:
  static constexpr size_t kMaxQueued = 2;

  // `store` is used only by the writer thread from now on.
  explicit BatchWriter(EventStore* store);
  ~BatchWriter();  // stops the thread; batches not yet written are dropped

  // Queues `batch` (moved from; left empty) to be written. Once it and every
  // batch before it are committed, Durable() reaches `complete` (when valid):
  // the end of the last whole transaction the batch holds. A batch may be
  // empty and carry only `complete`. Rethrows the writer's failure, if any.
  void Submit(EventBatch* batch, Lsn complete);

  // The highest `complete` whose batch is committed. Rethrows a failure.
  Lsn Durable();
  // Nothing queued or being written.
  bool Idle();
  // Waits until Idle. Rethrows a failure.
  void Drain();
  // Events inserted so far (not counting replayed duplicates).
  uint64_t inserted();

 private:
  struct Job {
    EventBatch batch;
    Lsn complete;
  };
  void Loop();
  void RethrowLocked();

  EventStore* store_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool busy_ = false;
  bool stop_ = false;
  Lsn durable_;
  uint64_t inserted_ = 0;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace walhook
