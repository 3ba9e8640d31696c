#include "walhook/backfill_runner.h"

#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <stdexcept>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "walhook/log.h"
#include "walhook/metrics.h"
#include "walhook/trigger.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

using std::chrono::milliseconds;

// A reason the backfill cannot go on: it is marked failed with it.
class Refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Job {
  int64_t id = 0;
  std::string trigger;
  std::optional<std::string> condition;
  std::string last_key;
  std::string pending;
  int64_t chunks = 0;
  int64_t rows_done = 0;
  std::optional<int64_t> estimate;
  bool trigger_exists = false;
  std::string type;
  std::optional<std::string> table_name;
};

std::string RandomNonce() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

std::optional<std::string> Text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

// Rows per chunk: kChunkRows, or WALHOOK_BACKFILL_CHUNK_ROWS (for tests
// that want many chunks of a small table).
int64_t ChunkRows() {
  if (const char* v = std::getenv("WALHOOK_BACKFILL_CHUNK_ROWS")) {
    const int64_t n = std::atoll(v);
    if (n > 0 && n <= BackfillRunner::kChunkRows) return n;
  }
  return BackfillRunner::kChunkRows;
}

std::string FirstLine(std::string_view text) {
  return StorableText(Utf8Prefix(text.substr(0, text.find('\n')), 300));
}

class Run {
 public:
  Run(const Config& cfg, BackfillChannel& channel, const std::atomic<bool>& stop,
      pqxx::connection& ev, pqxx::connection& src)
      : cfg_(cfg), channel_(channel), stop_(stop), ev_(ev), src_(src) {
    s_ = ev_.quote_name(cfg_.schema);
    prefix_ = WatermarkPrefix(cfg_.schema);
  }

  // The oldest running backfill, if any.
  std::optional<Job> Next() {
    pqxx::read_transaction tx(ev_);
    const auto r = tx.exec(fmt::format(
        "SELECT b.id, b.trigger_name, b.condition, b.last_key::text, b.pending_keys::text, "
        "  b.chunks, b.rows_done, b.rows_estimate, t.name IS NOT NULL, t.type, t.table_name "
        "FROM {0}.backfills b LEFT JOIN {0}.triggers t ON t.name = b.trigger_name "
        "WHERE b.state = 'running' ORDER BY b.id LIMIT 1",
        s_));
    if (r.empty()) return std::nullopt;
    Job j;
    j.id = r[0][0].as<int64_t>();
    j.trigger = r[0][1].as<std::string>();
    j.condition = Text(r[0][2]);
    j.last_key = Text(r[0][3]).value_or("");
    j.pending = Text(r[0][4]).value_or("");
    j.chunks = r[0][5].as<int64_t>();
    j.rows_done = r[0][6].as<int64_t>();
    if (!r[0][7].is_null()) j.estimate = r[0][7].as<int64_t>();
    j.trigger_exists = r[0][8].as<bool>();
    if (j.trigger_exists) {
      j.type = r[0][9].as<std::string>();
      j.table_name = Text(r[0][10]);
    }
    return j;
  }

