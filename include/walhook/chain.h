#pragma once
// What a webhook's answer and a failed event queue next (SPEC §4): custom
// events named in a 2xx JSON response ("event" or "events"), and the
// dlq_<trigger> event of an event that failed for good. Pure.
// Thread-safety: plain functions and values.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/json.h"
#include "walhook/result.h"

namespace walhook {

// A chain of events queued by responses is cut past this depth.
inline constexpr int kMaxChainDepth = 16;

// The range of an event's "delay" and "timestamp" (SPEC §9: out of range is
// a client's mistake, refused, never a database error). A timestamp is at most
// 9999-12-31T23:59:59.999Z (and, as a string, not before 0001-01-01), a delay
// at most 100 years: a due time is then always before the year 10100, which
// Postgres's timestamptz holds (its limit is 294276 AD).
inline constexpr int64_t kMaxTimestampMs = 253402300799999;     // 9999-12-31T23:59:59.999Z
inline constexpr int64_t kMinTimestampMs = -62135596800000;     // 0001-01-01T00:00:00Z
inline constexpr int64_t kMaxDelayMs = 100LL * 36525 * 864000;  // 100 years of 365.25 days

// A custom event to queue.
struct ChainedEvent {
  std::string type;
  std::string payload;           // JSON text
  int64_t delay_ms = 0;          // >= 0
  std::optional<int64_t> at_ms;  // not due before then (ms since the epoch)
};

struct ResponseEvents {
  std::vector<ChainedEvent> events;
  // What was refused, readable (for the event's remark); empty when nothing.
  std::string refused;
};

// The events a webhook's JSON response body asks for:
//   {"event": {"type": "X", "payload": {...}, "delay": 1000, "timestamp": "…"}}
//   {"events": [{…}, {…}]}
// `delay` is in ms; `timestamp` is an RFC 3339 string or epoch ms. A body
// that is not a JSON object, or has neither member, asks for nothing. An
// entry with a bad type (not [A-Za-z0-9_-]+, or DB_*/FILE_*), a bad delay or
// timestamp is refused and named in `refused`; the others are kept. The body
// is read with ParseJson (bounded depth, UTF-8 checked): JSON that fails
// there (invalid UTF-8, nested too deep) asks for nothing and `refused` says
// why; text that is not JSON at all asks for nothing.
ResponseEvents ParseResponseEvents(std::string_view body);

// The same for a body already parsed with ParseJson: `doc` is `body` parsed.
ResponseEvents ResponseEventsOf(const rapidjson::Value& doc, std::string_view body);

// The payload of the dlq_<trigger> event of a failed event:
// {"event_id": "<id>", "event_type": …, "event_payload": <data>,
//  "event_timestamp": "<RFC 3339>", "event_name": "<trigger>"}.
// `data` is JSON text (a stored payload); anything else is sent as null.
std::string DlqPayload(int64_t event_id, std::string_view type, std::string_view data,
                       int64_t ts_ms, std::string_view trigger);

// POST /v1/api/{project}/eventing/queue's body (SPEC §5): {"type",
// "payload", "delay" (ms), "timestamp" (RFC 3339 or epoch ms), "options"
// (an object, accepted and unused), "isSynchronous"}. Read with ParseJson
// (depth and UTF-8 checked). The error is one line, for a 400: not JSON,
// invalid UTF-8, nested too deep, a wrong type, a negative or out-of-range
// delay, an impossible or out-of-range timestamp.
struct QueueRequest {
  ChainedEvent event;
  bool synchronous = false;
};
Result<QueueRequest> ParseQueueRequest(std::string_view body);

// The text of the first member `key` of a JSON object's text, as written;
// nullopt when absent (or the text is not an object).
std::optional<std::string_view> RawJsonMember(std::string_view object, std::string_view key);

}  // namespace walhook
