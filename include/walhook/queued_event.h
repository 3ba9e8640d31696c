#pragma once
// A custom event queued from SQL (eventing.queue_event, sql/003_queue_event.sql)
// as it arrives in the replication stream: a transactional logical message
// whose content is a JSON header line, "\n", then the payload as jsonb printed
// it:
//   {"type" : "ORDER_SHIPPED", "delay_ms" : 0, "at" : null}\n{"order": 7}
// Pure.
// Thread-safety: plain functions and values.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "walhook/result.h"

namespace walhook {

struct QueuedEvent {
  std::string type;
  int64_t delay_ms = 0;          // >= 0
  std::optional<int64_t> at_ms;  // ms since the epoch: not due before then
  std::string_view payload;      // JSON text, a view into the message content
};

// Parses a message's content. Errors name what is wrong, for the log: a
// message with our prefix that is not one of ours is skipped, never fatal.
Result<QueuedEvent> ParseQueuedEvent(std::string_view content);

// Whether `type` is a custom event type: [A-Za-z0-9_-]+ and not DB_* or FILE_*.
bool IsCustomEventType(std::string_view type);

}  // namespace walhook
