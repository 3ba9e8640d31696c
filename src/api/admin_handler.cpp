#include "walhook/admin_handler.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <pqxx/pqxx>

#include <fmt/format.h>

#include "walhook/json.h"
#include "walhook/log.h"
#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

using namespace admin;
using Clock = std::chrono::steady_clock;

// Each statement of the admin API runs at most this long.
constexpr const char* kStatementTimeout = "10s";
// A page of events reads ids in spans, from kFirstSpan doubling (within
// what the time left allows), until the page is full or kPageBudget has
// passed: a rare filter over millions of events answers quickly with a
// partial page and a cursor.
constexpr int64_t kFirstSpan = 5000;
constexpr auto kPageBudget = std::chrono::milliseconds(100);
constexpr int64_t kBulkChunk = 1000;
constexpr size_t kMaxTables = 2000;
constexpr size_t kMaxAttempts = 1000;
constexpr size_t kMaxLinked = 200;

std::string_view FirstLineOf(std::string_view text) {
  return Utf8Prefix(text.substr(0, text.find('\n')), 500);
}

// Milliseconds since the epoch of a timestamptz column, NULL when not finite.
std::string Ms(std::string_view column) {
  return fmt::format("CASE WHEN isfinite({0}) THEN (extract(epoch FROM {0}) * 1000)::int8 END",
                     column);
}

std::string SummaryColumns() {
  return fmt::format(
      "e.id, e.trigger_name, e.type, e.status, e.attempts, e.remark, {}, {}, {}, {}, {}, "
      "e.chain_depth, e.origin_id, octet_length(e.payload::text)",
      Ms("e.ts"), Ms("e.event_ts"), Ms("e.created_at"), Ms("e.processed_at"), Ms("e.next_at"));
}
constexpr int kSummaryCount = 14;

template <typename T>
std::optional<T> Opt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<T>();
}

EventRow ReadSummary(const pqxx::row& r) {
  EventRow e;
  e.id = r[0].as<int64_t>();
  e.trigger_name = r[1].as<std::string>();
  e.type = r[2].as<std::string>();
  e.status = r[3].as<std::string>();
  e.attempts = r[4].as<int64_t>();
  e.remark = Opt<std::string>(r[5]);
  e.ts_ms = Opt<int64_t>(r[6]).value_or(0);
  e.event_ts_ms = Opt<int64_t>(r[7]).value_or(0);
  e.created_at_ms = Opt<int64_t>(r[8]).value_or(0);
  e.processed_at_ms = Opt<int64_t>(r[9]);
  e.next_at_ms = Opt<int64_t>(r[10]);
  e.chain_depth = r[11].as<int64_t>();
  e.origin_id = Opt<int64_t>(r[12]);
  e.payload_bytes = Opt<int64_t>(r[13]).value_or(0);
  return e;
}

// The name in "… constraint "x" …" of a constraint violation's message.
std::string ConstraintName(std::string_view what) {
  const size_t at = what.find("constraint \"");
  if (at == std::string_view::npos) return "";
  const size_t start = at + 12;
  const size_t end = what.find('"', start);
  if (end == std::string_view::npos) return "";
  return std::string(what.substr(start, end - start));
}

HttpResponse Err(int status, std::string message, std::string field = "") {
  return ErrorResponse(FieldError{status, std::move(field), std::move(message)});
}

// What an SQLSTATE means for the client (SPEC §9): never the error's text.
HttpResponse StateError(const std::string& state, std::string_view what, std::string_view op) {
  const std::string cls = state.substr(0, 2);
  if (state == "23514") {
    return Err(400, "the database refused a value (a CHECK constraint)");
  }
  if (state == "23502") return Err(400, "a required value is missing (NOT NULL)");
  if (cls == "22" || cls == "54" || cls == "23") {
    return Err(400, fmt::format("the database refused a value of this request (SQLSTATE {})",
                                Utf8Prefix(state, 5)));
  }
  if (state == "42501") {
    return Err(403, "walhook's database role may not do this (permission denied)");
  }
  if (state == "57014") {
    return Err(503, "the database did not answer in time; try again or narrow the request");
  }
  if (cls != "08" && cls != "53" && cls != "57" && !state.empty()) {
    LogWarn("admin API: {}: SQLSTATE {}: {}", op, state, FirstLineOf(what));
    return Err(500, fmt::format("internal error (SQLSTATE {})", Utf8Prefix(state, 5)));
  }
  LogWarn("admin API: {}: {}", op, FirstLineOf(what));
  return Err(503, "the database is not available; try again");
}

HttpResponse DatabaseError(const std::exception& e, std::string_view op) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    return StateError(sql->sqlstate(), e.what(), op);
  }
  return StateError("", e.what(), op);
}

// A write the database refused, kept until its transaction is gone.
struct WriteFailure {
  std::string state;
  std::string constraint;
  std::string what;
};

}  // namespace

struct AdminHandler::Impl {
  explicit Impl(const Config& c) : cfg(c) {}

