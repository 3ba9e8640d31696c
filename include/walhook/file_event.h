#pragma once
// File events (SPEC §6): what a change in a watched tree becomes, and how
// FILE_* triggers' path_prefix selects them. Pure values and functions; the
// inotify watcher (file_watcher.h) produces the events.
// Thread-safety: plain values and functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "walhook/result.h"
#include "walhook/trigger.h"

namespace walhook {

struct FileMeta {
  int64_t size = 0;      // bytes
  int64_t mtime_ms = 0;  // epoch ms
};

struct FileEvent {
  EventKind kind = EventKind::kFileCreate;  // kFileCreate or kFileDelete
  size_t root = 0;                          // index of the --watch-dir
  std::string path;                         // relative to the root: "/a/b.txt"
  bool dir = false;
  // What stat said at the time (FILE_CREATE); nullopt sends "meta": {} (a
  // FILE_DELETE, or a file gone before it could be looked at).
  std::optional<FileMeta> meta;
};

// The event's data object: {"root", "path", "type": "file"|"dir", "meta":
// {"size", "mtime"}} (SPEC §4), appended to *out. A name that is not UTF-8
// (Linux names are bytes) has each invalid byte replaced with U+FFFD.
void AppendFilePayload(std::string_view root, const FileEvent& event, std::string* out);

// A path_prefix as users write it, made comparable: "/uploads/" → "/uploads",
// "//a//b" → "/a/b", "/" → "" (everything). An error, naming what is wrong,
// for a prefix that does not start with "/" or has a "." or ".." component.
Result<std::string> NormalizePathPrefix(std::string_view prefix);

// Whether `path` (relative to a root, starting with "/") is `prefix` or lies
// under it, by whole components: "/up" holds "/up" and "/up/a", not
// "/uploads". REQUIRES: `prefix` normalized.
bool PathUnderPrefix(std::string_view path, std::string_view prefix);

}  // namespace walhook
