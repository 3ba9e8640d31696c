#include "walhook/metrics.h"

#include <doctest/doctest.h>

namespace walhook {
namespace {

TEST_CASE("Metrics: Prometheus text") {
  Metrics m;
  CHECK(m.SinceBeat() == std::chrono::milliseconds::max());
  m.Beat(NodeRole::kStreaming);
  CHECK(m.role() == NodeRole::kStreaming);
  CHECK(m.SinceBeat() < std::chrono::seconds(1));
  m.AddCaptured(5);
  m.AddQueued(2);
  m.AddFileEvents(7);
  m.SetLagBytes(1024);
  m.SetInFlight(3);
  m.AddDelivery("processed", 0.004);
  m.AddDelivery("processed", 0.3);
  m.AddDelivery("retry");
  m.AddDelivery("failed");
  m.AddTaken(4, 0, 0);
  m.AddTaken(0, 3, 1);
  const std::string text = m.Render();
  for (const char* line : {
           "walhook_events_captured_total 5\n",
           "walhook_events_queued_total 2\n",
           "walhook_file_events_total 7\n",
           "walhook_deliveries_total{outcome=\"processed\"} 2\n",
           "walhook_deliveries_total{outcome=\"retry\"} 1\n",
           "walhook_deliveries_total{outcome=\"failed\"} 1\n",
           "walhook_events_taken_total{how=\"memory\"} 4\n",
           "walhook_events_taken_total{how=\"parked\"} 3\n",
           "walhook_events_taken_total{how=\"claimed\"} 1\n",
           "walhook_in_flight 3\n",
           "walhook_replication_lag_bytes 1024\n",
           "# TYPE walhook_delivery_latency_seconds histogram\n",
           "walhook_delivery_latency_seconds_bucket{le=\"0.0025\"} 0\n",
           "walhook_delivery_latency_seconds_bucket{le=\"0.005\"} 1\n",
           "walhook_delivery_latency_seconds_bucket{le=\"0.25\"} 1\n",
           "walhook_delivery_latency_seconds_bucket{le=\"0.5\"} 2\n",
           "walhook_delivery_latency_seconds_bucket{le=\"+Inf\"} 2\n",
           "walhook_delivery_latency_seconds_sum 0.304\n",
           "walhook_delivery_latency_seconds_count 2\n",
       }) {
    CAPTURE(line);
    CHECK(text.find(line) != std::string::npos);
  }
}

}  // namespace
}  // namespace walhook