  const Config& cfg;
  std::mutex pool_mu;
  std::deque<std::unique_ptr<pqxx::connection>> pool;  // guarded by pool_mu

  // A connection to the eventing database, returned by its destructor when
  // still open.
  class Lease {
   public:
    explicit Lease(Impl& m) : m_(m) {
      {
        std::lock_guard<std::mutex> lock(m.pool_mu);
        if (!m.pool.empty()) {
          c_ = std::move(m.pool.front());
          m.pool.pop_front();
        }
      }
      if (c_ == nullptr) c_ = Connect(m.cfg.eventing_db);
    }
    ~Lease() {
      if (c_ == nullptr || !c_->is_open()) return;
      std::lock_guard<std::mutex> lock(m_.pool_mu);
      if (m_.pool.size() < 4) m_.pool.push_back(std::move(c_));
    }
    pqxx::connection& operator*() { return *c_; }
    pqxx::connection* operator->() { return c_.get(); }

   private:
    Impl& m_;
    std::unique_ptr<pqxx::connection> c_;
  };

  static std::unique_ptr<pqxx::connection> Connect(const std::string& conninfo) {
    auto c = std::make_unique<pqxx::connection>(conninfo);
    pqxx::nontransaction(*c).exec(
        fmt::format("SET application_name = 'walhook admin API'; SET statement_timeout = '{}'",
                    kStatementTimeout));
    return c;
  }

  std::string S(pqxx::connection& c) const { return c.quote_name(cfg.schema); }

  // --- Triggers ---------------------------------------------------------------

  std::string TriggerQuery(pqxx::connection& c, bool one) const {
    return fmt::format(
        "SELECT to_jsonb(t)::text, s.active, s.staged, s.processed, s.failed, s.cancel, "
        "s.in_flight, (extract(epoch FROM s.oldest_staged_age) * 1000)::int8, {0}, s.last_error, "
        "s.last_delivery_error FROM {1}.triggers t JOIN {1}.trigger_status s "
        "ON s.trigger_name = t.name {2} ORDER BY t.name",
        Ms("s.last_success_at"), S(c), one ? "WHERE t.name = $1" : "");
  }

  static std::string TriggerOf(const pqxx::row& r) {
    TriggerStatus st;
    st.active = r[1].as<bool>();
    st.staged = r[2].as<int64_t>();
    st.processed = r[3].as<int64_t>();
    st.failed = r[4].as<int64_t>();
    st.cancel = r[5].as<int64_t>();
    st.in_flight = r[6].as<int64_t>();
    st.oldest_staged_age_ms = Opt<int64_t>(r[7]);
    st.last_success_at_ms = Opt<int64_t>(r[8]);
    st.last_error = Opt<std::string>(r[9]);
    st.last_delivery_error = Opt<std::string>(r[10]);
    return TriggerJson(r[0].as<std::string>(), &st);
  }

  HttpResponse OneTrigger(pqxx::connection& c, const std::string& name, int status) {
    pqxx::nontransaction tx(c);
    const auto rows = tx.exec_params(TriggerQuery(c, true), name);
    if (rows.empty()) return NoTrigger(name);
    return JsonResponse(status, fmt::format(R"({{"trigger":{}}})", TriggerOf(rows[0])));
  }

  static HttpResponse NoTrigger(const std::string& name) {
    return Err(404, fmt::format("no trigger named \"{}\"", Utf8Prefix(name, 200)), "name");
  }

  HttpResponse ListTriggers() {
    Lease c(*this);
    pqxx::nontransaction tx(*c);
    const auto rows = tx.exec(TriggerQuery(*c, false));
    std::string out = R"({"triggers":[)";
    for (size_t i = 0; i < rows.size(); ++i) {
      if (i > 0) out += ',';
      out += TriggerOf(rows[i]);
    }
    out += "]}";
    return JsonResponse(200, std::move(out));
  }

  // The SET list or column list and values of a canonical trigger write.
  static std::string Columns(pqxx::connection& c, const TriggerWrite& w, bool assign) {
    std::string out;
    for (const std::string& col : w.columns) {
      if (!out.empty()) out += ", ";
      const std::string q = c.quote_name(col);
      out += assign ? fmt::format("{0} = r.{0}", q) : q;
    }
    return out;
  }

  static std::string Values(pqxx::connection& c, const TriggerWrite& w) {
    std::string out;
    for (const std::string& col : w.columns) {
      if (!out.empty()) out += ", ";
      out += "r." + c.quote_name(col);
    }
    return out;
  }

