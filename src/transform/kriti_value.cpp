// Kriti's values: the arena, JSON in (numbers kept as text) and out, and
// Kriti's order on values.
#include <rapidjson/reader.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "kriti_internal.h"
#include "walhook/condition.h"
#include "walhook/json.h"

namespace walhook::kriti::internal {

const Value& NullValue() {
  static const Value kNull{};
  return kNull;
}

const Value& BoolValue(bool b) {
  static const Value kTrue{Kind::kBool, true, {}, nullptr, nullptr, 0};
  static const Value kFalse{Kind::kBool, false, {}, nullptr, nullptr, 0};
  return b ? kTrue : kFalse;
}

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "a boolean";
    case Kind::kNumber: return "a number";
    case Kind::kString: return "a string";
    case Kind::kArray: return "an array";
    case Kind::kObject: return "an object";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Arena.

void* Arena::Allocate(size_t bytes, size_t align) {
  // `align` is a power of two (alignof).
  size_t pad = (0 - reinterpret_cast<uintptr_t>(cur_)) & (align - 1);
  if (pad + bytes > left_) {
    const size_t size = std::max<size_t>(bytes + align, 8192 + blocks_.size() * 8192);
    // Not zeroed: every byte is written before it is read.
    std::unique_ptr<char[]> block(new char[size]);
    blocks_.push_back(std::move(block));
    cur_ = blocks_.back().get();
    left_ = size;
    pad = (0 - reinterpret_cast<uintptr_t>(cur_)) & (align - 1);
  }
  char* p = cur_ + pad;
  cur_ = p + bytes;
  left_ -= pad + bytes;
  used_ += bytes;
  return p;
}

std::string_view Arena::Copy(std::string_view s) {
  if (s.empty()) return {};
  char* p = NewArray<char>(s.size());
  std::memcpy(p, s.data(), s.size());
  return {p, s.size()};
}

const Value* MakeString(Arena& arena, std::string_view bytes) {
  Value* v = arena.NewValue();
  v->kind = Kind::kString;
  v->text = arena.Copy(bytes);
  return v;
}

const Value* MakeNumber(Arena& arena, std::string_view json) {
  Value* v = arena.NewValue();
  v->kind = Kind::kNumber;
  v->text = arena.Copy(json);
  return v;
}

const Value* MakeArray(Arena& arena, const std::vector<const Value*>& items) {
  Value* v = arena.NewValue();
  v->kind = Kind::kArray;
  const Value** p = arena.NewArray<const Value*>(items.size());
  std::copy(items.begin(), items.end(), p);
  v->items = p;
  v->count = static_cast<uint32_t>(items.size());
  return v;
}

const Value* MakeObject(Arena& arena, const std::vector<Member>& members) {
  Value* v = arena.NewValue();
  v->kind = Kind::kObject;
  Member* p = arena.NewArray<Member>(members.size());
  std::copy(members.begin(), members.end(), p);
  v->members = p;
  v->count = static_cast<uint32_t>(members.size());
  return v;
}

// ---------------------------------------------------------------------------
// JSON in.

namespace {

// Builds values bottom-up: a finished value is pushed as a member (its key
// pending for objects); an array or object takes its members off the stack.
// Given BodyPaths, it builds only the members on them: the value of a key no
// path names is skipped, whatever its size (RapidJSON's reader and
// ReadCheckedJson still check it). An array is kept whole.
class Builder {
 public:
  Builder(Arena& arena, const BodyPaths* paths)
      : arena_(arena), paths_(paths), next_(paths != nullptr ? paths->Root() : BodyPaths::kAll) {
    stack_.reserve(32);
    frames_.reserve(8);
  }

