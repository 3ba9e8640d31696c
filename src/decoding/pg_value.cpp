#include "walhook/pg_value.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace walhook {
namespace {

// Postgres's MAXDIM; anything deeper cannot come out of array_out, and the cap bounds our
// per-depth bookkeeping.
constexpr int kMaxDims = 6;

// Postgres's scanner_isspace: the whitespace array_in skips around elements.
bool IsPgSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

TypeClass ClassifyScalar(std::string_view name) {
  // format_type's spellings first; the internal aliases cost nothing and keep us right if a
  // plugin option ever prints typnames instead.
  static constexpr std::array<std::string_view, 12> kNumberTypes = {
      "smallint", "integer", "bigint", "real", "double precision", "numeric",
      "oid",      "int2",    "int4",   "int8", "float4",           "float8",
  };
  for (std::string_view number : kNumberTypes) {
    if (name == number) return TypeClass::kNumber;
  }
  if (name.starts_with("numeric(") && name.ends_with(")")) return TypeClass::kNumber;
  if (name == "boolean" || name == "bool") return TypeClass::kBool;
  if (name == "json" || name == "jsonb") return TypeClass::kJson;
  return TypeClass::kString;
}

// JSON's number grammar exactly: Postgres numerics match it except for the special values, and
// anything else would corrupt the payload if passed through RawNumber.
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && IsDigit(s[i])) ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    const size_t start = ++i;
    while (i < n && IsDigit(s[i])) ++i;
    if (i == start) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    const size_t start = i;
    while (i < n && IsDigit(s[i])) ++i;
    if (i == start) return false;
  }
  return i == n;
}

// Values float4/float8/numeric can hold that JSON cannot.
bool IsNonFiniteNumber(std::string_view s) {
  return EqualsIgnoreCase(s, "NaN") || EqualsIgnoreCase(s, "Infinity") ||
         EqualsIgnoreCase(s, "-Infinity") || EqualsIgnoreCase(s, "+Infinity");
}

bool ParseBool(std::string_view s, bool* value) {
  if (EqualsIgnoreCase(s, "t") || EqualsIgnoreCase(s, "true")) {
    *value = true;
    return true;
  }
  if (EqualsIgnoreCase(s, "f") || EqualsIgnoreCase(s, "false")) {
    *value = false;
    return true;
  }
  return false;
}

// A json column can hold text that is not one JSON document only if something upstream is
// broken; embedding it raw would then break our whole payload, so check before trusting it.
bool IsJsonDocument(std::string_view text) {
  // MemoryStream reports end-of-input as '\0', so an embedded NUL would end the parse early and
  // let the rest through unchecked.
  if (text.empty() || std::memchr(text.data(), '\0', text.size()) != nullptr) return false;
  rapidjson::MemoryStream stream(text.data(), text.size());
  rapidjson::BaseReaderHandler<> handler;
  rapidjson::Reader reader;
  // Iterative so deeply nested input cannot exhaust the stack.
  reader.Parse<rapidjson::kParseIterativeFlag>(stream, handler);
  return !reader.HasParseError();
}

// One element as the scanner found it. `raw` excludes the quotes of a quoted element and the
// surrounding whitespace of an unquoted one; backslashes are still in it when has_escapes.
struct Element {
  std::string_view raw;
  bool quoted = false;
  bool has_escapes = false;

  // Only a bare NULL is SQL null; "NULL" or N\ULL is the four-letter string.
  bool IsNull() const { return !quoted && !has_escapes && EqualsIgnoreCase(raw, "NULL"); }

  // Escaped elements are rare, so the common case stays a view into the literal.
  std::string_view Text(std::string& scratch) const {
    if (!has_escapes) return raw;
    scratch.clear();
    for (size_t i = 0; i < raw.size(); ++i) {
      // The scanner never leaves a lone trailing backslash, but stay in bounds regardless.
      if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
      scratch.push_back(raw[i]);
    }
    return scratch;
  }
};

// First pass: proves every element converts, so the writing pass cannot fail half-way through
// and leave a partial array in the caller's writer.
class Validator {
 public:
  explicit Validator(TypeClass element) : element_(element) {}

  void StartArray() {}
  void EndArray() {}

  bool Value(const Element& e) {
    if (e.IsNull()) return true;
    switch (element_) {
      case TypeClass::kNumber: {
        const std::string_view text = e.Text(scratch_);
        return IsNonFiniteNumber(text) || IsJsonNumber(text);
      }
      case TypeClass::kBool: {
        bool ignored = false;
        return ParseBool(e.Text(scratch_), &ignored);
      }
      case TypeClass::kJson:  // invalid JSON falls back to a string, never a failure
      case TypeClass::kString: return true;
    }
    return false;
  }

