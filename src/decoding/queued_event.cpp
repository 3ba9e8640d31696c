#include "walhook/queued_event.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

namespace walhook {

bool IsCustomEventType(std::string_view type) {
  if (type.empty()) return false;
  for (char c : type) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return !type.starts_with("DB_") && !type.starts_with("FILE_");
}

Result<QueuedEvent> ParseQueuedEvent(std::string_view content) {
  const size_t nl = content.find('\n');
  if (nl == std::string_view::npos) {
    return Status::Error("queued event without a payload line");
  }
  rapidjson::Document header;
  header.Parse(content.data(), nl);
  if (header.HasParseError() || !header.IsObject()) {
    return Status::Error("queued event whose header is not a JSON object");
  }
  QueuedEvent out;
  const auto type = header.FindMember("type");
  if (type == header.MemberEnd() || !type->value.IsString()) {
    return Status::Error("queued event without a \"type\"");
  }
  out.type.assign(type->value.GetString(), type->value.GetStringLength());
  if (!IsCustomEventType(out.type)) {
    return Status::Error(
        fmt::format("queued event type \"{}\" is not a custom event type", out.type.substr(0, 64)));
  }
  const auto delay = header.FindMember("delay_ms");
  if (delay != header.MemberEnd() && !delay->value.IsNull()) {
    if (!delay->value.IsInt64() || delay->value.GetInt64() < 0) {
      return Status::Error("queued event with a bad \"delay_ms\"");
    }
    out.delay_ms = delay->value.GetInt64();
  }
  const auto at = header.FindMember("at");
  if (at != header.MemberEnd() && !at->value.IsNull()) {
    if (!at->value.IsInt64()) return Status::Error("queued event with a bad \"at\"");
    out.at_ms = at->value.GetInt64();
  }
  out.payload = content.substr(nl + 1);
  rapidjson::Document payload;
  payload.Parse(out.payload.data(), out.payload.size());
  if (payload.HasParseError()) return Status::Error("queued event whose payload is not JSON");
  return out;
}

}  // namespace walhook
