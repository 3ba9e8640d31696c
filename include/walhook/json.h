#pragma once
// JSON in walhook. Writing: RapidJSON's Writer into a StringBuffer, so
// numbers pass through as the digits Postgres printed and embedded json/jsonb
// as raw text, both through RawValue (RapidJSON 1.1 writes RawNumber quoted).
// Reading JSON from outside walhook's trust (HTTP bodies, logical messages,
// webhook answers, SPEC §9): through CheckJson/ParseJson only, which bound
// the nesting, validate UTF-8 and never recurse on the input's shape.
// Thread-safety: plain functions.

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string_view>
#include <vector>

#include "walhook/result.h"

namespace walhook {

using JsonBuffer = rapidjson::StringBuffer;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// How deep JSON from outside may nest (SPEC §9). Postgres's own json parser
// stops somewhat past 6,000 levels with its default stack; walhook's DOM
// walks recurse.
inline constexpr int kMaxJsonDepth = 512;

// Whether `text` is exactly one JSON value, its strings valid UTF-8 (escapes
// included: a lone surrogate is refused), nested at most `max_depth` arrays
// and objects deep. The error is one line: "not JSON (…) at byte N",
// "invalid UTF-8 at byte N", "nested deeper than 512 levels". Iterative: no
// input, however deep, takes stack.
Status CheckJson(std::string_view text, int max_depth = kMaxJsonDepth);

// Reads `text` once through `handler` (a RapidJSON SAX handler, as for
// Reader::Parse) with CheckJson's checks made on the way, so that a caller
// building its own values needs no second pass: the same errors, and the
// handler sees nothing past the first one (it may have seen values before
// it). kExtraFlags adds RapidJSON parse flags (kParseNumbersAsStringsFlag:
// numbers reach the handler as RawNumber, their text; with RapidJSON 1.1,
// Debian's, it refuses the same out-of-range numbers as without).
template <unsigned kExtraFlags = 0, typename Handler>
Status ReadCheckedJson(std::string_view text, Handler& handler, int max_depth = kMaxJsonDepth);

// CheckJson, then parses `text` into *doc. Integers are exact; a double may
// differ from the text in its last digit (keep the text where digits matter).
// On an error *doc is left null.
Status ParseJson(std::string_view text, rapidjson::Document* doc, int max_depth = kMaxJsonDepth);

// --- raw JSON text -------------------------------------------------------------
// Text already known to be valid JSON (walhook's own, or checked before):
// where values start and end, so that a value is kept as written (every
// digit), not as RapidJSON reprints it. Iterative: any depth is safe. On
// other text the positions mean nothing but stay within it.

size_t SkipJsonSpace(std::string_view s, size_t i);   // past the whitespace at s[i]
size_t SkipJsonString(std::string_view s, size_t i);  // past the string at s[i] == '"'
size_t SkipJsonValue(std::string_view s, size_t i);   // past the value at s[i]

struct RawJsonEntry {
  std::string_view key;    // the key's JSON text, quotes included
  std::string_view value;  // the value's JSON text
};
// The members of an object's text, in order (repeated keys kept); none when
// it is not an object.
std::vector<RawJsonEntry> RawJsonMembers(std::string_view object);
// The texts of an array's elements; none when it is not an array.
std::vector<std::string_view> RawJsonElements(std::string_view array);

// --- ReadCheckedJson ---------------------------------------------------------

namespace json_internal {

// Not kParseFullPrecisionFlag: its decimal conversion (internal/diyfp.h)
// takes clz(0), undefined behaviour, on some inputs (found by
// queue_request_fuzz). walhook keeps numbers as their text; a double it
// reads (a delay, an exp) needs no last digit.
inline constexpr unsigned kCheckedFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

bool IsValidText(const char* s, rapidjson::SizeType n);  // UTF-8, escapes decoded

// What ReadCheckedJson checks beside RapidJSON's own: the depth, and decoded
// strings (an escape can spell a lone surrogate that the byte check cannot
// see). Forwards every value to `inner`.
template <typename Inner>
class Checked {
 public:
  Checked(Inner& inner, int max_depth) : inner_(inner), max_depth_(max_depth) {}

  bool Null() { return inner_.Null(); }
  bool Bool(bool b) { return inner_.Bool(b); }
  bool Int(int i) { return inner_.Int(i); }
  bool Uint(unsigned u) { return inner_.Uint(u); }
  bool Int64(int64_t i) { return inner_.Int64(i); }
  bool Uint64(uint64_t u) { return inner_.Uint64(u); }
  bool Double(double d) { return inner_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return inner_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return Text(s, n) && inner_.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    return Text(s, n) && inner_.Key(s, n, copy);
  }
  bool StartObject() { return Open() && inner_.StartObject(); }
  bool StartArray() { return Open() && inner_.StartArray(); }
  bool EndObject(rapidjson::SizeType n) {
    --depth_;
    return inner_.EndObject(n);
  }
  bool EndArray(rapidjson::SizeType n) {
    --depth_;
    return inner_.EndArray(n);
  }

  bool too_deep() const { return too_deep_; }
  bool bad_text() const { return bad_text_; }

 private:
  bool Open() {
    if (++depth_ <= max_depth_) return true;
    too_deep_ = true;
    return false;
  }
  bool Text(const char* s, rapidjson::SizeType n) {
    if (IsValidText(s, n)) return true;
    bad_text_ = true;
    return false;
  }

  Inner& inner_;
  int max_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
  bool bad_text_ = false;
};

// The one-line error of a read that stopped (or Ok).
Status ReadOutcome(const rapidjson::ParseResult& r, size_t read, size_t size, bool too_deep,
                   bool bad_text, int max_depth);

}  // namespace json_internal

template <unsigned kExtraFlags, typename Handler>
Status ReadCheckedJson(std::string_view text, Handler& handler, int max_depth) {
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
  rapidjson::Reader reader;
  json_internal::Checked<Handler> checked(handler, max_depth);
  const rapidjson::ParseResult r =
      reader.Parse<json_internal::kCheckedFlags | kExtraFlags>(in, checked);
  return json_internal::ReadOutcome(r, in.Tell(), text.size(), checked.too_deep(),
                                    checked.bad_text(), max_depth);
}

}  // namespace walhook