 private:
  TypeClass element_;
  std::string scratch_;
};

class Emitter {
 public:
  Emitter(TypeClass element, JsonWriter& writer) : element_(element), writer_(writer) {}

  void StartArray() { writer_.StartArray(); }
  void EndArray() { writer_.EndArray(); }

  bool Value(const Element& e) {
    if (e.IsNull()) {
      writer_.Null();
      return true;
    }
    const std::string_view text = e.Text(scratch_);
    // WritePgArray bounds the literal's length, and elements are pieces of it.
    const auto length = static_cast<rapidjson::SizeType>(text.size());
    switch (element_) {
      case TypeClass::kNumber:
        if (IsNonFiniteNumber(text)) {
          writer_.Null();
        } else {
          // Not RawNumber: RapidJSON's Writer quotes what RawNumber is given, turning 12.50 into
          // "12.50". RawValue writes the validated digits verbatim.
          writer_.RawValue(text.data(), text.size(), rapidjson::kNumberType);
        }
        return true;
      case TypeClass::kBool: {
        bool value = false;
        if (!ParseBool(text, &value)) return false;
        writer_.Bool(value);
        return true;
      }
      case TypeClass::kJson:
        if (IsJsonDocument(text)) {
          writer_.RawValue(text.data(), text.size(), rapidjson::kObjectType);
        } else {
          writer_.String(text.data(), length, true);
        }
        return true;
      case TypeClass::kString: writer_.String(text.data(), length, true); return true;
    }
    return false;
  }

 private:
  TypeClass element_;
  JsonWriter& writer_;
  std::string scratch_;
};

// Dimension decoration "[lb:ub]..." as array_out prints it for non-default lower bounds.
struct Dimensions {
  int count = 0;
  std::array<int64_t, kMaxDims> extent{};
};

void SkipSpaces(std::string_view s, size_t& pos) {
  while (pos < s.size() && IsPgSpace(s[pos])) ++pos;
}

bool ParseBound(std::string_view s, size_t& pos, int64_t* value) {
  SkipSpaces(s, pos);
  bool negative = false;
  if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) negative = s[pos++] == '-';
  const size_t start = pos;
  int64_t magnitude = 0;
  while (pos < s.size() && IsDigit(s[pos])) {
    magnitude = magnitude * 10 + (s[pos] - '0');
    // Postgres bounds are int32; stopping early keeps the arithmetic far from overflow.
    if (magnitude > std::numeric_limits<int32_t>::max()) return false;
    ++pos;
  }
  if (pos == start) return false;
  SkipSpaces(s, pos);
  *value = negative ? -magnitude : magnitude;
  return true;
}

bool ParseDimensions(std::string_view s, size_t& pos, Dimensions* dims) {
  while (pos < s.size() && s[pos] == '[') {
    if (dims->count == kMaxDims) return false;
    ++pos;
    int64_t lower = 1;
    int64_t upper = 0;
    if (!ParseBound(s, pos, &upper)) return false;
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      lower = upper;
      if (!ParseBound(s, pos, &upper)) return false;
    }
    if (pos >= s.size() || s[pos] != ']') return false;
    ++pos;
    if (upper < lower - 1) return false;
    dims->extent[dims->count++] = upper - lower + 1;
    SkipSpaces(s, pos);
  }
  if (dims->count == 0 || pos >= s.size() || s[pos] != '=') return false;
  ++pos;
  return true;
}

