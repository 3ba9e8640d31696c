#include "walhook/json.h"

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include "walhook/utf8.h"

namespace walhook {
namespace {

// What CheckJson hands its values to: nothing is kept.
struct Discard : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Discard> {
  bool Default() { return true; }
};

}  // namespace

namespace json_internal {

bool IsValidText(const char* s, rapidjson::SizeType n) {
  return IsValidUtf8(std::string_view(s, n));
}

Status ReadOutcome(const rapidjson::ParseResult& r, size_t read, size_t size, bool too_deep,
                   bool bad_text, int max_depth) {
  if (!r.IsError()) {
    // RapidJSON's streams read a NUL byte as the end of the text.
    if (read == size) return Status::Ok();
    return Status::Error(fmt::format("not JSON (a NUL byte) at byte {}", read));
  }
  if (too_deep) return Status::Error(fmt::format("nested deeper than {} levels", max_depth));
  if (bad_text || r.Code() == rapidjson::kParseErrorStringInvalidEncoding) {
    return Status::Error(fmt::format("invalid UTF-8 at byte {}", r.Offset()));
  }
  return Status::Error(
      fmt::format("not JSON ({}) at byte {}", rapidjson::GetParseError_En(r.Code()), r.Offset()));
}

}  // namespace json_internal

Status CheckJson(std::string_view text, int max_depth) {
  Discard discard;
  return ReadCheckedJson(text, discard, max_depth);
}

size_t SkipJsonSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

size_t SkipJsonString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

size_t SkipJsonValue(std::string_view s, size_t i) {
  int depth = 0;
  do {
    i = SkipJsonSpace(s, i);
    if (i >= s.size()) return s.size();
    const char c = s[i];
    if (c == '"') {
      i = SkipJsonString(s, i);
    } else if (c == '{' || c == '[') {
      ++depth;
      ++i;
    } else if (c == '}' || c == ']') {
      --depth;
      ++i;
    } else if (c == ',' || c == ':') {
      ++i;
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
             s[i] != '\n' && s[i] != '\r' && s[i] != '\t') {
        ++i;
      }
    }
  } while (depth > 0);
  return i;
}

std::vector<RawJsonEntry> RawJsonMembers(std::string_view obj) {
  std::vector<RawJsonEntry> out;
  size_t i = SkipJsonSpace(obj, 0);
  if (i >= obj.size() || obj[i] != '{') return out;
  ++i;
  for (;;) {
    i = SkipJsonSpace(obj, i);
    if (i >= obj.size() || obj[i] != '"') return out;
    const size_t key_end = SkipJsonString(obj, i);
    const std::string_view key = obj.substr(i, key_end - i);
    i = SkipJsonSpace(obj, key_end);
    if (i >= obj.size() || obj[i] != ':') return out;
    const size_t start = SkipJsonSpace(obj, i + 1);
    const size_t end = SkipJsonValue(obj, start);
    out.push_back({key, obj.substr(start, end - start)});
    i = SkipJsonSpace(obj, end);
    if (i >= obj.size() || obj[i] != ',') return out;
    ++i;
  }
}

std::vector<std::string_view> RawJsonElements(std::string_view arr) {
  std::vector<std::string_view> out;
  size_t i = SkipJsonSpace(arr, 0);
  if (i >= arr.size() || arr[i] != '[') return out;
  i = SkipJsonSpace(arr, i + 1);
  while (i < arr.size() && arr[i] != ']') {
    const size_t end = SkipJsonValue(arr, i);
    out.push_back(arr.substr(i, end - i));
    i = SkipJsonSpace(arr, end);
    if (i < arr.size() && arr[i] == ',') i = SkipJsonSpace(arr, i + 1);
  }
  return out;
}

Status ParseJson(std::string_view text, rapidjson::Document* doc, int max_depth) {
  doc->SetNull();
  // One pass: the document takes the values as they are checked (it is a
  // SAX handler too); on an error nothing is put into it.
  Status st;
  auto read = [&](rapidjson::Document& handler) {
    st = ReadCheckedJson(text, handler, max_depth);
    return st.ok();
  };
  doc->Populate(read);
  return st;
}

}  // namespace walhook
