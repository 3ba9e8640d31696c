// Token verification on hostile input (SPEC §9): any bytes give an error,
// never a crash, an exception or an out-of-bounds read.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "walhook/webhook_request.h"

namespace walhook {
namespace {

constexpr const char* kKey = "project-secret";
constexpr int64_t kNow = 1800000000;

std::string B64Url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

// A token with this header and these claims, signed with `key`.
std::string Make(std::string_view header, std::string_view claims, std::string_view key = kKey) {
  const std::string signed_part = B64Url(header) + "." + B64Url(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac, &n);
  return signed_part + "." + B64Url(std::string_view(reinterpret_cast<char*>(mac), n));
}

constexpr const char* kHs256 = R"({"alg":"HS256","typ":"JWT"})";

TEST_CASE("VerifyToken: a good token, its role and exp") {
  TokenClaims claims;
  const std::string t = Make(kHs256, R"({"id":"x","role":"admin","exp":1800000100})");
  REQUIRE(VerifyToken(t, kKey, kNow, &claims).ok());
  CHECK(claims.role == "admin");
  CHECK(claims.exp == 1800000100);
  CHECK(VerifyToken(SignProjectToken(kKey, kNow, 60), kKey, kNow, &claims).ok());
  CHECK(claims.role == "user");
  CHECK(VerifyToken(SignProjectToken(kKey, kNow, 60, "admin"), kKey, kNow, &claims).ok());
  CHECK(claims.role == "admin");
  TokenSigner signer(kKey, "node");
  const std::string header = signer.Header(kNow);
  REQUIRE(BearerToken(header).has_value());
  CHECK(VerifyToken(*BearerToken(header), kKey, kNow, &claims).ok());
  CHECK(claims.role == "SpaceCloud");
  // A fractional exp is a number too.
  CHECK(VerifyToken(Make(kHs256, R"({"exp":1800000000.5})"), kKey, kNow).ok());
}

TEST_CASE("VerifyToken: hostile tokens are refused with a message, never a crash") {
  const std::string good = Make(kHs256, R"({"exp":1800000100})");
  const std::vector<std::string> bad = {
      "",
      "\xff.a.b",
      "\xff\xfe\xfd",
      "a.b",
      "a.b.c.d",
      "...",
      ".a.b",
      "a..b",
      std::string("ey\0J.a.b", 8),
      "eyJhbGciOiJIUzI1NiJ9.e30=.x",  // padding
      "eyJhbGciOiJIUzI1NiJ9.e30.x",   // a 4n+1 length
      "eyJhbGciOiJIUzI1NiJ9+.e30.abc",
      Make(R"({"alg":1})", R"({"exp":1800000100})"),
      Make(R"({"alg":"none"})", R"({"exp":1800000100})"),
      Make(R"({"alg":"HS512"})", R"({"exp":1800000100})"),
      Make(R"({"alg":"hs256"})", R"({"exp":1800000100})"),
      Make("[1]", R"({"exp":1800000100})"),
      Make("not json", R"({"exp":1800000100})"),
      Make("{\"alg\":\"HS256\",\"x\":\"\xff\"}", R"({"exp":1800000100})"),
      Make(std::string(600, '[') + std::string(600, ']'), R"({"exp":1800000100})"),
      Make(kHs256, R"([{"exp":1800000100}])"),
      Make(kHs256, R"("exp")"),
      Make(kHs256, R"({})"),
      Make(kHs256, R"({"exp":"1800000100"})"),
      Make(kHs256, R"({"exp":null})"),
      Make(kHs256, R"({"exp":1800000000})"),  // expires now
      Make(kHs256, R"({"exp":-1e300})"),
      Make(kHs256, R"({"exp":1e400})"),
      Make(kHs256, "{\"exp\":1800000100,\"role\":\"\xc3\x28\"}"),
      Make(kHs256, std::string(100000, '[') + std::string(100000, ']')),
      Make(kHs256, R"({"exp":1800000100})", "another-secret"),
      good + "x",
      good.substr(0, good.size() - 2),
      good + ".",
      std::string(kMaxTokenBytes + 1, 'a'),
  };
  for (const std::string& t : bad) {
    CAPTURE(t.substr(0, 80));
    Status st;
    CHECK_NOTHROW(st = VerifyToken(t, kKey, kNow));
    CHECK_FALSE(st.ok());
    if (!st.ok()) {
      CHECK(st.message().find("token") != std::string::npos);
      if (t.size() > 8) CHECK(st.message().find(t) == std::string::npos);
    }
  }
  // Stray bits in the last letter: another spelling of the same signature.
  std::string altered = good;
  const char last = altered.back();
  altered.back() = last == 'A' ? 'B' : static_cast<char>(last ^ 1);
  CHECK_FALSE(VerifyToken(altered, kKey, kNow).ok());
  CHECK(VerifyToken(good, kKey, kNow).ok());
}

TEST_CASE("VerifyToken: every byte at every place of a token is safe") {
  const std::string good = Make(kHs256, R"({"exp":1800000100,"role":"user"})");
  for (size_t i = 0; i < good.size(); i += 3) {
    for (int b = 0; b < 256; b += 17) {
      std::string t = good;
      t[i] = static_cast<char>(b);
      if (t == good) continue;
      CHECK_FALSE(VerifyToken(t, kKey, kNow).ok());
    }
  }
}

TEST_CASE("DescribeDelivery (walhook sink) checks hostile X-SC-Tokens safely") {
  ReceivedRequest r;
  const std::string deep(100000, '[');  // r.body is a view: the text outlives it
  r.body = deep;
  for (const char* header : {"Bearer \xff.a.b", "Bearer", "\xff", ""}) {
    r.token_header = header;
    CHECK(DescribeDelivery(r, kKey, "", kNow).find("token=BAD") != std::string::npos);
  }
  TokenSigner signer(kKey, "node");
  const std::string good = signer.Header(kNow);
  r.token_header = good;
  CHECK(DescribeDelivery(r, kKey, "", kNow).find("token=ok") != std::string::npos);
}

TEST_CASE("BearerToken: the scheme is case-insensitive") {
  CHECK(BearerToken("Bearer abc") == "abc");
  CHECK(BearerToken("bearer abc") == "abc");
  CHECK(BearerToken("BEARER   abc ") == "abc");
  CHECK_FALSE(BearerToken("Bearer").has_value());
  CHECK_FALSE(BearerToken("Bearer ").has_value());
  CHECK_FALSE(BearerToken("Bearerabc").has_value());
  CHECK_FALSE(BearerToken("Basic abc").has_value());
  CHECK_FALSE(BearerToken("").has_value());
  CHECK_FALSE(BearerToken("\xff\xff\xff\xff\xff\xff\xff").has_value());
}

}  // namespace
}  // namespace walhook