// Scans the literal with array_in's rules and feeds its structure to `sink`. Also rejects what
// array_in would (ragged or mixed-depth arrays, stray quotes or braces inside an element) so a
// `true` always means a literal Postgres itself could have printed.
template <typename Sink>
bool ScanArray(std::string_view s, Sink& sink) {
  size_t pos = 0;
  SkipSpaces(s, pos);
  Dimensions dims;
  if (pos < s.size() && s[pos] == '[') {
    if (!ParseDimensions(s, pos, &dims)) return false;
    SkipSpaces(s, pos);
  }
  if (pos >= s.size() || s[pos] != '{') return false;

  // Indexed by depth, 1-based: items in the currently open array, and the item count every
  // array at that depth must share.
  std::array<int64_t, kMaxDims + 1> count{};
  std::array<int64_t, kMaxDims + 1> extent{};
  extent.fill(-1);
  int depth = 0;
  int max_depth = 0;
  int leaf_depth = 0;  // depth holding scalars, once one is seen

  enum class Expect { kFirstItem, kItem, kSeparator };
  Expect expect = Expect::kFirstItem;

  auto open = [&]() {
    const int next = depth + 1;
    if (next > kMaxDims || (leaf_depth != 0 && next > leaf_depth)) return false;
    depth = next;
    count[depth] = 0;
    if (depth > max_depth) max_depth = depth;
    sink.StartArray();
    expect = Expect::kFirstItem;
    return true;
  };
  auto close = [&]() {
    if (extent[depth] < 0) {
      extent[depth] = count[depth];
    } else if (extent[depth] != count[depth]) {
      return false;
    }
    sink.EndArray();
    --depth;
    if (depth > 0) ++count[depth];
    expect = Expect::kSeparator;
    return true;
  };

  ++pos;
  if (!open()) return false;
  while (depth > 0) {
    SkipSpaces(s, pos);
    if (pos >= s.size()) return false;
    const char c = s[pos];
    if (expect == Expect::kSeparator) {
      if (c == ',') {
        ++pos;
        expect = Expect::kItem;
        continue;
      }
      if (c != '}') return false;
      ++pos;
      if (!close()) return false;
      continue;
    }
    if (c == '}') {
      if (expect != Expect::kFirstItem) return false;  // "{1,}"
      ++pos;
      if (!close()) return false;
      continue;
    }
    if (c == '{') {
      ++pos;
      if (!open()) return false;
      continue;
    }
    if (c == ',') return false;  // "{,1}" or "{1,,2}"

    // Scalars must all sit at the deepest level, which is also what keeps a level from mixing
    // scalars and sub-arrays.
    if (leaf_depth == 0) {
      if (depth != max_depth) return false;
      leaf_depth = depth;
    } else if (depth != leaf_depth) {
      return false;
    }

    Element element;
    if (c == '"') {
      element.quoted = true;
      const size_t start = ++pos;
      while (true) {
        if (pos >= s.size()) return false;
        if (s[pos] == '"') break;
        if (s[pos] == '\\') {
          element.has_escapes = true;
          if (++pos >= s.size()) return false;
        }
        ++pos;
      }
      element.raw = s.substr(start, pos - start);
      ++pos;
    } else {
      const size_t start = pos;
      size_t significant_end = pos;
      while (true) {
        if (pos >= s.size()) return false;
        const char d = s[pos];
        if (d == ',' || d == '}') break;
        if (d == '{' || d == '"') return false;
        if (d == '\\') {
          element.has_escapes = true;
          if (++pos >= s.size()) return false;
          significant_end = ++pos;  // an escaped space is content, not padding
          continue;
        }
        ++pos;
        if (!IsPgSpace(d)) significant_end = pos;
      }
      element.raw = s.substr(start, significant_end - start);
    }
    if (!sink.Value(element)) return false;
    ++count[depth];
    expect = Expect::kSeparator;
  }
  SkipSpaces(s, pos);
  if (pos != s.size()) return false;

  if (dims.count != 0) {
    if (dims.count != max_depth) return false;
    for (int i = 0; i < dims.count; ++i) {
      if (dims.extent[i] != extent[i + 1]) return false;
    }
  }
  return true;
}

}  // namespace

TypeClass ClassifyType(std::string_view type_name, bool* is_array) {
  bool array = false;
  while (type_name.size() > 2 && type_name.ends_with("[]")) {
    type_name.remove_suffix(2);
    array = true;
  }
  // box is the one built-in type whose array delimiter is ';' and whose elements contain ','.
  // WritePgArray splits on ',' only, so it would succeed with wrong elements; reporting box[] as
  // a scalar makes callers write the whole literal as a string instead.
  if (array && type_name == "box") array = false;
  if (is_array != nullptr) *is_array = array;
  return ClassifyScalar(type_name);
}

bool WritePgArray(std::string_view literal, TypeClass element, JsonWriter& writer) {
  // Elements are handed to RapidJSON with 32-bit lengths.
  if (literal.size() > std::numeric_limits<rapidjson::SizeType>::max()) return false;
  Validator validator(element);
  if (!ScanArray(literal, validator)) return false;
  Emitter emitter(element, writer);
  // Same input, same scan: cannot fail now that validation passed.
  return ScanArray(literal, emitter);
}

}  // namespace walhook
