#include "walhook/admin_api.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "walhook/chain.h"
#include "walhook/condition.h"
#include "walhook/json.h"
#include "walhook/kriti.h"
#include "walhook/timestamp.h"
#include "walhook/trigger.h"
#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook::admin {
namespace {

using rapidjson::SizeType;

// Strings from the database are valid UTF-8; node ids and messages made of
// outside bytes may not be: replaced, so the answer is always JSON.
void Str(JsonWriter& w, std::string_view s) {
  if (IsValidUtf8(s)) {
    w.String(s.data(), static_cast<SizeType>(s.size()));
    return;
  }
  std::string fixed;
  ReplaceInvalidUtf8(s, &fixed);
  w.String(fixed.data(), static_cast<SizeType>(fixed.size()));
}

void Key(JsonWriter& w, std::string_view k) {
  w.Key(k.data(), static_cast<SizeType>(k.size()));
}

void OptStr(JsonWriter& w, const std::optional<std::string>& s) {
  if (s) {
    Str(w, *s);
  } else {
    w.Null();
  }
}

void OptInt(JsonWriter& w, const std::optional<int64_t>& v) {
  if (v) {
    w.Int64(*v);
  } else {
    w.Null();
  }
}

void IdStr(JsonWriter& w, int64_t id) {
  Str(w, std::to_string(id));
}

void OptId(JsonWriter& w, const std::optional<int64_t>& id) {
  if (id) {
    IdStr(w, *id);
  } else {
    w.Null();
  }
}

void Time(JsonWriter& w, int64_t ms) {
  Str(w, FormatRfc3339Millis(ms));
}

void OptTime(JsonWriter& w, const std::optional<int64_t>& ms) {
  if (ms) {
    Time(w, *ms);
  } else {
    w.Null();
  }
}

void Raw(JsonWriter& w, std::string_view json) {
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}

void Value(JsonWriter& w, const rapidjson::Value& v) {
  v.Accept(w);
}

std::string Done(const JsonBuffer& b) {
  return std::string(b.GetString(), b.GetSize());
}

std::string ValueText(const rapidjson::Value& v) {
  JsonBuffer b;
  JsonWriter w(b);
  v.Accept(w);
  return Done(b);
}

std::string_view View(const rapidjson::Value& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

FieldError Bad(std::string field, std::string message, int status = 400) {
  return FieldError{status, std::move(field), std::move(message)};
}

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 200) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// SPEC §3: DB_*/FILE_* of the five, or a custom type.
bool ValidType(std::string_view s) {
  static constexpr std::string_view kBuiltIn[] = {"DB_INSERT", "DB_UPDATE", "DB_DELETE",
                                                  "FILE_CREATE", "FILE_DELETE"};
  for (std::string_view t : kBuiltIn) {
    if (s == t) return true;
  }
  if (s.empty() || s.size() > 200) return false;
  if (s.substr(0, 3) == "DB_" || s.substr(0, 5) == "FILE_") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// What eventing.triggers' url CHECK accepts: ^https?://[^/?#[:space:]]+
bool ValidUrl(std::string_view url) {
  size_t host = 0;
  if (StartsWithNoCase(url, "http://")) {
    host = 7;
  } else if (StartsWithNoCase(url, "https://")) {
    host = 8;
  } else {
    return false;
  }
  if (host >= url.size()) return false;
  const char c = url[host];
  return c != '/' && c != '?' && c != '#' && !std::isspace(static_cast<unsigned char>(c));
}

// "… at offset N …" of a condition's parse error.
std::optional<int64_t> OffsetOf(std::string_view message) {
  const size_t at = message.find("at offset ");
  if (at == std::string_view::npos) return std::nullopt;
  const char* p = message.data() + at + 10;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(p, message.data() + message.size(), n);
  if (ec != std::errc() || end == p) return std::nullopt;
  return n;
}

// "line L, column C: …" of a Kriti error.
void LineColumnOf(std::string_view message, Problem* p) {
  if (message.substr(0, 5) != "line ") return;
  int64_t line = 0, column = 0;
  const char* s = message.data() + 5;
  const char* end = message.data() + message.size();
  auto [a, ec1] = std::from_chars(s, end, line);
  if (ec1 != std::errc()) return;
  const std::string_view rest(a, static_cast<size_t>(end - a));
  if (rest.substr(0, 9) != ", column ") return;
  auto [b, ec2] = std::from_chars(a + 9, end, column);
  if (ec2 != std::errc()) return;
  (void)b;
  p->line = line;
  p->column = column;
}

Problem TemplateProblem(std::string field, std::string_view message) {
  Problem p;
  p.field = std::move(field);
  p.message = std::string(Utf8Prefix(message, 1000));
  LineColumnOf(message, &p);
  return p;
}

// The text a template member is parsed from: a JSON string's contents (the
// template written as text), otherwise the value's JSON text (JSON is a
// Kriti template too).
std::string TemplateText(const rapidjson::Value& v) {
  if (v.IsString()) return std::string(View(v));
  return ValueText(v);
}

void MaskObjectValues(JsonWriter& w, const rapidjson::Value& headers) {
  if (!headers.IsObject()) {
    Value(w, headers);
    return;
  }
  w.StartObject();
  for (const auto& m : headers.GetObject()) {
    Key(w, View(m.name));
    Str(w, kMask);
  }
  w.EndObject();
}

void WriteTransformMasked(JsonWriter& w, const rapidjson::Value& t) {
  if (!t.IsObject()) {
    Value(w, t);
    return;
  }
  w.StartObject();
  for (const auto& m : t.GetObject()) {
    Key(w, View(m.name));
    if (View(m.name) == "headers") {
      MaskObjectValues(w, m.value);
    } else {
      Value(w, m.value);
    }
  }
  w.EndObject();
}

// `incoming` (an object) with values equal to kMask replaced by those of
// `stored` under the same name; a masked name stored nowhere is an error.
std::optional<FieldError> Unmask(const rapidjson::Value& incoming, const rapidjson::Value* stored,
                                 const std::string& field, rapidjson::Value* out,
                                 rapidjson::Document::AllocatorType& a) {
  out->SetObject();
  for (const auto& m : incoming.GetObject()) {
    rapidjson::Value name(m.name, a);
    if (m.value.IsString() && View(m.value) == kMask) {
      const rapidjson::Value* old = nullptr;
      if (stored != nullptr && stored->IsObject()) {
        auto it = stored->FindMember(m.name);
        if (it != stored->MemberEnd()) old = &it->value;
      }
      if (old == nullptr) {
        return Bad(field + "." + std::string(Utf8Prefix(View(m.name), 100)),
                   "the masked value \"" + std::string(kMask) +
                       "\" keeps a stored value, and this header has none");
      }
      out->AddMember(name, rapidjson::Value(*old, a), a);
    } else {
      out->AddMember(name, rapidjson::Value(m.value, a), a);
    }
  }
  return std::nullopt;
}

const rapidjson::Value* Member(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

std::optional<FieldError> ReadBody(std::string_view body, rapidjson::Document* doc) {
  if (Status st = ParseJson(body, doc); !st.ok()) {
    return Bad("", "the body is not valid JSON: " + st.message());
  }
  if (!doc->IsObject()) return Bad("", "the body is not a JSON object");
  return std::nullopt;
}

std::optional<int64_t> IdValue(const rapidjson::Value& v) {
  if (v.IsInt64() && v.GetInt64() > 0) return v.GetInt64();
  if (v.IsString()) return ParseId(View(v));
  return std::nullopt;
}

std::optional<int64_t> TimeValue(const rapidjson::Value& v) {
  if (v.IsString()) return ParseTimeMs(View(v));
  if (v.IsInt64()) {
    const int64_t ms = v.GetInt64();
    if (ms >= kMinTimestampMs && ms <= kMaxTimestampMs) return ms;
  }
  return std::nullopt;
}

}  // namespace

HttpResponse JsonResponse(int status, std::string body) {
  return HttpResponse{status, std::move(body), "application/json"};
}

HttpResponse ErrorResponse(const FieldError& e) {
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  Key(w, "error");
  Str(w, e.message);
  if (!e.field.empty()) {
    Key(w, "field");
    Str(w, e.field);
  }
  w.EndObject();
  return JsonResponse(e.status, Done(b));
}

bool IsAdminPath(std::string_view path) {
  return path == "/v1/admin" || path.substr(0, kPrefix.size()) == kPrefix;
}

std::optional<FieldError> RouteAdmin(std::string_view method, std::string_view path,
                                     AdminTarget* out) {
  const auto not_found = [&] {
    return Bad(
        "", fmt::format("no such path: {} {}", Utf8Prefix(method, 20), Utf8Prefix(path, 200)), 404);
  };
  if (path.size() <= kPrefix.size()) return not_found();
  std::vector<std::string_view> parts;
  std::string_view rest = path.substr(kPrefix.size());
  while (true) {
    const size_t slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (parts.size() > 3 ||
      std::any_of(parts.begin(), parts.end(), [](std::string_view p) { return p.empty(); })) {
    return not_found();
  }
  // Each known path with the method it takes; a known path with another
  // method is 405.
  struct Choice {
    std::string_view method;
    Route route;
  };
  std::vector<Choice> choices;
  const auto n = parts.size();
  const std::string_view p0 = parts[0];
  const std::string_view p1 = n > 1 ? parts[1] : std::string_view();
  const std::string_view p2 = n > 2 ? parts[2] : std::string_view();
  bool wants_name = false, wants_id = false;
  if (p0 == "triggers") {
    if (n == 1) {
      choices = {{"GET", Route::kListTriggers}, {"POST", Route::kCreateTrigger}};
    } else if (n == 2) {
      wants_name = true;
      choices = {{"GET", Route::kGetTrigger},
                 {"PATCH", Route::kUpdateTrigger},
                 {"DELETE", Route::kDeleteTrigger}};
    } else if (p2 == "enable") {
      wants_name = true;
      choices = {{"POST", Route::kEnableTrigger}};
    } else if (p2 == "disable") {
      wants_name = true;
      choices = {{"POST", Route::kDisableTrigger}};
    }
  } else if (p0 == "validate" && n == 1) {
    choices = {{"POST", Route::kValidate}};
  } else if (p0 == "tables" && n == 1) {
    choices = {{"GET", Route::kTables}};
  } else if (p0 == "events") {
    if (n == 1) {
      choices = {{"GET", Route::kListEvents}};
    } else if (n == 2 && p1 == "bulk") {
      choices = {{"POST", Route::kBulk}};
    } else if (n == 2) {
      wants_id = true;
      choices = {{"GET", Route::kGetEvent}};
    } else if (p2 == "redeliver") {
      wants_id = true;
      choices = {{"POST", Route::kRedeliver}};
    } else if (p2 == "cancel") {
      wants_id = true;
      choices = {{"POST", Route::kCancel}};
    }
  } else if (p0 == "queue" && n == 1) {
    choices = {{"POST", Route::kQueue}};
  } else if (p0 == "nodes" && n == 1) {
    choices = {{"GET", Route::kNodes}};
  } else if (p0 == "backfills") {
    if (n == 1) {
      choices = {{"GET", Route::kListBackfills}, {"POST", Route::kStartBackfill}};
    } else if (n == 3 && p2 == "cancel") {
      wants_id = true;
      choices = {{"POST", Route::kCancelBackfill}};
    }
  }
  if (choices.empty()) return not_found();
  const auto chosen = std::find_if(choices.begin(), choices.end(),
                                   [&](const Choice& c) { return c.method == method; });
  if (chosen == choices.end()) {
    return Bad(
        "", fmt::format("{} is not allowed on {}", Utf8Prefix(method, 20), Utf8Prefix(path, 200)),
        405);
  }
  out->route = chosen->route;
  if (wants_name) {
    if (!ValidName(p1)) {
      return Bad("name", fmt::format("no trigger named \"{}\"", Utf8Prefix(p1, 100)), 404);
    }
    out->name = std::string(p1);
  }
  if (wants_id) {
    auto id = ParseId(p1);
    if (!id) return Bad("id", "the id in the path is not a positive integer");
    out->id = *id;
  }
  return std::nullopt;
}

std::optional<HttpResponse> CheckAdminToken(const HttpRequest& head, std::string_view secret,
                                            int64_t now_s) {
  const size_t auths = head.HeaderCount("Authorization");
  const auto token = auths == 1 ? BearerToken(head.Header("Authorization")) : std::nullopt;
  if (!token) {
    return HttpError(401, auths > 1 ? "bad token: more than one Authorization header"
                                    : "missing token: send Authorization: Bearer <JWT> "
                                      "(walhook token --role admin)");
  }
  TokenClaims claims;
  if (Status st = VerifyToken(*token, secret, now_s, &claims); !st.ok()) {
    return HttpError(401, fmt::format("bad token: {}", st.message()));
  }
  if (claims.role != "admin") {
    return HttpError(403,
                     "the admin API needs a token whose role is admin "
                     "(walhook token --role admin)");
  }
  return std::nullopt;
}

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  if (!IsValidUtf8(out) || out.find('\0') != std::string::npos) return std::nullopt;
  return out;
}

}  // namespace

std::optional<FieldError> ParseQuery(std::string_view target,
                                     std::map<std::string, std::string>* out) {
  out->clear();
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto name = PercentDecode(pair.substr(0, eq));
    if (!name) return Bad("", "a query parameter's name is not valid percent-encoded UTF-8");
    auto value = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!value) {
      return Bad(std::string(Utf8Prefix(*name, 100)),
                 "the value is not valid percent-encoded UTF-8");
    }
    if (!out->emplace(*name, std::move(*value)).second) {
      return Bad(std::string(Utf8Prefix(*name, 100)), "the parameter is given more than once");
    }
  }
  return std::nullopt;
}

