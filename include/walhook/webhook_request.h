#pragma once
// What walhook sends and how it reads the answer (SPEC §4): the CloudEvents
// body, the Standard Webhooks signature, the X-SC-Token, and the verdict on a
// response. Pure. Thread-safety: functions are stateless; a TokenSigner is
// used by one thread at a time.

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "walhook/json.h"
#include "walhook/result.h"

struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX

namespace walhook {

// "2026-11-28T10:00:00.123Z" for milliseconds since the epoch.
std::string FormatRfc3339Millis(int64_t epoch_ms);

// {"specversion":"1.0","id":"<id>","type":…,"source":…,"time":…,"data":<data>}
// `data_json` is embedded as it is (its text kept exactly).
std::string BuildCloudEvent(int64_t id, std::string_view type, std::string_view source,
                            int64_t ts_ms, std::string_view data_json);

// The Standard Webhooks signature "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>",
// key = the base64 after "whsec_". An error names what is wrong with the key.
Result<std::string> SignStandardWebhook(std::string_view signing_key, std::string_view msg_id,
                                        int64_t timestamp, std::string_view body);

// The same signature, made again and again with one key: the key is decoded
// and the HMAC set up once. (A one-shot HMAC looks its algorithms up on
// every call: 4 % of walhook's CPU at 13k deliveries/s.) Used by one thread
// at a time.
class WebhookSigner {
 public:
  // An error names what is wrong with the key.
  static Result<WebhookSigner> Make(std::string_view signing_key);
  // An HMAC-SHA256 with the key's bytes as they are (the X-SC-Token's).
  static Result<WebhookSigner> MakeRaw(std::string_view key);
  Result<std::string> Sign(std::string_view msg_id, int64_t timestamp, std::string_view body);
  // The raw HMAC-SHA256 of `parts` one after another.
  Result<std::string> Mac(std::initializer_list<std::string_view> parts);

 private:
  struct Free {
    void operator()(evp_mac_ctx_st* ctx) const;
  };
  explicit WebhookSigner(std::unique_ptr<evp_mac_ctx_st, Free> ctx) : ctx_(std::move(ctx)) {}
  std::unique_ptr<evp_mac_ctx_st, Free> ctx_;
};

// Checks a webhook-signature header (space-separated "v1,<sig>" entries; one
// match is enough) against the body.
Status VerifyStandardWebhook(std::string_view signing_key, std::string_view msg_id,
                             std::string_view timestamp, std::string_view body,
                             std::string_view signature_header);

// One line describing a received delivery, for `walhook sink`: the event's
// type, id and table, whether X-SC-Token and the signature verify (or are not
// checked, when no key is given), and the start of the body.
struct ReceivedRequest {
  std::string_view token_header;  // X-SC-Token
  std::string_view webhook_id;    // webhook-id
  std::string_view webhook_timestamp;
  std::string_view webhook_signature;
  std::string_view body;
};
std::string DescribeDelivery(const ReceivedRequest& request, std::string_view project_key,
                             std::string_view signing_key, int64_t now_s);

// Signs the X-SC-Token once and reuses it until five minutes before it
// expires: HS256 with the project secret, claims id (node id), role
// "SpaceCloud", iat, exp = iat + 30 min.
class TokenSigner {
 public:
  static constexpr int64_t kLifetimeS = 30 * 60;
  static constexpr int64_t kRenewBeforeS = 5 * 60;

  TokenSigner(std::string project_key, std::string node_id);
  // "Bearer <jwt>", valid at `now_s` (seconds since the epoch).
  const std::string& Header(int64_t now_s);
  // "Bearer <jwt>" whose claims also hold the members of `extra_claims` (a
  // JSON object's text: a trigger's token_claims rendered, SPEC §11); id,
  // role, iat and exp stay walhook's (a role of the trigger's choosing would
  // let the webhook replay the token to walhook's API, SPEC §9). Signed anew
  // on every call.
  std::string HeaderWithClaims(int64_t now_s, std::string_view extra_claims);

 private:
  std::string key_;
  std::string node_id_;
  std::optional<WebhookSigner> mac_;  // for HeaderWithClaims, made at its first call
  std::string header_;
  int64_t expires_at_ = 0;
};

// A JWT for the queue API (`walhook token`): HS256 over `project_key`, claims
// id "walhook-cli", role `role`, iat, exp = iat + ttl_s.
std::string SignProjectToken(std::string_view project_key, int64_t now_s, int64_t ttl_s,
                             std::string_view role = "user");

// What a verified token says.
struct TokenClaims {
  std::string role;  // "" when the claims have no string "role"
  int64_t exp = 0;   // seconds since the epoch
};

// Tokens longer than this are refused unread.
inline constexpr size_t kMaxTokenBytes = 8192;

// Whether `token` is a JWT of this project: exactly three base64url segments
// (no padding, no stray bits), a header that is a JSON object with "alg"
// "HS256", an HMAC-SHA256 over `project_key` that matches (compared in
// constant time), and claims that are a JSON object with a numeric "exp"
// after `now_s`. Safe for any bytes (SPEC §9): no input crashes, throws or
// reads out of bounds. The error is one line saying why not, without echoing
// the token. On success, *claims (when given) gets the role and exp.
Status VerifyToken(std::string_view token, std::string_view project_key, int64_t now_s,
                   TokenClaims* claims = nullptr);

// The token of an "Authorization: Bearer <token>" header value ("Bearer"
// matched case-insensitively, then one or more spaces); nullopt when the
// value is not of that form.
std::optional<std::string_view> BearerToken(std::string_view authorization);

// How much of a response body walhook reads (SPEC §9): its "error" and the
// events it asks for are found in this much; the first kResponseBodyKept
// bytes of it go to invocation_logs.response_body.
inline constexpr size_t kMaxResponseBody = 1 << 20;
inline constexpr size_t kResponseBodyKept = 4096;

// How a delivery attempt ended.
enum class Outcome {
  kSuccess,  // any 2xx without a JSON "error"
  kRetry,    // everything else: retried on the trigger's schedule
  kFailNow,  // 410 Gone: failed at once
};

struct Verdict {
  Outcome outcome;
  std::string reason;  // for a failure: readable, for remark and error_msg
  // For a success whose body walhook did not read (over kMaxResponseBody,
  // invalid UTF-8, JSON nested too deep): why, for the event's remark. An
  // "error" or events in such a body are not seen. Empty otherwise.
  std::string unread;
};

// `status` 0 means no response came (`transport_error` says why). `body` is
// what was read of the response; `body_cut`: the body went on past
// kMaxResponseBody and was not read further. A 2xx is a success unless its
// body is a JSON object with an "error" that is present, not null and not ""
// (Space Cloud's rule). A 2xx body walhook cannot judge (cut, invalid UTF-8,
// nested deeper than kMaxJsonDepth) is a success all the same — the status
// said the webhook took the event, and a retry would send it again — with
// `unread` saying why the body was not read; a body that is not JSON at all
// is simply a success. When `doc` is given and the body is a JSON object,
// *doc holds it parsed (for ResponseEventsOf); else it is left null.
Verdict JudgeResponse(long status, std::string_view body, std::string_view transport_error,
                      bool body_cut = false, rapidjson::Document* doc = nullptr);

}  // namespace walhook
