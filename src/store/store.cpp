#include "walhook/store.h"

#include <algorithm>
#include <charconv>

#include <pqxx/tablewriter>

#include <fmt/format.h>
#include <rapidjson/document.h>

#include "walhook/delivery_store.h"
#include "walhook/errors.h"
#include "walhook/log.h"
#include "walhook/migrations.h"
#include "walhook/transform_request.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

}  // namespace

std::string MessagePrefix(const std::string& schema) {
  return "walhook." + schema;
}

namespace {

std::string Channel(const std::string& schema) {
  return "walhook_triggers_" + schema;
}

std::vector<std::string> JsonStrings(const std::string& text) {
  std::vector<std::string> out;
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (!doc.IsArray()) return out;
  for (const auto& v : doc.GetArray()) {
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

std::optional<std::string> OptionalText(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

std::string FirstLine(std::string_view text) {
  return StorableText(Utf8Prefix(text.substr(0, text.find('\n')), 512));
}

}  // namespace

class EventStore::Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, const std::string& channel, bool* changed)
      : pqxx::notification_receiver(conn, channel), changed_(changed) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    // "wake" is for delivery (redeliver); anything else means triggers changed.
    if (payload != "wake") *changed_ = true;
  }

 private:
  bool* changed_;
};

EventStore::EventStore(const std::string& conninfo, std::string schema, std::string node_id)
    : conn_(conninfo), schema_(std::move(schema)), node_id_(std::move(node_id)) {
  // The slot is confirmed once a batch commits: the commit must be durable,
  // whatever the role's or database's default says.
  conn_.set_variable("synchronous_commit", "on");
  // Past every stored position nothing can conflict, so the plain INSERT
  // skips the speculative insertion ON CONFLICT costs; a replay uses the other.
  // Owned events are leased to this node from the insert on; ordered ones
  // get their order key (the primary key's JSON text).
  const std::string insert = fmt::format(
      "INSERT INTO {}.event_logs (trigger_name, type, status, payload, ts, event_ts, "
      "source_lsn, source_seq, remark, lease_owner, lease_until, order_key) "
      "SELECT n, ty, st, p, greatest(t, to_timestamp(a / 1000.0)) + d * interval '1 ms', t, l, "
      "  q, r, CASE WHEN o THEN $9 END, "
      "  CASE WHEN o THEN now() + interval '{} s' END, CASE WHEN k THEN (p->'find')::text END "
      "FROM unnest($1::text[], $2::text[], $3::text[], $4::json[], $5::timestamptz[], "
      "  $6::pg_lsn[], $7::int[], $8::text[], $10::bool[], $11::bool[], $12::int8[], "
      "  $13::int8[]) AS u(n, ty, st, p, t, l, q, r, o, k, d, a)",
      conn_.quote_name(schema_), kLease.count());
  const std::string returning =
      " RETURNING id, lease_owner IS NOT NULL, source_lsn::text, source_seq, trigger_name, "
      "(extract(epoch FROM ts) * 1000)::int8";
  conn_.prepare("insert_events", insert + returning);
  conn_.prepare("insert_events_replay",
                insert +
                    " ON CONFLICT (source_epoch, source_lsn, source_seq, trigger_name) DO NOTHING" +
                    returning);
  // For a COPY: the lease of owned events (the database's clock, as the
  // INSERT's now()) and the batch's ids, from the sequence as a bigserial's.
  conn_.prepare(
      "reserve_ids",
      fmt::format("SELECT (now() + interval '{} s')::text, "
                  "(SELECT array_agg(nextval({})) FROM generate_series(1, $1))::text",
                  kLease.count(), conn_.quote(conn_.quote_name(schema_) + ".event_logs_id_seq")));
}

EventStore::~EventStore() = default;

std::string EventStore::Quoted() {
  return conn_.quote_name(schema_);
}

