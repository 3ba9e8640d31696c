#include "walhook/trigger.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "walhook/file_event.h"
#include "walhook/json.h"
#include "walhook/utf8.h"

namespace walhook {

EventKind ParseEventKind(std::string_view type) {
  if (type == "DB_INSERT") return EventKind::kDbInsert;
  if (type == "DB_UPDATE") return EventKind::kDbUpdate;
  if (type == "DB_DELETE") return EventKind::kDbDelete;
  if (type == "FILE_CREATE") return EventKind::kFileCreate;
  if (type == "FILE_DELETE") return EventKind::kFileDelete;
  return EventKind::kCustom;
}

std::string_view EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kDbInsert: return "DB_INSERT";
    case EventKind::kDbUpdate: return "DB_UPDATE";
    case EventKind::kDbDelete: return "DB_DELETE";
    case EventKind::kFileCreate: return "FILE_CREATE";
    case EventKind::kFileDelete: return "FILE_DELETE";
    case EventKind::kCustom: return "";
  }
  return "";
}

namespace {

// Reads one SQL identifier from the front of `text`: "Name" keeps its case
// ("" inside is a quote), an unquoted name folds to lower case.
bool TakeIdentifier(std::string_view* text, std::string* out) {
  out->clear();
  std::string_view t = *text;
  if (t.empty()) return false;
  if (t.front() == '"') {
    size_t i = 1;
    for (;;) {
      if (i >= t.size()) return false;
      if (t[i] == '"') {
        if (i + 1 < t.size() && t[i + 1] == '"') {
          out->push_back('"');
          i += 2;
          continue;
        }
        break;
      }
      out->push_back(t[i++]);
    }
    *text = t.substr(i + 1);
    return !out->empty();
  }
  size_t i = 0;
  while (i < t.size() && t[i] != '.') {
    const unsigned char c = static_cast<unsigned char>(t[i]);
    if (!(std::isalnum(c) || c == '_' || c == '$' || c >= 0x80)) return false;
    out->push_back(static_cast<char>(std::tolower(c)));
    ++i;
  }
  *text = t.substr(i);
  return !out->empty() && !std::isdigit(static_cast<unsigned char>((*out)[0]));
}

}  // namespace

bool ParseTableName(std::string_view text, std::string* schema, std::string* table) {
  std::string first;
  if (!TakeIdentifier(&text, &first)) return false;
  if (text.empty()) {
    *schema = "public";
    *table = std::move(first);
    return true;
  }
  if (text.front() != '.') return false;
  text.remove_prefix(1);
  std::string second;
  if (!TakeIdentifier(&text, &second) || !text.empty()) return false;
  *schema = std::move(first);
  *table = std::move(second);
  return true;
}

std::string CheckPayloadTrigger(Trigger* t) {
  t->parsed_condition = nullptr;
  if (t->path_prefix.has_value()) {
    Result<std::string> prefix = NormalizePathPrefix(*t->path_prefix);
    if (!prefix.ok()) return prefix.error();
    t->path_prefix = std::move(*prefix);
  }
  if (!t->condition.has_value()) return "";
  Result<Condition> parsed = ParseCondition(*t->condition);
  if (!parsed.ok()) return parsed.error();
  if (parsed->Uses(Scope::kNew) || parsed->Uses(Scope::kOld)) {
    return t->kind == EventKind::kCustom
               ? "condition: new.* and old.* are for DB_* triggers; a custom event's condition "
                 "uses payload.a.b"
               : "condition: new.* and old.* are for DB_* triggers; a file event's condition "
                 "uses payload.path, payload.type, payload.meta.size";
  }
  t->parsed_condition = std::make_shared<const Condition>(std::move(*parsed));
  return "";
}

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// RFC 9110 token characters.

}  // namespace

bool IsHeaderTokenChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A header name or value quoted for last_error: control bytes escaped, at
// most 64 bytes of it, never cut inside a character.
std::string ShownInMessage(std::string_view text) {
  std::string out;
  for (const char c : Utf8Prefix(text, 64)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{:02x}", u);
    } else if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else {
      out.push_back(c);
    }
  }
  if (text.size() > 64) out += "...";
  return StorableText(out);
}

bool IsReservedHeader(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "host", "content-length", "transfer-encoding", "connection", "content-type", "x-sc-token"};
  for (const std::string_view r : kReserved) {
    if (EqualsIgnoreCase(name, r)) return true;
  }
  return name.size() >= 8 && EqualsIgnoreCase(name.substr(0, 8), "webhook-");
}

std::string CheckTriggerHeaders(std::string_view headers_json) {
  rapidjson::Document doc;
  const Status parsed = ParseJson(headers_json, &doc);
  if (!parsed.ok()) return "headers: " + parsed.message();
  if (!doc.IsObject()) return "headers: not a JSON object";
  for (const auto& m : doc.GetObject()) {
    const std::string_view name(m.name.GetString(), m.name.GetStringLength());
    if (name.empty()) return "headers: a header name is empty";
    if (!std::all_of(name.begin(), name.end(), IsHeaderTokenChar)) {
      return fmt::format(
          "headers: \"{}\" is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ "
          "only; no spaces, colons or line breaks)",
          ShownInMessage(name));
    }
    if (IsReservedHeader(name)) {
      return fmt::format(
          "headers: \"{}\" is set by walhook and may not be set by a trigger (Host, "
          "Content-Length, Transfer-Encoding, Connection, Content-Type, X-SC-Token and "
          "webhook-* are walhook's)",
          ShownInMessage(name));
    }
    if (!m.value.IsString()) {
      return fmt::format("headers: the value of \"{}\" is not a string", ShownInMessage(name));
    }
    const std::string_view value(m.value.GetString(), m.value.GetStringLength());
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
      return fmt::format("headers: the value of \"{}\" holds a line break or a NUL byte",
                         ShownInMessage(name));
    }
  }
  return "";
}

std::optional<Trigger> CustomTrigger(std::string name, std::string type,
                                     std::optional<std::string> condition, bool enabled) {
  Trigger t;
  t.name = std::move(name);
  t.type = std::move(type);
  t.kind = EventKind::kCustom;
  t.enabled = enabled;
  t.condition = std::move(condition);
  if (!CheckPayloadTrigger(&t).empty()) return std::nullopt;
  return t;
}

}  // namespace walhook