std::optional<int64_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

std::optional<int64_t> ParseTimeMs(std::string_view text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(),
                                   [](char c) { return (c >= '0' && c <= '9') || c == '-'; })) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && p == text.data() + text.size() && v >= kMinTimestampMs &&
        v <= kMaxTimestampMs) {
      return v;
    }
    // Digits and '-' only could still be a date ("2026-12-07"): not RFC 3339 either.
  }
  auto ms = ParseRfc3339Ms(text);
  if (!ms || *ms < kMinTimestampMs || *ms > kMaxTimestampMs) return std::nullopt;
  return ms;
}

std::optional<FieldError> ParseEventFilter(const std::map<std::string, std::string>& query,
                                           EventFilter* out) {
  *out = EventFilter{};
  auto get = [&](const char* name) -> const std::string* {
    auto it = query.find(name);
    return it == query.end() ? nullptr : &it->second;
  };
  for (const char* name : {"trigger", "type"}) {
    const std::string* v = get(name);
    if (v == nullptr || v->empty()) continue;
    if (v->size() > kMaxFilterBytes) {
      return Bad(name, fmt::format("longer than {} bytes", kMaxFilterBytes));
    }
    (std::string_view(name) == "trigger" ? out->trigger : out->type) = *v;
  }
  if (const std::string* v = get("status"); v != nullptr && !v->empty()) {
    if (std::find(std::begin(kStatuses), std::end(kStatuses), *v) == std::end(kStatuses)) {
      return Bad("status", "must be staged, processed, failed or cancel");
    }
    out->status = *v;
  }
  for (const char* name : {"from", "to"}) {
    const std::string* v = get(name);
    if (v == nullptr || v->empty()) continue;
    auto ms = ParseTimeMs(*v);
    if (!ms) return Bad(name, "not an RFC 3339 time or epoch milliseconds within 0001-9999");
    (std::string_view(name) == "from" ? out->from_ms : out->to_ms) = ms;
  }
  if (const std::string* v = get("before"); v != nullptr && !v->empty()) {
    auto id = ParseId(*v);
    if (!id) return Bad("before", "not an event id (a positive integer)");
    out->before = id;
  }
  if (const std::string* v = get("limit"); v != nullptr && !v->empty()) {
    // Digits only; anything past kMaxPage (however many digits) is capped.
    if (!std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Bad("limit", fmt::format("not a whole number (1 to {})", kMaxPage));
    }
    const std::string_view digits =
        std::string_view(*v).substr(std::min(v->find_first_not_of('0'), v->size()));
    size_t n = 0;
    if (digits.size() > 6) {
      n = kMaxPage;
    } else if (!digits.empty()) {
      std::from_chars(digits.data(), digits.data() + digits.size(), n);
    }
    if (n == 0) return Bad("limit", fmt::format("must be from 1 to {}", kMaxPage));
    out->limit = std::min(n, kMaxPage);
  }
  return std::nullopt;
}