void EventStore::Migrate() {
  pqxx::work tx(conn_);
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('walhook.migrate.' || $1))", schema_);
  const std::string s = Quoted();
  tx.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", s));
  tx.exec(
      fmt::format("CREATE TABLE IF NOT EXISTS {}.schema_migrations (version int PRIMARY KEY, "
                  "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                  s));
  int applied = 0;
  const auto row =
      tx.exec1(fmt::format("SELECT coalesce(max(version), 0) FROM {}.schema_migrations", s));
  applied = row[0].as<int>();
  const std::string channel = tx.quote(Channel(schema_));  // a quoted literal
  for (const Migration& m : Migrations()) {
    if (m.version <= applied) continue;
    std::string sql = ReplaceAll(std::string(m.sql), "@schema@", s);
    sql = ReplaceAll(sql, "'@channel@'", channel);
    sql = ReplaceAll(sql, "'@prefix@'", tx.quote(MessagePrefix(schema_)));
    tx.exec(sql);
    tx.exec_params(
        fmt::format("INSERT INTO {}.schema_migrations (version, name) VALUES ($1, $2)", s),
        m.version, std::string(m.name));
  }
  tx.commit();
}

void EventStore::Listen() {
  receiver_ = std::make_unique<Receiver>(conn_, Channel(schema_), &changed_);
}

bool EventStore::TriggersChanged() {
  conn_.get_notifs();
  const bool changed = changed_;
  changed_ = false;
  return changed;
}

int EventStore::socket() const {
  return conn_.sock();
}

std::vector<Trigger> EventStore::LoadTriggers() {
  pqxx::read_transaction tx(conn_);
  const auto rows = tx.exec(fmt::format(
      "SELECT name, type, table_name, coalesce(array_to_json(columns)::text, '[]'), condition, "
      "path_prefix, enabled, ordered, headers::text, owner, request_transform::text, "
      "token_claims::text FROM {}.triggers ORDER BY name",
      Quoted()));
  std::vector<Trigger> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    Trigger t;
    t.name = r[0].as<std::string>();
    t.type = r[1].as<std::string>();
    t.kind = ParseEventKind(t.type);
    if (!r[2].is_null()) {
      const std::string table_name = r[2].as<std::string>();
      if (!ParseTableName(table_name, &t.schema, &t.table)) {
        // Validation reports it; keep the text so the message can name it.
        t.table = table_name;
        t.active = false;
      }
    }
    t.columns = JsonStrings(r[3].as<std::string>());
    t.condition = OptionalText(r[4]);
    t.path_prefix = OptionalText(r[5]);
    t.enabled = r[6].as<bool>();
    t.ordered = r[7].as<bool>();
    t.headers = OptionalText(r[8]);
    t.owner = r[9].as<std::string>();
    t.request_transform = OptionalText(r[10]);
    t.token_claims = OptionalText(r[11]);
    out.push_back(std::move(t));
  }
  return out;
}

namespace {

// A trigger's last_error as a text column holds it: valid UTF-8, no NUL,
// at most 4 KiB (cut between characters).
constexpr size_t kMaxLastErrorBytes = 4096;

std::string StorableError(std::string_view text) {
  return StorableText(Utf8Prefix(text, kMaxLastErrorBytes));
}

}  // namespace

void EventStore::WriteTriggerHealth(const std::vector<TriggerHealth>& health) {
  std::string names = "{";
  for (const TriggerHealth& h : health) AppendArrayElement(&names, StorableText(h.trigger_name));
  names += "}";
  try {
    pqxx::work tx(conn_);
    tx.exec_params(
        fmt::format("DELETE FROM {}.trigger_health WHERE trigger_name <> ALL($1::text[])",
                    Quoted()),
        names);
    UpsertTriggerHealth(tx, health);
    tx.commit();
    return;
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    // The database refused a row: write them one at a time, so one that
    // cannot be stored does not keep the others' from being shown, nor
    // (thrown on) stop capture.
    LogWarn("trigger_health: {}; writing each trigger's row on its own", FirstLine(e.what()));
  }
  {
    pqxx::work tx(conn_);
    tx.exec_params(
        fmt::format("DELETE FROM {}.trigger_health WHERE trigger_name <> ALL($1::text[])",
                    Quoted()),
        names);
    tx.commit();
  }
  for (const TriggerHealth& h : health) {
    try {
      pqxx::work tx(conn_);
      UpsertTriggerHealth(tx, {h});
      tx.commit();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error& e) {
      LogWarn("trigger \"{}\": its last_error could not be written ({})",
              StorableText(h.trigger_name), FirstLine(e.what()));
    }
  }
}

void EventStore::UpsertTriggerHealth(pqxx::work& tx, const std::vector<TriggerHealth>& health) {
  std::string names = "{", errors = "{", blocking = "{";
  for (const TriggerHealth& h : health) {
    AppendArrayElement(&names, StorableText(h.trigger_name));
    AppendArrayElement(&errors, StorableError(h.last_error));
    AppendArrayElement(&blocking, h.blocking ? "t" : "f");
  }
  names += "}";
  errors += "}";
  blocking += "}";
  tx.exec_params(
      fmt::format("INSERT INTO {0}.trigger_health (trigger_name, last_error, blocking) "
                  "SELECT * FROM unnest($1::text[], $2::text[], $3::bool[]) "
                  "ON CONFLICT (trigger_name) DO UPDATE SET last_error = excluded.last_error, "
                  "blocking = excluded.blocking, checked_at = now() "
                  "WHERE {0}.trigger_health.last_error IS DISTINCT FROM excluded.last_error "
                  "OR {0}.trigger_health.blocking IS DISTINCT FROM excluded.blocking",
                  Quoted()),
      names, errors, blocking);
}

