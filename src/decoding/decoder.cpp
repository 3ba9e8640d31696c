#include "walhook/decoder.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <rapidjson/error/en.h>

namespace walhook {
namespace {

using rapidjson::Value;

// Iterative: a deeply nested line would otherwise overflow the stack.
constexpr unsigned kParseFlags = rapidjson::kParseNumbersAsStringsFlag |
                                 rapidjson::kParseInsituFlag | rapidjson::kParseIterativeFlag;

std::string_view View(const Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

Status Malformed(Lsn wal_pos, std::string_view why) {
  return Status::Error(fmt::format("malformed wal2json line at {}: {}", wal_pos, why));
}

// A missing or null member reads as empty; any other non-string is an error.
bool OptionalString(const Value& obj, const char* name, std::string_view* out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) {
    *out = {};
    return true;
  }
  // A number is a string value too (kParseNumbersAsStringsFlag); only a real
  // string starts right after its quote (see KindOf).
  if (!it->value.IsString() || it->value.GetString()[-1] != '"') return false;
  *out = View(it->value);
  return true;
}

bool OptionalLsn(const Value& obj, const char* name, Lsn* out) {
  std::string_view text;
  if (!OptionalString(obj, name, &text)) return false;
  if (text.empty()) return true;
  auto lsn = Lsn::Parse(text);
  if (!lsn) return false;
  *out = *lsn;
  return true;
}

// With kParseNumbersAsStringsFlag a number becomes a string value too. Parsed
// in situ, a real string's data starts right after its opening quote, while a
// number's digits follow ':' ',' '[' or white space: that tells them apart
// without a SAX handler of our own.
ValueKind KindOf(const Value& v) {
  if (v.IsNull()) return ValueKind::kNull;
  if (v.IsTrue()) return ValueKind::kTrue;
  if (v.IsFalse()) return ValueKind::kFalse;
  return v.GetString()[-1] == '"' ? ValueKind::kString : ValueKind::kNumber;
}

// [{"name":…,"type":…,"value":…}, …]; "value" is absent in "pk".
bool DecodeColumns(const Value& arr, bool with_value, std::vector<Column>* out) {
  if (!arr.IsArray()) return false;
  for (const Value& c : arr.GetArray()) {
    if (!c.IsObject()) return false;
    Column col;
    if (!OptionalString(c, "name", &col.name) || col.name.empty()) return false;
    if (!OptionalString(c, "type", &col.type)) return false;
    if (with_value) {
      auto v = c.FindMember("value");
      if (v == c.MemberEnd()) return false;
      if (!v->value.IsNull() && !v->value.IsBool() && !v->value.IsString()) return false;
      col.kind = KindOf(v->value);
      if (v->value.IsString()) col.text = View(v->value);
    }
    out->push_back(col);
  }
  return true;
}

bool DecodeColumnsMember(const Value& obj, const char* name, bool with_value,
                         std::vector<Column>* out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return true;
  return DecodeColumns(it->value, with_value, out);
}

}  // namespace

Status Decoder::Decode(char* line, size_t length, Lsn wal_pos, Change* out) {
  out->Clear();
  // wal2json v2 starts every line with its action; read before the parse
  // in place rewrites the line.
  const std::string_view head(line, std::min<size_t>(length, 16));
  boundary_ = head.find("\"action\":\"B\"") != std::string_view::npos ||
              head.find("\"action\":\"C\"") != std::string_view::npos;
  if (length == 0) return Malformed(wal_pos, "empty line");
  if (std::strlen(line) != length) return Malformed(wal_pos, "NUL byte inside the line");
  alloc_.Clear();
  stack_alloc_.Clear();
  Document doc(&alloc_, kStackBytes, &stack_alloc_);
  doc.ParseInsitu<kParseFlags>(line);
  if (doc.HasParseError()) {
    return Malformed(
        wal_pos, fmt::format("{} at offset {}", rapidjson::GetParseError_En(doc.GetParseError()),
                             doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) return Malformed(wal_pos, "not a JSON object");
  std::string_view action;
  if (!OptionalString(doc, "action", &action) || action.size() != 1) {
    return Malformed(wal_pos, "no \"action\"");
  }
  if (!OptionalLsn(doc, "lsn", &out->lsn)) return Malformed(wal_pos, "bad \"lsn\"");
  if (!OptionalString(doc, "timestamp", &out->timestamp)) {
    return Malformed(wal_pos, "bad \"timestamp\"");
  }
  if (auto xid = doc.FindMember("xid"); xid != doc.MemberEnd() && !xid->value.IsNull()) {
    // A number, read as its digits (kParseNumbersAsStringsFlag).
    if (!xid->value.IsString() || KindOf(xid->value) != ValueKind::kNumber) {
      return Malformed(wal_pos, "bad \"xid\"");
    }
    const std::string_view digits = View(xid->value);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out->xid);
    if (ec != std::errc() || end != digits.data() + digits.size()) {
      return Malformed(wal_pos, "bad \"xid\"");
    }
  }
  switch (action[0]) {
    case 'B':
    case 'C':
      out->kind = action[0] == 'B' ? ChangeKind::kBegin : ChangeKind::kCommit;
      if (!OptionalLsn(doc, "nextlsn", &out->next_lsn)) {
        return Malformed(wal_pos, "bad \"nextlsn\"");
      }
      if (!out->lsn.valid() || !out->next_lsn.valid()) {
        return Malformed(wal_pos, "begin/commit without \"lsn\" and \"nextlsn\" (include-lsn)");
      }
      return Status::Ok();
    case 'I': out->kind = ChangeKind::kInsert; break;
    case 'U': out->kind = ChangeKind::kUpdate; break;
    case 'D': out->kind = ChangeKind::kDelete; break;
    case 'T': out->kind = ChangeKind::kTruncate; break;
    case 'M': {
      out->kind = ChangeKind::kMessage;
      auto tr = doc.FindMember("transactional");
      if (tr == doc.MemberEnd() || !tr->value.IsBool()) {
        return Malformed(wal_pos, "message without \"transactional\"");
      }
      out->transactional = tr->value.GetBool();
      if (!OptionalString(doc, "prefix", &out->prefix) ||
          !OptionalString(doc, "content", &out->content)) {
        return Malformed(wal_pos, "message with a bad \"prefix\" or \"content\"");
      }
      return Status::Ok();
    }
    default: return Malformed(wal_pos, fmt::format("unknown action \"{}\"", action));
  }
  if (!OptionalString(doc, "schema", &out->schema) || !OptionalString(doc, "table", &out->table) ||
      out->schema.empty() || out->table.empty()) {
    return Malformed(wal_pos, "row change without \"schema\" and \"table\"");
  }
  if (out->kind == ChangeKind::kTruncate) return Status::Ok();
  if (!DecodeColumnsMember(doc, "columns", true, &out->columns)) {
    return Malformed(wal_pos, "bad \"columns\"");
  }
  if (!DecodeColumnsMember(doc, "identity", true, &out->identity)) {
    return Malformed(wal_pos, "bad \"identity\"");
  }
  auto pk = doc.FindMember("pk");
  if (pk != doc.MemberEnd() && !pk->value.IsNull()) {
    if (!pk->value.IsArray()) return Malformed(wal_pos, "bad \"pk\"");
    for (const Value& c : pk->value.GetArray()) {
      std::string_view name;
      if (!c.IsObject() || !OptionalString(c, "name", &name) || name.empty()) {
        return Malformed(wal_pos, "bad \"pk\"");
      }
      out->pk.push_back(name);
    }
  }
  // A table may have no columns at all ("columns":[]), but the member is there.
  const bool has_new = out->kind != ChangeKind::kDelete;
  if (has_new && !doc.HasMember("columns")) {
    return Malformed(wal_pos, "row change without \"columns\"");
  }
  if (out->kind == ChangeKind::kDelete && out->identity.empty()) {
    return Malformed(wal_pos, "delete without \"identity\"");
  }
  return Status::Ok();
}

}  // namespace walhook