// --- Triggers -----------------------------------------------------------------

std::string TriggerJson(std::string_view row_jsonb, const TriggerStatus* status) {
  rapidjson::Document row;
  if (!ParseJson(row_jsonb, &row).ok() || !row.IsObject()) return "null";
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  static constexpr const char* kColumns[] = {
      "name",    "type",    "table_name",        "columns",     "condition",         "path_prefix",
      "url",     "headers", "retries",           "timeout_ms",  "retry_interval_ms", "ordered",
      "enabled", "owner",   "request_transform", "token_claims"};
  for (const char* c : kColumns) {
    const rapidjson::Value* v = Member(row, c);
    const bool optional_column =
        std::strcmp(c, "request_transform") == 0 || std::strcmp(c, "token_claims") == 0;
    if (v == nullptr) {
      // A column this database does not have yet (request_transform and
      // token_claims before their migration) is left out.
      if (!optional_column) {
        Key(w, c);
        w.Null();
      }
      continue;
    }
    Key(w, c);
    if (std::strcmp(c, "headers") == 0) {
      MaskObjectValues(w, *v);
    } else if (std::strcmp(c, "request_transform") == 0) {
      WriteTransformMasked(w, *v);
    } else {
      Value(w, *v);
    }
  }
  if (status != nullptr) {
    Key(w, "status");
    w.StartObject();
    Key(w, "active");
    w.Bool(status->active);
    const std::pair<const char*, int64_t> counts[] = {{"staged", status->staged},
                                                      {"processed", status->processed},
                                                      {"failed", status->failed},
                                                      {"cancel", status->cancel},
                                                      {"in_flight", status->in_flight}};
    for (const auto& [k, v] : counts) {
      Key(w, k);
      w.Int64(v);
    }
    Key(w, "oldest_staged_age_ms");
    OptInt(w, status->oldest_staged_age_ms);
    Key(w, "last_success_at");
    OptTime(w, status->last_success_at_ms);
    Key(w, "last_error");
    OptStr(w, status->last_error);
    Key(w, "last_delivery_error");
    OptStr(w, status->last_delivery_error);
    w.EndObject();
  }
  w.EndObject();
  return Done(b);
}

