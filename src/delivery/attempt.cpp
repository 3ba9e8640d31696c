#include "walhook/attempt.h"

#include <fmt/format.h>

#include <optional>

#include "walhook/json.h"
#include "walhook/retry.h"
#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

using std::chrono::milliseconds;

std::string HumanDelay(milliseconds d) {
  if (d < milliseconds(1000)) return fmt::format("{} ms", d.count());
  if (d < milliseconds(120000))
    return fmt::format("{:.1f} s", static_cast<double>(d.count()) / 1e3);
  return fmt::format("{} min", d.count() / 60000);
}

// A failed event's dlq_<trigger> event, for whoever listens to it.
void QueueDlq(const HeldEvent& event, AttemptRecord* rec) {
  if (rec->queued_depth > kMaxChainDepth) return;
  ChainedEvent dlq;
  dlq.type = "dlq_" + event.trigger;
  dlq.payload = DlqPayload(event.id, event.type, event.payload, event.ts_ms, event.trigger);
  rec->queued.push_back(std::move(dlq));
}

}  // namespace

AttemptRecord FailAttempt(const HeldEvent& event, std::string remark) {
  AttemptRecord rec;
  rec.event_id = event.id;
  rec.trigger = event.trigger;
  rec.payload_bytes = event.payload.size();
  rec.attempt = event.attempts + 1;
  rec.queued_depth = event.chain_depth + 1;
  rec.due_ms = event.ts_ms;
  rec.status = EventStatus::kFailed;
  rec.error = remark;
  rec.remark = std::move(remark);
  QueueDlq(event, &rec);
  return rec;
}

AttemptRecord JudgeAttempt(const HeldEvent& event, const AttemptResponse& response,
                           const RetrySettings& settings, std::chrono::system_clock::time_point now,
                           double jitter) {
  rapidjson::Document doc;
  const Verdict v = JudgeResponse(response.status, response.body, response.transport_error,
                                  response.body_cut, &doc);
  AttemptRecord rec;
  rec.event_id = event.id;
  rec.trigger = event.trigger;
  rec.payload_bytes = event.payload.size();
  rec.attempt = event.attempts + 1;
  rec.http_status = response.status;
  rec.response_body = Utf8Prefix(response.body, kResponseBodyKept);
  rec.queued_depth = event.chain_depth + 1;
  rec.due_ms = event.ts_ms;
  if (v.outcome == Outcome::kSuccess) {
    rec.status = EventStatus::kProcessed;
    if (!v.unread.empty()) {
      rec.remark = v.unread;
      return rec;
    }
    if (response.body.size() > kResponseBodyKept) {
      // response_body keeps 4 KiB: a synchronous caller needs the whole member.
      if (const auto result = RawJsonMember(response.body, "response")) {
        rec.response_result = std::string(*result);
      }
    }
    ResponseEvents asked = ResponseEventsOf(doc, response.body);
    if (!asked.events.empty() && rec.queued_depth > kMaxChainDepth) {
      rec.remark = fmt::format(
          "the response asked for {} event(s), refused: a chain of events queued by responses "
          "may be {} deep at most",
          asked.events.size(), kMaxChainDepth);
    } else {
      rec.queued = std::move(asked.events);
      rec.remark = std::move(asked.refused);
    }
    return rec;
  }
  rec.error = v.reason;
  std::optional<milliseconds> retry_after;
  if (!response.retry_after.empty()) retry_after = ParseRetryAfter(response.retry_after, now);
  const auto delay = NextAttemptDelay(rec.attempt, settings.retries, settings.retry_interval_ms,
                                      v.outcome == Outcome::kFailNow, retry_after, jitter);
  if (delay) {
    rec.status = EventStatus::kStaged;
    rec.retry_in_ms = delay->count();
    rec.remark = fmt::format("{} (attempt {} of {}; next in {}{})", v.reason, rec.attempt,
                             settings.retries + 1, HumanDelay(*delay),
                             retry_after ? ", as Retry-After asked" : "");
  } else {
    rec.status = EventStatus::kFailed;
    rec.remark = v.outcome == Outcome::kFailNow
                     ? v.reason
                     : fmt::format("{} (attempt {} of {}; no attempts left)", v.reason, rec.attempt,
                                   settings.retries + 1);
    QueueDlq(event, &rec);
  }
  return rec;
}

}  // namespace walhook
