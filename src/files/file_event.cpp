#include "walhook/file_event.h"

#include <fmt/format.h>

#include "walhook/json.h"
#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook {

namespace {

// Names are bytes on Linux; event_logs is UTF-8.
void WriteName(JsonWriter& w, std::string_view name) {
  std::string clean;
  if (!IsValidUtf8(name)) {
    ReplaceInvalidUtf8(name, &clean);
    name = clean;
  }
  w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}

}  // namespace

void AppendFilePayload(std::string_view root, const FileEvent& event, std::string* out) {
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  w.Key("root");
  WriteName(w, root);
  w.Key("path");
  WriteName(w, event.path);
  w.Key("type");
  w.String(event.dir ? "dir" : "file");
  w.Key("meta");
  w.StartObject();
  if (event.meta.has_value()) {
    w.Key("size");
    w.Int64(event.meta->size);
    w.Key("mtime");
    const std::string mtime = FormatRfc3339Millis(event.meta->mtime_ms);
    w.String(mtime.data(), static_cast<rapidjson::SizeType>(mtime.size()));
  }
  w.EndObject();
  w.EndObject();
  out->append(b.GetString(), b.GetSize());
}

Result<std::string> NormalizePathPrefix(std::string_view prefix) {
  if (prefix.empty() || prefix.front() != '/') {
    return Status::Error(fmt::format(
        "path_prefix \"{}\" must start with / (paths are relative to the --watch-dir, e.g. "
        "/uploads)",
        prefix));
  }
  std::string out;
  size_t i = 0;
  while (i < prefix.size()) {
    while (i < prefix.size() && prefix[i] == '/') ++i;
    const size_t end = std::min(prefix.find('/', i), prefix.size());
    const std::string_view part = prefix.substr(i, end - i);
    if (part == "." || part == "..") {
      return Status::Error(fmt::format(
          "path_prefix \"{}\" has a \"{}\" component; write the path plainly", prefix, part));
    }
    if (!part.empty()) {
      out.push_back('/');
      out.append(part);
    }
    i = end;
  }
  return out;
}

bool PathUnderPrefix(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

}  // namespace walhook