std::optional<FieldError> ParseTriggerWrite(std::string_view body,
                                            std::optional<std::string_view> stored_row,
                                            std::string_view path_name, TriggerWrite* out) {
  *out = TriggerWrite{};
  const bool create = !stored_row.has_value();
  rapidjson::Document doc;
  if (auto e = ReadBody(body, &doc)) return e;
  rapidjson::Document stored;
  if (stored_row && (!ParseJson(*stored_row, &stored).ok() || !stored.IsObject())) {
    stored.SetObject();
  }
  auto& a = doc.GetAllocator();
  rapidjson::Value canonical(rapidjson::kObjectType);
  std::optional<std::string> type;
  if (!create) {
    if (const auto* t = Member(stored, "type"); t != nullptr && t->IsString()) {
      type = std::string(View(*t));
    }
  }
  // Type first: the condition is checked against it.
  if (const auto* t = Member(doc, "type")) {
    if (!t->IsString() || !ValidType(View(*t))) {
      return Bad("type",
                 "must be DB_INSERT, DB_UPDATE, DB_DELETE, FILE_CREATE, FILE_DELETE or a "
                 "custom type of letters, digits, _ and - not starting with DB_ or FILE_");
    }
    type = std::string(View(*t));
  }
  for (auto& m : doc.GetObject()) {
    const std::string name(View(m.name));
    const rapidjson::Value& v = m.value;
    const auto string_or_null = [&]() -> std::optional<FieldError> {
      if (!v.IsString() && !v.IsNull()) return Bad(name, "must be a string or null");
      return std::nullopt;
    };
    const auto integer = [&](int64_t lo, int64_t hi) -> std::optional<FieldError> {
      if (!v.IsInt64() || v.GetInt64() < lo || v.GetInt64() > hi) {
        return Bad(name, fmt::format("must be an integer from {} to {}", lo, hi));
      }
      return std::nullopt;
    };
    std::optional<FieldError> e;
    rapidjson::Value value(v, a);
    if (name == "status") continue;  // shown, never written
    if (name == "name") {
      if (!v.IsString() || !ValidName(View(v))) {
        e = Bad(name, "must be 1 to 200 characters of a-z, 0-9, _ and -");
      } else if (!create && View(v) != path_name) {
        e = Bad(name,
                "a trigger cannot be renamed: create one under the new name, "
                "then delete this one");
      }
    } else if (name == "type") {
      // checked above
    } else if (name == "table_name") {
      e = string_or_null();
      std::string schema, table;
      if (!e && v.IsString() && !ParseTableName(View(v), &schema, &table)) {
        e = Bad(name, "must be table or schema.table (names may be double-quoted)");
      }
    } else if (name == "columns") {
      if (!v.IsNull() && !v.IsArray()) {
        e = Bad(name, "must be an array of column names or null");
      } else if (v.IsArray()) {
        for (const auto& c : v.GetArray()) {
          if (!c.IsString() || c.GetStringLength() == 0) {
            e = Bad(name, "must be an array of column names or null");
            break;
          }
        }
      }
    } else if (name == "condition") {
      e = string_or_null();
      if (!e && v.IsString() && v.GetStringLength() > 0) {
        auto problems = CheckCondition(View(v), type);
        if (!problems.empty()) e = Bad(name, problems.front().message);
      }
    } else if (name == "path_prefix" || name == "owner") {
      e = name == "owner" && v.IsNull() ? Bad(name, "must be a role name") : string_or_null();
    } else if (name == "url") {
      if (!v.IsString() || !ValidUrl(View(v))) {
        e = Bad(name, "must be an http:// or https:// URL with a host");
      }
    } else if (name == "headers") {
      if (!v.IsNull() && !v.IsObject()) {
        e = Bad(name, "must be an object of header names and string values, or null");
      } else if (v.IsObject()) {
        const rapidjson::Value* old = Member(stored, "headers");
        e = Unmask(v, old, name, &value, a);
        if (!e) {
          const std::string why = CheckTriggerHeaders(ValueText(value));
          if (!why.empty()) e = Bad(name, why);
        }
      }
    } else if (name == "retries") {
      e = integer(0, 100);
    } else if (name == "timeout_ms") {
      e = integer(1, 3600000);
    } else if (name == "retry_interval_ms") {
      e = integer(0, 3600000);
    } else if (name == "ordered" || name == "enabled") {
      if (!v.IsBool()) e = Bad(name, "must be true or false");
    } else if (name == "request_transform") {
      if (!v.IsNull() && !v.IsObject()) {
        e = Bad(name, "must be an object or null");
      } else if (v.IsObject()) {
        if (const auto* h = Member(v, "headers"); h != nullptr && h->IsObject()) {
          const rapidjson::Value* old_t = Member(stored, "request_transform");
          const rapidjson::Value* old = old_t != nullptr ? Member(*old_t, "headers") : nullptr;
          rapidjson::Value unmasked;
          e = Unmask(*h, old, "request_transform.headers", &unmasked, a);
          if (!e) value["headers"] = unmasked;
        }
        if (!e) {
          auto problems = CheckTransform(ValueText(value));
          if (!problems.empty()) e = Bad(problems.front().field, problems.front().message);
        }
      }
    } else if (name == "token_claims") {
      if (!v.IsNull()) {
        auto problems = CheckTokenClaims(ValueText(v));
        if (!problems.empty()) e = Bad(problems.front().field, problems.front().message);
      }
    } else {
      e = Bad(std::string(Utf8Prefix(name, 100)), "not a member of a trigger");
    }
    if (e) return e;
    out->columns.push_back(name);
    canonical.AddMember(rapidjson::Value(name.c_str(), a), value, a);
  }
  if (create) {
    for (const char* required : {"name", "type", "url"}) {
      if (!canonical.HasMember(required)) return Bad(required, "required");
    }
  } else if (out->columns.empty()) {
    return Bad("", "nothing to change: the body names no member of a trigger");
  }
  // A condition is checked against a type the body changes after it.
  if (!create && canonical.HasMember("type") && !canonical.HasMember("condition")) {
    if (const auto* c = Member(stored, "condition"); c != nullptr && c->IsString()) {
      auto problems = CheckCondition(View(*c), type);
      if (!problems.empty()) return Bad("condition", problems.front().message);
    }
  }
  out->json = ValueText(canonical);
  return std::nullopt;
}

