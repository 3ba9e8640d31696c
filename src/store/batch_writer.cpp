#include "walhook/batch_writer.h"

#include "walhook/store.h"

namespace walhook {

BatchWriter::BatchWriter(EventStore* store) : store_(store), thread_([this] { Loop(); }) {}

BatchWriter::~BatchWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BatchWriter::RethrowLocked() {
  if (error_) std::rethrow_exception(error_);
}

void BatchWriter::Submit(EventBatch* batch, Lsn complete) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.size() < kMaxQueued || error_; });
  RethrowLocked();
  queue_.push_back(Job{std::move(*batch), complete});
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
  return queue_.empty() && !busy_;
}

void BatchWriter::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return (queue_.empty() && !busy_) || error_; });
  RethrowLocked();
}

uint64_t BatchWriter::inserted() {
  std::lock_guard<std::mutex> lock(mu_);
  return inserted_;
}

void BatchWriter::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && !error_); });
    if (stop_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    size_t n = 0;
    std::exception_ptr error;
    try {
      if (!job.batch.empty()) n = store_->Insert(job.batch);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    busy_ = false;
    if (error) {
      error_ = error;
    } else {
      inserted_ += n;
      if (job.complete.valid() && job.complete > durable_) durable_ = job.complete;
    }
    cv_.notify_all();
  }
}

}  // namespace walhook
