#include "walhook/wire.h"

#include <chrono>
#include <cstdint>
#include <string>

#include <doctest/doctest.h>

namespace walhook {
namespace {

void PutU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

uint64_t GetU64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// Values whose bytes differ, and some with the high bit set in every byte, so a
// sign-extension or byte-order mistake shows.
constexpr uint64_t kStart = 0x0102030405060708ull;
constexpr uint64_t kEnd = 0xF1E2D3C4B5A69788ull;
constexpr int64_t kTime = 0x00028E5A1B2C3D4Eull;

std::string XLogMessage(std::string_view payload) {
  std::string msg = "w";
  PutU64(&msg, kStart);
  PutU64(&msg, kEnd);
  PutU64(&msg, static_cast<uint64_t>(kTime));
  msg.append(payload);
  return msg;
}

TEST_CASE("ParseXLogData reads the 25-byte header and points at the data") {
  const std::string msg = XLogMessage(R"({"action":"B"})");
  REQUIRE(msg.size() == 25 + 14);
  const auto x = ParseXLogData(msg.data(), msg.size());
  REQUIRE(x);
  CHECK(x->data_start == Lsn(kStart));
  CHECK(x->wal_end == Lsn(kEnd));
  CHECK(x->send_time == kTime);
  CHECK(x->data == msg.data() + 25);
  CHECK(x->size == 14);
  CHECK(std::string(x->data, x->size) == R"({"action":"B"})");

  SUBCASE("a header without data is an empty line") {
    const std::string empty = XLogMessage("");
    const auto e = ParseXLogData(empty.data(), empty.size());
    REQUIRE(e);
    CHECK(e->size == 0);
    CHECK(e->data == empty.data() + 25);
  }
  SUBCASE("a negative send time survives") {
    std::string neg = "w";
    PutU64(&neg, 1);
    PutU64(&neg, 2);
    PutU64(&neg, static_cast<uint64_t>(int64_t{-5}));
    const auto n = ParseXLogData(neg.data(), neg.size());
    REQUIRE(n);
    CHECK(n->send_time == -5);
  }
  SUBCASE("shorter than the header is refused") {
    for (size_t size = 1; size < 25; ++size) {
      CAPTURE(size);
      CHECK_FALSE(ParseXLogData(msg.data(), size));
    }
  }
}

TEST_CASE("ParseKeepalive reads exactly 18 bytes") {
  std::string msg = "k";
  PutU64(&msg, kEnd);
  PutU64(&msg, static_cast<uint64_t>(kTime));
  msg.push_back('\1');
  REQUIRE(msg.size() == 18);

  const auto k = ParseKeepalive(msg.data(), msg.size());
  REQUIRE(k);
  CHECK(k->wal_end == Lsn(kEnd));
  CHECK(k->send_time == kTime);
  CHECK(k->reply_requested);

  SUBCASE("no reply requested") {
    msg.back() = '\0';
    const auto k0 = ParseKeepalive(msg.data(), msg.size());
    REQUIRE(k0);
    CHECK_FALSE(k0->reply_requested);
  }
  SUBCASE("shorter or longer is refused") {
    for (size_t size = 1; size < 18; ++size) {
      CAPTURE(size);
      CHECK_FALSE(ParseKeepalive(msg.data(), size));
    }
    std::string longer = msg + "x";
    CHECK_FALSE(ParseKeepalive(longer.data(), longer.size()));
  }
}

TEST_CASE("StandbyStatus is the 34-byte 'r' message") {
  const Lsn pos(kEnd);
  const std::string r = StandbyStatus(pos, kTime, true);
  REQUIRE(r.size() == 34);
  CHECK(r[0] == 'r');
  CHECK(GetU64(r, 1) == kEnd);   // written
  CHECK(GetU64(r, 9) == kEnd);   // flushed
  CHECK(GetU64(r, 17) == kEnd);  // applied
  CHECK(static_cast<int64_t>(GetU64(r, 25)) == kTime);
  CHECK(r[33] == 1);

  SUBCASE("big-endian byte by byte") {
    const std::string s = StandbyStatus(Lsn(0x0102030405060708ull), 0, false);
    const std::string expected_pos("\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    CHECK(s.substr(1, 8) == expected_pos);
    CHECK(s.substr(9, 8) == expected_pos);
    CHECK(s.substr(17, 8) == expected_pos);
    CHECK(s.substr(25, 8) == std::string(8, '\0'));
    CHECK(s[33] == 0);
  }
  SUBCASE("a keepalive built from our own bytes parses back") {
    std::string k = "k";
    k.append(r.substr(1, 8));
    k.append(r.substr(25, 8));
    k.push_back(r[33]);
    const auto back = ParseKeepalive(k.data(), k.size());
    REQUIRE(back);
    CHECK(back->wal_end == pos);
    CHECK(back->send_time == kTime);
    CHECK(back->reply_requested);
  }
}

TEST_CASE("PgNowMicros counts from 2000-01-01") {
  const int64_t pg = PgNowMicros();
  const int64_t unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  const int64_t offset = unix_us - pg;
  // 946684800 s between the epochs; allow for the time between the two reads.
  CHECK(offset >= 946684800LL * 1000000);
  CHECK(offset < 946684800LL * 1000000 + 10 * 1000000);
  CHECK(pg > 0);
}

}  // namespace
}  // namespace walhook