std::string ConstraintField(const std::vector<std::string>& constraint_columns,
                            const std::vector<std::string>& written) {
  const auto was_written = [&](const std::string& c) {
    return std::find(written.begin(), written.end(), c) != written.end();
  };
  // A constraint over type and another column is about the other one.
  for (const std::string& c : constraint_columns) {
    if (c != "type" && was_written(c)) return c;
  }
  for (const std::string& c : constraint_columns) {
    if (was_written(c)) return c;
  }
  for (const std::string& c : constraint_columns) {
    if (c != "type") return c;
  }
  return constraint_columns.empty() ? "" : constraint_columns.front();
}

// --- Validation ---------------------------------------------------------------

std::optional<FieldError> ParseValidateRequest(std::string_view body, ValidateRequest* out) {
  *out = ValidateRequest{};
  rapidjson::Document doc;
  if (auto e = ReadBody(body, &doc)) return e;
  for (const auto& m : doc.GetObject()) {
    const std::string name(View(m.name));
    const rapidjson::Value& v = m.value;
    if (name == "type") {
      if (!v.IsString() || !ValidType(View(v))) {
        return Bad(name, "must be a trigger type (DB_INSERT, …, or a custom type)");
      }
      out->type = std::string(View(v));
    } else if (name == "condition") {
      if (!v.IsString() && !v.IsNull()) return Bad(name, "must be a string or null");
      if (v.IsString()) out->condition = std::string(View(v));
    } else if (name == "request_transform") {
      if (!v.IsNull()) out->request_transform = ValueText(v);
    } else if (name == "token_claims") {
      if (!v.IsNull()) out->token_claims = ValueText(v);
    } else if (name == "event_id") {
      if (v.IsNull()) continue;
      auto id = IdValue(v);
      if (!id) return Bad(name, "must be an event id (a positive integer)");
      out->event_id = id;
    } else {
      return Bad(std::string(Utf8Prefix(name, 100)), "not a member of a validate request");
    }
  }
  return std::nullopt;
}

std::vector<Problem> CheckCondition(std::string_view condition,
                                    std::optional<std::string_view> type) {
  std::vector<Problem> out;
  auto parsed = ParseCondition(condition);
  if (!parsed.ok()) {
    Problem p;
    p.field = "condition";
    p.message = std::string(Utf8Prefix(parsed.error(), 1000));
    p.offset = OffsetOf(parsed.error());
    out.push_back(std::move(p));
    return out;
  }
  if (type) {
    const bool db = type->substr(0, 3) == "DB_";
    if (db && parsed->Uses(Scope::kPayload)) {
      out.push_back(Problem{"condition",
                            "condition: a DB_* trigger's condition names new.column or "
                            "old.column, not payload.…",
                            std::nullopt, std::nullopt, std::nullopt});
    } else if (!db && (parsed->Uses(Scope::kNew) || parsed->Uses(Scope::kOld))) {
      out.push_back(Problem{"condition",
                            "condition: a custom or FILE_* trigger's condition names payload.…, "
                            "not new.column or old.column",
                            std::nullopt, std::nullopt, std::nullopt});
    }
  }
  return out;
}

namespace {

void ParseTemplate(const std::string& field, std::string_view text, kriti::Mode mode,
                   std::vector<Problem>* out) {
  auto t = kriti::Parse(text, mode);
  if (!t.ok()) out->push_back(TemplateProblem(field, t.error()));
}

constexpr std::string_view kMethods[] = {"POST", "PUT", "PATCH", "DELETE", "GET"};
constexpr std::string_view kContentTypes[] = {"application/json",
                                              "application/x-www-form-urlencoded", "text/plain"};

}  // namespace

std::vector<Problem> CheckTransform(std::string_view transform_json) {
  std::vector<Problem> out;
  const auto problem = [&](std::string field, std::string message) {
    out.push_back(
        Problem{std::move(field), std::move(message), std::nullopt, std::nullopt, std::nullopt});
  };
  rapidjson::Document doc;
  if (!ParseJson(transform_json, &doc).ok() || !doc.IsObject()) {
    problem("request_transform", "must be a JSON object");
    return out;
  }
  for (const auto& m : doc.GetObject()) {
    const std::string name(View(m.name));
    const std::string field = "request_transform." + std::string(Utf8Prefix(name, 100));
    const rapidjson::Value& v = m.value;
    if (name == "method") {
      if (!v.IsString() ||
          std::find(std::begin(kMethods), std::end(kMethods), View(v)) == std::end(kMethods)) {
        problem(field, "must be POST, PUT, PATCH, DELETE or GET");
      }
    } else if (name == "content_type") {
      if (!v.IsString() || std::find(std::begin(kContentTypes), std::end(kContentTypes), View(v)) ==
                               std::end(kContentTypes)) {
        problem(field, "must be application/json, application/x-www-form-urlencoded or text/plain");
      }
    } else if (name == "url") {
      if (!v.IsString()) {
        problem(field, "must be a string template");
      } else {
        ParseTemplate(field, View(v), kriti::Mode::kString, &out);
      }
    } else if (name == "query_params" || name == "headers") {
      if (!v.IsObject()) {
        problem(field, "must be an object of string templates");
        continue;
      }
      for (const auto& q : v.GetObject()) {
        const std::string sub = field + "." + std::string(Utf8Prefix(View(q.name), 100));
        if (name == "headers" && IsReservedHeader(View(q.name))) {
          problem(sub, "walhook sets this header itself (SPEC §9)");
        } else if (!q.value.IsString()) {
          problem(sub, "must be a string template");
        } else {
          ParseTemplate(sub, View(q.value), kriti::Mode::kString, &out);
        }
      }
    } else if (name == "body") {
      if (!v.IsNull()) ParseTemplate(field, TemplateText(v), kriti::Mode::kJson, &out);
    } else {
      problem(field,
              "not a member of request_transform (method, url, query_params, headers, "
              "body, content_type)");
    }
  }
  return out;
}