Lsn EventStore::LastStoredLsn() {
  pqxx::read_transaction tx(conn_);
  const auto r = tx.exec1(fmt::format(
      "SELECT max(source_lsn)::text FROM {}.event_logs WHERE source_epoch = {}", Quoted(), epoch_));
  if (r[0].is_null()) return Lsn();
  return Lsn::Parse(r[0].as<std::string>()).value_or(Lsn(~uint64_t{0}));
}

size_t EventStore::Insert(const EventBatch& batch, bool replay, std::vector<StoredEvent>* owned,
                          const std::function<void()>& before_commit) {
  owned->clear();
  // A replay needs the INSERT's ON CONFLICT; a small batch its single round
  // trip (a COPY takes five: BEGIN, the ids, COPY, its end, COMMIT).
  if (!replay && batch.copyable() && batch.size() >= kCopyMin) {
    return Copy(batch, owned, before_commit);
  }
  auto insert = [&](pqxx::transaction_base& tx) {
    return tx.exec_prepared(replay ? "insert_events_replay" : "insert_events", batch.triggers(),
                            batch.types(), batch.statuses(), batch.payloads(), batch.timestamps(),
                            batch.lsns(), batch.seqs(), batch.remarks(), node_id_,
                            batch.owned_flags(), batch.ordered_flags(), batch.delays(),
                            batch.ats());
  };
  pqxx::result res;
  if (before_commit || batch.progress()) {
    pqxx::work tx(conn_);
    res = insert(tx);
    // After before_commit, which waits for the earlier batches to commit:
    // one of them may hold progress of the same backfill (its row lock).
    if (before_commit) before_commit();
    if (batch.progress()) WriteProgress(tx, *batch.progress());
    tx.commit();
  } else {
    pqxx::nontransaction tx(conn_);  // one statement: its own transaction
    res = insert(tx);
  }
  for (const auto& r : res) {
    if (!r[1].as<bool>()) continue;
    StoredEvent e;
    e.id = r[0].as<int64_t>();
    e.lsn = Lsn::Parse(r[2].c_str()).value_or(Lsn());
    e.seq = r[3].as<int>();
    e.trigger = r[4].as<std::string>();
    e.ts_ms = r[5].as<int64_t>();
    owned->push_back(std::move(e));
  }
  return res.size();
}

size_t EventStore::Copy(const EventBatch& batch, std::vector<StoredEvent>* owned,
                        const std::function<void()>& before_commit) {
  pqxx::work tx(conn_);
  const auto head = tx.exec_prepared1("reserve_ids", static_cast<int64_t>(batch.size()));
  const std::string lease_until = head[0].as<std::string>();
  const std::string id_list = head[1].as<std::string>();  // {1,2,…}
  std::vector<int64_t> ids;
  ids.reserve(batch.size());
  for (const char* p = id_list.data() + 1; ids.size() < batch.size();) {
    int64_t id = 0;
    const auto [end, ec] = std::from_chars(p, id_list.data() + id_list.size(), id);
    if (ec != std::errc()) throw std::runtime_error("unexpected ids from nextval: " + id_list);
    ids.push_back(id);
    p = end + 1;
  }
  std::vector<std::string> columns = {"id"};
  columns.insert(columns.end(), std::begin(kCopyColumns), std::end(kCopyColumns));
  columns.insert(columns.end(), {"lease_owner", "lease_until"});
  std::string leased_tail = "\t";
  AppendCopyField(&leased_tail, node_id_);
  leased_tail += "\t" + lease_until;
  const std::vector<LeasedRow>& leased = batch.leased();
  size_t next_leased = 0;
  {
    // libpqxx 6.4's stream_to escapes each field itself and keeps its
    // write_raw_line private; the batch's rows are escaped already, and
    // tablewriter's write_raw_line is the way to send them as they are.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    pqxx::tablewriter copy(tx, Quoted() + ".event_logs", columns.begin(), columns.end());
#pragma GCC diagnostic pop
    std::string line;
    for (size_t i = 0; i < batch.size(); ++i) {
      line.clear();
      fmt::format_to(std::back_inserter(line), "{}\t", ids[i]);
      line += batch.copy_row(i);
      if (next_leased < leased.size() && leased[next_leased].row == i) {
        line += leased_tail;
        owned->push_back(leased[next_leased++].stored);
        owned->back().id = ids[i];
      } else {
        line += "\t\\N\t\\N";
      }
      copy.write_raw_line(line);
    }
    copy.complete();
  }
  if (before_commit) before_commit();
  if (batch.progress()) WriteProgress(tx, *batch.progress());
  tx.commit();
  return batch.size();
}

