#pragma once
// One delivery attempt in values (SPEC §4): the event sent, what came back,
// and the outcome that is written for it — processed, a retry and when, or
// failed — with the custom events it queues (its response's, or the
// dlq_<trigger> event of an event that failed for good). Pure: the
// dispatcher makes the request, this module judges it.
// Thread-safety: plain functions and values.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/chain.h"

namespace walhook {

// An event this node now holds a lease on.
struct HeldEvent {
  int64_t id = 0;
  std::string trigger;
  std::string type;
  std::string payload;
  int64_t ts_ms = 0;    // due time, ms since the epoch: the CloudEvents "time"
  int attempts = 0;     // attempts made before this one
  int chain_depth = 0;  // 0 for a source event; +1 per response that queued it
};

enum class EventStatus { kStaged, kProcessed, kFailed };

// The outcome of one attempt, written with its invocation row.
struct AttemptRecord {
  int64_t event_id = 0;
  std::string trigger;
  int attempt = 0;  // 1 for the first
  EventStatus status = EventStatus::kStaged;
  int64_t retry_in_ms = 0;  // kStaged: when the next attempt is due
  std::string remark;       // empty on success
  int64_t started_ms = 0;   // ms since the epoch
  int duration_ms = 0;
  long http_status = 0;       // 0: no response
  std::string response_body;  // first 4 KiB
  // A success's "response" member (JSON text, what a synchronous queue call
  // answers with), when response_body does not hold the whole body; else empty.
  std::string response_result;
  std::string error;         // empty when none
  size_t payload_bytes = 0;  // not stored: what the event held in memory
  int64_t due_ms = 0;        // not stored: the event's ts (for latency)
  // Custom events this attempt queues (its response's, or the dlq_ event of
  // a failed event), at chain depth `queued_depth`.
  std::vector<ChainedEvent> queued;
  int queued_depth = 0;
};

// What came back for one request.
struct AttemptResponse {
  long status = 0;                   // HTTP status; 0 when no response came
  std::string_view body;             // what was read of it (kMaxResponseBody at most)
  bool body_cut = false;             // the body went on past that
  std::string_view transport_error;  // why no response came, when status is 0
  std::string_view retry_after;      // the Retry-After header; "" when none
};

// The trigger's retry settings when the request was sent.
struct RetrySettings {
  int retries = 3;
  int retry_interval_ms = 5000;
};

// The outcome of attempt number event.attempts + 1 of `event`: processed
// (a 2xx without an "error"; its remark says what of the response was
// refused or not read, and `queued` holds the events it asked for unless
// the chain is kMaxChainDepth deep already), staged for a retry (after
// Retry-After, relative to `now`, or the trigger's schedule with `jitter`
// in [0, 1)), or failed (no attempts left, or 410), with the dlq_ event.
// response_body is the first kResponseBodyKept bytes, cut between
// characters. started_ms and duration_ms are left for the caller.
AttemptRecord JudgeAttempt(const HeldEvent& event, const AttemptResponse& response,
                           const RetrySettings& settings, std::chrono::system_clock::time_point now,
                           double jitter);

// The outcome of an attempt that made no request and is not retried (a
// request transform that does not evaluate, SPEC §11): failed at once with
// `remark` (also its error), and the dlq_ event. started_ms and duration_ms
// are left for the caller.
AttemptRecord FailAttempt(const HeldEvent& event, std::string remark);

}  // namespace walhook