std::vector<Problem> CheckTokenClaims(std::string_view claims_json) {
  std::vector<Problem> out;
  rapidjson::Document doc;
  if (!ParseJson(claims_json, &doc).ok()) {
    out.push_back(
        Problem{"token_claims", "must be JSON", std::nullopt, std::nullopt, std::nullopt});
    return out;
  }
  if (!doc.IsNull()) ParseTemplate("token_claims", TemplateText(doc), kriti::Mode::kJson, &out);
  return out;
}

std::string RenderPreview(const ValidateRequest& request, std::string_view body_json,
                          std::string_view base_url, std::vector<Problem>* problems) {
  const kriti::Bindings bindings{body_json, base_url};
  // Renders one template; nullopt (and a problem) when it fails.
  const auto render = [&](const std::string& field, std::string_view text,
                          kriti::Mode mode) -> std::optional<std::string> {
    auto t = kriti::Parse(text, mode);
    if (!t.ok()) {
      problems->push_back(TemplateProblem(field, t.error()));
      return std::nullopt;
    }
    auto r = kriti::Render(**t, bindings);
    if (!r.ok()) {
      problems->push_back(TemplateProblem(field, r.error()));
      return std::nullopt;
    }
    return std::move(*r);
  };
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  rapidjson::Document doc;
  if (request.request_transform && ParseJson(*request.request_transform, &doc).ok() &&
      doc.IsObject()) {
    for (const auto& m : doc.GetObject()) {
      const std::string name(View(m.name));
      const std::string field = "request_transform." + name;
      const rapidjson::Value& v = m.value;
      if ((name == "method" || name == "content_type") && v.IsString()) {
        Key(w, name);
        Str(w, View(v));
      } else if (name == "url" && v.IsString()) {
        if (auto r = render(field, View(v), kriti::Mode::kString)) {
          Key(w, name);
          Str(w, *r);
        }
      } else if ((name == "query_params" || name == "headers") && v.IsObject()) {
        Key(w, name);
        w.StartObject();
        for (const auto& q : v.GetObject()) {
          if (!q.value.IsString()) continue;
          const std::string sub = field + "." + std::string(View(q.name));
          if (auto r = render(sub, View(q.value), kriti::Mode::kString)) {
            Key(w, View(q.name));
            Str(w, name == "headers" ? std::string(kMask) : *r);
          }
        }
        w.EndObject();
      } else if (name == "body") {
        Key(w, name);
        if (v.IsNull()) {
          w.Null();
        } else if (auto r = render(field, TemplateText(v), kriti::Mode::kJson)) {
          Str(w, *r);  // the body's text, as it would be sent
        } else {
          w.Null();
        }
      }
    }
  }
  if (request.token_claims) {
    rapidjson::Document claims;
    if (ParseJson(*request.token_claims, &claims).ok() && !claims.IsNull()) {
      if (auto r = render("token_claims", TemplateText(claims), kriti::Mode::kJson)) {
        Key(w, "token_claims");
        if (CheckJson(*r).ok()) {
          Raw(w, *r);
        } else {
          Str(w, *r);
        }
      }
    }
  }
  w.EndObject();
  return Done(b);
}

