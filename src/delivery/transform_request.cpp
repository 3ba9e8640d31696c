#include "walhook/transform_request.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "walhook/json.h"
#include "walhook/trigger.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

using Template = std::shared_ptr<const kriti::Template>;

// The text of a JSON string's text (valid JSON): escapes read.
std::string StringText(std::string_view json_string) {
  if (json_string.find('\\') == std::string_view::npos && json_string.size() >= 2) {
    return std::string(json_string.substr(1, json_string.size() - 2));
  }
  rapidjson::Document d;
  if (!ParseJson(json_string, &d).ok() || !d.IsString()) return {};
  return {d.GetString(), d.GetStringLength()};
}

// --- parsing -------------------------------------------------------------------

std::string_view Text(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

Result<Template> ParseOne(std::string_view what, std::string_view text, kriti::Mode mode) {
  auto parsed = kriti::Parse(text, mode);
  if (!parsed.ok()) return Status::Error(fmt::format("{}: {}", what, parsed.error()));
  return *parsed;
}

// A template member of kJson mode: a string holds the template's text; any
// other value is the template as written (`raw`).
Result<Template> ParseJsonTemplate(std::string_view what, const rapidjson::Value& v,
                                   std::string_view raw) {
  if (v.IsString()) return ParseOne(what, Text(v), kriti::Mode::kJson);
  return ParseOne(what, raw, kriti::Mode::kJson);
}

// `member` of the transform: an object of string templates, in order.
Status ParseTemplateMap(const rapidjson::Value& doc, const char* member, bool headers,
                        std::vector<std::pair<std::string, Template>>* out) {
  const auto it = doc.FindMember(member);
  if (it == doc.MemberEnd() || it->value.IsNull()) return Status::Ok();
  if (!it->value.IsObject()) {
    return Status::Error(fmt::format("request_transform.{}: not a JSON object", member));
  }
  std::unordered_set<std::string> seen;
  for (const auto& m : it->value.GetObject()) {
    const std::string name(Text(m.name));
    if (headers) {
      if (name.empty()) return Status::Error("request_transform.headers: a header name is empty");
      if (!std::all_of(name.begin(), name.end(), IsHeaderTokenChar)) {
        return Status::Error(fmt::format(
            "request_transform.headers: \"{}\" is not a valid header name (letters, digits and "
            "!#$%&'*+-.^_`|~ only; no spaces, colons or line breaks)",
            ShownInMessage(name)));
      }
      if (IsReservedHeader(name)) {
        return Status::Error(fmt::format(
            "request_transform.headers: \"{}\" is set by walhook and may not be set by a trigger "
            "(Host, Content-Length, Transfer-Encoding, Connection, Content-Type, X-SC-Token and "
            "webhook-* are walhook's; content_type sets the Content-Type)",
            ShownInMessage(name)));
      }
    }
    const std::string what = fmt::format("request_transform.{}.{}", member, ShownInMessage(name));
    if (!m.value.IsString()) return Status::Error(what + ": not a string");
    auto t = ParseOne(what, Text(m.value), kriti::Mode::kString);
    if (!t.ok()) return Status::Error(t.error());
    out->emplace_back(name, std::move(*t));
  }
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const RequestTransform>> ParseRequestTransform(
    const std::optional<std::string>& request_transform,
    const std::optional<std::string>& token_claims) {
  if (!request_transform && !token_claims) return std::shared_ptr<const RequestTransform>();
  auto t = std::make_shared<RequestTransform>();
  if (request_transform) {
    const std::string& text = *request_transform;
    rapidjson::Document doc;
    if (const Status st = ParseJson(text, &doc); !st.ok()) {
      return Status::Error("request_transform: " + st.message());
    }
    if (!doc.IsObject()) return Status::Error("request_transform: not a JSON object");
    for (const auto& m : doc.GetObject()) {
      static constexpr std::string_view kKnown[] = {"method",  "url",  "query_params",
                                                    "headers", "body", "content_type"};
      if (std::find(std::begin(kKnown), std::end(kKnown), Text(m.name)) == std::end(kKnown)) {
        return Status::Error(fmt::format(
            "request_transform: unknown member \"{}\" (method, url, query_params, headers, body "
            "and content_type are known)",
            ShownInMessage(Text(m.name))));
      }
    }
    if (const auto it = doc.FindMember("method"); it != doc.MemberEnd() && !it->value.IsNull()) {
      const std::string_view m = it->value.IsString() ? Text(it->value) : std::string_view();
      if (m != "POST" && m != "PUT" && m != "PATCH" && m != "DELETE" && m != "GET") {
        return Status::Error(
            "request_transform.method: not one of POST, PUT, PATCH, DELETE and GET");
      }
      t->method = std::string(m);
    }
    if (const auto it = doc.FindMember("url"); it != doc.MemberEnd() && !it->value.IsNull()) {
      if (!it->value.IsString()) return Status::Error("request_transform.url: not a string");
      auto url = ParseOne("request_transform.url", Text(it->value), kriti::Mode::kString);
      if (!url.ok()) return Status::Error(url.error());
      t->url = std::move(*url);
    }
    if (Status st = ParseTemplateMap(doc, "query_params", false, &t->query_params); !st.ok()) {
      return st;
    }
    if (Status st = ParseTemplateMap(doc, "headers", true, &t->headers); !st.ok()) return st;
    if (const auto it = doc.FindMember("body"); it != doc.MemberEnd()) {
      if (it->value.IsNull()) {
        t->body_kind = RequestTransform::BodyKind::kNone;
      } else {
        std::string_view raw;
        for (const RawJsonEntry& m : RawJsonMembers(text)) {
          if (StringText(m.key) == "body") raw = m.value;  // the last, as jsonb keeps it
        }
        auto body = ParseJsonTemplate("request_transform.body", it->value, raw);
        if (!body.ok()) return Status::Error(body.error());
        t->body_kind = RequestTransform::BodyKind::kTemplate;
        t->body = std::move(*body);
      }
    }
    if (const auto it = doc.FindMember("content_type");
        it != doc.MemberEnd() && !it->value.IsNull()) {
      const std::string_view c = it->value.IsString() ? Text(it->value) : std::string_view();
      if (c == "application/json") {
        t->content_type = RequestTransform::ContentType::kJson;
      } else if (c == "application/x-www-form-urlencoded") {
        t->content_type = RequestTransform::ContentType::kForm;
      } else if (c == "text/plain") {
        t->content_type = RequestTransform::ContentType::kText;
      } else {
        return Status::Error(
            "request_transform.content_type: not one of application/json, "
            "application/x-www-form-urlencoded and text/plain");
      }
    }
  }
  if (token_claims) {
    rapidjson::Document doc;
    if (const Status st = ParseJson(*token_claims, &doc); !st.ok()) {
      return Status::Error("token_claims: " + st.message());
    }
    if (!doc.IsObject() && !doc.IsString()) {
      return Status::Error("token_claims: neither an object nor a string holding a template");
    }
    auto claims = ParseJsonTemplate("token_claims", doc, *token_claims);
    if (!claims.ok()) return Status::Error(claims.error());
    t->claims = std::move(*claims);
  }
  for (const Template* tmpl : {&t->url, &t->body, &t->claims}) {
    if (*tmpl) t->body_paths.Add(**tmpl);
  }
  for (const auto* map : {&t->query_params, &t->headers}) {
    for (const auto& [name, tmpl] : *map) t->body_paths.Add(*tmpl);
  }
  return std::shared_ptr<const RequestTransform>(std::move(t));
}

const TransformCache::Parsed& TransformCache::Get(
    const std::string& trigger, const std::optional<std::string>& request_transform,
    const std::optional<std::string>& token_claims) {
  auto it = entries_.find(trigger);
  if (it != entries_.end() && it->second.request_transform == request_transform &&
      it->second.token_claims == token_claims) {
    it->second.used = true;
    return it->second.parsed;
  }
  ++parses_;
  Entry e{request_transform, token_claims, ParseRequestTransform(request_transform, token_claims),
          true};
  if (it != entries_.end()) {
    it->second = std::move(e);
  } else {
    it = entries_.emplace(trigger, std::move(e)).first;
  }
  return it->second.parsed;
}

void TransformCache::Prune() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!it->second.used) {
      it = entries_.erase(it);
    } else {
      it->second.used = false;
      ++it;
    }
  }
}