  // A write refused by the database, told in the client's terms: a CHECK
  // names the column it guards (read from the catalog: constraints over
  // two columns have made-up names).
  HttpResponse WriteError(pqxx::connection& c, const WriteFailure& f, const TriggerWrite& w,
                          const std::string& name) {
    if (f.state == "23505") {
      return Err(409, fmt::format("a trigger named \"{}\" exists", Utf8Prefix(name, 200)), "name");
    }
    if (f.state == "23514" && !f.constraint.empty()) {
      pqxx::nontransaction tx(c);
      const auto rows = tx.exec_params(
          fmt::format("SELECT a.attname FROM pg_constraint k JOIN pg_attribute a "
                      "ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey) "
                      "WHERE k.conrelid = '{}.triggers'::regclass AND k.conname = $1 "
                      "ORDER BY a.attnum",
                      S(c)),
          f.constraint);
      std::vector<std::string> columns;
      for (const auto& r : rows) columns.push_back(r[0].as<std::string>());
      const std::string field = ConstraintField(columns, w.columns);
      if (!field.empty()) {
        return Err(400,
                   fmt::format("the database refused the value of {} (constraint {})", field,
                               Utf8Prefix(f.constraint, 100)),
                   field);
      }
    }
    return StateError(f.state, f.what, "trigger write");
  }

  // A member this database has no column for yet (request_transform
  // before its migration): 400 naming it.
  std::optional<HttpResponse> MissingColumn(pqxx::transaction_base& tx, pqxx::connection& c,
                                            const TriggerWrite& w) {
    const auto rows = tx.exec(
        fmt::format("SELECT attname FROM pg_attribute WHERE attrelid = '{}.triggers'::regclass "
                    "AND attnum > 0 AND NOT attisdropped",
                    S(c)));
    std::vector<std::string> have;
    for (const auto& r : rows) have.push_back(r[0].as<std::string>());
    for (const std::string& col : w.columns) {
      if (std::find(have.begin(), have.end(), col) == have.end()) {
        return Err(400, fmt::format("this database's triggers have no column {} yet", col), col);
      }
    }
    return std::nullopt;
  }

  HttpResponse CreateTrigger(const HttpRequest& req) {
    TriggerWrite w;
    if (auto e = ParseTriggerWrite(req.body, std::nullopt, "", &w)) return ErrorResponse(*e);
    rapidjson::Document doc;
    ParseJson(w.json, &doc);
    const std::string name(doc["name"].GetString(), doc["name"].GetStringLength());
    Lease c(*this);
    std::optional<WriteFailure> failed;
    try {
      pqxx::work tx(*c);
      if (auto missing = MissingColumn(tx, *c, w)) return *missing;
      tx.exec_params(fmt::format("INSERT INTO {0}.triggers ({1}) SELECT {2} FROM "
                                 "jsonb_populate_record(NULL::{0}.triggers, $1::jsonb) r",
                                 S(*c), Columns(*c, w, false), Values(*c, w)),
                     w.json);
      tx.commit();
    } catch (const pqxx::sql_error& e) {
      failed = WriteFailure{e.sqlstate(), ConstraintName(e.what()), e.what()};
    }
    if (failed) return WriteError(*c, *failed, w, name);
    return OneTrigger(*c, name, 201);
  }

  HttpResponse UpdateTrigger(const std::string& name, const HttpRequest& req) {
    Lease c(*this);
    TriggerWrite w;
    std::optional<WriteFailure> failed;
    {
      pqxx::work tx(*c);
      // Locked: the write keeps what the masked values stood for.
      const auto stored = tx.exec_params(
          fmt::format("SELECT to_jsonb(t)::text FROM {}.triggers t WHERE t.name = $1 FOR UPDATE",
                      S(*c)),
          name);
      if (stored.empty()) return NoTrigger(name);
      if (auto e = ParseTriggerWrite(req.body, stored[0][0].as<std::string>(), name, &w)) {
        return ErrorResponse(*e);
      }
      if (auto missing = MissingColumn(tx, *c, w)) return *missing;
      try {
        tx.exec_params(fmt::format("UPDATE {0}.triggers t SET {1} FROM "
                                   "jsonb_populate_record(NULL::{0}.triggers, $1::jsonb) r "
                                   "WHERE t.name = $2",
                                   S(*c), Columns(*c, w, true)),
                       w.json, name);
        tx.commit();
      } catch (const pqxx::sql_error& e) {
        failed = WriteFailure{e.sqlstate(), ConstraintName(e.what()), e.what()};
      }
    }
    if (failed) return WriteError(*c, *failed, w, name);
    return OneTrigger(*c, name, 200);
  }

  HttpResponse SetEnabled(const std::string& name, bool enabled) {
    Lease c(*this);
    {
      pqxx::work tx(*c);
      const auto r = tx.exec_params(
          fmt::format("UPDATE {}.triggers SET enabled = $2 WHERE name = $1 RETURNING name", S(*c)),
          name, enabled);
      if (r.empty()) return NoTrigger(name);
      tx.commit();
    }
    return OneTrigger(*c, name, 200);
  }

