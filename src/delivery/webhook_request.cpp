#include "walhook/webhook_request.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <charconv>
#include <cstdint>
#include <ctime>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <jwt/jwt.hpp>

#include "walhook/json.h"
#include "walhook/transform_request.h"
#include "walhook/utf8.h"

namespace walhook {

std::string FormatRfc3339Millis(int64_t epoch_ms) {
  int64_t secs = epoch_ms / 1000;
  int64_t ms = epoch_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

std::string BuildCloudEvent(int64_t id, std::string_view type, std::string_view source,
                            int64_t ts_ms, std::string_view data_json) {
  JsonBuffer buf;
  JsonWriter w(buf);
  auto str = [&](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  w.Key("specversion");
  str("1.0");
  w.Key("id");
  str(std::to_string(id));
  w.Key("type");
  str(type);
  w.Key("source");
  str(source);
  w.Key("time");
  str(FormatRfc3339Millis(ts_ms));
  w.Key("data");
  w.RawValue(data_json.data(), data_json.size(), rapidjson::kObjectType);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

namespace {

std::string Base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t size = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (text.back() == '=') --size;
  if (text[text.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

}  // namespace

void WebhookSigner::Free::operator()(evp_mac_ctx_st* ctx) const {
  EVP_MAC_CTX_free(ctx);
}

Result<WebhookSigner> WebhookSigner::Make(std::string_view signing_key) {
  constexpr std::string_view kPrefix = "whsec_";
  if (signing_key.substr(0, kPrefix.size()) == kPrefix) signing_key.remove_prefix(kPrefix.size());
  const auto key = Unbase64(signing_key);
  if (!key || key->empty()) {
    return Status::Error("the signing secret is not base64 after whsec_");
  }
  return MakeRaw(*key);
}

Result<WebhookSigner> WebhookSigner::MakeRaw(std::string_view key) {
  EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  std::unique_ptr<evp_mac_ctx_st, Free> ctx(hmac != nullptr ? EVP_MAC_CTX_new(hmac) : nullptr);
  EVP_MAC_free(hmac);  // the context keeps its own reference
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  // An empty key is a valid HMAC key; OpenSSL wants a pointer all the same.
  static const unsigned char kNoKey = 0;
  const auto* bytes = key.empty() ? &kNoKey : reinterpret_cast<const unsigned char*>(key.data());
  if (!ctx || EVP_MAC_init(ctx.get(), bytes, key.size(), params) != 1) {
    return Status::Error("HMAC-SHA256 is not available");
  }
  return WebhookSigner(std::move(ctx));
}

Result<std::string> WebhookSigner::Sign(std::string_view msg_id, int64_t timestamp,
                                        std::string_view body) {
  const std::string stamp = std::to_string(timestamp);
  auto update = [&](std::string_view part) {
    return EVP_MAC_update(ctx_.get(), reinterpret_cast<const unsigned char*>(part.data()),
                          part.size()) == 1;
  };
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  // A null key starts again with the key already set.
  if (EVP_MAC_init(ctx_.get(), nullptr, 0, nullptr) != 1 || !update(msg_id) || !update(".") ||
      !update(stamp) || !update(".") || !update(body) ||
      EVP_MAC_final(ctx_.get(), mac, &mac_len, sizeof(mac)) != 1) {
    return Status::Error("HMAC-SHA256 failed");
  }
  return "v1," + Base64(mac, mac_len);
}

Result<std::string> WebhookSigner::Mac(std::initializer_list<std::string_view> parts) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  if (EVP_MAC_init(ctx_.get(), nullptr, 0, nullptr) != 1)
    return Status::Error("HMAC-SHA256 failed");
  for (const std::string_view part : parts) {
    if (EVP_MAC_update(ctx_.get(), reinterpret_cast<const unsigned char*>(part.data()),
                       part.size()) != 1) {
      return Status::Error("HMAC-SHA256 failed");
    }
  }
  if (EVP_MAC_final(ctx_.get(), mac, &mac_len, sizeof(mac)) != 1) {
    return Status::Error("HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

Result<std::string> SignStandardWebhook(std::string_view signing_key, std::string_view msg_id,
                                        int64_t timestamp, std::string_view body) {
  auto signer = WebhookSigner::Make(signing_key);
  if (!signer.ok()) return Status::Error(signer.error());
  return signer->Sign(msg_id, timestamp, body);
}

Status VerifyStandardWebhook(std::string_view signing_key, std::string_view msg_id,
                             std::string_view timestamp, std::string_view body,
                             std::string_view signature_header) {
  int64_t ts = 0;
  auto [p, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc() || p != timestamp.data() + timestamp.size()) {
    return Status::Error("bad webhook-timestamp");
  }
  const auto expected = SignStandardWebhook(signing_key, msg_id, ts, body);
  if (!expected.ok()) return Status::Error(expected.error());
  while (!signature_header.empty()) {
    const size_t space = signature_header.find(' ');
    const std::string_view one = signature_header.substr(0, space);
    if (one.size() == expected->size() &&
        CRYPTO_memcmp(one.data(), expected->data(), one.size()) == 0) {
      return Status::Ok();
    }
    if (space == std::string_view::npos) break;
    signature_header.remove_prefix(space + 1);
  }
  return Status::Error("no signature matches");
}

std::string DescribeDelivery(const ReceivedRequest& r, std::string_view project_key,
                             std::string_view signing_key, int64_t now_s) {
  std::string type = "?", id = "?", table;
  rapidjson::Document doc;
  if (ParseJson(r.body, &doc).ok() && doc.IsObject()) {
    auto text = [&](const rapidjson::Value& v, const char* name) -> std::string {
      auto it = v.FindMember(name);
      if (it == v.MemberEnd() || !it->value.IsString()) return {};
      return {it->value.GetString(), it->value.GetStringLength()};
    };
    type = text(doc, "type");
    id = text(doc, "id");
    auto data = doc.FindMember("data");
    if (data != doc.MemberEnd() && data->value.IsObject()) {
      const std::string col = text(data->value, "col");
      if (!col.empty()) table = " " + text(data->value, "schema") + "." + col;
    }
  }
  std::string token = "token=unchecked";
  if (!project_key.empty()) {
    const auto bearer = BearerToken(r.token_header);
    const Status st = bearer ? VerifyToken(*bearer, project_key, now_s)
                             : Status::Error("no Bearer token in X-SC-Token");
    token = st.ok() ? "token=ok" : "token=BAD(" + st.message() + ")";
  }
  std::string signature = "signature=unchecked";
  if (!signing_key.empty()) {
    const Status st = VerifyStandardWebhook(signing_key, r.webhook_id, r.webhook_timestamp, r.body,
                                            r.webhook_signature);
    signature = st.ok() ? "signature=ok" : "signature=BAD(" + st.message() + ")";
  }
  std::string head(r.body.substr(0, 160));
  for (char& c : head) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return fmt::format("{} id={}{} {} {} {}{}", type, id, table, token, signature, head,
                     r.body.size() > 160 ? "…" : "");
}

TokenSigner::TokenSigner(std::string project_key, std::string node_id)
    : key_(std::move(project_key)), node_id_(std::move(node_id)) {}

const std::string& TokenSigner::Header(int64_t now_s) {
  if (!header_.empty() && now_s < expires_at_ - kRenewBeforeS) return header_;
  jwt::jwt_object token{jwt::params::algorithm("HS256"), jwt::params::secret(key_)};
  token.add_claim("id", node_id_);
  token.add_claim("role", "SpaceCloud");
  token.add_claim("iat", now_s);
  token.add_claim("exp", now_s + kLifetimeS);
  header_ = "Bearer " + token.signature();
  expires_at_ = now_s + kLifetimeS;
  return header_;
}

namespace {

std::string Base64Url(std::string_view data) {
  std::string out = Base64(reinterpret_cast<const unsigned char*>(data.data()), data.size());
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

}  // namespace

std::string TokenSigner::HeaderWithClaims(int64_t now_s, std::string_view extra_claims) {
  // {"alg":"HS256","typ":"JWT"}, as cpp-jwt writes it for Header.
  static const std::string kHeader64 = Base64Url(R"({"alg":"HS256","typ":"JWT"})");
  if (!mac_) {
    auto made = WebhookSigner::MakeRaw(key_);
    if (!made.ok()) return Header(now_s);  // no HMAC at all: nothing else would sign either
    mac_.emplace(std::move(*made));
  }
  const std::string claims64 =
      Base64Url(TokenClaimsJson(node_id_, now_s, now_s + kLifetimeS, extra_claims));
  const auto mac = mac_->Mac({kHeader64, ".", claims64});
  if (!mac.ok()) return Header(now_s);
  std::string out = "Bearer ";
  out.reserve(out.size() + kHeader64.size() + claims64.size() + 48);
  out += kHeader64;
  out += '.';
  out += claims64;
  out += '.';
  out += Base64Url(*mac);
  return out;
}

std::string SignProjectToken(std::string_view project_key, int64_t now_s, int64_t ttl_s,
                             std::string_view role) {
  jwt::jwt_object token{jwt::params::algorithm("HS256"),
                        jwt::params::secret(std::string(project_key))};
  token.add_claim("id", "walhook-cli");
  token.add_claim("role", std::string(role));
  token.add_claim("iat", now_s);
  token.add_claim("exp", now_s + ttl_s);
  return token.signature();
}

namespace {

// base64url without padding (RFC 7515 §2), strictly: only the 64 letters, no
// length of the form 4n+1, and the unused low bits of the last letter zero,
// so one byte string has exactly one spelling.
std::optional<std::string> Base64UrlDecodeStrict(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int nbits = 0;
  for (const char c : text) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((bits >> nbits) & 0xff));
    }
  }
  if ((bits & ((1u << nbits) - 1)) != 0) return std::nullopt;  // stray bits
  return out;
}

}  // namespace

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != kScheme[i]) return std::nullopt;
  }
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  if (rest.empty()) return std::nullopt;
  return rest;
}

Status VerifyToken(std::string_view token, std::string_view project_key, int64_t now_s,
                   TokenClaims* claims) {
  if (token.empty()) return Status::Error("no token");
  if (token.size() > kMaxTokenBytes) {
    return Status::Error(fmt::format("token rejected: longer than {} bytes", kMaxTokenBytes));
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Status::Error("token rejected: not three dot-separated parts");
  }
  const std::string_view header64 = token.substr(0, dot1);
  const std::string_view claims64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature64 = token.substr(dot2 + 1);
  const auto header = Base64UrlDecodeStrict(header64);
  const auto body = Base64UrlDecodeStrict(claims64);
  const auto signature = Base64UrlDecodeStrict(signature64);
  if (!header || !body || !signature) return Status::Error("token rejected: not base64url");

  rapidjson::Document doc;
  if (!ParseJson(*header, &doc).ok() || !doc.IsObject()) {
    return Status::Error("token rejected: its header is not a JSON object");
  }
  const auto alg = doc.FindMember("alg");
  if (alg == doc.MemberEnd() || !alg->value.IsString() ||
      std::string_view(alg->value.GetString(), alg->value.GetStringLength()) != "HS256") {
    return Status::Error("token rejected: its algorithm is not HS256");
  }

  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  const std::string_view signed_part = token.substr(0, dot2);
  if (HMAC(EVP_sha256(), project_key.data(), static_cast<int>(project_key.size()),
           reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac,
           &mac_len) == nullptr) {
    return Status::Error("token rejected: HMAC-SHA256 is not available");
  }
  if (signature->size() != mac_len || CRYPTO_memcmp(signature->data(), mac, mac_len) != 0) {
    return Status::Error("token rejected: signature verification failed");
  }

  if (!ParseJson(*body, &doc).ok() || !doc.IsObject()) {
    return Status::Error("token rejected: its claims are not a JSON object");
  }
  const auto exp = doc.FindMember("exp");
  if (exp == doc.MemberEnd() || !exp->value.IsNumber()) {
    return Status::Error("token rejected: no numeric exp claim");
  }
  // Compared as a double: any number a JSON text can hold is in range.
  if (!(exp->value.GetDouble() > static_cast<double>(now_s))) {
    return Status::Error("token rejected: expired");
  }
  if (claims != nullptr) {
    const double e = exp->value.GetDouble();
    claims->exp = e >= 9.0e18 ? INT64_MAX : static_cast<int64_t>(e);
    const auto role = doc.FindMember("role");
    claims->role = role != doc.MemberEnd() && role->value.IsString()
                       ? std::string(role->value.GetString(), role->value.GetStringLength())
                       : std::string();
  }
  return Status::Ok();
}

Verdict JudgeResponse(long status, std::string_view body, std::string_view transport_error,
                      bool body_cut, rapidjson::Document* doc) {
  if (doc != nullptr) doc->SetNull();
  if (status == 0) {
    return {
        Outcome::kRetry,
        fmt::format("no response: {}", transport_error.empty() ? "unknown error" : transport_error),
        {}};
  }
  if (status == 410) return {Outcome::kFailNow, "HTTP 410 Gone: not retried", {}};
  if (status >= 300 && status < 400) {
    return {Outcome::kRetry, fmt::format("HTTP {}: redirects are not followed", status), {}};
  }
  if (status < 200 || status >= 300) return {Outcome::kRetry, fmt::format("HTTP {}", status), {}};
  if (body_cut) {
    return {Outcome::kSuccess,
            {},
            fmt::format("HTTP {}; the response body is over {} KiB and was not read (an \"error\" "
                        "or events in it are not seen)",
                        status, kMaxResponseBody >> 10)};
  }
  // Space Cloud's rule: a JSON body with an "error" that is present, not null
  // and not "" fails a 2xx.
  rapidjson::Document local;
  rapidjson::Document& parsed = doc != nullptr ? *doc : local;
  if (const Status st = ParseJson(body, &parsed); !st.ok()) {
    // Not JSON at all (text, HTML): a plain success. JSON walhook will not
    // read: a success it says it did not read.
    if (st.message().rfind("not JSON", 0) == 0) return {Outcome::kSuccess, {}, {}};
    return {Outcome::kSuccess,
            {},
            fmt::format("HTTP {}; the response body was not read: {} (an \"error\" or events in "
                        "it are not seen)",
                        status, st.message())};
  }
  if (!parsed.IsObject()) {
    parsed.SetNull();
    return {Outcome::kSuccess, {}, {}};
  }
  auto it = parsed.FindMember("error");
  if (it == parsed.MemberEnd() || it->value.IsNull()) return {Outcome::kSuccess, {}, {}};
  std::string text;
  if (it->value.IsString()) {
    if (it->value.GetStringLength() == 0) return {Outcome::kSuccess, {}, {}};
    text.assign(it->value.GetString(), it->value.GetStringLength());
  } else {
    JsonBuffer buf;
    JsonWriter w(buf);
    it->value.Accept(w);  // nested at most kMaxJsonDepth: ParseJson checked
    text.assign(buf.GetString(), buf.GetSize());
  }
  return {
      Outcome::kRetry, fmt::format("HTTP {} with error: {}", status, Utf8Prefix(text, 500)), {}};
}

}  // namespace walhook
