#pragma once
// Process-wide figures for /healthz and /metrics (Prometheus text format,
// names prefixed walhook_). Updated with relaxed atomics from the hot path.
// Thread-safety: every member may be used from any thread.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace walhook {

enum class NodeRole { kStarting, kStreaming, kStandby };

class Metrics {
 public:
  // Upper bounds (seconds) of the delivery latency histogram's buckets.
  static constexpr std::array<double, 12> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    2.5,   10};

  // The replication loop is alive in `role` (called from its loop).
  void Beat(NodeRole role);
  NodeRole role() const { return static_cast<NodeRole>(role_.load(std::memory_order_relaxed)); }
  // Since the replication loop last said it was alive.
  std::chrono::milliseconds SinceBeat() const;

  void AddCaptured(uint64_t n) { captured_.fetch_add(n, std::memory_order_relaxed); }
  void SetLagBytes(int64_t bytes) { lag_bytes_.store(bytes, std::memory_order_relaxed); }
  void SetInFlight(int n) { in_flight_.store(n, std::memory_order_relaxed); }
  // One attempt's outcome: "processed", "retry" or "failed"; for a success,
  // the time from the event's due time to its delivery.
  void AddDelivery(std::string_view outcome, double latency_s = -1);
  void AddQueued(uint64_t n) { queued_.fetch_add(n, std::memory_order_relaxed); }
  // Events taken for delivery: handed over in memory after their commit,
  // parked ones loaded by id, or claimed from event_logs.
  void AddTaken(uint64_t memory, uint64_t parked, uint64_t claimed) {
    taken_memory_.fetch_add(memory, std::memory_order_relaxed);
    taken_parked_.fetch_add(parked, std::memory_order_relaxed);
    taken_claimed_.fetch_add(claimed, std::memory_order_relaxed);
  }
  // What delivery holds (reserved at capture, queued, in flight, or its
  // outcome not yet written) and the room reserved for parked events of
  // batches not yet written: both return to zero when nothing is pending.
  void SetHeld(uint64_t held, uint64_t parked_reserved) {
    held_.store(held, std::memory_order_relaxed);
    parked_reserved_.store(parked_reserved, std::memory_order_relaxed);
  }
  void AddFileEvents(uint64_t n) { file_events_.fetch_add(n, std::memory_order_relaxed); }

  // The backfill this node runs (SPEC §10), for /healthz and /metrics;
  // id 0: none. rows_estimate -1: not known.
  struct BackfillFigures {
    int64_t id = 0;
    std::string trigger;
    int64_t rows_done = 0;
    int64_t rows_estimate = -1;
  };
  void SetBackfill(int64_t id, std::string trigger, int64_t rows_done, int64_t rows_estimate);
  BackfillFigures backfill() const;

  // The Prometheus text exposition.
  std::string Render() const;

 private:
  std::atomic<int> role_{0};
  std::atomic<int64_t> beat_ms_{0};  // steady clock
  std::atomic<uint64_t> captured_{0};
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> file_events_{0};
  std::atomic<uint64_t> taken_memory_{0}, taken_parked_{0}, taken_claimed_{0};
  std::atomic<int64_t> lag_bytes_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<uint64_t> held_{0}, parked_reserved_{0};
  std::atomic<uint64_t> processed_{0}, retried_{0}, failed_{0};
  std::array<std::atomic<uint64_t>, kLatencyBounds.size()> buckets_{};
  std::atomic<uint64_t> latency_count_{0};
  std::atomic<uint64_t> latency_sum_us_{0};
  mutable std::mutex backfill_mu_;
  BackfillFigures backfill_;
};

// The process's metrics.
Metrics& GlobalMetrics();

}  // namespace walhook
