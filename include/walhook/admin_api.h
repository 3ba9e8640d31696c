#pragma once
// The admin JSON API's request and response shaping (SPEC §12,
// docs/admin-api.md): routes under /v1/admin/, the admin token, query
// parameters, trigger bodies, validation of conditions and transforms, and
// the JSON of every answer. Pure: no database, no sockets; the adapter
// (admin_handler.cpp) reads rows into the structs below and writes through
// these functions.
// Thread-safety: plain functions and values.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/http_parser.h"
#include "walhook/transform_request.h"

namespace walhook::admin {

inline constexpr std::string_view kPrefix = "/v1/admin/";
// What masked values read as; a PATCH that sends it back keeps the stored value.
inline constexpr std::string_view kMask = "********";
inline constexpr size_t kDefaultPage = 50;
inline constexpr size_t kMaxPage = 500;
// Events one bulk call may act on.
inline constexpr int64_t kMaxBulk = 100000;
// Text parameters (trigger, type) longer than this match nothing and are refused.
inline constexpr size_t kMaxFilterBytes = 1024;

// A refusal: the status, one line, and the body member or parameter at
// fault ("" when none).
struct FieldError {
  int status = 400;
  std::string field;
  std::string message;
};
// {"error": "<message>", "field": "<field>"} (no field when empty).
HttpResponse ErrorResponse(const FieldError& e);
HttpResponse JsonResponse(int status, std::string body);

enum class Route {
  kListTriggers,    // GET    triggers
  kGetTrigger,      // GET    triggers/{name}
  kCreateTrigger,   // POST   triggers
  kUpdateTrigger,   // PATCH  triggers/{name}
  kDeleteTrigger,   // DELETE triggers/{name}
  kEnableTrigger,   // POST   triggers/{name}/enable
  kDisableTrigger,  // POST   triggers/{name}/disable
  kValidate,        // POST   validate
  kTables,          // GET    tables
  kListEvents,      // GET    events
  kGetEvent,        // GET    events/{id}
  kRedeliver,       // POST   events/{id}/redeliver
  kCancel,          // POST   events/{id}/cancel
  kBulk,            // POST   events/bulk
  kQueue,           // POST   queue
  kNodes,           // GET    nodes
  kListBackfills,   // GET    backfills
  kStartBackfill,   // POST   backfills
  kCancelBackfill,  // POST   backfills/{id}/cancel
};

struct AdminTarget {
  Route route = Route::kListTriggers;
  std::string name;  // {name}
  int64_t id = 0;    // {id}
};

// Whether `path` is under /v1/admin (the prefix itself included).
bool IsAdminPath(std::string_view path);

// The route of an admin request, or its refusal: 404 (no such path, or a
// {name} that cannot be a trigger's), 405 (a known path, another method),
// 400 (an {id} that is not a positive 63-bit integer, field "id").
// REQUIRES: IsAdminPath(path).
std::optional<FieldError> RouteAdmin(std::string_view method, std::string_view path,
                                     AdminTarget* out);

// The admin token check of SPEC §9/§12, from the head alone: 401 without an
// "Authorization: Bearer" token or with one VerifyToken refuses, 403 when
// its role is not "admin". nullopt when the request may go on.
std::optional<HttpResponse> CheckAdminToken(const HttpRequest& head, std::string_view secret,
                                            int64_t now_s);

// The query string of `target` (after '?'), percent-decoded ('+' is a
// space). A malformed escape, invalid UTF-8, a NUL or a name given twice is
// an error naming the parameter.
std::optional<FieldError> ParseQuery(std::string_view target,
                                     std::map<std::string, std::string>* out);

// A positive 63-bit decimal integer (an event or backfill id); nullopt else.
std::optional<int64_t> ParseId(std::string_view text);

// A time parameter: RFC 3339 or epoch ms (within 0001–9999); nullopt else.
std::optional<int64_t> ParseTimeMs(std::string_view text);

inline constexpr std::string_view kStatuses[] = {"staged", "processed", "failed", "cancel"};

struct EventFilter {
  std::optional<std::string> trigger;
  std::optional<std::string> status;
  std::optional<std::string> type;
  std::optional<int64_t> from_ms;  // event_ts >= from
  std::optional<int64_t> to_ms;    // event_ts < to
  std::optional<int64_t> before;   // id < before
  size_t limit = kDefaultPage;     // capped at kMaxPage
};
std::optional<FieldError> ParseEventFilter(const std::map<std::string, std::string>& query,
                                           EventFilter* out);

// --- Triggers ---------------------------------------------------------------

// trigger_status's row of a trigger.
struct TriggerStatus {
  bool active = false;
  int64_t staged = 0, processed = 0, failed = 0, cancel = 0, in_flight = 0;
  std::optional<int64_t> oldest_staged_age_ms;
  std::optional<int64_t> last_success_at_ms;
  std::optional<std::string> last_error;
  std::optional<std::string> last_delivery_error;
};

// A trigger as the API shows it, from its row as `to_jsonb(t)` prints it:
// the columns docs/admin-api.md lists (request_transform and token_claims
// when the row has them), headers' values and request_transform.headers'
// values masked, and "status" when given. An unreadable row gives "null".
std::string TriggerJson(std::string_view row_jsonb, const TriggerStatus* status);

// A create (no `stored_row`) or update body checked and made canonical: a
// JSON object of the accepted members only, each of the column's JSON type,
// for jsonb_populate_record. Members: name (create only; an update may
// repeat the path's name), type, table_name, columns, condition,
// path_prefix, url, headers, retries, timeout_ms, retry_interval_ms,
// ordered, enabled, owner, request_transform, token_claims; "status" is
// ignored, anything else refused. For an update, `stored_row` is the
// trigger's row (to_jsonb): header values equal to kMask take the stored
// value, and the stored type is what the condition is checked against when
// the body does not change it.
struct TriggerWrite {
  std::string json;                  // the canonical object
  std::vector<std::string> columns;  // its members, in order
};
std::optional<FieldError> ParseTriggerWrite(std::string_view body,
                                            std::optional<std::string_view> stored_row,
                                            std::string_view path_name, TriggerWrite* out);

// The field to name for a CHECK constraint of eventing.triggers that a
// write broke, from the columns the constraint covers and those the write
// gave: a constraint over type and another column (columns only for
// DB_UPDATE) is about the other one, unless only type was written. "" when
// the constraint covers no column.
std::string ConstraintField(const std::vector<std::string>& constraint_columns,
                            const std::vector<std::string>& written);

// --- Validation without saving -------------------------------------------

struct Problem {
  std::string field;
  std::string message;
  std::optional<int64_t> offset;  // conditions: byte offset
  std::optional<int64_t> line;    // templates: 1-based
  std::optional<int64_t> column;
};

struct ValidateRequest {
  std::optional<std::string> type;
  std::optional<std::string> condition;
  std::optional<std::string> request_transform;  // JSON text
  std::optional<std::string> token_claims;       // JSON text
  std::optional<int64_t> event_id;
};
std::optional<FieldError> ParseValidateRequest(std::string_view body, ValidateRequest* out);

// A condition's problems (none when it parses, and, with `type`, names only
// what that type's events have).
std::vector<Problem> CheckCondition(std::string_view condition,
                                    std::optional<std::string_view> type);
// A request_transform's problems (SPEC §11): its shape, and each template
// parsed with the Kriti engine.
std::vector<Problem> CheckTransform(std::string_view transform_json);
// token_claims: a Kriti template (kJson).
std::vector<Problem> CheckTokenClaims(std::string_view claims_json);

// Each template of the transform (and the claims) rendered against
// `body_json` (an event's CloudEvents body) and `base_url`:
// {"method", "url", "query_params", "headers", "body", "content_type",
//  "token_claims"} (members absent when not templated; header values
// masked). Render errors go to *problems with the template's field.
std::string RenderPreview(const ValidateRequest& request, std::string_view body_json,
                          std::string_view base_url, std::vector<Problem>* problems);

// {"ok": <no problems>, "errors": [...], "preview": <preview or null>}
std::string ValidateJson(const std::vector<Problem>& problems,
                         std::optional<std::string_view> preview);

// --- Events -----------------------------------------------------------------

struct EventRow {
  int64_t id = 0;
  std::string trigger_name, type, status;
  int64_t attempts = 0;
  std::optional<std::string> remark;
  int64_t ts_ms = 0, event_ts_ms = 0, created_at_ms = 0;
  std::optional<int64_t> processed_at_ms, next_at_ms;
  int64_t chain_depth = 0;
  std::optional<int64_t> origin_id;
  int64_t payload_bytes = 0;
};

void WriteEventSummary(const EventRow& e, std::string* out);
// {"events": [...], "next_before": "<id>"|null, "limit": n}
std::string EventPageJson(const std::vector<EventRow>& rows, std::optional<int64_t> next_before,
                          size_t limit);

struct AttemptRow {
  int64_t id = 0;
  std::optional<int64_t> attempt;
  int64_t invocation_time_ms = 0;
  std::optional<std::string> node_id;
  std::optional<int64_t> response_status_code;
  std::optional<std::string> response_body;
  std::optional<std::string> error_msg;
  std::optional<int64_t> duration_ms;
};

// The trigger as delivery reads it at each attempt.
struct DeliveryTarget {
  std::string url;
  std::string headers_json;  // "{}" when none
};

// The request walhook sends for `e` (SPEC §4): POST, the trigger's url, its
// headers, the CloudEvents body made from `payload_json`. X-SC-Token, the
// signature and every trigger header value are masked; webhook-* only
// `with_signature`. `source` is the body's "source" (the node id).
std::string SentRequestJson(const EventRow& e, std::string_view payload_json,
                            const DeliveryTarget& target, std::string_view source,
                            bool with_signature);

struct EventDetail {
  EventRow event;
  std::optional<std::string> payload_json;  // null when not stored
  std::optional<DeliveryTarget> target;     // nullopt: the trigger is gone
  std::string source;                       // the node id the body names
  bool with_signature = false;
  std::vector<AttemptRow> attempts;
  std::vector<EventRow> chained;  // queued by its answers, dlq_ ones apart
  std::vector<EventRow> dlq;
  // With a request_transform or token_claims: the request delivery makes
  // for this event now (ShapeRequest), or why it makes none (the trigger's
  // transform does not parse, or does not evaluate for this event: the
  // event's remark).
  bool transformed = false;
  std::optional<ShapedRequest> shaped;
  std::string transform_error;
};
std::string EventDetailJson(const EventDetail& d);

// --- Bulk -------------------------------------------------------------------

struct BulkRequest {
  std::string action;  // "redeliver" | "cancel"
  std::string trigger;
  std::optional<int64_t> from_ms, to_ms;
  bool dry_run = false;
  std::optional<int64_t> max_id;  // REQUIRED unless dry_run
  // The status the action applies to: "failed" for redeliver, "staged" for cancel.
  std::string_view Status() const { return action == "redeliver" ? "failed" : "staged"; }
};
std::optional<FieldError> ParseBulkRequest(std::string_view body, BulkRequest* out);

// --- Nodes and backfills ----------------------------------------------------

struct NodeRow {
  std::string node_id, role, slot_name;
  std::optional<std::string> confirmed_lsn;
  std::optional<int64_t> lag_bytes;
  std::string events_per_s = "0", deliveries_per_s = "0";  // numbers as printed
  int64_t in_flight = 0;
  int64_t updated_at_ms = 0;
};
std::string NodesJson(int64_t now_ms, const std::vector<NodeRow>& nodes);

struct BackfillRow {
  int64_t id = 0;
  std::string trigger_name, state;
  std::optional<int64_t> rows_done, rows_estimate;
  std::optional<int64_t> started_at_ms, finished_at_ms;
  std::optional<std::string> error;
};
std::string BackfillsJson(const std::vector<BackfillRow>& rows);

struct BackfillRequest {
  std::string trigger;
  std::optional<std::string> condition;
};
std::optional<FieldError> ParseBackfillRequest(std::string_view body, BackfillRequest* out);

// --- Source catalog -----------------------------------------------------------

struct ColumnInfo {
  std::string name, type;
  bool nullable = true;
};
struct TableEntry {
  std::string schema, name;
  bool partitioned = false;
  std::vector<std::string> primary_key;
  std::string replica_identity;  // default | full | index | nothing
  std::vector<ColumnInfo> columns;
};
std::string TablesJson(const std::vector<TableEntry>& tables, bool truncated);

// The text of a pqxx error's primary message ("ERROR:  x\nCONTEXT…" → "x"),
// one line, at most 300 bytes, valid UTF-8: for messages walhook's own SQL
// functions raise for the caller (backfill's refusals).
std::string PrimaryMessage(std::string_view what);

}  // namespace walhook::admin
