#include "walhook/delivery_store.h"

#include <map>
#include <unordered_set>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "walhook/event_batch.h"
#include "walhook/json.h"
#include "walhook/log.h"
#include "walhook/trigger.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

// "Still staged", for statements that find events by id. Written so it does
// not match the predicate of the partial index on staged rows: on a table
// that grew fast from empty (no statistics yet) the planner would otherwise
// scan that whole index once per id instead of using the primary key.
constexpr const char* kStagedById = "status || '' = 'staged'";

std::string Channel(const std::string& schema) {
  return "walhook_triggers_" + schema;
}

void AppendNullable(std::string* literal, const std::string& value) {
  if (value.empty()) {
    if (literal->size() > 1) literal->push_back(',');
    literal->append("NULL");
  } else {
    AppendArrayElement(literal, StorableText(value));
  }
}

void AppendNumber(std::string* literal, int64_t value) {
  if (literal->size() > 1) literal->push_back(',');
  literal->append(std::to_string(value));
}

// An int8[] literal of `ids`.
std::string IdArray(const std::vector<int64_t>& ids) {
  std::string out = "{";
  for (int64_t id : ids) AppendNumber(&out, id);
  out.push_back('}');
  return out;
}

std::string_view StatusName(EventStatus s) {
  switch (s) {
    case EventStatus::kStaged: return "staged";
    case EventStatus::kProcessed: return "processed";
    case EventStatus::kFailed: return "failed";
  }
  return "staged";
}

std::vector<std::string> HeaderLines(const std::string& trigger, const std::string& json) {
  std::vector<std::string> out;
  rapidjson::Document doc;
  // A trigger author wrote it (jsonb nests thousands deep): read with bounds.
  if (!ParseJson(json, &doc).ok() || !doc.IsObject()) return out;
  for (const auto& m : doc.GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    std::string value;
    if (m.value.IsString()) {
      value.assign(m.value.GetString(), m.value.GetStringLength());
    } else {
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      m.value.Accept(w);
      value.assign(buf.GetString(), buf.GetSize());
    }
    // A line break would smuggle another header (or a body) into the request;
    // walhook's own headers are its own (SPEC §9: validation makes such a
    // trigger inactive; its events already staged go without them).
    if (name.empty() || name.find_first_of(":\r\n \t") != std::string::npos ||
        value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos ||
        IsReservedHeader(name)) {
      LogWarn("trigger \"{}\": header \"{}\" is not a valid HTTP header and is not sent", trigger,
              StorableText(name));
      continue;
    }
    out.push_back(name + ": " + value);
  }
  return out;
}

// What a statement returns of the events it hands to the dispatcher, in the
// order HeldEvents reads them (event_logs as `e`).
constexpr const char* kHeldColumns =
    "e.id, e.trigger_name, e.type, e.payload, (extract(epoch FROM e.ts) * 1000)::int8, "
    "e.attempts, e.chain_depth";

// Rows of kHeldColumns; with an eighth column false, the row's event goes
// to *unfit (id and trigger only) instead.
std::vector<HeldEvent> HeldEvents(const pqxx::result& rows,
                                  std::vector<HeldEvent>* unfit = nullptr) {
  std::vector<HeldEvent> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    HeldEvent e;
    if (unfit != nullptr && r.size() > 7 && !r[7].as<bool>()) {
      e.id = r[0].as<int64_t>();
      e.trigger = r[1].as<std::string>();
      unfit->push_back(std::move(e));
      continue;
    }
    e.id = r[0].as<int64_t>();
    e.trigger = r[1].as<std::string>();
    e.type = r[2].as<std::string>();
    e.payload.assign(r[3].c_str(), r[3].size());
    e.ts_ms = r[4].as<int64_t>();
    e.attempts = r[5].as<int>();
    e.chain_depth = r[6].as<int>();
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

class DeliveryStore::Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, const std::string& channel, Notices* notices)
      : pqxx::notification_receiver(conn, channel), notices_(notices) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    if (payload == "wake") {
      notices_->wake = true;
    } else {
      notices_->triggers_changed = true;
    }
  }

 private:
  Notices* notices_;
};