  void Execute(Job& job) {
    // However it ends, /healthz and /metrics stop showing it.
    struct Shown {
      ~Shown() { GlobalMetrics().SetBackfill(0, "", 0, 0); }
    } shown;
    std::shared_ptr<const BackfillTable> table;
    std::shared_ptr<const Condition> condition;
    try {
      Prepare(job, &table, &condition);
    } catch (const Refused& e) {
      Fail(job.id, e.what());
      return;
    }
    LogInfo("backfill {} of trigger \"{}\": reading {}.{} in chunks of up to {} rows{}", job.id,
            job.trigger, table->schema, table->table, ChunkRows(),
            job.last_key.empty() ? "" : " (resumed after its last chunk)");
    channel_.Watch(table->schema, table->table);
    struct Watched {
      BackfillChannel& channel;
      ~Watched() { channel.Unwatch(); }
    } watched{channel_};
    int64_t chunk_no = job.chunks;
    int64_t written = job.chunks;  // chunks whose events and progress are committed, or will be
    const int64_t max_rows = ChunkRows();
    int64_t limit = max_rows;
    int64_t rows_done = job.rows_done;
    bool said_waiting = false;
    while (!stop_) {
      if (!StillRunning(job.id)) {
        LogInfo("backfill {} of trigger \"{}\" stopped: it is no longer running (cancelled)",
                job.id, job.trigger);
        return;
      }
      GlobalMetrics().SetBackfill(job.id, job.trigger, rows_done, job.estimate.value_or(-1));
      ++chunk_no;
      // SPEC §10: a backfill never stalls live capture (kLiveChunkRows).
      const bool live = channel_.LiveWithin(BackfillRunner::kLiveWindow);
      const auto started = std::chrono::steady_clock::now();
      const std::string nonce = RandomNonce();
      channel_.Open(job.id, chunk_no, nonce, table->schema, table->table);
      Watermark w{job.id, chunk_no, false, nonce};
      Emit(w);
      auto chunk = std::make_unique<BackfillChunk>();
      chunk->backfill = job.id;
      chunk->chunk = chunk_no;
      chunk->nonce = nonce;
      chunk->trigger = job.trigger;
      chunk->table = table;
      chunk->condition = condition;
      Read(*table, job.last_key, job.pending,
           live ? std::min(limit, BackfillRunner::kLiveChunkRows) : limit, chunk.get());
      const std::string next_key = chunk->last_key;
      // At most kChunksInFlight chunks' events wait to be written (each
      // has a writer of its own, apart from the live stream's). Reading
      // this chunk overlapped the writing of those before.
      if (!WaitWritten(job.id, live ? written : written - (BackfillRunner::kChunksInFlight - 1))) {
        channel_.Close();
        continue;  // cancelled: the check at the top says so
      }
      channel_.Hand(std::move(chunk));
      w.high = true;
      Emit(w);
      std::optional<ChunkResult> result;
      while (!stop_ && !(result = channel_.Wait(200))) {
      }
      channel_.Close();
      if (!result) return;
      if (result->redo) {
        if (result->why_redo.find("trigger") != std::string::npos) {
          const std::string changed = TriggerChanged(job);
          if (!changed.empty()) {
            Fail(job.id, changed);
            return;
          }
          if (!said_waiting) {
            LogWarn("backfill {}: {}; waiting", job.id, result->why_redo);
            said_waiting = true;
          }
          Sleep(milliseconds(1000));
        } else {
          limit = std::max<int64_t>(1, limit / 2);
          LogInfo("backfill {}: chunk {} is read again ({}); next chunks up to {} rows", job.id,
                  chunk_no, result->why_redo, limit);
        }
        continue;
      }
      said_waiting = false;
      ++written;
      if (live && !result->done) {
        // Half the time to the live stream: a pause as long as the chunk
        // took, its events' insert included (it would fill the pause).
        if (!WaitWritten(job.id, written)) continue;
        const auto took = std::chrono::steady_clock::now() - started;
        std::this_thread::sleep_for(
            std::min<std::chrono::steady_clock::duration>(took, milliseconds(500)));
      }
      limit = std::min<int64_t>(max_rows, limit * 2);
      job.last_key = next_key;
      job.pending = result->pending_keys;
      rows_done += result->emitted;
      if (result->done) {
        // Written with the last chunk's events: wait for it, so the same
        // backfill is not taken for a running one again.
        while (!stop_ && StillRunning(job.id)) Sleep(milliseconds(20));
        LogInfo("backfill {} of trigger \"{}\" done: {} rows", job.id, job.trigger, rows_done);
        return;
      }
    }
  }

  void Fail(int64_t id, const std::string& why) {
    LogError("backfill {} failed: {}", id, why);
    pqxx::work tx(ev_);
    tx.exec_params(fmt::format("UPDATE {}.backfills SET state = 'failed', error = $2, "
                               "finished_at = now(), updated_at = now() "
                               "WHERE id = $1 AND state = 'running'",
                               s_),
                   id, StorableText(why));
    tx.commit();
    GlobalMetrics().SetBackfill(0, "", 0, 0);
  }

