#include "walhook/api_request.h"

#include <openssl/evp.h>

#include <iterator>

#include <fmt/format.h>

#include "walhook/console.h"
#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

constexpr std::string_view kQueuePrefix = "/v1/api/";
constexpr std::string_view kQueueSuffix = "/eventing/queue";

// The {project} of a queue path; nullopt for another path.
std::optional<std::string_view> QueueProject(std::string_view path) {
  if (path.size() <= kQueuePrefix.size() + kQueueSuffix.size() ||
      path.substr(0, kQueuePrefix.size()) != kQueuePrefix ||
      path.substr(path.size() - kQueueSuffix.size()) != kQueueSuffix) {
    return std::nullopt;
  }
  const std::string_view project =
      path.substr(kQueuePrefix.size(), path.size() - kQueuePrefix.size() - kQueueSuffix.size());
  if (project.find('/') != std::string_view::npos) return std::nullopt;
  return project;
}

}  // namespace

ApiRoute RouteOf(const HttpRequest& head) {
  if (head.path == "/healthz" && head.method == "GET") return ApiRoute::kHealthz;
  if (head.path == "/metrics" && head.method == "GET") return ApiRoute::kMetrics;
  if (QueueProject(head.path) && head.method == "POST") return ApiRoute::kQueue;
  if (IsConsolePath(head.path)) return ApiRoute::kConsole;
  return ApiRoute::kNone;
}

std::optional<HttpResponse> CheckApiHead(const HttpRequest& head, std::string_view project,
                                         std::string_view secret, int64_t now_s) {
  const std::string_view path = Utf8Prefix(head.path, 200);
  const std::string_view method = Utf8Prefix(head.method, 20);
  switch (RouteOf(head)) {
    case ApiRoute::kHealthz:
    case ApiRoute::kMetrics:
    case ApiRoute::kConsole: return std::nullopt;  // static files, no data
    case ApiRoute::kQueue: break;
    case ApiRoute::kNone:
      if (head.path == "/healthz" || head.path == "/metrics" || QueueProject(head.path)) {
        return HttpError(405, fmt::format("{} is not allowed on {}", method, path));
      }
      return HttpError(404, fmt::format("no such path: {} {}", method, path));
  }
  const std::string_view asked = *QueueProject(head.path);
  if (asked != project) {
    return HttpError(404, fmt::format("unknown project \"{}\"", Utf8Prefix(asked, 64)));
  }
  const size_t auths = head.HeaderCount("Authorization");
  const auto token = auths == 1 ? BearerToken(head.Header("Authorization")) : std::nullopt;
  if (!token) {
    return HttpError(401, auths > 1 ? "bad token: more than one Authorization header"
                                    : "missing token: send Authorization: Bearer <JWT>");
  }
  TokenClaims claims;
  if (Status st = VerifyToken(*token, secret, now_s, &claims); !st.ok()) {
    return HttpError(401, fmt::format("bad token: {}", st.message()));
  }
  if (claims.role == "SpaceCloud") {
    return HttpError(403,
                     "this token is one walhook sends to webhooks (role SpaceCloud): it cannot "
                     "queue events; use a token of `walhook token`");
  }
  const size_t keys = head.HeaderCount("Idempotency-Key");
  if (keys > 1) return HttpError(400, "more than one Idempotency-Key header");
  if (keys == 1) {
    if (Status st = CheckIdempotencyKey(head.Header("Idempotency-Key")); !st.ok()) {
      return HttpError(400, st.message());
    }
  }
  return std::nullopt;
}

Status CheckIdempotencyKey(std::string_view key) {
  if (key.empty()) return Status::Error("Idempotency-Key is empty");
  if (!IsValidUtf8(key)) return Status::Error("Idempotency-Key is not valid UTF-8");
  size_t chars = 0;
  for (const char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return Status::Error("Idempotency-Key holds a control character");
    if ((u & 0xc0) != 0x80) ++chars;  // a character starts here
  }
  if (chars > kMaxIdempotencyKeyChars) {
    return Status::Error(
        fmt::format("Idempotency-Key is over {} characters", kMaxIdempotencyKeyChars));
  }
  return Status::Ok();
}

std::string RequestHash(std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(body.data(), body.size(), digest, &size, EVP_sha256(), nullptr);
  std::string out;
  out.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i)
    fmt::format_to(std::back_inserter(out), "{:02x}", digest[i]);
  return out;
}

}  // namespace walhook
