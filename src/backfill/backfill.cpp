#include "walhook/backfill.h"

#include <chrono>

#include <fmt/format.h>

#include "walhook/json.h"
#include "walhook/payload.h"

namespace walhook {
namespace {

// The types wal2json writes as JSON numbers (by the column's own type oid,
// not a domain's base type): int2, int4, int8, oid, float4, float8, numeric.
bool IsNumberType(uint32_t oid) {
  switch (oid) {
    case 21:
    case 23:
    case 20:
    case 26:
    case 700:
    case 701:
    case 1700: return true;
    default: return false;
  }
}
constexpr uint32_t kBoolOid = 16;
constexpr uint32_t kByteaOid = 17;

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char p = prefix[i];
    if (p >= 'A' && p <= 'Z') p = static_cast<char>(p - 'A' + 'a');
    if (c != p) return false;
  }
  return true;
}

}  // namespace

std::string WatermarkPrefix(const std::string& schema) {
  return "walhook-backfill." + schema;
}

std::string WatermarkContent(const Watermark& w) {
  return fmt::format(R"({{"backfill":{},"chunk":{},"mark":"{}","nonce":"{}"}})", w.backfill,
                     w.chunk, w.high ? "high" : "low", w.nonce);
}

std::optional<Watermark> ParseWatermark(std::string_view content) {
  rapidjson::Document doc;
  if (!ParseJson(content, &doc, 2).ok() || !doc.IsObject() || doc.MemberCount() != 4) {
    return std::nullopt;
  }
  const auto b = doc.FindMember("backfill");
  const auto c = doc.FindMember("chunk");
  const auto m = doc.FindMember("mark");
  const auto n = doc.FindMember("nonce");
  if (b == doc.MemberEnd() || c == doc.MemberEnd() || m == doc.MemberEnd() ||
      n == doc.MemberEnd() || !b->value.IsInt64() || !c->value.IsInt64() || !m->value.IsString() ||
      !n->value.IsString()) {
    return std::nullopt;
  }
  const std::string_view mark(m->value.GetString(), m->value.GetStringLength());
  if (mark != "low" && mark != "high") return std::nullopt;
  Watermark w;
  w.backfill = b->value.GetInt64();
  w.chunk = c->value.GetInt64();
  w.high = mark == "high";
  w.nonce.assign(n->value.GetString(), n->value.GetStringLength());
  if (w.nonce.empty()) return std::nullopt;
  return w;
}

Result<Condition> ParseBackfillCondition(std::string_view text) {
  Result<Condition> c = ParseCondition(text);
  if (!c.ok()) return c;
  if (c->Uses(Scope::kOld) || c->Uses(Scope::kPayload)) {
    return Status::Error(
        "condition: a backfill's condition uses new.<column> only (a row has no old version "
        "and no payload)");
  }
  return c;
}

size_t BackfillRow::bytes() const {
  size_t n = leaf_schema.size() + leaf_table.size();
  for (const auto& v : values) n += v ? v->size() + 16 : 16;
  return n;
}

void RowChange(const BackfillTable& table, const BackfillRow& row, Change* out) {
  out->Clear();
  out->kind = ChangeKind::kInsert;
  out->schema = row.leaf_schema;
  out->table = row.leaf_table;
  for (size_t i = 0; i < table.columns.size() && i < row.values.size(); ++i) {
    const BackfillColumn& col = table.columns[i];
    Column c;
    c.name = col.name;
    c.type = col.type;
    const std::optional<std::string>& v = row.values[i];
    if (!v) {
      c.kind = ValueKind::kNull;
    } else if (IsNumberType(col.type_oid)) {
      // wal2json writes NaN and ±Infinity as null.
      if (StartsWithNoCase(*v, "NaN") || StartsWithNoCase(*v, "Infinity") ||
          StartsWithNoCase(*v, "-Infinity")) {
        c.kind = ValueKind::kNull;
      } else {
        c.kind = ValueKind::kNumber;
        c.text = *v;
      }
    } else if (col.type_oid == kBoolOid) {
      c.kind = *v == "t" ? ValueKind::kTrue : ValueKind::kFalse;
    } else if (col.type_oid == kByteaOid && v->starts_with("\\x")) {
      // wal2json writes bytea's hex without its "\x".
      c.kind = ValueKind::kString;
      c.text = std::string_view(*v).substr(2);
    } else {
      c.kind = ValueKind::kString;
      c.text = *v;
    }
    out->columns.push_back(c);
  }
  for (size_t k : table.key) out->pk.emplace_back(table.columns[k].name);
}