void EventStore::WriteProgress(pqxx::transaction_base& tx, const BackfillProgress& p) {
  // A cancelled backfill stays cancelled: its last chunk's events are
  // written, its progress not.
  tx.exec_params(
      fmt::format("UPDATE {}.backfills SET rows_done = rows_done + $2, last_key = $3::json, "
                  "pending_keys = $4::json, chunks = chunks + 1, updated_at = now(), "
                  "state = CASE WHEN $5 THEN 'done' ELSE state END, "
                  "finished_at = CASE WHEN $5 THEN now() END "
                  "WHERE id = $1 AND state = 'running'",
                  Quoted()),
      p.backfill, p.rows, p.last_key.empty() ? std::optional<std::string>() : p.last_key,
      p.pending_keys.empty() ? std::optional<std::string>() : p.pending_keys, p.done);
}

void EventStore::WriteProgress(const BackfillProgress& p) {
  pqxx::work tx(conn_);
  WriteProgress(tx, p);
  tx.commit();
}

void EventStore::SetEpoch(int64_t epoch) {
  epoch_ = epoch;
  conn_.set_variable("walhook.epoch", std::to_string(epoch));
}

std::optional<RecordedSource> EventStore::LoadSource(const std::string& slot) {
  pqxx::read_transaction tx(conn_);
  const auto r =
      tx.exec_params(fmt::format("SELECT system_identifier, timeline, epoch, confirmed_lsn::text "
                                 "FROM {}.source_identity WHERE slot_name = $1",
                                 Quoted()),
                     slot);
  if (r.empty()) return std::nullopt;
  RecordedSource out;
  out.id.system_identifier = r[0][0].as<std::string>();
  out.id.timeline = r[0][1].as<int64_t>();
  out.epoch = r[0][2].as<int64_t>();
  if (!r[0][3].is_null()) out.confirmed = Lsn::Parse(r[0][3].as<std::string>()).value_or(Lsn());
  return out;
}

std::optional<std::pair<int64_t, Lsn>> EventStore::LastEpoch() {
  pqxx::read_transaction tx(conn_);
  // Down the unique index (source_epoch, source_lsn, …) from its end.
  const auto r = tx.exec(fmt::format(
      "SELECT source_epoch, source_lsn::text FROM {}.event_logs WHERE source_lsn IS NOT NULL "
      "ORDER BY source_epoch DESC, source_lsn DESC LIMIT 1",
      Quoted()));
  if (r.empty()) return std::nullopt;
  return std::make_pair(r[0][0].as<int64_t>(),
                        Lsn::Parse(r[0][1].as<std::string>()).value_or(Lsn()));
}

void EventStore::SaveSource(const std::string& slot, const SourceId& id, int64_t epoch) {
  pqxx::work tx(conn_);
  tx.exec_params(
      fmt::format("INSERT INTO {0}.source_identity AS s (slot_name, system_identifier, timeline, "
                  "epoch) VALUES ($1, $2, $3, $4) ON CONFLICT (slot_name) DO UPDATE SET "
                  "system_identifier = excluded.system_identifier, timeline = excluded.timeline, "
                  "confirmed_lsn = CASE WHEN s.epoch = excluded.epoch THEN s.confirmed_lsn END, "
                  "epoch = excluded.epoch, recorded_at = now(), updated_at = now()",
                  Quoted()),
      slot, id.system_identifier, id.timeline, epoch);
  tx.commit();
}

void EventStore::Report(const NodeReport& r) {
  pqxx::work tx(conn_);
  if (r.role == "streaming" && r.confirmed.valid()) {
    // What walhook confirmed, for the message when the source changes.
    tx.exec_params(fmt::format("UPDATE {}.source_identity SET confirmed_lsn = $2::pg_lsn, "
                               "updated_at = now() WHERE slot_name = $1 AND epoch = $3 "
                               "AND confirmed_lsn IS DISTINCT FROM $2::pg_lsn",
                               Quoted()),
                   r.slot, r.confirmed.ToString(), epoch_);
  }
  tx.exec_params(
      fmt::format("INSERT INTO {}.nodes (node_id, role, slot_name, confirmed_lsn, lag_bytes, "
                  "events_per_s, updated_at) VALUES ($1, $2, $3, $4::pg_lsn, $5, $6, now()) "
                  "ON CONFLICT (node_id) DO UPDATE SET role = excluded.role, "
                  "slot_name = excluded.slot_name, confirmed_lsn = excluded.confirmed_lsn, "
                  "lag_bytes = excluded.lag_bytes, events_per_s = excluded.events_per_s, "
                  "updated_at = now()",
                  Quoted()),
      node_id_, r.role, r.slot,
      r.confirmed.valid() ? std::optional<std::string>(r.confirmed.ToString()) : std::nullopt,
      r.lag_bytes, r.events_per_s);
  tx.commit();
}