DeliveryStore::DeliveryStore(const std::string& conninfo, std::string schema, std::string node_id,
                             std::string* started)
    : conn_(conninfo), schema_(std::move(schema)), node_id_(std::move(node_id)) {
  // What this connection writes may be lost in a crash of Postgres without
  // harm: a lost outcome or claim leaves the event staged, and it is sent
  // again (at least once, same webhook-id). So commits do not wait for the
  // WAL flush.
  conn_.set_variable("synchronous_commit", "off");
  // Prepared statements get generic plans, whatever their parameters: a
  // custom plan for 2000 outcomes hashed the whole of event_logs (315 ms
  // with 300k rows) where the generic one probes the primary key (25 ms).
  conn_.set_variable("plan_cache_mode", "force_generic_plan");
  // A generic plan is made once, at the first execution, and kept. Made
  // while event_logs held a few rows, it read the table (a seq scan is the
  // cheapest way through one page) in a nested loop over the outcomes, and
  // kept doing so once the table had grown until autovacuum analyzed it:
  // 9.9 s for 2000 outcomes with 30k staged rows. Every statement of this
  // connection reaches event_logs by an index, so none may take a seq scan
  // where an index serves (tables with no index still get theirs).
  conn_.set_variable("enable_seqscan", "off");
  // A seq scan that stays (event_counts, nodes) then carries the planner's
  // disable cost, which is far past jit_above_cost: JIT compiled each such
  // statement, 130-150 ms a time. These statements are short; no JIT.
  conn_.set_variable("jit", "off");
  // The statements here that change an event's status add to event_counts
  // themselves (see 008_status_counts.sql): the row trigger would cost a
  // call and an insert per event.
  conn_.set_variable("walhook.counts_own", "on");
  if (started->empty()) {
    pqxx::nontransaction tx(conn_);
    *started = tx.exec1("SELECT now()::text")[0].as<std::string>();
  }
  started_ = *started;
  const std::string s = conn_.quote_name(schema_);
  // Each trigger's due events, skipping what other nodes hold, at most
  // `room` per trigger. Events without an order key go oldest first (the due
  // index). Keyed ones go in commit order (file events, without a WAL
  // position, in the order they were stored) along the keyed index: for an
  // ordered trigger only an event that is the first staged event of its key,
  // so the walk stops once it has found `room` of them instead of reading the
  // whole backlog; for a trigger no longer ordered, any. The first-of-its-key
  // test is a scalar subquery (one probe of the ordered index per event
  // walked), so that it never becomes a join over every keyed event. Events
  // of one busy key all stand in that walk behind their first, so an ordered
  // trigger walks only when asked to; after outcomes, the next event of each
  // key just done is found directly: that event by primary key (its trigger
  // test is written so that no index on the trigger tempts the planner),
  // then its key's first. The claimed rows are then found by primary key,
  // whatever the planner guesses of their number (a guess of thousands made
  // it hash the whole table).
  const std::string lease_free =
      "(e.lease_until IS NULL OR e.lease_until < now() "
      "OR (e.lease_owner = $3 AND e.lease_until < $4::timestamptz + interval '30 s'))";
  // Only event_logs_ordered serves it (see 006_keyed_claims.sql).
  const auto first_of_key = [&s](std::string_view key) {
    return fmt::format(
        "(SELECT p.id FROM {}.event_logs p WHERE p.trigger_name = t.name "
        "  AND p.status = 'staged' AND p.order_key = {} "
        "  ORDER BY p.order_key, p.source_lsn, p.source_seq, p.id LIMIT 1)",
        s, key);
  };
  // The claim and next_due are not prepared: each execution is planned for
  // the table as it is then. A plan kept from while event_logs was nearly
  // empty (before autovacuum gave it statistics) kept scanning the whole
  // table after a burst had filled it: 3.7 s per claim with 30k keyed events
  // staged.
  claim_sql_ = fmt::format(
      "WITH t AS (SELECT * FROM unnest($1::text[], $2::int[], $5::bool[], $6::bool[]) "
      "  AS t(name, room, ordered, walk)), "
      "c AS ("
      "  SELECT t.name, t.room, 0 AS branch, e.id FROM t CROSS JOIN LATERAL ("
      "    SELECT DISTINCT r.order_key FROM {0}.event_logs r WHERE r.id = ANY($7::int8[]) "
      "       AND r.trigger_name || '' = t.name AND r.order_key IS NOT NULL) r "
      "  CROSS JOIN LATERAL ("
      "    SELECT e.id FROM {0}.event_logs e WHERE e.id = {3} "
      "       AND coalesce(e.next_at, e.ts) <= now() AND {1} FOR UPDATE SKIP LOCKED) e "
      "  WHERE t.ordered "
      "  UNION ALL "
      "  SELECT t.name, t.room, 1, e.id FROM t CROSS JOIN LATERAL ("
      "    SELECT e.id FROM {0}.event_logs e "
      "     WHERE e.trigger_name = t.name AND e.status = 'staged' AND e.order_key IS NULL "
      "       AND coalesce(e.next_at, e.ts) <= now() AND {1} "
      "     ORDER BY coalesce(e.next_at, e.ts) LIMIT t.room FOR UPDATE SKIP LOCKED) e "
      "  UNION ALL "
      "  SELECT t.name, t.room, 2, e.id FROM t CROSS JOIN LATERAL ("
      "    SELECT e.id FROM {0}.event_logs e "
      "     WHERE e.trigger_name = t.name AND e.status = 'staged' "
      "       AND e.order_key IS NOT NULL AND coalesce(e.next_at, e.ts) <= now() AND {1} "
      "       AND (NOT t.ordered OR e.id = {4}) "
      "     ORDER BY e.source_lsn, e.source_seq, e.id LIMIT t.room "
      "     FOR UPDATE SKIP LOCKED) e "
      "  WHERE NOT t.ordered OR t.walk), "
      // Together the branches still take at most `room` of a trigger.
      "x AS (SELECT id, name FROM (SELECT id, name, room, "
      "  row_number() OVER (PARTITION BY name ORDER BY branch, id) AS n "
      "  FROM (SELECT DISTINCT ON (id) * FROM c ORDER BY id, branch) d) x "
      "  WHERE n <= room), "
      // And together at most $8 bytes of payload, taken from the triggers in
      // turn (one over it only when $9: nothing else is held).
      "k AS (SELECT id FROM (SELECT x.id, "
      "  sum(octet_length(b.payload::text)) OVER (ORDER BY n, x.name, x.id) AS bytes, "
      "  row_number() OVER (ORDER BY n, x.name, x.id) AS g "
      "  FROM (SELECT x.*, row_number() OVER (PARTITION BY x.name ORDER BY x.id) AS n "
      "        FROM x) x "
      "  JOIN {0}.event_logs b ON b.id = x.id) y "
      "  WHERE bytes <= $8 OR (g = 1 AND $9)) "
      "UPDATE {0}.event_logs e SET lease_owner = $3, lease_until = now() + interval '{2} s' "
      "  WHERE e.id = ANY(ARRAY(SELECT id FROM k)) "
      "RETURNING {5}",
      s, lease_free, kLease.count(), first_of_key("r.order_key"), first_of_key("e.order_key"),
      kHeldColumns);
  // By primary key (see kStagedById). Both parts read one snapshot, so each
  // row is in exactly one: the read, or the renewal (which waits for a
  // claim of another node that took the row after its lease ran out, and
  // then skips it).
  // Payloads in id order up to $3 bytes (one over it only when $4); the
  // rest come back without theirs, to stay parked.
  conn_.prepare(
      "load_parked",
      fmt::format("WITH r AS (UPDATE {0}.event_logs e SET lease_until = now() + interval '{1} s' "
                  "  WHERE e.id = ANY($1::int8[]) AND e.lease_owner = $2 AND e.{3} "
                  "    AND e.lease_until <= now() + interval '{2} s' RETURNING e.id), "
                  "a AS (SELECT e.id FROM {0}.event_logs e WHERE e.id = ANY($1::int8[]) "
                  "  AND e.lease_owner = $2 AND e.{3} AND e.lease_until > now() + interval '{2} s' "
                  "  UNION ALL SELECT id FROM r), "
                  // The budget goes round the triggers, the smaller events of
                  // a round first, each trigger's in id order: one trigger's
                  // large events do not keep another's small ones parked.
                  "f AS (SELECT id, (bytes <= $3 OR (g = 1 AND $4)) AS fits FROM (SELECT id, "
                  "  sum(len) OVER (ORDER BY k, len, id) AS bytes, "
                  "  row_number() OVER (ORDER BY k, len, id) AS g FROM (SELECT e.id, "
                  "  octet_length(e.payload::text) AS len, "
                  "  row_number() OVER (PARTITION BY e.trigger_name ORDER BY e.id) AS k "
                  "  FROM a JOIN {0}.event_logs e ON e.id = a.id) x) y) "
                  "SELECT e.id, e.trigger_name, e.type, CASE WHEN f.fits THEN e.payload END, "
                  "  (extract(epoch FROM e.ts) * 1000)::int8, e.attempts, e.chain_depth, f.fits "
                  "FROM f JOIN {0}.event_logs e ON e.id = f.id",
                  s, kLease.count(), kLoadMargin.count(), kStagedById));
  // One index probe per trigger (event_logs_due), however long the backlog.
  // Keyed events are due when stored; their retries have timers in the node
  // that made the attempt, and the sweep (every second) finds the others.
  next_due_sql_ = fmt::format(
      "SELECT ceil(extract(epoch FROM min(x.d) - now()) * 1000)::int8 "
      "FROM unnest($1::text[]) AS t(name) CROSS JOIN LATERAL ("
      "  SELECT coalesce(e.next_at, e.ts) AS d FROM {0}.event_logs e "
      "   WHERE e.trigger_name = t.name AND e.status = 'staged' "
      "     AND e.order_key IS NULL AND coalesce(e.next_at, e.ts) > now() "
      "   ORDER BY coalesce(e.next_at, e.ts) LIMIT 1) x",
      s);
  // Outcomes, their counts, invocation rows and health rows: one statement.
  conn_.prepare(
      "record",
      fmt::format(
          "WITH u AS MATERIALIZED ("
          "  SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int[], $5::int8[], "
          "    $6::text[], $7::int8[], $8::int[], $9::text[], $10::text[], $11::int[], "
          "    $23::json[]) "
          "    AS u(id, n, st, attempt, delay, remark, started, code, body, err, d, result)), "
          "upd AS ("
          "  UPDATE {0}.event_logs e SET status = u.st, attempts = u.attempt, remark = u.remark, "
          "    processed_at = CASE WHEN u.st = 'processed' THEN now() END, "
          "    next_at = CASE WHEN u.st = 'staged' THEN now() + u.delay * interval '1 ms' "
          "      ELSE e.next_at END, "
          "    lease_owner = NULL, lease_until = NULL "
          // Only where this node holds the lease (see Record).
          "  FROM u WHERE e.id = u.id AND e.{1} AND e.lease_owner = $12 "
          "  RETURNING e.id, e.trigger_name, e.status), "
          // Every updated event was staged.
          "cnt AS ("
          "  INSERT INTO {0}.event_counts SELECT trigger_name, "
          "    count(*) FILTER (WHERE status = 'processed'), "
          "    count(*) FILTER (WHERE status = 'failed'), 0 "
          "  FROM upd WHERE status <> 'staged' GROUP BY trigger_name), "
          "inv AS ("
          "  INSERT INTO {0}.invocation_logs (event_id, trigger_name, attempt, node_id, "
          "    invocation_time, response_status_code, response_body, error_msg, duration_ms, "
          "    response_result) "
          "  SELECT id, n, attempt, $12, to_timestamp(started / 1000.0), nullif(code, 0), body, "
          "    err, d, result FROM u), "
          "h AS ("
          "  INSERT INTO {0}.delivery_health AS h (trigger_name, last_success_at, last_error, "
          "    last_error_at) "
          "  SELECT n, CASE WHEN ok THEN now() END, err, CASE WHEN err IS NOT NULL THEN now() END "
          "  FROM unnest($13::text[], $14::bool[], $15::text[]) AS x(n, ok, err) "
          "  ON CONFLICT (trigger_name) DO UPDATE SET "
          "    last_success_at = coalesce(excluded.last_success_at, h.last_success_at), "
          "    last_error = coalesce(excluded.last_error, h.last_error), "
          "    last_error_at = coalesce(excluded.last_error_at, h.last_error_at)), "
          // Custom events queued by responses, and dlq_ events: due at
          // greatest(now, timestamp) + delay, received now.
          "q AS ("
          "  INSERT INTO {0}.event_logs (trigger_name, type, status, payload, ts, event_ts, "
          "    chain_depth, origin_id) "
          "  SELECT n, ty, 'staged', p, greatest(now(), to_timestamp(a / 1000.0)) "
          "    + d * interval '1 ms', now(), c, o "
          "  FROM unnest($16::text[], $17::text[], $18::json[], $19::int8[], $20::int8[], "
          "    $21::int[], $22::int8[]) AS q(n, ty, p, d, a, c, o) "
          "  WHERE q.o IN (SELECT id FROM upd)) "
          "SELECT 1",
          s, kStagedById));
}

