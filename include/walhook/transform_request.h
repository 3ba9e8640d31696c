#pragma once
// Request transforms (SPEC §11): a trigger's `request_transform` and
// `token_claims`, parsed once per trigger version, and the request they
// shape for one event — method, URL, query, headers, body and content type,
// and the claims added to X-SC-Token. Pure: no database, no network.
// Thread-safety: a parsed RequestTransform is immutable and may be shared
// between threads; the functions keep their state on their own stack.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "walhook/kriti.h"
#include "walhook/result.h"

namespace walhook {

struct RequestTransform {
  enum class BodyKind {
    kStandard,  // no `body` member: the standard CloudEvents body of SPEC §4
    kNone,      // "body": null: no body
    kTemplate,  // the template's value
  };
  enum class ContentType { kJson, kForm, kText };

  std::string method = "POST";
  std::shared_ptr<const kriti::Template> url;  // null: the trigger's url
  // In the order of the jsonb text (keys shorter first, then by bytes).
  std::vector<std::pair<std::string, std::shared_ptr<const kriti::Template>>> query_params;
  std::vector<std::pair<std::string, std::shared_ptr<const kriti::Template>>> headers;
  BodyKind body_kind = BodyKind::kStandard;
  std::shared_ptr<const kriti::Template> body;  // kTemplate only
  ContentType content_type = ContentType::kJson;
  std::shared_ptr<const kriti::Template> claims;  // null: no token_claims
  // What of the standard body all of the templates above read: the only
  // parts of it ShapeRequest builds.
  kriti::BodyPaths body_paths;
};

// Parses a trigger's `request_transform` and `token_claims` (their jsonb
// texts; nullopt for NULL). Null when both are NULL: the standard request.
// A template member is a JSON string holding the template's text; `body`
// and `token_claims` may also be any other JSON value, which is the
// template as written (JSON is Kriti, and its strings interpolate {{ }}).
// The error is the message for trigger_status.last_error: it names the
// member and gives the position in the template ("request_transform.body:
// line 1, column 9: …"), or names a header walhook does not let a trigger
// set (SPEC §9, IsReservedHeader) or one that is not a valid header name.
Result<std::shared_ptr<const RequestTransform>> ParseRequestTransform(
    const std::optional<std::string>& request_transform,
    const std::optional<std::string>& token_claims);

// Parsed transforms by trigger, each parsed once per version of its texts.
// Thread-safety: one thread.
class TransformCache {
 public:
  using Parsed = Result<std::shared_ptr<const RequestTransform>>;
  // `trigger`'s transform parsed (ParseRequestTransform), from the cache
  // while its texts stay the same.
  const Parsed& Get(const std::string& trigger, const std::optional<std::string>& request_transform,
                    const std::optional<std::string>& token_claims);
  // Forgets the triggers Get was not asked for since the last Prune.
  void Prune();
  // How many times a transform was parsed (for tests).
  size_t parses() const { return parses_; }

 private:
  struct Entry {
    std::optional<std::string> request_transform;
    std::optional<std::string> token_claims;
    Parsed parsed;
    bool used = true;
  };
  std::unordered_map<std::string, Entry> entries_;
  size_t parses_ = 0;
};

// Bounds on what a transform renders for one event (the body has the
// engine's, kriti::Limits): a header value, the URL with its query, and the
// token's claims (the token must stay under kMaxTokenBytes).
inline constexpr size_t kMaxHeaderValue = 8192;
inline constexpr size_t kMaxUrl = 65536;
inline constexpr size_t kMaxClaims = 4096;

// The request for one event.
struct ShapedRequest {
  std::string method;  // "POST", "PUT", "PATCH", "DELETE", "GET"
  std::string url;     // http or https, query parameters added
  // "Name: value", to send after the trigger's own (which one of the same
  // name replaces).
  std::vector<std::string> headers;
  bool has_body = true;
  std::string body;          // what is sent (and signed)
  std::string content_type;  // "" without a body
  // The rendered token_claims object's JSON text; "" without token_claims.
  std::string claims;

  // Whether the trigger's own header line `line` ("Name: value") is replaced
  // by one of `headers` (the same name, in any case).
  bool Replaces(std::string_view line) const;
};

// Shapes the request for one event: `standard_body` (the CloudEvents body of
// SPEC §4) is bound to `$body` and `base_url` (the trigger's url) to
// `$base_url`. An error is the event's remark, "transform: <member>: …": a
// template that does not evaluate, a URL that does not parse or is not
// http/https, a header value with a line break, a form body that is not an
// object, claims that are not an object, a header value, URL or claims
// longer than the bounds above.
Result<ShapedRequest> ShapeRequest(const RequestTransform& t, std::string_view standard_body,
                                   std::string_view base_url);

// Whether `url` is an absolute http or https URL walhook can send to: the
// scheme, "://", a host (a name, an IPv4 or a bracketed IPv6 address) and
// an optional port, then path, query and fragment made only of characters
// a URL may hold (RFC 3986, "%" followed by two hex digits). The error says
// why not.
Status CheckHttpUrl(std::string_view url);

// `text` percent-encoded for a URL's query (RFC 3986: only A-Z a-z 0-9 - . _ ~
// kept).
std::string EscapeQuery(std::string_view text);

// `text` encoded as application/x-www-form-urlencoded does (WHATWG URL: A-Z
// a-z 0-9 * - . _ kept, space as "+").
std::string EscapeForm(std::string_view text);

// The X-SC-Token's claims as JSON text: {"id": node_id, "role": "SpaceCloud",
// the members of `extra` (a JSON object's text; "" for none) but id, role,
// iat and exp, which stay walhook's, then "iat", "exp"}. Member values are
// kept as written.
std::string TokenClaimsJson(std::string_view node_id, int64_t iat, int64_t exp,
                            std::string_view extra);

}  // namespace walhook
