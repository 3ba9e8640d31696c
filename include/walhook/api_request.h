#pragma once
// The API's judgement of a request from its head alone (SPEC §5, §9), before
// its body is read: which route, and for the queue the project, the token
// and the Idempotency-Key. Pure: the secret and the clock are passed in.
// Thread-safety: plain functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "walhook/http_parser.h"
#include "walhook/result.h"

namespace walhook {

// An Idempotency-Key is at most this many characters (SPEC §9).
inline constexpr size_t kMaxIdempotencyKeyChars = 255;

enum class ApiRoute {
  kHealthz,  // GET /healthz
  kMetrics,  // GET /metrics
  kQueue,    // POST /v1/api/{project}/eventing/queue
  kConsole,  // /console and /console/… (any method: ConsoleResponse answers 405)
  kNone,     // anything else
};

// The route of a request's path and method (kNone for a wrong method too).
ApiRoute RouteOf(const HttpRequest& head);

// nullopt when the request may go on to its body; otherwise the answer:
// 404 unknown path or project, 405 wrong method, 401 no Authorization
// "Bearer" token or one VerifyToken refuses, 403 a token of role
// "SpaceCloud" (the X-SC-Token walhook sends to webhooks: a webhook must not
// replay it), 400 a bad Idempotency-Key. Every answer is JSON {"error"}.
std::optional<HttpResponse> CheckApiHead(const HttpRequest& head, std::string_view project,
                                         std::string_view secret, int64_t now_s);

// Whether `key` can be an Idempotency-Key: 1 to 255 characters of valid
// UTF-8 without control characters. The error is one line, for a 400.
Status CheckIdempotencyKey(std::string_view key);

// The hex SHA-256 of a request's body, stored with its Idempotency-Key: the
// same key with another body is refused (422).
std::string RequestHash(std::string_view body);

}  // namespace walhook