void EventStore::Forget() {
  pqxx::work tx(conn_);
  tx.exec_params(fmt::format("DELETE FROM {}.nodes WHERE node_id = $1", Quoted()), node_id_);
  tx.commit();
}

// ---------------------------------------------------------------------------

SourceCatalog::SourceCatalog(const std::string& conninfo) : conn_(conninfo) {}

void SourceCatalog::CheckSetup() {
  pqxx::nontransaction tx(conn_);
  const auto role = tx.exec1(
      "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user");
  if (!role[1].as<bool>()) {
    throw FatalError(kExitSetup,
                     fmt::format("the source role \"{0}\" lacks the REPLICATION privilege: run "
                                 "ALTER ROLE {0} REPLICATION as a superuser, or connect as a "
                                 "role that has it",
                                 role[0].as<std::string>()));
  }
  const std::string level = tx.exec1("SHOW wal_level")[0].as<std::string>();
  if (level != "logical") {
    throw FatalError(kExitSetup,
                     fmt::format("the source server's wal_level is '{}', not logical: set "
                                 "wal_level = logical in postgresql.conf (or ALTER SYSTEM SET "
                                 "wal_level = logical) and restart Postgres",
                                 level));
  }
}

SlotState SourceCatalog::Slot(const std::string& slot) {
  pqxx::nontransaction tx(conn_);
  // One read: a slot that another node creates meanwhile is seen whole or
  // not at all.
  const auto rows = tx.exec_params(
      "SELECT plugin, coalesce(wal_status, ''), active, confirmed_flush_lsn::text, "
      "  database, database IS NOT DISTINCT FROM current_database() "
      "FROM pg_replication_slots WHERE slot_name = $1",
      slot);
  SlotState s;
  if (rows.empty()) return s;
  if (!rows[0][5].as<bool>()) {
    // A slot of that name for another database is a setup error too.
    throw FatalError(kExitSetup,
                     fmt::format("replication slot \"{}\" belongs to another database ({}); "
                                 "choose another --slot",
                                 slot, rows[0][4].is_null() ? "physical" : rows[0][4].c_str()));
  }
  s.exists = true;
  s.plugin = rows[0][0].is_null() ? "" : rows[0][0].as<std::string>();
  s.wal_status = rows[0][1].as<std::string>();
  s.active = rows[0][2].as<bool>();
  if (!rows[0][3].is_null()) {
    if (auto lsn = Lsn::Parse(rows[0][3].as<std::string>())) s.confirmed_flush = *lsn;
  }
  return s;
}

void SourceCatalog::CreateSlot(const std::string& slot) {
  try {
    pqxx::nontransaction tx(conn_);
    tx.exec_params("SELECT pg_create_logical_replication_slot($1, 'wal2json')", slot);
  } catch (const pqxx::sql_error& e) {
    std::string hint = SetupHint(e.what(), slot);
    if (!hint.empty()) throw FatalError(kExitSetup, hint);
    // Another node created it at the same moment: fine.
    if (std::string_view(e.what()).find("already exists") != std::string_view::npos) return;
    throw;
  }
}

void SourceCatalog::DropSlot(const std::string& slot) {
  pqxx::nontransaction tx(conn_);
  tx.exec_params(
      "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
      "WHERE slot_name = $1",
      slot);
}

void SourceCatalog::LockSlotSetup(const std::string& slot, bool lock) {
  pqxx::nontransaction tx(conn_);
  tx.exec_params(fmt::format("SELECT pg_advisory_{}lock(hashtext('walhook.slot-setup.' || $1))",
                             lock ? "" : "un"),
                 slot);
}