  HttpResponse DeleteTrigger(const std::string& name) {
    Lease c(*this);
    pqxx::work tx(*c);
    const auto r = tx.exec_params(
        fmt::format("DELETE FROM {}.triggers WHERE name = $1 RETURNING name", S(*c)), name);
    if (r.empty()) return NoTrigger(name);
    tx.commit();
    JsonBuffer b;
    JsonWriter jw(b);
    jw.StartObject();
    jw.Key("deleted");
    jw.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    jw.EndObject();
    return JsonResponse(200, std::string(b.GetString(), b.GetSize()));
  }

  HttpResponse Validate(const HttpRequest& req) {
    ValidateRequest v;
    if (auto e = ParseValidateRequest(req.body, &v)) return ErrorResponse(*e);
    std::vector<Problem> problems;
    if (v.condition && !v.condition->empty()) {
      for (auto& p : CheckCondition(*v.condition, v.type)) problems.push_back(std::move(p));
    }
    if (v.request_transform) {
      for (auto& p : CheckTransform(*v.request_transform)) problems.push_back(std::move(p));
    }
    if (v.token_claims) {
      for (auto& p : CheckTokenClaims(*v.token_claims)) problems.push_back(std::move(p));
    }
    std::optional<std::string> preview;
    if (v.event_id) {
      Lease c(*this);
      pqxx::nontransaction tx(*c);
      const auto r = tx.exec_params(
          fmt::format("SELECT e.id, e.type, {}, e.payload::text, t.url FROM {}.event_logs e "
                      "LEFT JOIN {}.triggers t ON t.name = e.trigger_name WHERE e.id = $1",
                      Ms("e.ts"), S(*c), S(*c)),
          *v.event_id);
      if (r.empty()) {
        return Err(404, fmt::format("no event {}", *v.event_id), "event_id");
      }
      if (problems.empty() && (v.request_transform || v.token_claims)) {
        const std::string body =
            BuildCloudEvent(r[0][0].as<int64_t>(), r[0][1].as<std::string>(), cfg.node_id,
                            Opt<int64_t>(r[0][2]).value_or(0), r[0][3].as<std::string>());
        preview = RenderPreview(v, body, Opt<std::string>(r[0][4]).value_or(""), &problems);
      }
    }
    return JsonResponse(200, ValidateJson(problems, preview));
  }

  // --- Source catalog -------------------------------------------------------------

