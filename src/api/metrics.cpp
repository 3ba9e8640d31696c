#include "walhook/metrics.h"

#include <fmt/format.h>

namespace walhook {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Metrics::Beat(NodeRole role) {
  role_.store(static_cast<int>(role), std::memory_order_relaxed);
  beat_ms_.store(SteadyMs(), std::memory_order_relaxed);
}

std::chrono::milliseconds Metrics::SinceBeat() const {
  const int64_t beat = beat_ms_.load(std::memory_order_relaxed);
  if (beat == 0) return std::chrono::milliseconds::max();
  return std::chrono::milliseconds(SteadyMs() - beat);
}

void Metrics::AddDelivery(std::string_view outcome, double latency_s) {
  if (outcome == "processed") {
    processed_.fetch_add(1, std::memory_order_relaxed);
  } else if (outcome == "failed") {
    failed_.fetch_add(1, std::memory_order_relaxed);
  } else {
    retried_.fetch_add(1, std::memory_order_relaxed);
  }
  if (latency_s < 0) return;
  for (size_t i = 0; i < kLatencyBounds.size(); ++i) {
    if (latency_s <= kLatencyBounds[i]) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  }
  latency_count_.fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(static_cast<uint64_t>(latency_s * 1e6), std::memory_order_relaxed);
}

std::string Metrics::Render() const {
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  std::string out;
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "# HELP walhook_events_captured_total Events written to event_logs from the "
                 "replication stream.\n"
                 "# TYPE walhook_events_captured_total counter\n"
                 "walhook_events_captured_total {}\n",
                 load(captured_));
  fmt::format_to(it,
                 "# HELP walhook_events_queued_total Custom events queued through the HTTP "
                 "API.\n"
                 "# TYPE walhook_events_queued_total counter\n"
                 "walhook_events_queued_total {}\n",
                 load(queued_));
  fmt::format_to(it,
                 "# HELP walhook_file_events_total File events written to event_logs from "
                 "--watch-dir.\n"
                 "# TYPE walhook_file_events_total counter\n"
                 "walhook_file_events_total {}\n",
                 load(file_events_));
  fmt::format_to(it,
                 "# HELP walhook_events_taken_total Events taken for delivery: handed over in "
                 "memory after their commit, parked (leased at insert) and loaded by id, or "
                 "claimed from event_logs.\n"
                 "# TYPE walhook_events_taken_total counter\n"
                 "walhook_events_taken_total{{how=\"memory\"}} {}\n"
                 "walhook_events_taken_total{{how=\"parked\"}} {}\n"
                 "walhook_events_taken_total{{how=\"claimed\"}} {}\n",
                 load(taken_memory_), load(taken_parked_), load(taken_claimed_));
  fmt::format_to(it,
                 "# HELP walhook_deliveries_total Delivery attempts by outcome.\n"
                 "# TYPE walhook_deliveries_total counter\n"
                 "walhook_deliveries_total{{outcome=\"processed\"}} {}\n"
                 "walhook_deliveries_total{{outcome=\"retry\"}} {}\n"
                 "walhook_deliveries_total{{outcome=\"failed\"}} {}\n",
                 load(processed_), load(retried_), load(failed_));
  fmt::format_to(it,
                 "# HELP walhook_in_flight Webhook requests in flight.\n"
                 "# TYPE walhook_in_flight gauge\n"
                 "walhook_in_flight {}\n",
                 load(in_flight_));
  fmt::format_to(it,
                 "# HELP walhook_held_events Events delivery holds: reserved for a batch being "
                 "written, queued, in flight, or waiting for their outcome to be written.\n"
                 "# TYPE walhook_held_events gauge\n"
                 "walhook_held_events {}\n"
                 "# HELP walhook_reserved_parked_events Room reserved for parked events of "
                 "batches not yet written.\n"
                 "# TYPE walhook_reserved_parked_events gauge\n"
                 "walhook_reserved_parked_events {}\n",
                 load(held_), load(parked_reserved_));
  fmt::format_to(it,
                 "# HELP walhook_replication_lag_bytes WAL between the server's end and the "
                 "confirmed position (streaming node).\n"
                 "# TYPE walhook_replication_lag_bytes gauge\n"
                 "walhook_replication_lag_bytes {}\n",
                 load(lag_bytes_));
  fmt::format_to(it,
                 "# HELP walhook_delivery_latency_seconds From an event's due time to its "
                 "successful delivery.\n"
                 "# TYPE walhook_delivery_latency_seconds histogram\n");
  for (size_t i = 0; i < kLatencyBounds.size(); ++i) {
    fmt::format_to(it, "walhook_delivery_latency_seconds_bucket{{le=\"{}\"}} {}\n",
                   kLatencyBounds[i], load(buckets_[i]));
  }
  fmt::format_to(it,
                 "walhook_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {}\n"
                 "walhook_delivery_latency_seconds_sum {}\n"
                 "walhook_delivery_latency_seconds_count {}\n",
                 load(latency_count_), static_cast<double>(load(latency_sum_us_)) / 1e6,
                 load(latency_count_));
  const BackfillFigures b = backfill();
  fmt::format_to(it,
                 "# HELP walhook_backfill_running Backfills this node is running (0 or 1).\n"
                 "# TYPE walhook_backfill_running gauge\n"
                 "walhook_backfill_running {}\n",
                 b.id != 0 ? 1 : 0);
  if (b.id != 0) {
    // Trigger names are [a-z0-9_-]+ (a CHECK in eventing.triggers): no escaping needed.
    fmt::format_to(it,
                   "# HELP walhook_backfill_rows_done Rows the running backfill has written.\n"
                   "# TYPE walhook_backfill_rows_done gauge\n"
                   "walhook_backfill_rows_done{{id=\"{0}\",trigger=\"{1}\"}} {2}\n"
                   "# HELP walhook_backfill_rows_estimate The table's estimated rows "
                   "(pg_class.reltuples) when the backfill started.\n"
                   "# TYPE walhook_backfill_rows_estimate gauge\n"
                   "walhook_backfill_rows_estimate{{id=\"{0}\",trigger=\"{1}\"}} {3}\n",
                   b.id, b.trigger, b.rows_done, b.rows_estimate);
  }
  return out;
}

void Metrics::SetBackfill(int64_t id, std::string trigger, int64_t rows_done,
                          int64_t rows_estimate) {
  std::lock_guard<std::mutex> lock(backfill_mu_);
  backfill_.id = id;
  backfill_.trigger = std::move(trigger);
  backfill_.rows_done = rows_done;
  backfill_.rows_estimate = rows_estimate;
}

Metrics::BackfillFigures Metrics::backfill() const {
  std::lock_guard<std::mutex> lock(backfill_mu_);
  return backfill_;
}

Metrics& GlobalMetrics() {
  static Metrics metrics;
  return metrics;
}

}  // namespace walhook