// --- URLs ----------------------------------------------------------------------

namespace {

bool IsHex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

// RFC 3986 unreserved, sub-delims, ":" and "@" (pchar), and "/" "?".
bool IsUrlChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u)) return true;
  return std::string_view("-._~!$&'()*+,;=:@/?").find(c) != std::string_view::npos;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

Status CheckHttpUrl(std::string_view url) {
  std::string_view rest;
  if (StartsWithNoCase(url, "http://")) {
    rest = url.substr(7);
  } else if (StartsWithNoCase(url, "https://")) {
    rest = url.substr(8);
  } else {
    return Status::Error("not an http or https URL");
  }
  const size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  if (authority.find('@') != std::string_view::npos) {
    return Status::Error("a URL with user information is not sent");
  }
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos || close == 1) return Status::Error("a bad IPv6 host");
    for (const char c : host.substr(1, close - 1)) {
      if (!IsHex(c) && c != ':' && c != '.') return Status::Error("a bad IPv6 host");
    }
    const std::string_view after = host.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Status::Error("a bad host");
      port = after.substr(1);
      if (port.empty()) return Status::Error("an empty port");
    }
  } else {
    const size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port.empty()) return Status::Error("an empty port");
    }
    if (host.empty()) return Status::Error("no host");
    for (const char c : host) {
      const auto u = static_cast<unsigned char>(c);
      if (!std::isalnum(u) && c != '-' && c != '.' && c != '_') {
        return Status::Error("a host with characters a host name does not hold");
      }
    }
  }
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
      })) {
    return Status::Error("a bad port");
  }
  if (!port.empty() && std::stoi(std::string(port)) > 65535) return Status::Error("a bad port");
  if (end == std::string_view::npos) return Status::Ok();
  const std::string_view tail = rest.substr(end);
  bool fragment = false;
  for (size_t i = 0; i < tail.size(); ++i) {
    const char c = tail[i];
    if (c == '%') {
      if (i + 2 >= tail.size() || !IsHex(tail[i + 1]) || !IsHex(tail[i + 2])) {
        return Status::Error("a % not followed by two hex digits");
      }
      i += 2;
      continue;
    }
    if (c == '#' && !fragment) {
      fragment = true;
      continue;
    }
    if (!IsUrlChar(c)) {
      const auto u = static_cast<unsigned char>(c);
      return Status::Error(
          u <= 0x20 || u == 0x7F
              ? "a space or control character (escape it with escapeUri)"
              : fmt::format("a character a URL does not hold ('{}'; escape it with escapeUri)",
                            u < 0x80 ? std::string(1, c) : std::string("non-ASCII")));
    }
  }
  return Status::Ok();
}