  HttpResponse Tables() {
    auto c = Connect(cfg.source);
    pqxx::nontransaction tx(*c);
    const auto rows = tx.exec_params(
        "SELECT n.nspname, c.relname, c.relkind = 'p', c.relreplident::text, "
        "  coalesce((SELECT json_agg(a.attname ORDER BY k.ord) FROM pg_index i "
        "    CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
        "    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "    WHERE i.indrelid = c.oid AND i.indisprimary), '[]')::text, "
        "  coalesce((SELECT json_agg(json_build_object('name', a.attname, "
        "    'type', format_type(a.atttypid, a.atttypmod), 'nullable', NOT a.attnotnull) "
        "    ORDER BY a.attnum) FROM pg_attribute a "
        "    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]')::text "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "  AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
        "  AND n.nspname <> $1 "
        "  AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') "
        "ORDER BY 1, 2 LIMIT $2",
        cfg.schema, static_cast<int64_t>(kMaxTables + 1));
    std::vector<TableEntry> tables;
    for (const auto& r : rows) {
      if (tables.size() == kMaxTables) break;
      TableEntry t;
      t.schema = r[0].as<std::string>();
      t.name = r[1].as<std::string>();
      t.partitioned = r[2].as<bool>();
      const std::string ident = r[3].as<std::string>();
      t.replica_identity = ident == "f"   ? "full"
                           : ident == "i" ? "index"
                           : ident == "n" ? "nothing"
                                          : "default";
      rapidjson::Document pk, cols;
      if (ParseJson(r[4].as<std::string>(), &pk).ok() && pk.IsArray()) {
        for (const auto& k : pk.GetArray()) {
          if (k.IsString()) t.primary_key.emplace_back(k.GetString(), k.GetStringLength());
        }
      }
      if (ParseJson(r[5].as<std::string>(), &cols).ok() && cols.IsArray()) {
        for (const auto& col : cols.GetArray()) {
          if (!col.IsObject() || !col.HasMember("name") || !col["name"].IsString() ||
              !col.HasMember("type") || !col["type"].IsString()) {
            continue;
          }
          ColumnInfo info;
          info.name.assign(col["name"].GetString(), col["name"].GetStringLength());
          info.type.assign(col["type"].GetString(), col["type"].GetStringLength());
          info.nullable =
              !col.HasMember("nullable") || !col["nullable"].IsBool() || col["nullable"].GetBool();
          t.columns.push_back(std::move(info));
        }
      }
      tables.push_back(std::move(t));
    }
    return JsonResponse(200, TablesJson(tables, rows.size() > kMaxTables));
  }

  // --- Events -------------------------------------------------------------------

  HttpResponse ListEvents(const HttpRequest& req) {
    std::map<std::string, std::string> query;
    if (auto e = ParseQuery(req.target, &query)) return ErrorResponse(*e);
    EventFilter f;
    if (auto e = ParseEventFilter(query, &f)) return ErrorResponse(*e);
    Lease c(*this);
    pqxx::nontransaction tx(*c);
    const auto bounds = tx.exec(fmt::format("SELECT min(id), max(id) FROM {}.event_logs", S(*c)));
    std::vector<EventRow> page;
    std::optional<int64_t> next;
    if (!bounds[0][0].is_null()) {
      const int64_t min_id = bounds[0][0].as<int64_t>();
      int64_t hi = bounds[0][1].as<int64_t>() + 1;
      if (f.before && *f.before < hi) hi = *f.before;
      std::vector<std::string> params;
      std::string where;
      // $1-$3 are the span and the page's room; filters from $4 on.
      const auto add = [&](std::string_view text, std::string value) {
        params.push_back(std::move(value));
        where += fmt::format(fmt::runtime(text), params.size() + 3);
      };
      // The failed and staged events of a trigger have indexes of their
      // own (event_logs_failed, event_logs_due). Otherwise the span of ids
      // must be what is read: trigger_name is also the last column of the
      // unique key, and a scan of that whole index grows with the table,
      // span after span.
      if (f.trigger) {
        add(f.status == "failed" || f.status == "staged" ? " AND e.trigger_name = ${}"
                                                         : " AND (e.trigger_name || '') = ${}",
            *f.trigger);
      }
      if (f.status) add(" AND e.status = ${}", *f.status);
      if (f.type) add(" AND e.type = ${}", *f.type);
      if (f.from_ms) {
        add(" AND e.event_ts >= to_timestamp(${}::int8 / 1000.0)", std::to_string(*f.from_ms));
      }
      if (f.to_ms) {
        add(" AND e.event_ts < to_timestamp(${}::int8 / 1000.0)", std::to_string(*f.to_ms));
      }
      const std::string sql = fmt::format(
          "SELECT {} FROM {}.event_logs e WHERE e.id < $1::int8 AND e.id >= $2::int8{} "
          "ORDER BY e.id DESC LIMIT $3::int8",
          SummaryColumns(), S(*c), where);
      const auto start = Clock::now();
      const auto deadline = start + kPageBudget;
      int64_t span = kFirstSpan;
      while (true) {
        const int64_t lo = std::max(min_id, hi - span);
        const int64_t read_ids = std::max<int64_t>(hi - lo, 1);
        std::vector<std::string> args = {std::to_string(hi), std::to_string(lo),
                                         std::to_string(f.limit - page.size())};
        args.insert(args.end(), params.begin(), params.end());
        const auto before_span = Clock::now();
        const auto rows = tx.exec_params(sql, pqxx::prepare::make_dynamic_params(args));
        const auto took = Clock::now() - before_span;
        for (const auto& r : rows) page.push_back(ReadSummary(r));
        if (page.size() >= f.limit) {
          next = page.back().id;
          break;
        }
        hi = lo;
        if (hi <= min_id) break;  // nothing older
        if (Clock::now() >= deadline) {
          next = hi;  // the next page starts below the span read
          break;
        }
        // Twice the span, but no more than what the time left should read
        // at the pace of the last one (a span the server reads slowly, on
        // a loaded machine, must not take the page past its budget).
        const double per_id =
            std::chrono::duration<double>(took).count() / static_cast<double>(read_ids);
        const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
        const auto fits = static_cast<int64_t>(per_id > 0 ? 0.6 * left / per_id : 1e12);
        span = std::clamp<int64_t>(std::min<int64_t>(span * 2, fits), 1000, 1 << 22);
      }
    }
    return JsonResponse(200, EventPageJson(page, next, f.limit));
  }

  std::optional<EventRow> LoadEvent(pqxx::transaction_base& tx, pqxx::connection& c, int64_t id) {
    const auto r = tx.exec_params(
        fmt::format("SELECT {} FROM {}.event_logs e WHERE e.id = $1", SummaryColumns(), S(c)), id);
    if (r.empty()) return std::nullopt;
    return ReadSummary(r[0]);
  }

  static HttpResponse NoEvent(int64_t id) { return Err(404, fmt::format("no event {}", id), "id"); }

  HttpResponse GetEvent(int64_t id) {
    Lease c(*this);
    pqxx::read_transaction tx(*c);
    const std::string s = S(*c);
    const auto r = tx.exec_params(
        fmt::format("SELECT {0}, e.payload::text, t.url, coalesce(t.headers::text, '{{}}'), "
                    "t.name IS NOT NULL, nullif(to_jsonb(t)->'request_transform', 'null')::text, "
                    "nullif(to_jsonb(t)->'token_claims', 'null')::text "
                    "FROM {1}.event_logs e LEFT JOIN {1}.triggers t "
                    "ON t.name = e.trigger_name WHERE e.id = $1",
                    SummaryColumns(), s),
        id);
    if (r.empty()) return NoEvent(id);
    EventDetail d;
    d.event = ReadSummary(r[0]);
    d.payload_json = Opt<std::string>(r[0][kSummaryCount]);
    if (r[0][kSummaryCount + 3].as<bool>()) {
      d.target = DeliveryTarget{r[0][kSummaryCount + 1].as<std::string>(),
                                r[0][kSummaryCount + 2].as<std::string>()};
    }
    d.with_signature = !cfg.signing_secret.empty();
    d.source = cfg.node_id;
    const auto attempts = tx.exec_params(
        fmt::format("SELECT id, attempt, {}, node_id, response_status_code, response_body, "
                    "error_msg, duration_ms FROM {}.invocation_logs WHERE event_id = $1 "
                    "ORDER BY id LIMIT $2",
                    Ms("invocation_time"), s),
        id, static_cast<int64_t>(kMaxAttempts));
    for (const auto& a : attempts) {
      AttemptRow row;
      row.id = a[0].as<int64_t>();
      row.attempt = Opt<int64_t>(a[1]);
      row.invocation_time_ms = Opt<int64_t>(a[2]).value_or(0);
      row.node_id = Opt<std::string>(a[3]);
      row.response_status_code = Opt<int64_t>(a[4]);
      row.response_body = Opt<std::string>(a[5]);
      row.error_msg = Opt<std::string>(a[6]);
      row.duration_ms = Opt<int64_t>(a[7]);
      d.attempts.push_back(std::move(row));
    }
    // The body names the node that sends it: the last attempt's.
    if (!d.attempts.empty() && d.attempts.back().node_id) d.source = *d.attempts.back().node_id;
    const auto request_transform = Opt<std::string>(r[0][kSummaryCount + 4]);
    const auto token_claims = Opt<std::string>(r[0][kSummaryCount + 5]);
    if (d.target && d.payload_json && (request_transform || token_claims)) {
      // Shaped as delivery shapes it (delivery.cpp's Send).
      d.transformed = true;
      const auto t = ParseRequestTransform(request_transform, token_claims);
      if (!t.ok()) {
        d.transform_error = "transform: " + t.error();
      } else {
        const std::string body =
            BuildCloudEvent(d.event.id, d.event.type, d.source, d.event.ts_ms, *d.payload_json);
        auto shaped = ShapeRequest(**t, body, d.target->url);
        if (shaped.ok()) {
          d.shaped = std::move(*shaped);
        } else {
          d.transform_error = shaped.error();
        }
      }
    }
    const auto linked = tx.exec_params(
        fmt::format("SELECT {} FROM {}.event_logs e WHERE e.origin_id = $1 ORDER BY e.id LIMIT $2",
                    SummaryColumns(), s),
        id, static_cast<int64_t>(kMaxLinked));
    const std::string dlq_type = "dlq_" + d.event.trigger_name;
    for (const auto& l : linked) {
      EventRow e = ReadSummary(l);
      (e.type == dlq_type ? d.dlq : d.chained).push_back(std::move(e));
    }
    return JsonResponse(200, EventDetailJson(d));
  }

  HttpResponse Redeliver(int64_t id) {
    Lease c(*this);
    pqxx::work tx(*c);
    if (!LoadEvent(tx, *c, id)) return NoEvent(id);
    bool done = false;
    try {
      done = tx.exec_params(fmt::format("SELECT {}.redeliver($1)", S(*c)), id)[0][0].as<bool>();
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() != "P0001") throw;
      return Err(409, fmt::format("event {} cannot be delivered: its payload could not be stored "
                                  "(see its remark)",
                                  id));
    }
    if (!done) {
      return Err(409,
                 fmt::format("event {} is being delivered right now; try again in a moment", id));
    }
    tx.commit();
    return JsonResponse(200, R"({"redelivered":true})");
  }

  HttpResponse Cancel(int64_t id) {
    Lease c(*this);
    pqxx::work tx(*c);
    if (!LoadEvent(tx, *c, id)) return NoEvent(id);
    const bool done =
        tx.exec_params(fmt::format("SELECT {}.cancel($1)", S(*c)), id)[0][0].as<bool>();
    if (!done) return Err(409, fmt::format("event {} is not staged", id));
    tx.commit();
    return JsonResponse(200, R"({"cancelled":true})");
  }

  // The events a bulk request covers: " AND …" over e, with its parameters
  // from $2 on ($1 is left to the caller).
  static std::string BulkWhere(const BulkRequest& b, std::vector<std::string>* params) {
    std::string where;
    const auto add = [&](std::string_view text, std::string value) {
      params->push_back(std::move(value));
      where += fmt::format(fmt::runtime(text), params->size() + 1);
    };
    add(" AND e.trigger_name = ${}", b.trigger);
    add(" AND e.status = ${}", std::string(b.Status()));
    if (b.from_ms)
      add(" AND e.event_ts >= to_timestamp(${}::int8 / 1000.0)", std::to_string(*b.from_ms));
    if (b.to_ms)
      add(" AND e.event_ts < to_timestamp(${}::int8 / 1000.0)", std::to_string(*b.to_ms));
    // redeliver() refuses a failed event without a payload: not counted.
    if (b.action == "redeliver") where += " AND e.payload::text <> 'null'";
    return where;
  }

  HttpResponse Bulk(const HttpRequest& req) {
    BulkRequest b;
    if (auto e = ParseBulkRequest(req.body, &b)) return ErrorResponse(*e);
    Lease c(*this);
    const std::string s = S(*c);
    std::vector<std::string> params;
    const std::string where = BulkWhere(b, &params);
    std::vector<std::string> args = {b.max_id ? std::to_string(*b.max_id)
                                              : std::to_string(INT64_MAX)};
    args.insert(args.end(), params.begin(), params.end());
    int64_t count = 0;
    std::optional<int64_t> max_id;
    {
      pqxx::nontransaction tx(*c);
      const auto r = tx.exec_params(
          fmt::format("SELECT count(*), max(e.id) FROM {}.event_logs e WHERE e.id <= $1::int8{}", s,
                      where),
          pqxx::prepare::make_dynamic_params(args));
      count = r[0][0].as<int64_t>();
      max_id = Opt<int64_t>(r[0][1]);
    }
    if (b.dry_run) {
      return JsonResponse(200, fmt::format(R"({{"count":{},"max_id":{}}})", count,
                                           max_id ? fmt::format("\"{}\"", *max_id) : "null"));
    }
    if (count > kMaxBulk) {
      return Err(400,
                 fmt::format("{} events match; one call acts on at most {}: narrow the range",
                             count, kMaxBulk),
                 "max_id");
    }
    const std::string fn = b.action == "redeliver" ? "redeliver" : "cancel";
    const std::string chunk_sql = fmt::format(
        "SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok), min(id) FROM ("
        "SELECT x.id, {0}.{1}(x.id) AS ok FROM (SELECT e.id FROM {0}.event_logs e "
        "WHERE e.id <= $1::int8{2} ORDER BY e.id DESC LIMIT {3}) x) y",
        s, fn, where, kBulkChunk);
    int64_t done = 0, skipped = 0;
    int64_t cursor = *b.max_id;
    while (done + skipped < count) {
      args[0] = std::to_string(cursor);
      pqxx::work tx(*c);
      const auto r = tx.exec_params(chunk_sql, pqxx::prepare::make_dynamic_params(args));
      tx.commit();
      if (r[0][2].is_null()) break;
      done += r[0][0].as<int64_t>();
      skipped += r[0][1].as<int64_t>();
      cursor = r[0][2].as<int64_t>() - 1;
    }
    return JsonResponse(200, fmt::format(R"({{"done":{},"skipped":{}}})", done, skipped));
  }

  // --- Nodes and backfills ----------------------------------------------------------

  HttpResponse Nodes() {
    Lease c(*this);
    pqxx::nontransaction tx(*c);
    const auto rows = tx.exec(fmt::format(
        "SELECT node_id, role, slot_name, confirmed_lsn::text, lag_bytes, events_per_s::text, "
        "deliveries_per_s::text, in_flight, {}, {} FROM {}.bridge_status",
        Ms("updated_at"), Ms("now()"), S(*c)));
    std::vector<NodeRow> nodes;
    int64_t now_ms = 0;
    for (const auto& r : rows) {
      NodeRow n;
      n.node_id = r[0].as<std::string>();
      n.role = r[1].as<std::string>();
      n.slot_name = r[2].as<std::string>();
      n.confirmed_lsn = Opt<std::string>(r[3]);
      n.lag_bytes = Opt<int64_t>(r[4]);
      n.events_per_s = Opt<std::string>(r[5]).value_or("0");
      n.deliveries_per_s = Opt<std::string>(r[6]).value_or("0");
      n.in_flight = r[7].as<int64_t>();
      n.updated_at_ms = Opt<int64_t>(r[8]).value_or(0);
      nodes.push_back(std::move(n));
    }
    if (rows.empty()) {
      now_ms = tx.exec(fmt::format("SELECT {}", Ms("now()")))[0][0].as<int64_t>();
    } else {
      now_ms = rows[0][9].as<int64_t>();
    }
    return JsonResponse(200, NodesJson(now_ms, nodes));
  }

  static bool MissingBackfills(const std::exception& e) {
    const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
    return sql != nullptr && (sql->sqlstate() == "42P01" || sql->sqlstate() == "42883");
  }

  static HttpResponse NoBackfills() {
    return Err(404, "this database has no backfills (eventing.backfills comes with migration 018)");
  }

  HttpResponse ListBackfills() {
    Lease c(*this);
    pqxx::nontransaction tx(*c);
    pqxx::result rows;
    try {
      rows = tx.exec(
          fmt::format("SELECT id, trigger_name, state, rows_done, rows_estimate, {}, {}, error "
                      "FROM {}.backfills b ORDER BY id DESC LIMIT 200",
                      Ms("b.started_at"), Ms("b.finished_at"), S(*c)));
    } catch (const std::exception& e) {
      if (MissingBackfills(e)) return NoBackfills();
      throw;
    }
    std::vector<BackfillRow> out;
    for (const auto& r : rows) {
      BackfillRow b;
      b.id = r[0].as<int64_t>();
      b.trigger_name = r[1].as<std::string>();
      b.state = r[2].as<std::string>();
      b.rows_done = Opt<int64_t>(r[3]);
      b.rows_estimate = Opt<int64_t>(r[4]);
      b.started_at_ms = Opt<int64_t>(r[5]);
      b.finished_at_ms = Opt<int64_t>(r[6]);
      b.error = Opt<std::string>(r[7]);
      out.push_back(std::move(b));
    }
    return JsonResponse(200, BackfillsJson(out));
  }

  HttpResponse StartBackfill(const HttpRequest& req) {
    BackfillRequest b;
    if (auto e = ParseBackfillRequest(req.body, &b)) return ErrorResponse(*e);
    Lease c(*this);
    pqxx::work tx(*c);
    int64_t id = 0;
    try {
      const auto r = b.condition
                         ? tx.exec_params(fmt::format("SELECT {}.backfill($1, $2)", S(*c)),
                                          b.trigger, *b.condition)
                         : tx.exec_params(fmt::format("SELECT {}.backfill($1)", S(*c)), b.trigger);
      id = r[0][0].as<int64_t>();
      tx.commit();
    } catch (const std::exception& e) {
      if (MissingBackfills(e)) return NoBackfills();
      const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
      // The refusals backfill() raises for the caller (SPEC §10, migration
      // 018): its own words, one line. 23505: one is running already;
      // 42601 and WH001: the condition; 42704, 42809 and the rest: the
      // trigger (none, another type, no table_name, no primary key).
      const std::string state = sql != nullptr ? sql->sqlstate() : "";
      const bool refusal = state == "P0001" || state == "23505" || state == "42704" ||
                           state == "42809" || state == "42601" || state == "WH001" ||
                           state.substr(0, 2) == "22";
      if (refusal) {
        const bool condition = state == "42601" || state == "WH001";
        return Err(state == "23505" ? 409 : 400, PrimaryMessage(e.what()),
                   condition ? "condition" : "trigger");
      }
      throw;
    }
    return JsonResponse(201, fmt::format(R"({{"id":"{}"}})", id));
  }

  HttpResponse CancelBackfill(int64_t id) {
    Lease c(*this);
    pqxx::work tx(*c);
    try {
      if (tx.exec_params(fmt::format("SELECT 1 FROM {}.backfills WHERE id = $1", S(*c)), id)
              .empty()) {
        return Err(404, fmt::format("no backfill {}", id), "id");
      }
      const auto r = tx.exec_params(fmt::format("SELECT {}.cancel_backfill($1)", S(*c)), id);
      const bool done = !r[0][0].is_null() && r[0][0].as<bool>();
      tx.commit();
      return JsonResponse(200, fmt::format(R"({{"cancelled":{}}})", done ? "true" : "false"));
    } catch (const std::exception& e) {
      if (MissingBackfills(e)) return NoBackfills();
      throw;
    }
  }

  HttpResponse Dispatch(const AdminTarget& t, const HttpRequest& req) {
    using R = admin::Route;
    switch (t.route) {
      case R::kListTriggers: return ListTriggers();
      case R::kGetTrigger: {
        Lease c(*this);
        return OneTrigger(*c, t.name, 200);
      }
      case R::kCreateTrigger: return CreateTrigger(req);
      case R::kUpdateTrigger: return UpdateTrigger(t.name, req);
      case R::kDeleteTrigger: return DeleteTrigger(t.name);
      case R::kEnableTrigger: return SetEnabled(t.name, true);
      case R::kDisableTrigger: return SetEnabled(t.name, false);
      case R::kValidate: return Validate(req);
      case R::kTables: return Tables();
      case R::kListEvents: return ListEvents(req);
      case R::kGetEvent: return GetEvent(t.id);
      case R::kRedeliver: return Redeliver(t.id);
      case R::kCancel: return Cancel(t.id);
      case R::kBulk: return Bulk(req);
      case R::kNodes: return Nodes();
      case R::kListBackfills: return ListBackfills();
      case R::kStartBackfill: return StartBackfill(req);
      case R::kCancelBackfill: return CancelBackfill(t.id);
      case R::kQueue: break;
    }
    return Err(404, "no such path");
  }
};

AdminHandler::AdminHandler(const Config& cfg) : impl_(std::make_unique<Impl>(cfg)) {}
AdminHandler::~AdminHandler() = default;

HttpResponse AdminHandler::Handle(const AdminTarget& target, const HttpRequest& request) {
  try {
    return impl_->Dispatch(target, request);
  } catch (const std::exception& e) {
    return DatabaseError(e, request.path);
  }
}

}  // namespace walhook