bool SourceCatalog::TryLockSlot(const std::string& slot) {
  pqxx::nontransaction tx(conn_);
  // The lock lasts as long as this connection's backend. After a host crash
  // or a network cut, Postgres would keep that idle backend until TCP gave
  // up on it (two hours by default); with these it lets go about when
  // wal_sender_timeout ends the stream, so a standby can take over. Session
  // settings: once per backend, not on every try of a standby.
  if (tcp_timeouts_pid_ != conn_.backendpid()) {
    tx.exec(
        "SELECT set_config('tcp_keepalives_idle', '5', false), "
        "set_config('tcp_keepalives_interval', '5', false), "
        "set_config('tcp_user_timeout', current_setting('wal_sender_timeout'), false)");
    tcp_timeouts_pid_ = conn_.backendpid();
  }
  return tx.exec_params1("SELECT pg_try_advisory_lock(hashtext('walhook.slot.' || $1))", slot)[0]
      .as<bool>();
}

std::string SourceCatalog::Database() {
  pqxx::nontransaction tx(conn_);
  return tx.exec1("SELECT current_database()")[0].as<std::string>();
}

Lsn SourceCatalog::CurrentWalLsn() {
  pqxx::nontransaction tx(conn_);
  auto lsn = Lsn::Parse(tx.exec1("SELECT pg_current_wal_lsn()::text")[0].as<std::string>());
  return lsn.value_or(Lsn());
}

TableInfo SourceCatalog::LookupTable(const std::string& schema, const std::string& table) {
  std::string owners = "{";
  for (const std::string& o : owners_) AppendArrayElement(&owners, o);
  owners += "}";
  TableInfo info;
  info.schema = info.root_schema = schema;
  info.table = info.root_table = table;
  pqxx::nontransaction tx(conn_);
  const auto rows = tx.exec_params(
      "SELECT c.relreplident, rn.nspname, rc.relname, "
      "  coalesce((SELECT array_to_json(array_agg(a.attname ORDER BY a.attnum))::text "
      "    FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
      "    AND a.attlen = -1), '[]'), "
      "  coalesce((SELECT array_to_json(array_agg(a.attname ORDER BY a.attnum))::text "
      "    FROM pg_index i JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
      "    WHERE i.indrelid = c.oid AND i.indisreplident), '[]'), "
      // The triggers' owners that may read its rows, here or through the
      // partitioned table (SPEC §9): in the same round trip.
      "  coalesce((SELECT array_to_json(array_agg(r.rolname::text))::text FROM pg_roles r "
      "    WHERE r.rolname = ANY($3::text[]) AND (has_table_privilege(r.oid, c.oid, 'SELECT') "
      "      OR has_table_privilege(r.oid, rc.oid, 'SELECT'))), '[]') "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_class rc ON rc.oid = coalesce(pg_partition_root(c.oid), c.oid) "
      "JOIN pg_namespace rn ON rn.oid = rc.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2",
      schema, table, owners);
  if (rows.empty()) return info;
  const auto& r = rows[0];
  info.replica_identity = r[0].as<std::string>().front();
  info.root_schema = r[1].as<std::string>();
  info.root_table = r[2].as<std::string>();
  info.columns = JsonStrings(r[3].as<std::string>());
  info.identity_columns = JsonStrings(r[4].as<std::string>());
  info.readers = JsonStrings(r[5].as<std::string>());
  return info;
}

namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += out.empty() ? n : ", " + n;
  return out;
}

// What a condition on a DB trigger says that the table cannot give: columns
// it lacks (blocking), and old/new values that are always NULL (notes).
void CheckConditionColumns(const Trigger& t, const std::vector<std::string>& table_columns,
                           const std::vector<std::string>& key_columns, char replident,
                           std::string* blocking, std::vector<std::string>* notes) {
  const Condition& c = *t.parsed_condition;
  std::vector<std::string> unknown;
  std::vector<std::string> old_not_key;
  for (const Scope scope : {Scope::kNew, Scope::kOld}) {
    for (const std::string& name : c.Columns(scope)) {
      if (std::find(table_columns.begin(), table_columns.end(), name) == table_columns.end()) {
        const std::string shown = (scope == Scope::kNew ? "new." : "old.") + name;
        if (std::find(unknown.begin(), unknown.end(), shown) == unknown.end()) {
          unknown.push_back(shown);
        }
      } else if (scope == Scope::kOld && replident != 'f' &&
                 std::find(key_columns.begin(), key_columns.end(), name) == key_columns.end()) {
        old_not_key.push_back("old." + name);
      }
    }
  }
  if (!unknown.empty()) {
    *blocking = fmt::format("condition names columns table {}.{} does not have: {}", t.schema,
                            t.table, JoinNames(unknown));
    return;
  }
  if (t.kind == EventKind::kDbInsert && c.Uses(Scope::kOld)) {
    notes->push_back("condition: old.* is always NULL for DB_INSERT (there is no old row)");
  }
  if (t.kind == EventKind::kDbDelete && c.Uses(Scope::kNew)) {
    notes->push_back("condition: new.* is always NULL for DB_DELETE (use old.*)");
  }
  if (t.kind != EventKind::kDbInsert && !old_not_key.empty()) {
    notes->push_back(fmt::format(
        "condition: {} is NULL because only the key of the old row is known: ALTER TABLE {}.{} "
        "REPLICA IDENTITY FULL gives the whole old row",
        JoinNames(old_not_key), t.schema, t.table));
  }
}

}  // namespace