 private:
  void Sleep(milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (!stop_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  // Why the trigger can no longer be backfilled as it was when the backfill
  // started ("" when it still can).
  std::string TriggerChanged(const Job& job) {
    pqxx::read_transaction tx(ev_);
    const auto r = tx.exec_params(
        fmt::format("SELECT type, table_name FROM {}.triggers WHERE name = $1", s_), job.trigger);
    if (r.empty()) return fmt::format("trigger \"{}\" was deleted", job.trigger);
    if (r[0][0].as<std::string>() != job.type || Text(r[0][1]) != job.table_name) {
      return fmt::format("trigger \"{}\" changed its type or table while its backfill ran",
                         job.trigger);
    }
    return "";
  }

  // Waits until `chunks` chunks of backfill `id` are committed; false when
  // it stopped running meanwhile (cancelled: its progress is not written).
  // Read again when the writer says a chunk committed (or every 100 ms: a
  // cancel, or a commit by a writer this node no longer runs).
  bool WaitWritten(int64_t id, int64_t chunks) {
    while (!stop_) {
      const uint64_t seen = channel_.commits();
      {
        pqxx::read_transaction tx(ev_);
        const auto r = tx.exec_params(
            fmt::format("SELECT chunks, state FROM {}.backfills WHERE id = $1", s_), id);
        if (r.empty() || r[0][1].as<std::string>() != "running") return false;
        if (r[0][0].as<int64_t>() >= chunks) return true;
      }
      channel_.WaitCommitted(seen, 100);
    }
    return false;
  }

  bool StillRunning(int64_t id) {
    pqxx::read_transaction tx(ev_);
    const auto r =
        tx.exec_params(fmt::format("SELECT state FROM {}.backfills WHERE id = $1", s_), id);
    return !r.empty() && r[0][0].as<std::string>() == "running";
  }

  void Emit(const Watermark& w) {
    pqxx::nontransaction tx(src_);
    tx.exec_params("SELECT pg_logical_emit_message(true, $1, $2)", prefix_, WatermarkContent(w));
  }

  void Prepare(Job& job, std::shared_ptr<const BackfillTable>* table,
               std::shared_ptr<const Condition>* condition) {
    if (!job.trigger_exists) throw Refused(fmt::format("trigger \"{}\" was deleted", job.trigger));
    if (job.type != "DB_INSERT" && job.type != "DB_UPDATE") {
      throw Refused(
          fmt::format("trigger \"{}\" is now of type {}: only DB_INSERT and DB_UPDATE "
                      "triggers can be backfilled",
                      job.trigger, job.type));
    }
    if (!job.table_name) {
      throw Refused(fmt::format("trigger \"{}\" has no table_name", job.trigger));
    }
    auto t = std::make_shared<BackfillTable>();
    if (!ParseTableName(*job.table_name, &t->schema, &t->table)) {
      throw Refused(fmt::format("table_name \"{}\" is not a table name", *job.table_name));
    }
    if (job.condition) {
      Result<Condition> c = ParseBackfillCondition(*job.condition);
      if (!c.ok()) throw Refused(c.error());
      *condition = std::make_shared<const Condition>(std::move(*c));
    }
    pqxx::read_transaction tx(src_);
    const auto rel = tx.exec_params(
        "SELECT c.oid::int8, (SELECT coalesce(sum(greatest(p.reltuples, 0)), 0)::int8 "
        "  FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        t->schema, t->table);
    if (rel.empty()) {
      throw Refused(
          fmt::format("table {}.{} does not exist in the source database", t->schema, t->table));
    }
    const int64_t oid = rel[0][0].as<int64_t>();
    const int64_t estimate = rel[0][1].as<int64_t>();
    const auto cols = tx.exec_params(
        "SELECT attname, atttypid::int8, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        oid);
    for (const auto& r : cols) {
      t->columns.push_back({r[0].as<std::string>(), static_cast<uint32_t>(r[1].as<int64_t>()),
                            r[2].as<std::string>()});
    }
    const auto key = tx.exec_params(
        "SELECT a.attname FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord",
        oid);
    for (const auto& r : key) {
      const std::string name = r[0].as<std::string>();
      for (size_t i = 0; i < t->columns.size(); ++i) {
        if (t->columns[i].name == name) t->key.push_back(i);
      }
    }
    if (t->key.empty()) {
      throw Refused(fmt::format(
          "table {}.{} has no primary key: a backfill reads a table in primary-key order",
          t->schema, t->table));
    }
    if (*condition != nullptr) {
      for (const std::string& name : (*condition)->Columns(Scope::kNew)) {
        const bool known = std::any_of(t->columns.begin(), t->columns.end(),
                                       [&](const BackfillColumn& c) { return c.name == name; });
        if (!known) {
          throw Refused(fmt::format("condition names a column table {}.{} does not have: new.{}",
                                    t->schema, t->table, name));
        }
      }
    }
    tx.commit();
    if (!job.estimate) {
      pqxx::work w(ev_);
      w.exec_params(fmt::format("UPDATE {}.backfills SET rows_estimate = $2 WHERE id = $1", s_),
                    job.id, estimate);
      w.commit();
      job.estimate = estimate;
    }
    *table = std::move(t);
  }

  // Reads the rows of the keys in `pending`, then up to `limit` rows after
  // `last_key` in key order (bounded by kChunkBytes), in one snapshot.
  void Read(const BackfillTable& t, const std::string& last_key, const std::string& pending,
            int64_t limit, BackfillChunk* chunk) {
    std::string select = "SELECT tableoid::int8";
    for (const BackfillColumn& c : t.columns) select += ", " + src_.quote_name(c.name);
    select += " FROM " + src_.quote_name(t.schema) + "." + src_.quote_name(t.table);
    std::string key_cols, key_args;
    for (size_t i = 0; i < t.key.size(); ++i) {
      const BackfillColumn& c = t.columns[t.key[i]];
      key_cols += (i ? ", " : "") + src_.quote_name(c.name);
      key_args += fmt::format("{}(x->>{})::{}", i ? ", " : "", i, c.type);
    }
    for (int attempt = 0;; ++attempt) {
      chunk->rows.clear();
      size_t bytes = 0;
      pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(src_);
      // A transaction whose commit record is already in the WAL (before the
      // low watermark) may not be visible yet: its change would then be
      // neither in the rows nor between the watermarks. Take a snapshot
      // without one.
      const bool racing = tx.exec1(
                                "SELECT coalesce(bool_or(pg_xact_status(x) = 'committed'), false) "
                                "FROM pg_snapshot_xip(pg_current_snapshot()) x")[0]
                              .as<bool>();
      if (racing && attempt < 100) {
        tx.abort();
        std::this_thread::sleep_for(milliseconds(1));
        continue;
      }
      // What it does not see: the stream side leaves the rows of keys such
      // transactions changed before the high watermark to the next chunk.
      const auto snap = tx.exec1(
          "SELECT pg_snapshot_xmax(s)::text, array_to_string(array(SELECT pg_snapshot_xip(s)), "
          "',') FROM (SELECT pg_current_snapshot() AS s) q");
      if (!ParseSnapshotXids(snap[0].c_str(), snap[1].c_str(), &chunk->snapshot)) {
        throw std::runtime_error("unexpected snapshot from pg_current_snapshot()");
      }
      if (!pending.empty() && pending != "[]") {
        const auto r = tx.exec_params(
            fmt::format("{} WHERE ({}) IN (SELECT {} FROM json_array_elements($1::json) x) "
                        "ORDER BY {}",
                        select, key_cols, key_args, key_cols),
            pending);
        for (const auto& row : r) bytes += Add(t, row, chunk);
      }
      // Keyset: the key's values as constants, so the primary key's index
      // finds where to start.
      std::string range = select;
      if (!last_key.empty()) {
        const std::string quoted = tx.quote(last_key) + "::json";
        std::string after;
        for (size_t i = 0; i < t.key.size(); ++i) {
          after +=
              fmt::format("{}({}->>{})::{}", i ? ", " : "", quoted, i, t.columns[t.key[i]].type);
        }
        range += fmt::format(" WHERE ({}) > ({})", key_cols, after);
      }
      range += fmt::format(" ORDER BY {} LIMIT {}", key_cols, limit);
      tx.exec("DECLARE walhook_backfill NO SCROLL CURSOR FOR " + range);
      int64_t read = 0;
      bool exhausted = false;
      std::string new_last = last_key;
      while (read < limit && bytes < BackfillRunner::kChunkBytes) {
        const int64_t want = std::min<int64_t>(limit - read, 500);
        const auto r = tx.exec(fmt::format("FETCH {} FROM walhook_backfill", want));
        for (const auto& row : r) bytes += Add(t, row, chunk);
        read += static_cast<int64_t>(r.size());
        if (!r.empty()) new_last = RawKey(t, chunk->rows.back());
        if (static_cast<int64_t>(r.size()) < want) {
          exhausted = true;
          break;
        }
      }
      tx.commit();
      chunk->end_of_table = exhausted;
      chunk->last_key = new_last;
      ResolveLeaves(chunk);
      return;
    }
  }

  size_t Add(const BackfillTable& t, const pqxx::row& row, BackfillChunk* chunk) {
    BackfillRow out;
    out.values.reserve(t.columns.size());
    const auto oid = static_cast<uint32_t>(row[0].as<int64_t>());
    for (pqxx::row::size_type i = 1; i < row.size(); ++i) {
      if (row[i].is_null()) {
        out.values.emplace_back(std::nullopt);
      } else {
        out.values.emplace_back(std::string(row[i].c_str(), row[i].size()));
      }
    }
    out.leaf_table = std::to_string(oid);  // the leaf's oid until ResolveLeaves names it
    const size_t bytes = out.bytes();
    chunk->rows.push_back(std::move(out));
    return bytes;
  }

  void ResolveLeaves(BackfillChunk* chunk) {
    std::string missing = "{";
    for (const BackfillRow& r : chunk->rows) {
      const uint32_t oid = static_cast<uint32_t>(std::stoul(r.leaf_table));
      if (leaves_.count(oid) == 0) {
        missing += (missing.size() > 1 ? "," : "") + r.leaf_table;
        leaves_[oid] = {};
      }
    }
    missing += "}";
    if (missing.size() > 2) {
      pqxx::nontransaction tx(src_);
      const auto r = tx.exec_params(
          "SELECT c.oid::int8, n.nspname, c.relname FROM pg_class c "
          "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1::oid[])",
          missing);
      for (const auto& row : r) {
        leaves_[static_cast<uint32_t>(row[0].as<int64_t>())] = {row[1].as<std::string>(),
                                                                row[2].as<std::string>()};
      }
    }
    for (BackfillRow& r : chunk->rows) {
      const auto& leaf = leaves_[static_cast<uint32_t>(std::stoul(r.leaf_table))];
      r.leaf_schema = leaf.first;
      r.leaf_table = leaf.second;
    }
  }

  const Config& cfg_;
  BackfillChannel& channel_;
  const std::atomic<bool>& stop_;
  pqxx::connection& ev_;
  pqxx::connection& src_;
  std::string s_;
  std::string prefix_;
  std::map<uint32_t, std::pair<std::string, std::string>> leaves_;
};

}  // namespace

BackfillRunner::BackfillRunner(const Config& cfg, BackfillChannel& channel)
    : cfg_(cfg), channel_(channel) {}

BackfillRunner::~BackfillRunner() {
  Stop();
}

void BackfillRunner::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void BackfillRunner::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  GlobalMetrics().SetBackfill(0, "", 0, 0);
}

void BackfillRunner::Loop() {
  std::string last_error;
  while (!stop_) {
    try {
      pqxx::connection ev(cfg_.eventing_db);
      pqxx::connection src(cfg_.source);
      // Values print as the replication session prints them (SPEC §4).
      src.set_variable("TimeZone", "UTC");
      src.set_variable("DateStyle", "ISO");
      Run run(cfg_, channel_, stop_, ev, src);
      while (!stop_) {
        std::optional<Job> job = run.Next();
        if (!job) {
          for (int i = 0; i < 20 && !stop_; ++i) std::this_thread::sleep_for(milliseconds(50));
          continue;
        }
        run.Execute(*job);
        last_error.clear();
      }
    } catch (const std::exception& e) {
      channel_.Close();
      const std::string why = FirstLine(e.what());
      if (why != last_error) LogError("backfill: {}; retrying", why);
      last_error = why;
      for (int i = 0; i < 40 && !stop_; ++i) std::this_thread::sleep_for(milliseconds(50));
    }
  }
}

}  // namespace walhook
