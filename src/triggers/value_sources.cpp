// The ValueSources of condition.h: values for a condition from an event's
// JSON data, a decoded row change, or a parsed payload.
#include "walhook/condition.h"

#include <array>
#include <cstdint>
#include <optional>

#include <rapidjson/document.h>

#include "walhook/pg_value.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

constexpr size_t kMaxJsonBytes = size_t{1} << 30;

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

// The value of a decoded column, by its type (SPEC §4).
Value ColumnValue(const Column& c) {
  switch (c.kind) {
    case ValueKind::kNull: return Value::Null();
    case ValueKind::kTrue: return Value::Bool(true);
    case ValueKind::kFalse: return Value::Bool(false);
    case ValueKind::kNumber: return Value::Number(c.text);
    case ValueKind::kString: break;
  }
  bool is_array = false;
  const TypeClass type_class = ClassifyType(c.type, &is_array);
  if (is_array || type_class == TypeClass::kJson) return Value::Other(c.text);
  return Value::String(c.text);
}

const Column* FindColumn(const std::vector<Column>& row, std::string_view name) {
  for (const Column& c : row) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// An array index written as a name: digits, no leading zero.
std::optional<size_t> ArrayIndex(std::string_view name) {
  if (name.empty() || name.size() > 9 || (name.size() > 1 && name[0] == '0')) return std::nullopt;
  size_t index = 0;
  for (char c : name) {
    if (!IsDigit(c)) return std::nullopt;
    index = index * 10 + static_cast<size_t>(c - '0');
  }
  return index;
}

}  // namespace

// ---------------------------------------------------------------------------
// JsonDataSource.

Status JsonDataSource::Reset(std::string_view data, DataShape shape) {
  text_ = data;
  pos_ = 0;
  written_ = 0;
  shape_ = shape;
  nodes_.clear();
  if (data.size() > kMaxJsonBytes) return Status::Error("data: JSON larger than 1 GiB");
  bool ok = ParseValue(0, {});
  if (ok) {
    SkipSpace();
    ok = pos_ == text_.size();
  }
  if (!ok) {
    nodes_.clear();
    return Status::Error(fmt::format("data: not valid JSON (or nested deeper than {}) at offset {}",
                                     kMaxJsonDepth, pos_));
  }
  return Status::Ok();
}

void JsonDataSource::SkipSpace() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
    ++pos_;
  }
}

bool JsonDataSource::ParseValue(int depth, std::string_view key) {
  SkipSpace();
  const size_t n = text_.size();
  if (pos_ >= n) return false;
  const auto index = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(Node{});
  const size_t start = pos_;
  const char c = text_[pos_];
  Node node;
  node.key = key;
  auto literal = [&](std::string_view word, ValueType type) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    node.type = type;
    node.text = word;
    return true;
  };
  switch (c) {
    case '{':
    case '[': {
      if (depth >= kMaxJsonDepth) return false;
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      SkipSpace();
      if (pos_ < n && text_[pos_] == close) {
        ++pos_;
      } else {
        for (;;) {
          std::string_view member;
          if (c == '{') {
            SkipSpace();
            if (pos_ >= n || text_[pos_] != '"' || !ParseString(&member)) return false;
            SkipSpace();
            if (pos_ >= n || text_[pos_] != ':') return false;
            ++pos_;
          }
          if (!ParseValue(depth + 1, member)) return false;
          SkipSpace();
          if (pos_ >= n) return false;
          if (text_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (text_[pos_] != close) return false;
          ++pos_;
          break;
        }
      }
      node.type = ValueType::kOther;
      node.container = c;
      node.text = text_.substr(start, pos_ - start);
      break;
    }
    case '"':
      if (!ParseString(&node.text)) return false;
      node.type = ValueType::kString;
      break;
    case 't':
      if (!literal("true", ValueType::kBool)) return false;
      break;
    case 'f':
      if (!literal("false", ValueType::kBool)) return false;
      break;
    case 'n':
      if (!literal("null", ValueType::kNull)) return false;
      break;
    default:
      if (!ParseNumber()) return false;
      node.type = ValueType::kNumber;
      node.text = text_.substr(start, pos_ - start);
      break;
  }
  node.end = static_cast<uint32_t>(nodes_.size());
  nodes_[index] = node;
  return true;
}

