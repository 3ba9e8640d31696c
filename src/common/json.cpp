#include "walhook/json.h"

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include "walhook/utf8.h"

namespace walhook {
namespace {

// Not kParseFullPrecisionFlag: its decimal conversion (internal/diyfp.h)
// takes clz(0), undefined behaviour, on some inputs (found by
// queue_request_fuzz). walhook keeps numbers as their text; a double it
// reads (a delay, an exp) needs no last digit.
constexpr unsigned kReadFlags = json_internal::kCheckedFlags;

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

Status ParseJson(std::string_view text, rapidjson::Document* doc, int max_depth) {
  doc->SetNull();
  if (Status st = CheckJson(text, max_depth); !st.ok()) return st;
  doc->Parse<kReadFlags>(text.data(), text.size());
  if (doc->HasParseError()) {  // not expected after the check
    doc->SetNull();
    return Status::Error(fmt::format("not JSON ({}) at byte {}",
                                     rapidjson::GetParseError_En(doc->GetParseError()),
                                     doc->GetErrorOffset()));
  }
  return Status::Ok();
}

}  // namespace walhook