namespace {

std::string Escape(std::string_view text, std::string_view keep, bool space_plus) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || keep.find(c) != std::string_view::npos) {
      out.push_back(c);
    } else if (c == ' ' && space_plus) {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

}  // namespace

std::string EscapeQuery(std::string_view text) {
  return Escape(text, "-._~", false);
}

std::string EscapeForm(std::string_view text) {
  return Escape(text, "*-._", true);
}

// --- claims ------------------------------------------------------------------

std::string TokenClaimsJson(std::string_view node_id, int64_t iat, int64_t exp,
                            std::string_view extra) {
  JsonBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("id");
  w.String(node_id.data(), static_cast<rapidjson::SizeType>(node_id.size()));
  w.Key("role");
  w.String("SpaceCloud");
  std::string out;
  out.assign(buf.GetString(), buf.GetSize());  // {"id":…,"role":"SpaceCloud"
  std::unordered_set<std::string> seen = {"id", "role", "iat", "exp"};
  for (const RawJsonEntry& m : RawJsonMembers(extra)) {
    const std::string name = StringText(m.key);
    if (!seen.insert(name).second) continue;  // walhook's own, or a repeated name
    out += ',';
    out += m.key;
    out += ':';
    out += m.value;
  }
  out += fmt::format(",\"iat\":{},\"exp\":{}}}", iat, exp);
  return out;
}

// --- shaping -------------------------------------------------------------------

namespace {

std::string Failed(std::string_view what, std::string_view why) {
  return fmt::format("transform: {}: {}", what, why);
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && StartsWithNoCase(a, b);
}

}  // namespace

