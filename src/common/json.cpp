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
constexpr unsigned kReadFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

// Counts nesting and checks decoded strings (escapes can spell a lone
// surrogate that the byte check cannot see).
class Guard : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Guard> {
 public:
  explicit Guard(int max_depth) : max_depth_(max_depth) {}

  bool Default() { return true; }
  bool String(const char* s, rapidjson::SizeType n, bool) { return Text(s, n); }
  bool Key(const char* s, rapidjson::SizeType n, bool) { return Text(s, n); }
  bool StartObject() { return Open(); }
  bool StartArray() { return Open(); }
  bool EndObject(rapidjson::SizeType) { return Close(); }
  bool EndArray(rapidjson::SizeType) { return Close(); }

  bool too_deep() const { return too_deep_; }
  bool bad_text() const { return bad_text_; }

 private:
  bool Open() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }
  bool Text(const char* s, rapidjson::SizeType n) {
    if (IsValidUtf8(std::string_view(s, n))) return true;
    bad_text_ = true;
    return false;
  }

  int max_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
  bool bad_text_ = false;
};

}  // namespace

Status CheckJson(std::string_view text, int max_depth) {
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
  rapidjson::Reader reader;
  Guard guard(max_depth);
  const rapidjson::ParseResult r = reader.Parse<kReadFlags>(in, guard);
  if (!r.IsError()) {
    // RapidJSON's streams read a NUL byte as the end of the text.
    if (in.Tell() == text.size()) return Status::Ok();
    return Status::Error(fmt::format("not JSON (a NUL byte) at byte {}", in.Tell()));
  }
  if (guard.too_deep()) {
    return Status::Error(fmt::format("nested deeper than {} levels", max_depth));
  }
  if (guard.bad_text() || r.Code() == rapidjson::kParseErrorStringInvalidEncoding) {
    return Status::Error(fmt::format("invalid UTF-8 at byte {}", r.Offset()));
  }
  return Status::Error(
      fmt::format("not JSON ({}) at byte {}", rapidjson::GetParseError_En(r.Code()), r.Offset()));
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