DeliveryStore::~DeliveryStore() = default;

void DeliveryStore::Listen() {
  receiver_ = std::make_unique<Receiver>(conn_, Channel(schema_), &notices_);
}

int DeliveryStore::socket() const {
  return conn_.sock();
}

DeliveryStore::Notices DeliveryStore::Poll() {
  conn_.get_notifs();
  const Notices n = notices_;
  notices_ = Notices{};
  return n;
}

std::vector<Target> DeliveryStore::LoadTargets() {
  pqxx::read_transaction tx(conn_);
  const auto rows = tx.exec(fmt::format(
      "SELECT name, url, coalesce(headers::text, '{{}}'), retries, timeout_ms, retry_interval_ms, "
      "ordered, type, condition, enabled, request_transform::text, token_claims::text "
      "FROM {}.triggers",
      conn_.quote_name(schema_)));
  std::vector<Target> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    Target t;
    t.name = r[0].as<std::string>();
    t.url = r[1].as<std::string>();
    t.headers = HeaderLines(t.name, r[2].as<std::string>());
    t.retries = r[3].as<int>();
    t.timeout_ms = r[4].as<int>();
    t.retry_interval_ms = r[5].as<int>();
    t.ordered = r[6].as<bool>();
    t.type = r[7].as<std::string>();
    if (!r[8].is_null()) t.condition = r[8].as<std::string>();
    t.enabled = r[9].as<bool>();
    if (!r[10].is_null()) t.request_transform = r[10].as<std::string>();
    if (!r[11].is_null()) t.token_claims = r[11].as<std::string>();
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<HeldEvent> DeliveryStore::Claim(const std::vector<ClaimRoom>& room,
                                            const std::vector<int64_t>& done, size_t max_bytes,
                                            bool one_over) {
  std::string names = "{", rooms = "{", ordered = "{", walk = "{";
  for (const ClaimRoom& r : room) {
    AppendArrayElement(&names, r.trigger);
    AppendNumber(&rooms, r.room);
    AppendArrayElement(&ordered, r.ordered ? "t" : "f");
    AppendArrayElement(&walk, r.walk ? "t" : "f");
  }
  for (std::string* s : {&names, &rooms, &ordered, &walk}) s->push_back('}');
  const std::string ids = IdArray(done);
  pqxx::nontransaction tx(conn_);
  return HeldEvents(tx.exec_params(claim_sql_, names, rooms, node_id_, started_, ordered, walk, ids,
                                   static_cast<int64_t>(max_bytes), one_over));
}

std::vector<HeldEvent> DeliveryStore::LoadParked(const std::vector<int64_t>& ids, size_t max_bytes,
                                                 bool one_over, std::vector<HeldEvent>* unfit) {
  if (ids.empty()) return {};
  const std::string list = IdArray(ids);
  pqxx::nontransaction tx(conn_);
  return HeldEvents(
      tx.exec_prepared("load_parked", list, node_id_, static_cast<int64_t>(max_bytes), one_over),
      unfit);
}

namespace {

// An error a statement meets because of the values it was given, not the
// state of the server: 22 data exception (a time out of range, text a
// column cannot hold), 23 integrity constraint violation, 54 program limit
// exceeded (nesting past the stack). The same values fail the same way again.
bool IsDataError(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  return state.rfind("22", 0) == 0 || state.rfind("23", 0) == 0 || state.rfind("54", 0) == 0;
}

// The first line of a server error, short enough for a remark.
std::string FirstLine(const char* what) {
  std::string_view text(what);
  if (text.rfind("ERROR:", 0) == 0) text.remove_prefix(6);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  text = text.substr(0, text.find('\n'));
  return std::string(Utf8Prefix(text, 300));
}

}  // namespace

void DeliveryStore::Record(std::vector<AttemptRecord>* records,
                           const std::vector<QueuedRow>& queued) {
  if (records->empty()) return;
  try {
    RecordBatch(*records, 0, records->size(), queued);
  } catch (const pqxx::sql_error& e) {
    if (!IsDataError(e)) throw;
    RecordApart(records, 0, records->size(), queued, FirstLine(e.what()));
  }
}

void DeliveryStore::RecordApart(std::vector<AttemptRecord>* records, size_t begin, size_t end,
                                const std::vector<QueuedRow>& queued, const std::string& why) {
  if (end - begin > 1) {
    // In halves, down to the outcome that fails: the others are written.
    const size_t mid = begin + (end - begin) / 2;
    for (const auto& [b, e] : {std::pair{begin, mid}, std::pair{mid, end}}) {
      try {
        RecordBatch(*records, b, e, queued);
      } catch (const pqxx::sql_error& error) {
        if (!IsDataError(error)) throw;
        RecordApart(records, b, e, queued, FirstLine(error.what()));
      }
    }
    return;
  }
  AttemptRecord& r = (*records)[begin];
  AttemptRecord failed = r;
  failed.status = EventStatus::kFailed;
  failed.retry_in_ms = 0;
  failed.queued.clear();
  failed.remark = fmt::format(
      "failed: its outcome ({}{}{}) could not be stored: {}", StatusName(r.status),
      r.http_status != 0 ? fmt::format(", HTTP {}", r.http_status) : "",
      r.queued.empty() ? "" : fmt::format(", queuing {} event(s)", r.queued.size()), why);
  try {
    RecordBatch({failed}, 0, 1, {});
    r = std::move(failed);
    return;
  } catch (const pqxx::sql_error& e) {
    if (!IsDataError(e)) throw;
    // Not even that: said, and the lease given back (another attempt may
    // fare better, e.g. once the trigger's url is fixed).
    LogError(
        "delivery: the outcome of event {} (trigger \"{}\") cannot be stored: {}; its lease "
        "is released",
        r.event_id, StorableText(r.trigger), FirstLine(e.what()));
  }
  Release({r.event_id});
}

void DeliveryStore::RecordBatch(const std::vector<AttemptRecord>& all, size_t begin, size_t end,
                                const std::vector<QueuedRow>& queued) {
  std::unordered_set<int64_t> origins;
  for (size_t i = begin; i < end; ++i) origins.insert(all[i].event_id);
  std::string qn = "{", qt = "{", qp = "{", qd = "{", qa = "{", qc = "{", qo = "{";
  for (const QueuedRow& q : queued) {
    if (origins.count(q.origin) == 0) continue;
    AppendArrayElement(&qn, q.trigger);
    AppendArrayElement(&qt, q.type);
    AppendArrayElement(&qp, q.payload);
    AppendNumber(&qd, q.delay_ms);
    if (q.at_ms.has_value()) {
      AppendNumber(&qa, *q.at_ms);
    } else {
      qa += qa.size() > 1 ? ",NULL" : "NULL";
    }
    AppendNumber(&qc, q.chain_depth);
    AppendNumber(&qo, q.origin);
  }
  for (std::string* s : {&qn, &qt, &qp, &qd, &qa, &qc, &qo}) s->push_back('}');
  std::string ids = "{", triggers = "{", statuses = "{", attempts = "{", delays = "{",
              remarks = "{", starts = "{", codes = "{", bodies = "{", errors = "{", durations = "{",
              results = "{";
  // Per trigger, the newest outcome of this batch decides the health row.
  std::map<std::string, std::pair<bool, std::string>> health;
  for (size_t i = begin; i < end; ++i) {
    const AttemptRecord& r = all[i];
    AppendNumber(&ids, r.event_id);
    AppendArrayElement(&triggers, r.trigger);
    AppendArrayElement(&statuses, StatusName(r.status));
    AppendNumber(&attempts, r.attempt);
    AppendNumber(&delays, r.retry_in_ms);
    AppendNullable(&remarks, r.remark);
    AppendNumber(&starts, r.started_ms);
    AppendNumber(&codes, r.http_status);
    AppendNullable(&bodies, r.response_body);
    AppendNullable(&errors, r.error);
    AppendNumber(&durations, r.duration_ms);
    AppendNullable(&results, r.response_result);
    auto& h = health[r.trigger];
    if (r.status == EventStatus::kProcessed) {
      h = {true, ""};
    } else {
      h.second = r.remark;
    }
  }
  std::string hn = "{", hok = "{", herr = "{";
  for (const auto& [name, h] : health) {
    AppendArrayElement(&hn, name);
    AppendArrayElement(&hok, h.first ? "t" : "f");
    AppendNullable(&herr, h.second);
  }
  for (std::string* s : {&ids, &triggers, &statuses, &attempts, &delays, &remarks, &starts, &codes,
                         &bodies, &errors, &durations, &results, &hn, &hok, &herr}) {
    s->push_back('}');
  }
  pqxx::nontransaction tx(conn_);
  tx.exec_prepared("record", ids, triggers, statuses, attempts, delays, remarks, starts, codes,
                   bodies, errors, durations, node_id_, hn, hok, herr, qn, qt, qp, qd, qa, qc, qo,
                   results);
}

void DeliveryStore::Renew(const std::vector<int64_t>& ids) {
  if (ids.empty()) return;
  const std::string list = IdArray(ids);
  pqxx::nontransaction tx(conn_);
  tx.exec_params(fmt::format("UPDATE {}.event_logs SET lease_until = now() + interval '{} s' "
                             "WHERE id = ANY($1::int8[]) AND lease_owner = $2 AND {}",
                             conn_.quote_name(schema_), kLease.count(), kStagedById),
                 list, node_id_);
}

std::optional<std::chrono::milliseconds> DeliveryStore::NextDue(
    const std::vector<std::string>& triggers) {
  if (triggers.empty()) return std::nullopt;
  std::string names = "{";
  for (const std::string& t : triggers) AppendArrayElement(&names, t);
  names += "}";
  pqxx::nontransaction tx(conn_);
  const auto r = tx.exec_params(next_due_sql_, names);
  if (r.empty() || r[0][0].is_null()) return std::nullopt;
  return std::chrono::milliseconds(std::max<int64_t>(0, r[0][0].as<int64_t>()));
}

void DeliveryStore::Release(const std::vector<int64_t>& ids) {
  if (ids.empty()) return;
  const std::string list = IdArray(ids);
  pqxx::nontransaction tx(conn_);
  // A row someone else has locked is left to its lease: a stop must not wait
  // on another transaction (a user's, or a claim of a lease already run out).
  tx.exec_params(fmt::format("UPDATE {0}.event_logs SET lease_owner = NULL, lease_until = NULL "
                             "WHERE id IN (SELECT id FROM {0}.event_logs "
                             "  WHERE id = ANY($1::int8[]) AND lease_owner = $2 AND {1} "
                             "  FOR UPDATE SKIP LOCKED)",
                             conn_.quote_name(schema_), kStagedById),
                 list, node_id_);
}

size_t DeliveryStore::Retain(std::chrono::seconds retention, std::chrono::seconds failed_retention,
                             int limit) {
  const std::string s = conn_.quote_name(schema_);
  pqxx::work tx(conn_);
  // Each statement here reads what it may change and a few index pages
  // more, never the whole history: it runs every minute on a table that
  // holds --retention of traffic.
  //
  // Events staged for a trigger deleted before the capture side noticed.
  // The names staged events have, found by a skip scan (each step probes
  // the two staged indexes once for the next name), less the triggers that
  // exist; then those names' staged events, through the same indexes.
  tx.exec(fmt::format(
      "WITH RECURSIVE staged(name) AS ("
      "    SELECT least((SELECT min(trigger_name) FROM {0}.event_logs "
      "                   WHERE status = 'staged' AND order_key IS NULL), "
      "                 (SELECT min(trigger_name) FROM {0}.event_logs "
      "                   WHERE status = 'staged' AND order_key IS NOT NULL)) "
      "  UNION ALL "
      "    SELECT least((SELECT min(trigger_name) FROM {0}.event_logs "
      "                   WHERE status = 'staged' AND order_key IS NULL "
      "                     AND trigger_name > staged.name), "
      "                 (SELECT min(trigger_name) FROM {0}.event_logs "
      "                   WHERE status = 'staged' AND order_key IS NOT NULL "
      "                     AND trigger_name > staged.name)) "
      "      FROM staged WHERE staged.name IS NOT NULL), "
      "gone AS (SELECT name FROM staged WHERE name IS NOT NULL "
      "         EXCEPT SELECT name FROM {0}.triggers), "
      // Two updates: each partial index answers for its own half.
      "c1 AS (UPDATE {0}.event_logs e SET status = 'cancel', remark = 'trigger deleted', "
      "         lease_owner = NULL, lease_until = NULL FROM gone "
      "        WHERE e.trigger_name = gone.name AND e.status = 'staged' AND e.order_key IS NULL "
      "          AND (e.lease_until IS NULL OR e.lease_until < now()) "
      "        RETURNING e.trigger_name), "
      "c2 AS (UPDATE {0}.event_logs e SET status = 'cancel', remark = 'trigger deleted', "
      "         lease_owner = NULL, lease_until = NULL FROM gone "
      "        WHERE e.trigger_name = gone.name AND e.status = 'staged' "
      "          AND e.order_key IS NOT NULL "
      "          AND (e.lease_until IS NULL OR e.lease_until < now()) "
      "        RETURNING e.trigger_name) "
      "INSERT INTO {0}.event_counts SELECT trigger_name, 0, 0, count(*) "
      "  FROM (SELECT trigger_name FROM c1 UNION ALL SELECT trigger_name FROM c2) c "
      " GROUP BY trigger_name",
      s));
  // Old events, oldest first. Ids grow with created_at (both are taken as
  // the event is stored), so the events older than the shorter cutoff sit
  // below the first id that is younger: the walk stops there, instead of
  // stepping through the whole history when little or nothing is old.
  const auto r = tx.exec_params1(
      fmt::format(
          "WITH d AS (DELETE FROM {0}.event_logs WHERE id IN ("
          "  SELECT id FROM {0}.event_logs "
          "   WHERE id < coalesce((SELECT id FROM {0}.event_logs "
          "                         WHERE created_at >= now() - least($1::int8, $2::int8) * "
          "                               interval '1 s' "
          "                         ORDER BY id LIMIT 1), 9223372036854775807) "
          "     AND ((status IN ('processed', 'cancel') "
          "           AND created_at < now() - $1 * interval '1 s') "
          "       OR (status = 'failed' AND created_at < now() - $2 * interval '1 s')) "
          "   ORDER BY id LIMIT $3) RETURNING id), "
          "i AS (DELETE FROM {0}.invocation_logs l USING d WHERE l.event_id = d.id) "
          "SELECT count(*) FROM d",
          s),
      static_cast<int64_t>(retention.count()), static_cast<int64_t>(failed_retention.count()),
      limit);
  // The queue API's idempotency keys answer for 24 hours; found by their
  // age (011_idempotency_age.sql).
  tx.exec_params(fmt::format("DELETE FROM {0}.idempotency_keys WHERE key IN ("
                             "  SELECT key FROM {0}.idempotency_keys "
                             "   WHERE created_at < now() - interval '24 h' LIMIT $1)",
                             s),
                 limit);
  tx.commit();
  return r[0].as<size_t>();
}

void DeliveryStore::FoldCounts() {
  const std::string s = conn_.quote_name(schema_);
  pqxx::work tx(conn_);
  // One folder at a time: two would lock the same rows in any order.
  if (!tx.exec_params1("SELECT pg_try_advisory_xact_lock(hashtext('walhook.counts.' || $1))",
                       schema_)[0]
           .as<bool>()) {
    return;
  }
  // Only triggers with rows to fold (more than one, or one of zeros) are
  // rewritten: a folded table is left alone, not rewritten every interval.
  // Rows written meanwhile are not in this snapshot: they stay, and count.
  tx.exec(fmt::format(
      "WITH f AS (SELECT trigger_name FROM {0}.event_counts GROUP BY trigger_name "
      "  HAVING count(*) > 1 OR (sum(processed) = 0 AND sum(failed) = 0 AND sum(cancel) = 0)), "
      "d AS (DELETE FROM {0}.event_counts c USING f WHERE c.trigger_name = f.trigger_name "
      "  RETURNING c.*) "
      "INSERT INTO {0}.event_counts "
      "SELECT trigger_name, sum(processed), sum(failed), sum(cancel) FROM d GROUP BY trigger_name "
      "HAVING sum(processed) <> 0 OR sum(failed) <> 0 OR sum(cancel) <> 0",
      s));
  tx.commit();
}

size_t DeliveryStore::ReportDeliveries(double deliveries_per_s, int in_flight) {
  pqxx::nontransaction tx(conn_);
  const auto r = tx.exec_params1(
      fmt::format("WITH u AS (UPDATE {0}.nodes SET deliveries_per_s = $2, in_flight = $3 "
                  "  WHERE node_id = $1) "
                  "SELECT count(*) FROM {0}.nodes "
                  "WHERE node_id <> $1 AND updated_at > now() - interval '5 s'",
                  conn_.quote_name(schema_)),
      node_id_, deliveries_per_s, in_flight);
  return r[0].as<size_t>();
}

}  // namespace walhook