  bool Null() { return Skipped() || Push(&NullValue()); }
  bool Bool(bool b) { return Skipped() || Push(&BoolValue(b)); }
  // Not called: numbers come as RawNumber (kParseNumbersAsStringsFlag).
  bool Int(int) { return false; }
  bool Uint(unsigned) { return false; }
  bool Int64(int64_t) { return false; }
  bool Uint64(uint64_t) { return false; }
  bool Double(double) { return false; }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    return Skipped() || Push(MakeNumber(arena_, std::string_view(s, n)));
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    return Skipped() || Push(MakeString(arena_, std::string_view(s, n)));
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (skip_ > 0) return true;
    next_ = paths_ == nullptr ? BodyPaths::kAll
                              : paths_->Find(frames_.back().need, std::string_view(s, n));
    if (next_ == BodyPaths::kNone) {
      skip_next_ = true;
    } else {
      key_ = arena_.Copy(std::string_view(s, n));
    }
    return true;
  }
  bool StartObject() { return Open(next_); }
  bool StartArray() { return Open(BodyPaths::kAll); }
  bool EndObject(rapidjson::SizeType) {
    if (skip_ > 0) return Unskip();
    const size_t first = frames_.back().first;
    const size_t n = stack_.size() - first;
    Value* v = arena_.NewValue();
    v->kind = Kind::kObject;
    Member* p = arena_.NewArray<Member>(n);
    std::copy(stack_.begin() + static_cast<std::ptrdiff_t>(first), stack_.end(), p);
    v->members = p;
    v->count = static_cast<uint32_t>(n);
    return Close(v);
  }
  bool EndArray(rapidjson::SizeType) {
    if (skip_ > 0) return Unskip();
    const size_t first = frames_.back().first;
    const size_t n = stack_.size() - first;
    Value* v = arena_.NewValue();
    v->kind = Kind::kArray;
    const Value** p = arena_.NewArray<const Value*>(n);
    for (size_t i = 0; i < n; ++i) p[i] = stack_[first + i].value;
    v->items = p;
    v->count = static_cast<uint32_t>(n);
    return Close(v);
  }

  const Value* root() const { return root_; }

 private:
  struct Frame {
    size_t first;          // its first member on stack_
    std::string_view key;  // the key it takes in the object around it
    int32_t need;          // BodyPaths node (kAll: everything below)
  };

  // Whether this value is one no path names (or inside one).
  bool Skipped() {
    if (skip_ > 0) return true;
    if (!skip_next_) return false;
    skip_next_ = false;
    return true;
  }
  bool Push(const Value* v) {
    if (frames_.empty()) {
      root_ = v;
    } else {
      stack_.push_back({key_, v});
    }
    return true;
  }
  bool Open(int32_t need) {
    if (Skipped()) {
      ++skip_;
      return true;
    }
    frames_.push_back({stack_.size(), key_, need});
    if (need == BodyPaths::kAll) next_ = BodyPaths::kAll;  // an array's items
    return true;
  }
  bool Unskip() {
    --skip_;
    return true;
  }
  bool Close(const Value* v) {
    stack_.resize(frames_.back().first);
    key_ = frames_.back().key;
    frames_.pop_back();
    return Push(v);
  }

  Arena& arena_;
  const BodyPaths* paths_;
  std::vector<Member> stack_;
  std::vector<Frame> frames_;  // the open arrays and objects
  std::string_view key_;
  int32_t next_;            // the BodyPaths node of the next value
  int skip_ = 0;            // > 0: inside a skipped array or object, this deep
  bool skip_next_ = false;  // the next value is skipped
  const Value* root_ = &NullValue();
};

}  // namespace

Result<const Value*> ReadJson(std::string_view text, Arena& arena, const BodyPaths* paths) {
  Builder builder(arena, paths);
  if (Status st = ReadCheckedJson<rapidjson::kParseNumbersAsStringsFlag>(text, builder); !st.ok()) {
    return st;
  }
  return builder.root();
}

// ---------------------------------------------------------------------------
// JSON out.

namespace {

void WriteString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;  // bytes copied as they are, in one append
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

}  // namespace