std::vector<TriggerHealth> SourceCatalog::Validate(std::vector<Trigger>* triggers) {
  std::vector<TriggerHealth> out;
  pqxx::nontransaction tx(conn_);
  owners_.clear();
  for (const Trigger& t : *triggers) {
    if (t.kind == EventKind::kDbInsert || t.kind == EventKind::kDbUpdate ||
        t.kind == EventKind::kDbDelete) {
      owners_.push_back(t.owner);
    }
  }
  std::sort(owners_.begin(), owners_.end());
  owners_.erase(std::unique(owners_.begin(), owners_.end()), owners_.end());
  for (Trigger& t : *triggers) {
    // One row per trigger: a blocking error, or the notes joined.
    std::string blocking;
    std::vector<std::string> notes;
    std::string waiting_for;
    [&] {
      t.parsed_condition = nullptr;
      if (t.headers.has_value()) {
        blocking = CheckTriggerHeaders(*t.headers);
        if (!blocking.empty()) return;
      }
      if (t.request_transform.has_value() || t.token_claims.has_value()) {
        // SPEC §11: a template that does not parse, or a header the
        // transform would set that SPEC §9 reserves.
        const auto transform = ParseRequestTransform(t.request_transform, t.token_claims);
        if (!transform.ok()) {
          blocking = transform.error();
          return;
        }
      }
      if (t.kind == EventKind::kCustom || t.kind == EventKind::kFileCreate ||
          t.kind == EventKind::kFileDelete) {
        blocking = CheckPayloadTrigger(&t);
        return;
      }
      if (!t.active) {
        blocking = fmt::format(
            "table_name \"{}\" is not a table name (write table or schema.table)", t.table);
        return;
      }
      if (t.condition.has_value()) {
        Result<Condition> parsed = ParseCondition(*t.condition);
        if (!parsed.ok()) {
          blocking = parsed.error();
          return;
        }
        if (parsed->Uses(Scope::kPayload)) {
          blocking =
              "condition: payload.* is for custom and file events; a DB_* trigger's condition "
              "uses new.column and old.column";
          return;
        }
        t.parsed_condition = std::make_shared<const Condition>(std::move(*parsed));
      }
      if (t.table.empty()) return;  // every table
      const auto rows = tx.exec_params(
          "SELECT c.relreplident, c.relkind, "
          "  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), "
          "  coalesce((SELECT array_to_json(array_agg(a.attname))::text FROM pg_attribute a "
          "    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'), "
          "  coalesce((SELECT array_to_json(array_agg(a.attname))::text "
          "    FROM pg_index i JOIN pg_attribute a ON a.attrelid = c.oid "
          "      AND a.attnum = ANY(i.indkey) "
          "    WHERE i.indrelid = c.oid AND CASE WHEN c.relreplident = 'i' "
          "      THEN i.indisreplident ELSE i.indisprimary END), '[]'), "
          // A role that does not exist here may read nothing.
          "  coalesce((SELECT has_table_privilege(r.oid, c.oid, 'SELECT') FROM pg_roles r "
          "    WHERE r.rolname = $3), false) "
          "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
          "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
          t.schema, t.table, t.owner);
      if (rows.empty()) {
        // Inactive until the table exists. A change proves it does, and a
        // table created after its trigger fires from its first row on: the
        // trigger stays in the matcher, and that row has it checked again.
        waiting_for = t.schema + "." + t.table;
        return;
      }
      if (!rows[0][5].as<bool>()) {
        // SPEC §9: a trigger sees only what its owner may read.
        blocking = fmt::format(
            "the trigger's owner, role \"{0}\", may not SELECT table {1}.{2} in the source "
            "database: the trigger is inactive until it may (GRANT SELECT ON {1}.{2} TO {0})",
            t.owner, t.schema, t.table);
        return;
      }
      const char replident = rows[0][0].as<std::string>().front();
      const bool has_pk = rows[0][2].as<bool>();
      const std::vector<std::string> cols = JsonStrings(rows[0][3].as<std::string>());
      const std::vector<std::string> key = JsonStrings(rows[0][4].as<std::string>());
      std::vector<std::string> unknown;
      for (const std::string& c : t.columns) {
        if (std::find(cols.begin(), cols.end(), c) == cols.end()) unknown.push_back(c);
      }
      if (!unknown.empty()) {
        blocking = fmt::format("columns names what table {}.{} does not have: {}", t.schema,
                               t.table, JoinNames(unknown));
        return;
      }
      if (t.parsed_condition != nullptr) {
        CheckConditionColumns(t, cols, key, replident, &blocking, &notes);
        if (!blocking.empty()) return;
      }
      const bool no_identity = replident == 'n' || (replident == 'd' && !has_pk);
      if (no_identity) {
        const std::string message = fmt::format(
            "table {}.{} has neither a primary key nor REPLICA IDENTITY FULL, so "
            "wal2json cannot deliver its UPDATEs and DELETEs (inserts still fire): "
            "add a primary key or run ALTER TABLE {}.{} REPLICA IDENTITY FULL",
            t.schema, t.table, t.schema, t.table);
        if (t.kind != EventKind::kDbInsert) {
          blocking = message;
        } else {
          notes.push_back(message);
        }
        return;
      }
      if (!has_pk) {
        // `find` is then not a primary key: say what it holds.
        notes.push_back(
            replident == 'f'
                ? fmt::format("table {}.{} has no primary key: find holds the whole row "
                              "(REPLICA IDENTITY FULL)",
                              t.schema, t.table)
                : fmt::format("table {}.{} has no primary key: find holds its replica identity "
                              "index columns ({})",
                              t.schema, t.table, JoinNames(key)));
      }
      if (t.kind == EventKind::kDbUpdate && !t.columns.empty() && replident != 'f') {
        notes.push_back(
            fmt::format("without the old row walhook cannot see which columns changed, so every "
                        "UPDATE counts as changing them: ALTER TABLE {}.{} REPLICA IDENTITY FULL "
                        "makes columns exact",
                        t.schema, t.table));
      }
    }();
    if (!blocking.empty()) {
      t.active = false;
      t.parsed_condition = nullptr;
      out.push_back({t.name, std::move(blocking), true, ""});
    } else if (!waiting_for.empty()) {
      out.push_back({t.name,
                     fmt::format("table {} does not exist in the source database: the trigger "
                                 "is inactive until it does, and fires from its first row on",
                                 waiting_for),
                     true, waiting_for});
    } else if (!notes.empty()) {
      std::string joined;
      for (const std::string& n : notes) joined += joined.empty() ? n : "; " + n;
      out.push_back({t.name, std::move(joined), false, ""});
    }
  }
  return out;
}

