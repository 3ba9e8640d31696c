#include "walhook/queued_event.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <rapidjson/document.h>

#include "walhook/json.h"

namespace walhook {
namespace {

constexpr std::string_view kMacTag = "hmac-sha256 ";
constexpr size_t kMacHexDigits = 64;

// An optional integer member: absent or null leaves *out alone.
bool OptionalInt(const rapidjson::Document& doc, const char* name, std::optional<int64_t>* out) {
  const auto it = doc.FindMember(name);
  if (it == doc.MemberEnd() || it->value.IsNull()) return true;
  if (!it->value.IsInt64()) return false;
  *out = it->value.GetInt64();
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The MAC line "hmac-sha256 <id> <64 hex>": the id, the MAC's bytes and the
// body after the line, or nullopt when the line is not exactly that.
struct MacLine {
  int64_t key_id = 0;
  unsigned char mac[32] = {};
  std::string_view body;
};

std::optional<MacLine> ParseMacLine(std::string_view content) {
  if (!content.starts_with(kMacTag)) return std::nullopt;
  std::string_view rest = content.substr(kMacTag.size());
  MacLine out;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), out.key_id);
  if (ec != std::errc() || end == rest.data() || out.key_id <= 0) return std::nullopt;
  rest.remove_prefix(static_cast<size_t>(end - rest.data()));
  if (rest.size() < 1 + kMacHexDigits + 1 || rest[0] != ' ' || rest[1 + kMacHexDigits] != '\n') {
    return std::nullopt;
  }
  for (size_t i = 0; i < sizeof(out.mac); ++i) {
    const int hi = HexValue(rest[1 + 2 * i]);
    const int lo = HexValue(rest[2 + 2 * i]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.mac[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  out.body = rest.substr(1 + kMacHexDigits + 1);
  return out;
}

bool Hmac(std::string_view key, std::string_view data, unsigned char out[32]) {
  size_t len = 0;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                               OSSL_PARAM_construct_end()};
  return EVP_Q_mac(nullptr, "HMAC", nullptr, nullptr, params, key.data(), key.size(),
                   reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, 32,
                   &len) != nullptr &&
         len == 32;
}

}  // namespace

bool IsCustomEventType(std::string_view type) {
  if (type.empty()) return false;
  for (char c : type) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return !type.starts_with("DB_") && !type.starts_with("FILE_");
}

Result<QueuedEvent> ParseQueuedEvent(std::string_view body) {
  const size_t nl = body.find('\n');
  if (nl == std::string_view::npos) {
    return Status::Error("queued event without a payload line");
  }
  rapidjson::Document header;
  if (!ParseJson(body.substr(0, nl), &header).ok() || !header.IsObject()) {
    return Status::Error("queued event whose header is not a JSON object");
  }
  QueuedEvent out;
  const auto type = header.FindMember("type");
  if (type == header.MemberEnd() || !type->value.IsString()) {
    return Status::Error("queued event without a \"type\"");
  }
  out.type.assign(type->value.GetString(), type->value.GetStringLength());
  if (!IsCustomEventType(out.type)) {
    // Not quoted: the text is the sender's, and the log keeps one line per record.
    return Status::Error("queued event whose type is not a custom event type");
  }
  std::optional<int64_t> delay, at, xid;
  if (!OptionalInt(header, "delay_ms", &delay) || delay.value_or(0) < 0 ||
      delay.value_or(0) > kMaxDueMs) {
    return Status::Error("queued event with a bad \"delay_ms\"");
  }
  out.delay_ms = delay.value_or(0);
  if (!OptionalInt(header, "at", &at) || (at.has_value() && (*at < kMinDueMs || *at > kMaxDueMs))) {
    return Status::Error("queued event with a bad \"at\"");
  }
  out.at_ms = at;
  if (!OptionalInt(header, "xid", &xid) || xid.value_or(0) < 0 || xid.value_or(0) > UINT32_MAX) {
    return Status::Error("queued event with a bad \"xid\"");
  }
  if (xid.has_value()) out.xid = static_cast<uint32_t>(*xid);
  out.payload = body.substr(nl + 1);
  const Status payload = CheckJson(out.payload);
  if (!payload.ok()) {
    return Status::Error(fmt::format("queued event whose payload is {}", payload.message()));
  }
  return out;
}

std::optional<int64_t> DueMs(const QueuedEvent& e, int64_t commit_ms) {
  if (commit_ms < kMinDueMs || commit_ms > kMaxDueMs) return std::nullopt;
  const int64_t from = std::max(commit_ms, e.at_ms.value_or(commit_ms));
  // Both within [kMinDueMs, kMaxDueMs]: the difference cannot overflow.
  if (e.delay_ms < 0 || e.delay_ms > kMaxDueMs - from) return std::nullopt;
  return from + e.delay_ms;
}

std::optional<int64_t> QueuedEventKeyId(std::string_view content) {
  const auto line = ParseMacLine(content);
  if (!line) return std::nullopt;
  return line->key_id;
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char mac[32];
  if (!Hmac(key, data, mac)) return "";
  std::string out;
  for (unsigned char b : mac) fmt::format_to(std::back_inserter(out), "{:02x}", b);
  return out;
}

void QueuedEventVerifier::SetKeys(std::map<int64_t, std::string> keys, Lsn legacy_before) {
  keys_ = std::move(keys);
  legacy_before_ = legacy_before;
}

Result<QueuedEvent> QueuedEventVerifier::Open(std::string_view content, Lsn commit_lsn,
                                              std::optional<uint32_t> xid) const {
  const auto line = ParseMacLine(content);
  if (!line) {
    if (content.starts_with(kMacTag)) return Status::Error("malformed hmac-sha256 line");
    // Written by queue_event before it signed its messages, and still in
    // the slot at the upgrade.
    if (legacy_before_.valid() && commit_lsn.valid() && commit_lsn < legacy_before_) {
      return ParseQueuedEvent(content);
    }
    return Status::Error("not signed by queue_event");
  }
  const auto key = keys_.find(line->key_id);
  if (key == keys_.end()) {
    return Status::Error(
        fmt::format("signed with key {}, which queue_event_keys does not hold", line->key_id));
  }
  unsigned char mac[32];
  if (!Hmac(key->second, line->body, mac)) return Status::Error("HMAC-SHA256 is not available");
  if (CRYPTO_memcmp(mac, line->mac, sizeof(mac)) != 0) {
    return Status::Error("its HMAC does not verify (altered or made up)");
  }
  Result<QueuedEvent> e = ParseQueuedEvent(line->body);
  if (!e.ok()) return e;
  if (!e->xid.has_value() || !xid.has_value() || *e->xid != *xid) {
    return Status::Error("signed for another transaction (copied)");
  }
  return e;
}

}  // namespace walhook