bool WriteJson(const Value& v, std::string* out, size_t max_bytes) {
  switch (v.kind) {
    case Kind::kNull: out->append("null"); break;
    case Kind::kBool: out->append(v.boolean ? "true" : "false"); break;
    case Kind::kNumber: out->append(v.text); break;
    case Kind::kString: WriteString(v.text, out); break;
    case Kind::kArray:
      out->push_back('[');
      for (uint32_t i = 0; i < v.count; ++i) {
        if (i > 0) out->push_back(',');
        if (!WriteJson(*v.items[i], out, max_bytes)) return false;
      }
      out->push_back(']');
      break;
    case Kind::kObject:
      out->push_back('{');
      for (uint32_t i = 0; i < v.count; ++i) {
        if (i > 0) out->push_back(',');
        WriteString(v.members[i].key, out);
        out->push_back(':');
        if (!WriteJson(*v.members[i].value, out, max_bytes)) return false;
      }
      out->push_back('}');
      break;
  }
  return out->size() <= max_bytes;
}

// ---------------------------------------------------------------------------
// Order.

namespace {

int Rank(Kind k) {
  switch (k) {
    case Kind::kObject: return 0;
    case Kind::kArray: return 1;
    case Kind::kString: return 2;
    case Kind::kNumber: return 3;
    case Kind::kBool: return 4;
    case Kind::kNull: return 5;
  }
  return 6;
}

int Sign(int c) {
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

// An object's members by key, the last of repeated keys only.
std::vector<Member> SortedMembers(const Value& o) {
  std::vector<Member> m;
  m.reserve(o.count);
  for (uint32_t i = o.count; i-- > 0;) m.push_back(o.members[i]);
  std::stable_sort(m.begin(), m.end(),
                   [](const Member& a, const Member& b) { return a.key < b.key; });
  m.erase(std::unique(m.begin(), m.end(),
                      [](const Member& a, const Member& b) { return a.key == b.key; }),
          m.end());
  return m;
}

}  // namespace

int Compare(const Value& a, const Value& b, size_t* work) {
  if (work != nullptr) ++*work;
  if (a.kind != b.kind) return Rank(a.kind) < Rank(b.kind) ? -1 : 1;
  switch (a.kind) {
    case Kind::kNull: return 0;
    case Kind::kBool: return static_cast<int>(a.boolean) - static_cast<int>(b.boolean);
    case Kind::kString: return Sign(a.text.compare(b.text));  // bytes: code point order
    case Kind::kNumber: {
      // Exact; an exponent past CompareDecimal's range falls back to the text.
      if (const auto c = CompareDecimal(a.text, b.text)) return *c;
      return Sign(a.text.compare(b.text));
    }
    case Kind::kArray: {
      const uint32_t n = std::min(a.count, b.count);
      for (uint32_t i = 0; i < n; ++i) {
        if (const int c = Compare(*a.items[i], *b.items[i], work); c != 0) return c;
      }
      return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1);
    }
    case Kind::kObject: {
      const std::vector<Member> x = SortedMembers(a);
      const std::vector<Member> y = SortedMembers(b);
      const size_t n = std::min(x.size(), y.size());
      for (size_t i = 0; i < n; ++i) {
        if (const int c = Sign(x[i].key.compare(y[i].key)); c != 0) return c;
        if (const int c = Compare(*x[i].value, *y[i].value, work); c != 0) return c;
      }
      return x.size() == y.size() ? 0 : (x.size() < y.size() ? -1 : 1);
    }
  }
  return 0;
}

const Value* FindMember(const Value& object, std::string_view key) {
  for (uint32_t i = object.count; i-- > 0;) {
    if (object.members[i].key == key) return object.members[i].value;
  }
  return nullptr;
}

size_t CountChars(std::string_view text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string Position(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  const size_t column = CountChars(text.substr(line_start, offset - line_start)) + 1;
  return fmt::format("line {}, column {}", line, column);
}

}  // namespace walhook::kriti::internal