std::optional<std::string> KeyText(const std::vector<Column>& row,
                                   const std::vector<std::string_view>& key_names) {
  if (key_names.empty()) return std::nullopt;
  JsonBuffer buffer;
  JsonWriter w(buffer);
  w.StartArray();
  for (std::string_view name : key_names) {
    const Column* found = nullptr;
    for (const Column& c : row) {
      if (c.name == name) {
        found = &c;
        break;
      }
    }
    if (found == nullptr) return std::nullopt;
    WriteColumnValue(*found, w);
  }
  w.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string RawKey(const BackfillTable& table, const BackfillRow& row) {
  JsonBuffer buffer;
  JsonWriter w(buffer);
  w.StartArray();
  for (size_t k : table.key) {
    const std::optional<std::string>& v = row.values[k];
    if (v) {
      w.String(v->data(), static_cast<rapidjson::SizeType>(v->size()));
    } else {
      w.Null();
    }
  }
  w.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string BackfillPayload(std::string_view data, int64_t id) {
  std::string out(data.substr(0, data.size() - 1));  // without the closing brace
  out += fmt::format(",\"backfill\":{}}}", id);
  return out;
}

void ChangedKeys::Add(std::optional<std::string> key) {
  if (overflow_) return;
  if (!key) {
    overflow_ = true;
    return;
  }
  if (keys_.size() >= kMaxChangedKeys) {
    overflow_ = true;
    keys_.clear();
    return;
  }
  keys_.insert(std::move(*key));
}

void BackfillChannel::Open(int64_t backfill, int64_t chunk, const std::string& nonce,
                           const std::string& schema, const std::string& table) {
  std::lock_guard<std::mutex> lock(mu_);
  schema_ = schema;
  table_ = table;
  backfill_ = backfill;
  chunk_ = chunk;
  nonce_ = nonce;
  low_seen_ = false;
  window_open_ = false;
  handed_.reset();
  result_.reset();
}

void BackfillChannel::Hand(std::unique_ptr<BackfillChunk> chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  handed_ = std::move(chunk);
}

std::optional<ChunkResult> BackfillChannel::Wait(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return result_.has_value(); });
  return result_;
}

void BackfillChannel::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  nonce_.clear();
  low_seen_ = false;
  window_open_ = false;
  handed_.reset();
  result_.reset();
}

bool BackfillChannel::Low(const Watermark& w, std::string* schema, std::string* table) {
  std::lock_guard<std::mutex> lock(mu_);
  if (nonce_.empty() || w.high || w.backfill != backfill_ || w.chunk != chunk_ ||
      w.nonce != nonce_ || low_seen_) {
    return false;
  }
  low_seen_ = true;
  window_open_ = true;
  *schema = schema_;
  *table = table_;
  return true;
}

std::unique_ptr<BackfillChunk> BackfillChannel::High(const Watermark& w) {
  std::lock_guard<std::mutex> lock(mu_);
  if (nonce_.empty() || !w.high || w.backfill != backfill_ || w.chunk != chunk_ ||
      w.nonce != nonce_ || !low_seen_ || handed_ == nullptr) {
    return nullptr;
  }
  window_open_ = false;
  nonce_.clear();  // used once
  return std::move(handed_);
}

void BackfillChannel::Watch(const std::string& schema, const std::string& table) {
  std::lock_guard<std::mutex> lock(mu_);
  watch_schema_ = schema;
  watch_table_ = table;
  ++watch_generation_;
  watching_ = true;
}

void BackfillChannel::Unwatch() {
  watching_ = false;
}

void BackfillChannel::NoteLive() {
  live_ticks_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                    std::memory_order_relaxed);
}

bool BackfillChannel::LiveWithin(std::chrono::milliseconds window) const {
  const std::chrono::steady_clock::duration at(live_ticks_.load(std::memory_order_relaxed));
  return at.count() != 0 && std::chrono::steady_clock::now().time_since_epoch() - at <= window;
}

void BackfillChannel::NoteCommitted() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++commits_;
  }
  cv_.notify_all();
}

uint64_t BackfillChannel::commits() {
  std::lock_guard<std::mutex> lock(mu_);
  return commits_;
}

void BackfillChannel::WaitCommitted(uint64_t seen, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return commits_ != seen; });
}

bool BackfillChannel::Watching(std::string* schema, std::string* table, uint64_t* generation) {
  if (!watching_.load(std::memory_order_relaxed)) return false;
  if (watch_generation_.load() != *generation) {
    std::lock_guard<std::mutex> lock(mu_);
    *schema = watch_schema_;
    *table = watch_table_;
    *generation = watch_generation_.load();
  }
  return true;
}

bool ParseSnapshotXids(std::string_view xmax, std::string_view xip, SnapshotXids* out) {
  auto parse = [](std::string_view text, uint32_t* xid) {
    if (text.empty() || text.size() > 20) return false;
    uint64_t v = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    *xid = static_cast<uint32_t>(v);  // the epoch off: wal2json's xids are 32-bit
    return true;
  };
  out->xip.clear();
  if (!parse(xmax, &out->xmax)) return false;
  while (!xip.empty()) {
    const size_t comma = xip.find(',');
    uint32_t xid = 0;
    if (!parse(xip.substr(0, comma), &xid)) return false;
    out->xip.insert(xid);
    xip = comma == std::string_view::npos ? std::string_view() : xip.substr(comma + 1);
  }
  return true;
}

void BackfillChannel::Resolve(ChunkResult result) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = std::move(result);
  }
  cv_.notify_all();
}

}  // namespace walhook