void SourceCatalog::InstallQueueEvent(const std::string& schema) {
  pqxx::work tx(conn_);
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('walhook.migrate.' || $1))", schema);
  const std::string s = conn_.quote_name(schema);
  tx.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", s));
  // The function, then its key and what makes it sign (both may run again).
  for (const Migration& m : Migrations()) {
    if (m.name != "queue_event" && m.name != "queue_event_key") continue;
    std::string sql = ReplaceAll(std::string(m.sql), "@schema@", s);
    sql = ReplaceAll(sql, "'@prefix@'", tx.quote(MessagePrefix(schema)));
    tx.exec(sql);
  }
  tx.commit();
}

QueueEventKeys SourceCatalog::ReadQueueEventKeys(const std::string& schema) {
  pqxx::read_transaction tx(conn_);
  const auto rows = tx.exec(
      fmt::format("SELECT id, encode(key, 'hex'), legacy_before::text FROM {}.queue_event_keys",
                  conn_.quote_name(schema)));
  QueueEventKeys out;
  for (const auto& r : rows) {
    const std::string hex = r[1].as<std::string>();
    std::string key;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      key.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    out.keys.emplace(r[0].as<int64_t>(), std::move(key));
    if (!r[2].is_null()) {
      // The earliest: rows added later (rotation) do not widen it.
      const Lsn lsn = Lsn::Parse(r[2].as<std::string>()).value_or(Lsn());
      if (lsn.valid() && (!out.legacy_before.valid() || lsn < out.legacy_before)) {
        out.legacy_before = lsn;
      }
    }
  }
  return out;
}

void SourceCatalog::Heartbeat(const std::string& prefix) {
  pqxx::nontransaction tx(conn_);
  tx.exec_params("SELECT pg_logical_emit_message(false, $1, '')", prefix);
}

}  // namespace walhook