namespace {

void WriteProblems(JsonWriter& w, const std::vector<Problem>& problems) {
  w.StartArray();
  for (const Problem& p : problems) {
    w.StartObject();
    Key(w, "field");
    Str(w, p.field);
    Key(w, "message");
    Str(w, p.message);
    if (p.offset) {
      Key(w, "offset");
      w.Int64(*p.offset);
    }
    if (p.line) {
      Key(w, "line");
      w.Int64(*p.line);
      Key(w, "column");
      w.Int64(p.column.value_or(0));
    }
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

std::string ValidateJson(const std::vector<Problem>& problems,
                         std::optional<std::string_view> preview) {
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  Key(w, "ok");
  w.Bool(problems.empty());
  Key(w, "errors");
  WriteProblems(w, problems);
  Key(w, "preview");
  if (preview) {
    Raw(w, *preview);
  } else {
    w.Null();
  }
  w.EndObject();
  return Done(b);
}

// --- Events -------------------------------------------------------------------

namespace {

// `detail`: inside one event's detail, whose "attempts" is the list of
// attempts; the count is "attempt_count" there.
void WriteSummaryMembers(JsonWriter& w, const EventRow& e, bool detail = false) {
  Key(w, "id");
  IdStr(w, e.id);
  Key(w, "trigger_name");
  Str(w, e.trigger_name);
  Key(w, "type");
  Str(w, e.type);
  Key(w, "status");
  Str(w, e.status);
  Key(w, detail ? "attempt_count" : "attempts");
  w.Int64(e.attempts);
  Key(w, "remark");
  OptStr(w, e.remark);
  Key(w, "ts");
  Time(w, e.ts_ms);
  Key(w, "event_ts");
  Time(w, e.event_ts_ms);
  Key(w, "created_at");
  Time(w, e.created_at_ms);
  Key(w, "processed_at");
  OptTime(w, e.processed_at_ms);
  Key(w, "next_at");
  OptTime(w, e.next_at_ms);
  Key(w, "chain_depth");
  w.Int64(e.chain_depth);
  Key(w, "origin_id");
  OptId(w, e.origin_id);
  Key(w, "payload_bytes");
  w.Int64(e.payload_bytes);
}

void WriteSummary(JsonWriter& w, const EventRow& e) {
  w.StartObject();
  WriteSummaryMembers(w, e);
  w.EndObject();
}

// The request delivery makes for `e` (delivery.cpp's Send, in its header
// order), secrets masked: the standard one, or with `detail` of a
// transformed trigger, the one its transform shapes.
void WriteSentRequest(JsonWriter& w, const EventRow& e, std::string_view payload_json,
                      const DeliveryTarget& target, std::string_view source, bool with_signature,
                      const EventDetail* detail = nullptr) {
  const ShapedRequest* shaped = detail != nullptr && detail->shaped ? &*detail->shaped : nullptr;
  const bool transformed = detail != nullptr && detail->transformed;
  w.StartObject();
  Key(w, "method");
  Str(w, shaped != nullptr ? std::string_view(shaped->method) : "POST");
  Key(w, "url");
  Str(w, shaped != nullptr ? shaped->url : target.url);
  Key(w, "transformed");
  w.Bool(transformed);
  if (transformed && shaped == nullptr) {
    // No request is made: the event fails with this remark.
    Key(w, "transform_error");
    Str(w, detail->transform_error);
  }
  if (shaped != nullptr && !shaped->claims.empty()) {
    // The token's own claims, rendered; the token itself stays masked.
    Key(w, "token_claims");
    Raw(w, shaped->claims);
  }
  Key(w, "headers");
  w.StartArray();
  const auto header = [&](std::string_view name, std::string_view value) {
    w.StartArray();
    Str(w, name);
    Str(w, value);
    w.EndArray();
  };
  if (shaped == nullptr) {
    header("Content-Type", "application/json");
  } else if (shaped->has_body) {
    header("Content-Type", shaped->content_type);
  }
  header("X-SC-Token", "Bearer " + std::string(kMask));
  if (with_signature) {
    header("webhook-id", std::to_string(e.id));
    header("webhook-timestamp", "(the time of each attempt, in seconds)");
    header("webhook-signature", "v1," + std::string(kMask));
  }
  rapidjson::Document headers;
  if (ParseJson(target.headers_json, &headers).ok() && headers.IsObject()) {
    for (const auto& m : headers.GetObject()) {
      const std::string line = std::string(View(m.name)) + ": ";
      if (shaped == nullptr || !shaped->Replaces(line)) header(View(m.name), kMask);
    }
  }
  if (shaped != nullptr) {
    for (const std::string& h : shaped->headers) {
      header(std::string_view(h).substr(0, h.find(':')), kMask);
    }
  }
  w.EndArray();
  Key(w, "body");
  if (shaped == nullptr && transformed) {
    w.Null();
  } else if (shaped == nullptr) {
    Str(w, BuildCloudEvent(e.id, e.type, source, e.ts_ms, payload_json));
  } else if (shaped->has_body) {
    Str(w, shaped->body);
  } else {
    w.Null();
  }
  w.EndObject();
}

}  // namespace

void WriteEventSummary(const EventRow& e, std::string* out) {
  JsonBuffer b;
  JsonWriter w(b);
  WriteSummary(w, e);
  out->append(b.GetString(), b.GetSize());
}

std::string EventPageJson(const std::vector<EventRow>& rows, std::optional<int64_t> next_before,
                          size_t limit) {
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  Key(w, "events");
  w.StartArray();
  for (const EventRow& e : rows) WriteSummary(w, e);
  w.EndArray();
  Key(w, "next_before");
  OptId(w, next_before);
  Key(w, "limit");
  w.Uint64(limit);
  w.EndObject();
  return Done(b);
}

std::string SentRequestJson(const EventRow& e, std::string_view payload_json,
                            const DeliveryTarget& target, std::string_view source,
                            bool with_signature) {
  JsonBuffer b;
  JsonWriter w(b);
  WriteSentRequest(w, e, payload_json, target, source, with_signature);
  return Done(b);
}

std::string EventDetailJson(const EventDetail& d) {
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  Key(w, "event");
  w.StartObject();
  WriteSummaryMembers(w, d.event, /*detail=*/true);
  Key(w, "payload");
  // Stored by Postgres as json: valid JSON text.
  if (d.payload_json && CheckJson(*d.payload_json).ok()) {
    Raw(w, *d.payload_json);
  } else {
    w.Null();
  }
  Key(w, "request");
  if (d.target && d.payload_json) {
    WriteSentRequest(w, d.event, *d.payload_json, *d.target, d.source, d.with_signature, &d);
  } else {
    w.Null();
  }
  Key(w, "attempts");
  w.StartArray();
  for (const AttemptRow& a : d.attempts) {
    w.StartObject();
    Key(w, "id");
    IdStr(w, a.id);
    Key(w, "attempt");
    OptInt(w, a.attempt);
    Key(w, "invocation_time");
    Time(w, a.invocation_time_ms);
    Key(w, "node_id");
    OptStr(w, a.node_id);
    Key(w, "response_status_code");
    OptInt(w, a.response_status_code);
    Key(w, "response_body");
    OptStr(w, a.response_body);
    Key(w, "error_msg");
    OptStr(w, a.error_msg);
    Key(w, "duration_ms");
    OptInt(w, a.duration_ms);
    w.EndObject();
  }
  w.EndArray();
  Key(w, "chained");
  w.StartArray();
  for (const EventRow& e : d.chained) WriteSummary(w, e);
  w.EndArray();
  Key(w, "dlq");
  w.StartArray();
  for (const EventRow& e : d.dlq) WriteSummary(w, e);
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return Done(b);
}

// --- Bulk -----------------------------------------------------------------------

std::optional<FieldError> ParseBulkRequest(std::string_view body, BulkRequest* out) {
  *out = BulkRequest{};
  rapidjson::Document doc;
  if (auto e = ReadBody(body, &doc)) return e;
  bool has_action = false, has_trigger = false;
  for (const auto& m : doc.GetObject()) {
    const std::string name(View(m.name));
    const rapidjson::Value& v = m.value;
    if (name == "action") {
      if (!v.IsString() || (View(v) != "redeliver" && View(v) != "cancel")) {
        return Bad(name, "must be redeliver (failed events) or cancel (staged events)");
      }
      out->action = std::string(View(v));
      has_action = true;
    } else if (name == "trigger") {
      if (!v.IsString() || !ValidName(View(v))) return Bad(name, "must be a trigger's name");
      out->trigger = std::string(View(v));
      has_trigger = true;
    } else if (name == "from" || name == "to") {
      if (v.IsNull()) continue;
      auto ms = TimeValue(v);
      if (!ms) return Bad(name, "not an RFC 3339 time or epoch milliseconds within 0001-9999");
      (name == "from" ? out->from_ms : out->to_ms) = ms;
    } else if (name == "dry_run") {
      if (!v.IsBool()) return Bad(name, "must be true or false");
      out->dry_run = v.GetBool();
    } else if (name == "max_id") {
      if (v.IsNull()) continue;
      auto id = IdValue(v);
      if (!id) return Bad(name, "must be the max_id a dry run returned (a positive integer)");
      out->max_id = id;
    } else {
      return Bad(std::string(Utf8Prefix(name, 100)), "not a member of a bulk request");
    }
  }
  if (!has_action) return Bad("action", "required: redeliver or cancel");
  if (!has_trigger) return Bad("trigger", "required");
  if (!out->dry_run && !out->max_id) {
    return Bad("max_id",
               "required: first count with \"dry_run\": true, then send the max_id it returned");
  }
  return std::nullopt;
}

// --- Nodes and backfills ---------------------------------------------------------

std::string NodesJson(int64_t now_ms, const std::vector<NodeRow>& nodes) {
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  Key(w, "time");
  Time(w, now_ms);
  Key(w, "nodes");
  w.StartArray();
  for (const NodeRow& n : nodes) {
    w.StartObject();
    Key(w, "node_id");
    Str(w, n.node_id);
    Key(w, "role");
    Str(w, n.role);
    Key(w, "slot_name");
    Str(w, n.slot_name);
    Key(w, "confirmed_lsn");
    OptStr(w, n.confirmed_lsn);
    Key(w, "lag_bytes");
    OptInt(w, n.lag_bytes);
    // numeric as Postgres printed it: a JSON number.
    const std::pair<const char*, const std::string*> rates[] = {
        {"events_per_s", &n.events_per_s}, {"deliveries_per_s", &n.deliveries_per_s}};
    for (const auto& [k, v] : rates) {
      Key(w, k);
      rapidjson::Document number;
      if (ParseJson(*v, &number).ok() && number.IsNumber()) {
        w.RawValue(v->data(), v->size(), rapidjson::kNumberType);
      } else {
        w.Int(0);
      }
    }
    Key(w, "in_flight");
    w.Int64(n.in_flight);
    Key(w, "updated_at");
    Time(w, n.updated_at_ms);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return Done(b);
}

std::string BackfillsJson(const std::vector<BackfillRow>& rows) {
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  Key(w, "backfills");
  w.StartArray();
  for (const BackfillRow& r : rows) {
    w.StartObject();
    Key(w, "id");
    IdStr(w, r.id);
    Key(w, "trigger_name");
    Str(w, r.trigger_name);
    Key(w, "state");
    Str(w, r.state);
    Key(w, "rows_done");
    OptInt(w, r.rows_done);
    Key(w, "rows_estimate");
    OptInt(w, r.rows_estimate);
    Key(w, "started_at");
    OptTime(w, r.started_at_ms);
    Key(w, "finished_at");
    OptTime(w, r.finished_at_ms);
    Key(w, "error");
    OptStr(w, r.error);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return Done(b);
}

std::optional<FieldError> ParseBackfillRequest(std::string_view body, BackfillRequest* out) {
  *out = BackfillRequest{};
  rapidjson::Document doc;
  if (auto e = ReadBody(body, &doc)) return e;
  bool has_trigger = false;
  for (const auto& m : doc.GetObject()) {
    const std::string name(View(m.name));
    const rapidjson::Value& v = m.value;
    if (name == "trigger") {
      if (!v.IsString() || !ValidName(View(v))) return Bad(name, "must be a trigger's name");
      out->trigger = std::string(View(v));
      has_trigger = true;
    } else if (name == "condition") {
      if (v.IsNull()) continue;
      if (!v.IsString()) return Bad(name, "must be a string or null");
      if (v.GetStringLength() > 0) {
        auto problems = CheckCondition(View(v), "DB_INSERT");
        if (!problems.empty()) return Bad(name, problems.front().message);
        out->condition = std::string(View(v));
      }
    } else {
      return Bad(std::string(Utf8Prefix(name, 100)), "not a member of a backfill request");
    }
  }
  if (!has_trigger) return Bad("trigger", "required");
  return std::nullopt;
}

// --- Source catalog -----------------------------------------------------------------

std::string TablesJson(const std::vector<TableEntry>& tables, bool truncated) {
  std::vector<std::string> schemas;
  for (const TableEntry& t : tables) {
    if (std::find(schemas.begin(), schemas.end(), t.schema) == schemas.end()) {
      schemas.push_back(t.schema);
    }
  }
  std::sort(schemas.begin(), schemas.end());
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  Key(w, "schemas");
  w.StartArray();
  for (const std::string& s : schemas) Str(w, s);
  w.EndArray();
  Key(w, "tables");
  w.StartArray();
  for (const TableEntry& t : tables) {
    w.StartObject();
    Key(w, "schema");
    Str(w, t.schema);
    Key(w, "name");
    Str(w, t.name);
    Key(w, "partitioned");
    w.Bool(t.partitioned);
    Key(w, "primary_key");
    w.StartArray();
    for (const std::string& c : t.primary_key) Str(w, c);
    w.EndArray();
    Key(w, "replica_identity");
    Str(w, t.replica_identity);
    Key(w, "columns");
    w.StartArray();
    for (const ColumnInfo& c : t.columns) {
      w.StartObject();
      Key(w, "name");
      Str(w, c.name);
      Key(w, "type");
      Str(w, c.type);
      Key(w, "nullable");
      w.Bool(c.nullable);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  Key(w, "truncated");
  w.Bool(truncated);
  w.EndObject();
  return Done(b);
}

std::string PrimaryMessage(std::string_view what) {
  std::string_view s = what;
  if (s.substr(0, 8) == "ERROR:  ") s.remove_prefix(8);
  s = s.substr(0, s.find('\n'));
  std::string out;
  ReplaceInvalidUtf8(Utf8Prefix(s, 300), &out);
  return out;
}

}  // namespace walhook::admin
