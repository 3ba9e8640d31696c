#include "walhook/utf8.h"

#include <doctest/doctest.h>

namespace walhook {
namespace {

TEST_CASE("utf8: invalid UTF-8 is replaced, valid UTF-8 kept") {
  CHECK(IsValidUtf8(""));
  CHECK(IsValidUtf8("plain ascii"));
  CHECK(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK_FALSE(IsValidUtf8("caf\xE9"));           // LATIN1 é
  CHECK_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(IsValidUtf8("\xE2\x82"));          // cut short
  std::string out;
  ReplaceInvalidUtf8("caf\xE9!", &out);
  CHECK(out == "caf\xEF\xBF\xBD!");
  ReplaceInvalidUtf8("ok \xC3\xA9", &out);
  CHECK(out == "ok \xC3\xA9");
  ReplaceInvalidUtf8("\xE2\x82", &out);
  CHECK(out == "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("utf8: storable text has no NUL and no invalid bytes") {
  using namespace std::string_literals;
  CHECK(StorableText("ok") == "ok");
  CHECK(StorableText("a\0b"s) ==
        "a\xEF\xBF\xBD"
        "b");
  CHECK(StorableText("\xFF") == "\xEF\xBF\xBD");
}

TEST_CASE("utf8: a prefix never ends inside a character") {
  const std::string euro = "\xE2\x82\xAC";  // 3 bytes
  CHECK(Utf8Prefix("abc", 10) == "abc");
  CHECK(Utf8Prefix("abc", 2) == "ab");
  CHECK(Utf8Prefix("a" + euro, 3) == "a");
  CHECK(Utf8Prefix("a" + euro, 4) == "a" + euro);
  CHECK(Utf8Prefix(euro + euro, 5) == euro);
  CHECK(Utf8Prefix("\xFF\xFF\xFF", 2) == "\xFF\xFF");  // not UTF-8: cut by bytes
  CHECK(Utf8Prefix("abc", 0).empty());
  CHECK(IsValidUtf8(Utf8Prefix("x" + euro + euro + euro, 6)));
}

TEST_CASE("utf8: a code point is encoded in 1 to 4 bytes, at each length's bounds") {
  const struct {
    uint32_t cp;
    std::string bytes;
  } cases[] = {
      {0x00, std::string(1, '\0')},
      {0x7F, "\x7F"},
      {0x80, "\xC2\x80"},
      {0x7FF, "\xDF\xBF"},
      {0x800, "\xE0\xA0\x80"},
      {0xFFFF, "\xEF\xBF\xBF"},
      {0x10000, "\xF0\x90\x80\x80"},
      {0x10FFFF, "\xF4\x8F\xBF\xBF"},
  };
  for (const auto& c : cases) {
    char out[4];
    const size_t n = EncodeUtf8(c.cp, out);
    CAPTURE(c.cp);
    CHECK(std::string(out, n) == c.bytes);
    CHECK(IsValidUtf8(std::string_view(out, n)));
  }
}

}  // namespace
}  // namespace walhook