bool ShapedRequest::Replaces(std::string_view line) const {
  const std::string_view name = line.substr(0, line.find(':'));
  for (const std::string& h : headers) {
    if (h.size() <= name.size() || h[name.size()] != ':') continue;
    if (std::equal(name.begin(), name.end(), h.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return true;
    }
  }
  return false;
}

Result<ShapedRequest> ShapeRequest(const RequestTransform& t, std::string_view standard_body,
                                   std::string_view base_url) {
  ShapedRequest out;
  out.method = t.method;
  // The body is read once for all the templates of this event, only the
  // parts they look at.
  auto input = kriti::Input::Bind(kriti::Bindings{standard_body, base_url}, &t.body_paths);
  if (!input.ok()) return Status::Error("transform: " + input.error());
  const kriti::Input& in = *input;
  auto render = [&](const kriti::Template& tmpl, std::string_view what,
                    std::string* text) -> Status {
    auto r = kriti::Render(tmpl, in);
    if (!r.ok()) return Status::Error(Failed(what, r.error()));
    *text = std::move(*r);
    return Status::Ok();
  };

  // URL, then the query parameters added (before a fragment).
  if (t.url) {
    if (Status st = render(*t.url, "url", &out.url); !st.ok()) return st;
  } else {
    out.url = std::string(base_url);
  }
  if (!t.query_params.empty()) {
    const size_t hash = out.url.find('#');
    std::string fragment;
    if (hash != std::string::npos) {
      fragment = out.url.substr(hash);
      out.url.resize(hash);
    }
    char sep = out.url.find('?') == std::string::npos ? '?' : '&';
    if (!out.url.empty() && (out.url.back() == '?' || out.url.back() == '&')) sep = '\0';
    std::string value;
    for (const auto& [name, tmpl] : t.query_params) {
      if (Status st = render(*tmpl, "query_params." + name, &value); !st.ok()) return st;
      if (sep != '\0') out.url.push_back(sep);
      sep = '&';
      out.url += EscapeQuery(name);
      out.url += '=';
      out.url += EscapeQuery(value);
    }
    out.url += fragment;
  }
  if (out.url.size() > kMaxUrl) {
    return Status::Error(Failed("url", fmt::format("longer than {} bytes", kMaxUrl)));
  }
  if (Status st = CheckHttpUrl(out.url); !st.ok()) {
    return Status::Error(Failed(
        "url", fmt::format("\"{}\" is not sent: {}", ShownInMessage(out.url), st.message())));
  }

  // Headers: reserved names were refused at parse; values must stay one line.
  std::string value;
  for (const auto& [name, tmpl] : t.headers) {
    if (IsReservedHeader(name)) continue;
    if (Status st = render(*tmpl, "headers." + name, &value); !st.ok()) return st;
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return Status::Error(Failed("headers." + name, "the value holds a line break or a NUL byte"));
    }
    if (value.size() > kMaxHeaderValue) {
      return Status::Error(
          Failed("headers." + name, fmt::format("longer than {} bytes", kMaxHeaderValue)));
    }
    // Replaces an earlier one of the same name (headers are case-insensitive).
    out.headers.erase(std::remove_if(out.headers.begin(), out.headers.end(),
                                     [&name = name](const std::string& line) {
                                       return line.size() > name.size() &&
                                              line[name.size()] == ':' &&
                                              EqualsNoCase(line.substr(0, name.size()), name);
                                     }),
                      out.headers.end());
    out.headers.push_back(name + ": " + value);
  }

  // Body.
  switch (t.body_kind) {
    case RequestTransform::BodyKind::kStandard:
      // GET and DELETE send no body unless the template gives one.
      if (t.method == "GET" || t.method == "DELETE") {
        out.has_body = false;
      } else {
        out.body = std::string(standard_body);
      }
      break;
    case RequestTransform::BodyKind::kNone: out.has_body = false; break;
    case RequestTransform::BodyKind::kTemplate: {
      std::string rendered;
      if (Status st = render(*t.body, "body", &rendered); !st.ok()) return st;
      switch (t.content_type) {
        case RequestTransform::ContentType::kJson: out.body = std::move(rendered); break;
        case RequestTransform::ContentType::kText: {
          const size_t start = SkipJsonSpace(rendered, 0);
          if (start < rendered.size() && rendered[start] == '"') {
            size_t end = rendered.size();
            while (end > start && (rendered[end - 1] == ' ' || rendered[end - 1] == '\n' ||
                                   rendered[end - 1] == '\r' || rendered[end - 1] == '\t')) {
              --end;
            }
            out.body = StringText(std::string_view(rendered).substr(start, end - start));
          } else {
            out.body = std::move(rendered);  // not a string: its JSON text
          }
          break;
        }
        case RequestTransform::ContentType::kForm: {
          const size_t start = SkipJsonSpace(rendered, 0);
          if (start >= rendered.size() || rendered[start] != '{') {
            return Status::Error(Failed(
                "body", "an application/x-www-form-urlencoded body must render to an object"));
          }
          for (const RawJsonEntry& m : RawJsonMembers(rendered)) {
            if (m.value == "null") continue;
            if (!out.body.empty()) out.body += '&';
            out.body += EscapeForm(StringText(m.key));
            out.body += '=';
            out.body +=
                EscapeForm(m.value.front() == '"' ? StringText(m.value) : std::string(m.value));
          }
          break;
        }
      }
      break;
    }
  }
  if (out.has_body) {
    switch (t.content_type) {
      case RequestTransform::ContentType::kJson: out.content_type = "application/json"; break;
      case RequestTransform::ContentType::kForm:
        out.content_type = "application/x-www-form-urlencoded";
        break;
      case RequestTransform::ContentType::kText:
        out.content_type = "text/plain; charset=utf-8";
        break;
    }
    // The standard body is JSON whatever content_type says.
    if (t.body_kind == RequestTransform::BodyKind::kStandard) out.content_type = "application/json";
  }

  // Token claims: an object.
  if (t.claims) {
    std::string claims;
    if (Status st = render(*t.claims, "token_claims", &claims); !st.ok()) return st;
    const size_t start = SkipJsonSpace(claims, 0);
    if (start >= claims.size() || claims[start] != '{') {
      return Status::Error(Failed("token_claims", "does not render to an object"));
    }
    if (claims.size() > kMaxClaims) {
      return Status::Error(Failed("token_claims", fmt::format("longer than {} bytes", kMaxClaims)));
    }
    out.claims = std::move(claims);
  }
  return out;
}

}  // namespace walhook