bool JsonDataSource::ParseNumber() {
  const size_t n = text_.size();
  auto digits = [&] {
    const size_t begin = pos_;
    while (pos_ < n && IsDigit(text_[pos_])) ++pos_;
    return pos_ > begin;
  };
  if (pos_ < n && text_[pos_] == '-') ++pos_;
  if (pos_ < n && text_[pos_] == '0') {
    ++pos_;
  } else if (!digits()) {
    return false;
  }
  if (pos_ < n && text_[pos_] == '.') {
    ++pos_;
    if (!digits()) return false;
  }
  if (pos_ < n && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < n && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    if (!digits()) return false;
  }
  return true;
}

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The 4 hex digits of a \u escape at text[i]; -1 if malformed.
int32_t Hex4(std::string_view text, size_t i) {
  if (i + 4 > text.size()) return -1;
  int32_t v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const int d = HexDigit(text[i + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

bool JsonDataSource::ParseString(std::string_view* out) {
  const size_t n = text_.size();
  const size_t begin = ++pos_;  // after the opening quote
  // Most strings have no escapes: view them in place.
  while (pos_ < n) {
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      *out = text_.substr(begin, pos_ - begin);
      ++pos_;
      return true;
    }
    if (c == '\\') break;
    if (c < 0x20) return false;
    ++pos_;
  }
  if (pos_ >= n) return false;
  // Decoded text is never longer than its escaped form, so a buffer as long
  // as the document holds every string; sized once, its views stay put.
  if (unescaped_.size() < n) unescaped_.resize(n);
  char* buffer = unescaped_.data();
  const size_t out_begin = written_;
  std::copy(text_.begin() + static_cast<std::ptrdiff_t>(begin),
            text_.begin() + static_cast<std::ptrdiff_t>(pos_), buffer + written_);
  written_ += pos_ - begin;
  while (pos_ < n) {
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      *out = std::string_view(buffer + out_begin, written_ - out_begin);
      ++pos_;
      return true;
    }
    if (c < 0x20) return false;
    if (c != '\\') {
      buffer[written_++] = static_cast<char>(c);
      ++pos_;
      continue;
    }
    if (pos_ + 1 >= n) return false;
    const char e = text_[pos_ + 1];
    pos_ += 2;
    char simple = 0;
    switch (e) {
      case '"': simple = '"'; break;
      case '\\': simple = '\\'; break;
      case '/': simple = '/'; break;
      case 'b': simple = '\b'; break;
      case 'f': simple = '\f'; break;
      case 'n': simple = '\n'; break;
      case 'r': simple = '\r'; break;
      case 't': simple = '\t'; break;
      case 'u': break;
      default: return false;
    }
    if (e != 'u') {
      buffer[written_++] = simple;
      continue;
    }
    const int32_t unit = Hex4(text_, pos_);
    if (unit < 0) return false;
    pos_ += 4;
    uint32_t cp = static_cast<uint32_t>(unit);
    if (unit >= 0xD800 && unit <= 0xDBFF && pos_ + 1 < n && text_[pos_] == '\\' &&
        text_[pos_ + 1] == 'u') {
      const int32_t low = Hex4(text_, pos_ + 2);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((static_cast<uint32_t>(unit) - 0xD800) << 10) +
             (static_cast<uint32_t>(low) - 0xDC00);
        pos_ += 6;
      }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate
    written_ += EncodeUtf8(cp, buffer + written_);
  }
  return false;
}

Value JsonDataSource::ToValue(const Node& node) {
  switch (node.type) {
    case ValueType::kNull: return Value::Null();
    case ValueType::kBool: return Value::Bool(node.text == "true");
    case ValueType::kNumber: return Value::Number(node.text);
    case ValueType::kString: return Value::String(node.text);
    case ValueType::kOther: return Value::Other(node.text);
  }
  return Value::Null();
}

Value JsonDataSource::Lookup(uint32_t index, std::span<const std::string_view> path) const {
  for (std::string_view name : path) {
    const Node& n = nodes_[index];
    uint32_t found = 0;  // 0 is the root, never a child
    if (n.container == '{') {
      for (uint32_t i = index + 1; i < n.end; i = nodes_[i].end) {
        if (nodes_[i].key == name) found = i;  // the last duplicate wins
      }
    } else if (n.container == '[') {
      const std::optional<size_t> wanted = ArrayIndex(name);
      if (!wanted) return Value::Null();
      size_t k = 0;
      for (uint32_t i = index + 1; i < n.end; i = nodes_[i].end, ++k) {
        if (k == *wanted) {
          found = i;
          break;
        }
      }
    }
    if (found == 0) return Value::Null();
    index = found;
  }
  return ToValue(nodes_[index]);
}

Value JsonDataSource::Get(Scope scope, std::span<const std::string_view> path) const {
  if (nodes_.empty()) return Value::Null();
  if (shape_ == DataShape::kPayload) {
    return scope == Scope::kPayload ? Lookup(0, path) : Value::Null();
  }
  if (scope == Scope::kPayload) return Value::Null();
  // Walk "doc" or "before", then the column.
  if (path.size() > kMaxPathNames) return Value::Null();
  std::array<std::string_view, 1 + kMaxPathNames> full;
  full[0] = scope == Scope::kNew ? "doc" : "before";
  std::copy(path.begin(), path.end(), full.begin() + 1);
  return Lookup(0, std::span<const std::string_view>(full.data(), path.size() + 1));
}

// ---------------------------------------------------------------------------
// ChangeValueSource.

Value ChangeValueSource::Get(Scope scope, std::span<const std::string_view> path) const {
  if (scope == Scope::kPayload || path.size() != 1) return Value::Null();
  const std::string_view name = path[0];
  const ChangeKind kind = change_.kind;
  if (scope == Scope::kNew) {
    if (kind != ChangeKind::kInsert && kind != ChangeKind::kUpdate) return Value::Null();
    if (const Column* c = FindColumn(change_.columns, name)) return ColumnValue(*c);
    // Left out as unchanged TOAST: the old row has the same value, if it has it.
    if (kind == ChangeKind::kUpdate) {
      if (const Column* c = FindColumn(change_.identity, name)) return ColumnValue(*c);
    }
    return Value::Null();
  }
  if (kind != ChangeKind::kUpdate && kind != ChangeKind::kDelete) return Value::Null();
  const Column* c = FindColumn(change_.identity, name);
  return c != nullptr ? ColumnValue(*c) : Value::Null();
}

// ---------------------------------------------------------------------------
// RapidJsonPayloadSource.

Value RapidJsonPayloadSource::Get(Scope scope, std::span<const std::string_view> path) const {
  if (scope != Scope::kPayload) return Value::Null();
  const rapidjson::Value* v = &payload_;
  for (std::string_view name : path) {
    const rapidjson::Value* found = nullptr;
    if (v->IsObject()) {
      for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m) {
        if (std::string_view(m->name.GetString(), m->name.GetStringLength()) == name) {
          found = &m->value;  // the last duplicate wins
        }
      }
    } else if (v->IsArray()) {
      const std::optional<size_t> index = ArrayIndex(name);
      if (index && *index < v->Size()) found = &(*v)[static_cast<rapidjson::SizeType>(*index)];
    }
    if (found == nullptr) return Value::Null();
    v = found;
  }
  if (v->IsNull()) return Value::Null();
  if (v->IsBool()) return Value::Bool(v->GetBool());
  if (v->IsString()) return Value::String(std::string_view(v->GetString(), v->GetStringLength()));
  if (v->IsUint64()) return Value::Uint(v->GetUint64());
  if (v->IsInt64()) return Value::Int(v->GetInt64());
  if (v->IsNumber()) return Value::Double(v->GetDouble());
  return Value::Other();
}

Truth EvaluateOnData(const Condition& condition, std::string_view data, DataShape shape) {
  JsonDataSource source;
  if (!source.Reset(data, shape).ok()) return Truth::kNull;
  return condition.Evaluate(source);
}

}  // namespace walhook
