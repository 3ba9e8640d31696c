#include "walhook/lsn.h"

#include <cstdint>
#include <string>
#include <string_view>

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace walhook {
namespace {

TEST_CASE("Lsn::Parse reads Postgres's X/X form") {
  SUBCASE("the halves are hex, high then low") {
    const auto lsn = Lsn::Parse("16/B374D848");
    REQUIRE(lsn);
    CHECK(lsn->value() == ((uint64_t{0x16} << 32) | 0xB374D848u));
  }
  SUBCASE("lower case hex is accepted") {
    CHECK(Lsn::Parse("0/1546f70") == Lsn(0x1546F70));
  }
  SUBCASE("zero and the largest value") {
    const auto zero = Lsn::Parse("0/0");
    REQUIRE(zero);
    CHECK(zero->value() == 0);
    CHECK_FALSE(zero->valid());
    CHECK(Lsn::Parse("FFFFFFFF/FFFFFFFF") == Lsn(UINT64_MAX));
  }
  SUBCASE("leading zeros inside the eight digits") {
    CHECK(Lsn::Parse("00000001/00000002") == Lsn((uint64_t{1} << 32) | 2));
  }
}

TEST_CASE("Lsn::Parse refuses anything else") {
  for (std::string_view bad : {
           "",             // empty
           "1",            // no slash
           "/1",           // no high half
           "1/",           // no low half
           "/",            // neither
           "G/1",          // not hex
           "1/G",          // not hex
           "123456789/1",  // high half over 8 digits
           "1/123456789",  // low half over 8 digits
           "0x1/1",        // a C prefix is not Postgres's form
           "-1/1",         // no sign
           "+1/1",
           "1/-1",
           " 1/1",  // no white space
           "1/1 ",
           "1 /1",
           "1/ 1",
           "1/2/3",  // one slash only
           "1//2",
           "1\\2",
       }) {
    CAPTURE(bad);
    CHECK_FALSE(Lsn::Parse(bad));
  }
  SUBCASE("a NUL inside is not the end of the text") {
    CHECK_FALSE(
        Lsn::Parse(std::string_view("1/2\0"
                                    "3",
                                    5)));
  }
}

TEST_CASE("Lsn prints as Postgres does and round-trips") {
  CHECK(Lsn(0).ToString() == "0/0");
  CHECK(Lsn(0x1546F70).ToString() == "0/1546F70");
  CHECK(Lsn((uint64_t{0x16} << 32) | 0xB374D848u).ToString() == "16/B374D848");
  CHECK(Lsn(UINT64_MAX).ToString() == "FFFFFFFF/FFFFFFFF");
  CHECK(fmt::format("at {}", Lsn(0x10)) == "at 0/10");

  SUBCASE("parse then format gives upper case, no leading zeros") {
    CHECK(Lsn::Parse("0000000a/00000b0c")->ToString() == "A/B0C");
  }
  SUBCASE("format then parse gives the same value") {
    uint64_t v = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 1000; ++i) {
      v = v * 6364136223846793005ull + 1442695040888963407ull;
      // Also exercise values with one half zero.
      for (uint64_t value : {v, v >> 32, v << 32, v & 0xff}) {
        CAPTURE(value);
        const auto back = Lsn::Parse(Lsn(value).ToString());
        REQUIRE(back);
        CHECK(back->value() == value);
      }
    }
  }
}

TEST_CASE("Lsn orders by position") {
  const Lsn a = *Lsn::Parse("0/FFFFFFFF");
  const Lsn b = *Lsn::Parse("1/0");
  const Lsn c = *Lsn::Parse("1/1");
  CHECK(a < b);
  CHECK(b < c);
  CHECK(a < c);
  CHECK(c > a);
  CHECK(b == *Lsn::Parse("1/00000000"));
  CHECK(b != c);
  CHECK(b <= b);
  CHECK(b >= b);
  CHECK(Lsn() < a);
  CHECK(Lsn().valid() == false);
  CHECK(a.valid());
  // The low half compares as a number, not as text: 0/9 < 0/10.
  CHECK(*Lsn::Parse("0/9") < *Lsn::Parse("0/10"));
  CHECK(*Lsn::Parse("2/0") > *Lsn::Parse("1/FFFFFFFF"));
}

}  // namespace
}  // namespace walhook
