#include "walhook/file_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "walhook/delivery.h"
#include "walhook/errors.h"
#include "walhook/event_batch.h"
#include "walhook/file_event.h"
#include "walhook/log.h"
#include "walhook/matcher.h"
#include "walhook/metrics.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kMask = IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;
constexpr size_t kBatch = 1000;  // events per INSERT, and at most in hand
// A MOVED_FROM waits for its MOVED_TO, and files a walk found wait for their
// CLOSE_WRITE, until the queue has been quiet this long...
constexpr milliseconds kQuiet{10};
// ...or, for found files under a steady stream of events, this long.
constexpr milliseconds kFoundWait{200};
constexpr milliseconds kTriggerCache{1000};  // trigger changes count within a second
constexpr milliseconds kMaxBackoff{5000};
// mtime/ctime come from a coarse clock: a rescan looks this far further back.
constexpr int64_t kRescanSlackMs = 1000;
// At most this many files a walk found wait for the queue to drain (see
// Impl::found); past that they are reported at once.
constexpr size_t kFoundMax = 100000;
constexpr int kReadsPerRound = 64;  // of 64 KiB each, between flushes

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t Ms(const timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

FileMeta MetaOf(const struct stat& st) {
  return FileMeta{.size = static_cast<int64_t>(st.st_size), .mtime_ms = Ms(st.st_mtim)};
}

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

std::string ErrnoText(int err) {
  return std::strerror(err);  // NOLINT(concurrency-mt-unsafe): glibc's is thread-safe
}

}  // namespace

struct FileWatcher::Impl {
  // A watched directory: root index and path relative to it ("" = the root).
  struct Watch {
    size_t root = 0;
    std::string path;
    uint64_t seen = 0;  // the rescan that last found it
    dev_t dev = 0;      // which directory: a rescan tells a replaced one
    ino_t ino = 0;
  };
  // A MOVED_FROM waiting for its MOVED_TO.
  struct Move {
    uint32_t cookie = 0;
    size_t root = 0;
    std::string path;
    bool dir = false;
  };
  // What a walk reports: nothing (startup), everything (a directory that is
  // new to us), or what changed since a time (a rescan).
  enum class Report { kNothing, kAll, kChangedSince };

  Impl(const Config& c, Delivery& d) : cfg(c), delivery(d) {}

  const Config& cfg;
  Delivery& delivery;
  std::vector<std::string> roots;  // as given, without trailing slashes
  int fd = -1;
  int wake = -1;  // eventfd written by Stop
  std::thread thread;
  std::atomic<bool> stop{false};

  std::unordered_map<int, Watch> watches;
  std::optional<Move> pending;
  uint64_t generation = 0;
  int64_t last_read_ms = 0;
  size_t reported = 0;  // events emitted so far (for the rescan's log line)
  bool limit_said = false;
  int watch_errno = 0;  // why the last AddWatch failed

  // Files a walk found, reported once the queue has been quiet for kQuiet
  // (at most kFoundWait later). A file written in a new directory (cp -r)
  // just after its watch took hold is found by the walk and also gets a
  // CLOSE_WRITE, maybe still being written when the walk saw it: that event
  // reports it instead, once. The directories a walk reported are
  // remembered so their IN_CREATE, also in the queue, is dropped.
  struct Found {
    size_t root = 0;
    std::string path;
    FileMeta meta;
    bool taken = false;  // reported by its own event, or dropped
  };
  std::vector<Found> found;
  std::unordered_map<std::string, size_t> found_index;  // Key → index into found
  std::unordered_set<std::string> walked_dirs;          // Key
  Clock::time_point found_since;                        // when found got its first entry

  std::vector<FileEvent> batch;
  std::unique_ptr<pqxx::connection> conn;
  std::shared_ptr<const Matcher> matcher;
  Clock::time_point matcher_loaded;
  std::string db_error;

  std::string Full(size_t root, std::string_view path) const {
    if (roots[root] == "/") return path.empty() ? "/" : std::string(path);
    return roots[root] + std::string(path);
  }

  // Watches a directory; -1 (said in the log when it matters) when it cannot.
  int AddWatch(size_t root, const std::string& path) {
    const std::string full = Full(root, path);
    // A root given as a symbolic link is followed; nothing inside is.
    const uint32_t mask = path.empty() ? kMask : kMask | IN_DONT_FOLLOW;
    const int wd = inotify_add_watch(fd, full.c_str(), mask);
    if (wd < 0) {
      const int err = errno;
      watch_errno = err;
      if (err == ENOSPC) {
        if (!limit_said) {
          LogError(
              "file events: the inotify watch limit is reached (fs.inotify.max_user_watches): {} "
              "and further new directories are not watched; raise it with sysctl",
              full);
        }
        limit_said = true;
      } else if (err != ENOENT && err != ENOTDIR) {
        LogWarn("file events: cannot watch {}: {}; changes under it are not seen", full,
                ErrnoText(err));
      }
      return -1;
    }
    const auto [it, added] = watches.try_emplace(wd);
    Watch& w = it->second;
    if (!added && (w.root != root || w.path != path)) {
      // The same directory under a second name (a bind mount): watched once,
      // under the first, and not walked again (it may hold its own parent).
      LogWarn(
          "file events: {} is {} again (a bind mount?); its changes are reported under the "
          "first name",
          full, Full(w.root, w.path));
      w.seen = generation;
      return -1;
    }
    w.root = root;
    w.path = path;
    w.seen = generation;
    if (const auto st = Stat(root, path)) {
      w.dev = st->st_dev;
      w.ino = st->st_ino;
    }
    return wd;
  }

  void Emit(EventKind kind, size_t root, std::string path, bool dir, std::optional<FileMeta> meta) {
    if (!IsValidUtf8(path)) {  // Linux names are bytes; order_key is UTF-8 text
      std::string clean;
      ReplaceInvalidUtf8(path, &clean);
      path = std::move(clean);
    }
    batch.push_back(
        FileEvent{.kind = kind, .root = root, .path = std::move(path), .dir = dir, .meta = meta});
    ++reported;
    if (batch.size() >= kBatch) Flush();
  }

  static std::string Key(size_t root, const std::string& path) {
    return std::to_string(root) + ":" + path;
  }

  // A file a walk found: reported when the queue is drained (see found).
  void AddFound(size_t root, std::string path, const struct stat& st) {
    if (found.size() >= kFoundMax) {
      Emit(EventKind::kFileCreate, root, std::move(path), false, MetaOf(st));
      return;
    }
    if (found.empty()) found_since = Clock::now();
    found_index[Key(root, path)] = found.size();
    found.push_back(Found{.root = root, .path = std::move(path), .meta = MetaOf(st)});
  }

  // The file found by a walk that this event is about, if any, taken out.
  Found* TakeFound(size_t root, const std::string& path) {
    if (found_index.empty()) return nullptr;
    const auto it = found_index.find(Key(root, path));
    if (it == found_index.end()) return nullptr;
    Found* f = &found[it->second];
    found_index.erase(it);
    if (f->taken) return nullptr;
    f->taken = true;
    return f;
  }

  // The queue has been quiet (or kFoundWait has passed): the events about
  // what the walks found have been read; report the rest as they are now.
  void ReportFound() {
    for (Found& f : found) {
      if (f.taken) continue;
      const auto st = Stat(f.root, f.path);
      Emit(EventKind::kFileCreate, f.root, std::move(f.path), false, st ? MetaOf(*st) : f.meta);
    }
    found.clear();
    found_index.clear();
    walked_dirs.clear();
  }

  // lstat of a path in the tree; nullopt when it is gone.
  std::optional<struct stat> Stat(size_t root, const std::string& path) const {
    struct stat st {};
    if (lstat(Full(root, path).c_str(), &st) != 0) return std::nullopt;
    return st;
  }

  // Watches the directories under `path` (already watched itself) and
  // reports what `report` asks for, parents before their contents.
  void Walk(size_t root, const std::string& path, Report report, int64_t since_ms) {
    const std::string full = Full(root, path);
    const DirPtr d(opendir(full.c_str()));
    if (d == nullptr) {
      const int err = errno;
      if (err != ENOENT && err != ENOTDIR) {
        LogWarn("file events: cannot read {}: {}; changes under it are not seen", full,
                ErrnoText(err));
      }
      return;
    }
    const int dfd = dirfd(d.get());
    while (const dirent* e = readdir(d.get())) {
      const std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone since
      std::string child = path + "/" + std::string(name);
      if (S_ISDIR(st.st_mode)) {
        const size_t known = watches.size();
        if (AddWatch(root, child) < 0) continue;
        // A directory first seen by a rescan is new: all of it is reported.
        Report sub = report;
        if (report == Report::kChangedSince && watches.size() > known) sub = Report::kAll;
        if (sub == Report::kAll) {
          Emit(EventKind::kFileCreate, root, child, true, MetaOf(st));
          walked_dirs.insert(Key(root, child));
        }
        Walk(root, child, sub, since_ms);
      } else if (report == Report::kAll || (report == Report::kChangedSince &&
                                            std::max(Ms(st.st_mtim), Ms(st.st_ctim)) >= since_ms)) {
        AddFound(root, std::move(child), st);
      }
    }
  }

  // Stops watching `path` and everything under it.
  void Forget(size_t root, const std::string& path) {
    for (auto it = watches.begin(); it != watches.end();) {
      if (it->second.root == root && PathUnderPrefix(it->second.path, path)) {
        inotify_rm_watch(fd, it->first);
        it = watches.erase(it);
      } else {
        ++it;
      }
    }
    // Files a walk found there are gone with it.
    for (Found& f : found) {
      if (!f.taken && f.root == root && PathUnderPrefix(f.path, path)) {
        f.taken = true;
        found_index.erase(Key(f.root, f.path));
      }
    }
  }

  // A directory renamed inside the trees: its watches keep their
  // descriptors, under the new path, and what a walk found there moves too.
  void Rename(const Move& from, size_t root, const std::string& path) {
    for (auto& [wd, w] : watches) {
      if (w.root == from.root && PathUnderPrefix(w.path, from.path)) {
        w.root = root;
        w.path = path + w.path.substr(from.path.size());
      }
    }
    for (size_t i = 0; i < found.size(); ++i) {
      Found& f = found[i];
      if (f.taken || f.root != from.root || !PathUnderPrefix(f.path, from.path)) continue;
      found_index.erase(Key(f.root, f.path));
      f.root = root;
      f.path = path + f.path.substr(from.path.size());
      found_index[Key(f.root, f.path)] = i;
    }
  }

  // The pending MOVED_FROM had no MOVED_TO: moved out of the trees.
  void MovedOut() {
    const Move m = std::move(*pending);
    pending.reset();
    if (m.dir) Forget(m.root, m.path);
    Emit(EventKind::kFileDelete, m.root, m.path, m.dir, std::nullopt);
  }

  void Handle(const inotify_event& ev) {
    if ((ev.mask & IN_Q_OVERFLOW) != 0) {
      Rescan();
      return;
    }
    if (pending && !((ev.mask & IN_MOVED_TO) != 0 && ev.cookie == pending->cookie)) MovedOut();
    const auto it = watches.find(ev.wd);
    if (it == watches.end()) return;
    if ((ev.mask & IN_IGNORED) != 0) {
      watches.erase(it);
      return;
    }
    if ((ev.mask & IN_UNMOUNT) != 0) {
      LogWarn("file events: the filesystem of {} was unmounted; it is no longer watched",
              Full(it->second.root, it->second.path));
      return;
    }
    const Watch w = it->second;  // a copy: what follows changes the map
    if ((ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
      // Below a root, the parent's DELETE or MOVED_FROM says it.
      if (!w.path.empty()) return;
      LogError(
          "file events: --watch-dir {} was {}; it is no longer watched (restart walhook "
          "once it is back)",
          roots[w.root], (ev.mask & IN_MOVE_SELF) != 0 ? "moved away" : "deleted");
      Forget(w.root, "");
      return;
    }
    if (ev.len == 0) return;
    std::string path = w.path + "/" + ev.name;
    const bool dir = (ev.mask & IN_ISDIR) != 0;
    if ((ev.mask & (IN_DELETE | IN_MOVED_FROM)) != 0) {
      // Found by a walk and gone before the queue drained: created, then deleted.
      if (Found* f = TakeFound(w.root, path)) {
        Emit(EventKind::kFileCreate, f->root, f->path, false, f->meta);
      }
      // A directory of that name made again is new.
      if (dir) walked_dirs.erase(Key(w.root, path));
    }
    if ((ev.mask & IN_CREATE) != 0) {
      const auto st = Stat(w.root, path);
      if (dir) {
        if (walked_dirs.erase(Key(w.root, path)) > 0) return;  // the walk reported it
        Emit(EventKind::kFileCreate, w.root, path, true,
             st ? std::optional(MetaOf(*st)) : std::nullopt);
        // What was made inside before the watch took hold is reported by the walk.
        if (AddWatch(w.root, path) >= 0) Walk(w.root, path, Report::kAll, 0);
      } else if (st && !S_ISREG(st->st_mode)) {
        (void)TakeFound(w.root, path);  // this event reports it
        // A symbolic link (or a fifo, a socket) is never written and closed.
        Emit(EventKind::kFileCreate, w.root, std::move(path), false, MetaOf(*st));
      }
      return;
    }
    if ((ev.mask & IN_CLOSE_WRITE) != 0) {
      const auto st = Stat(w.root, path);
      (void)TakeFound(w.root, path);  // this event reports it
      Emit(EventKind::kFileCreate, w.root, std::move(path), false,
           st ? std::optional(MetaOf(*st)) : std::nullopt);
      return;
    }
    if ((ev.mask & IN_MOVED_FROM) != 0) {
      pending = Move{.cookie = ev.cookie, .root = w.root, .path = std::move(path), .dir = dir};
      return;
    }
    if ((ev.mask & IN_MOVED_TO) != 0) {
      const auto st = Stat(w.root, path);
      const auto meta = st ? std::optional(MetaOf(*st)) : std::nullopt;
      if (pending) {  // the cookie matched: a rename inside the trees
        const Move from = std::move(*pending);
        pending.reset();
        Emit(EventKind::kFileDelete, from.root, from.path, from.dir, std::nullopt);
        if (dir) Rename(from, w.root, path);
        Emit(EventKind::kFileCreate, w.root, std::move(path), dir, meta);
        return;
      }
      if (dir && walked_dirs.erase(Key(w.root, path)) > 0) return;
      (void)TakeFound(w.root, path);
      Emit(EventKind::kFileCreate, w.root, path, dir, meta);
      if (dir && AddWatch(w.root, path) >= 0) Walk(w.root, path, Report::kAll, 0);
      return;
    }
    if ((ev.mask & IN_DELETE) != 0) {
      Emit(EventKind::kFileDelete, w.root, std::move(path), dir, std::nullopt);
    }
  }

  // The kernel dropped events: look at the trees again.
  void Rescan() {
    if (pending) MovedOut();
    const int64_t since = last_read_ms - kRescanSlackMs;
    LogWarn(
        "file events: the inotify queue overflowed (fs.inotify.max_queued_events); "
        "rescanning the watched directories");
    const size_t before = reported;
    ++generation;
    // Directories gone, renamed or replaced since: deleted first, deepest
    // first, before the walk reports what is there now under those names.
    std::vector<Watch> vanished;
    for (auto it = watches.begin(); it != watches.end();) {
      const auto st = Stat(it->second.root, it->second.path);
      if (st && S_ISDIR(st->st_mode) && st->st_dev == it->second.dev &&
          st->st_ino == it->second.ino) {
        ++it;
        continue;
      }
      inotify_rm_watch(fd, it->first);
      vanished.push_back(std::move(it->second));
      it = watches.erase(it);
    }
    std::sort(vanished.begin(), vanished.end(),
              [](const Watch& a, const Watch& b) { return a.path > b.path; });
    for (Watch& w : vanished) {
      if (w.path.empty()) {
        LogError("file events: --watch-dir {} is gone; it is no longer watched", roots[w.root]);
        continue;
      }
      Emit(EventKind::kFileDelete, w.root, std::move(w.path), true, std::nullopt);
    }
    for (size_t i = 0; i < roots.size(); ++i) {
      if (AddWatch(i, "") >= 0) Walk(i, "", Report::kChangedSince, since);
    }
    LogWarn(
        "file events: rescanned; {} events for directories that came or went and files "
        "changed since {} (files deleted during the overflow are not reported)",
        reported - before, FormatTime(since));
  }

  static std::string FormatTime(int64_t ms) {
    const time_t s = static_cast<time_t>(ms / 1000);
    struct tm tm {};
    gmtime_r(&s, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }

  void Loop() {
    alignas(inotify_event) char buf[64 * 1024];
    while (!stop) {
      pollfd fds[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
      const bool waiting = pending.has_value() || !found.empty();
      const int n = poll(fds, 2, waiting ? static_cast<int>(kQuiet.count()) : -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        LogError("file events: poll: {}; no longer watching", ErrnoText(errno));
        return;
      }
      if ((fds[1].revents & POLLIN) != 0) break;
      if (n == 0) {  // quiet: no MOVED_TO is coming, no CLOSE_WRITE for what was found
        if (pending) MovedOut();
        ReportFound();
      } else {
        const int64_t read_at = NowMs();
        // A bounded round, so Stop is heard under a steady stream of events.
        for (int reads = 0; reads < kReadsPerRound && !stop; ++reads) {
          const ssize_t len = read(fd, buf, sizeof buf);
          if (len < 0 && errno == EINTR) continue;
          if (len <= 0) {  // EAGAIN: all read
            // Under a steady stream of events, found files wait this long at most.
            if (!found.empty() && Clock::now() - found_since > kFoundWait) ReportFound();
            break;
          }
          for (ssize_t off = 0; off < len;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
            Handle(*ev);
            off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
          }
        }
        last_read_ms = read_at;
      }
      Flush();
    }
    if (pending) MovedOut();
    ReportFound();
    Flush();
  }

  // The FILE_* triggers, reloaded when older than kTriggerCache.
  std::shared_ptr<const Matcher> Triggers() {
    if (matcher != nullptr && Clock::now() - matcher_loaded < kTriggerCache) return matcher;
    pqxx::nontransaction tx(*conn);
    const auto rows = tx.exec(
        fmt::format("SELECT name, type, condition, path_prefix, enabled, ordered FROM {}.triggers "
                    "WHERE type IN ('FILE_CREATE', 'FILE_DELETE')",
                    conn->quote_name(cfg.schema)));
    std::vector<Trigger> triggers;
    for (const auto& r : rows) {
      Trigger t;
      t.name = r[0].as<std::string>();
      t.type = r[1].as<std::string>();
      t.kind = ParseEventKind(t.type);
      if (!r[2].is_null()) t.condition = r[2].as<std::string>();
      if (!r[3].is_null()) t.path_prefix = r[3].as<std::string>();
      t.enabled = r[4].as<bool>();
      t.ordered = r[5].as<bool>();
      // Refused ones are shown in trigger_status by the streaming node.
      if (CheckPayloadTrigger(&t).empty()) triggers.push_back(std::move(t));
    }
    matcher = std::make_shared<const Matcher>(std::move(triggers));
    matcher_loaded = Clock::now();
    return matcher;
  }

  // One INSERT for the batch's events of every matching trigger.
  void Store() {
    if (conn == nullptr) conn = std::make_unique<pqxx::connection>(cfg.eventing_db);
    const auto m = Triggers();
    if (!m->has_file()) return;
    std::string names = "{", types = "{", payloads = "{", keys = "{", payload;
    std::vector<const Trigger*> matched;
    size_t n = 0;
    for (const FileEvent& e : batch) {
      payload.clear();
      AppendFilePayload(roots[e.root], e, &payload);
      matched.clear();
      m->MatchFile(e.kind, e.path, payload, &matched);
      for (const Trigger* t : matched) {
        AppendArrayElement(&names, t->name);
        AppendArrayElement(&types, t->type);
        AppendArrayElement(&payloads, payload);
        // An ordered trigger delivers one event at a time per path.
        AppendArrayElement(&keys, t->ordered ? std::string_view(e.path) : std::string_view());
        ++n;
      }
    }
    if (n == 0) return;
    names += "}";
    types += "}";
    payloads += "}";
    keys += "}";
    pqxx::nontransaction tx(*conn);
    tx.exec_params(
        fmt::format("INSERT INTO {}.event_logs (trigger_name, type, status, payload, ts, "
                    "event_ts, order_key) SELECT n, t, 'staged', p::json, now(), now(), "
                    "nullif(k, '') FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
                    "AS u(n, t, p, k)",
                    conn->quote_name(cfg.schema)),
        names, types, payloads, keys);
    GlobalMetrics().AddFileEvents(n);
    delivery.Poke();
  }

  // Stores the batch, waiting while the eventing database is down (the
  // kernel's queue holds new changes meanwhile).
  void Flush() {
    if (batch.empty()) return;
    auto backoff = milliseconds(200);
    for (;;) {
      try {
        Store();
        batch.clear();
        if (!db_error.empty()) UnclaimMessage(db_error);
        db_error.clear();
        return;
      } catch (const std::exception& e) {
        conn.reset();
        if (e.what() != db_error) {
          if (ClaimMessage(e.what())) LogError("file events: {}; retrying with backoff", e.what());
          db_error = e.what();
        }
        if (stop) {
          LogWarn(
              "file events: {} events not stored: stopping while the eventing database is "
              "unavailable",
              batch.size());
          batch.clear();
          return;
        }
        pollfd p{wake, POLLIN, 0};
        poll(&p, 1, static_cast<int>(backoff.count()));
        backoff = std::min<milliseconds>(backoff * 2, kMaxBackoff);
      }
    }
  }
};

FileWatcher::FileWatcher(const Config& cfg, Delivery& delivery)
    : impl_(std::make_unique<Impl>(cfg, delivery)) {}

FileWatcher::~FileWatcher() {
  Stop();
  if (impl_->fd >= 0) close(impl_->fd);
  if (impl_->wake >= 0) close(impl_->wake);
}

void FileWatcher::Start() {
  Impl& m = *impl_;
  std::vector<std::string> canonical;
  for (const std::string& given : m.cfg.watch_dirs) {
    std::string root = given;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    struct stat st {};
    if (stat(root.c_str(), &st) != 0) {
      throw FatalError(kExitUsage, fmt::format("--watch-dir {}: {}", given, ErrnoText(errno)));
    }
    if (!S_ISDIR(st.st_mode)) {
      throw FatalError(kExitUsage, fmt::format("--watch-dir {}: not a directory", given));
    }
    if (const DirPtr d(opendir(root.c_str())); d == nullptr) {
      throw FatalError(kExitUsage,
                       fmt::format("--watch-dir {}: cannot read it: {}", given, ErrnoText(errno)));
    }
    char real[PATH_MAX];
    if (realpath(root.c_str(), real) == nullptr) {
      throw FatalError(kExitUsage, fmt::format("--watch-dir {}: {}", given, ErrnoText(errno)));
    }
    const std::string here = *NormalizePathPrefix(real);
    for (size_t i = 0; i < canonical.size(); ++i) {
      const std::string& other = canonical[i];
      if (PathUnderPrefix(here, other) || PathUnderPrefix(other, here)) {
        throw FatalError(
            kExitUsage,
            fmt::format("--watch-dir {} and --watch-dir {} overlap: a change would be reported "
                        "twice; give only the outer one",
                        m.roots[i], given));
      }
    }
    canonical.push_back(here);
    m.roots.push_back(std::move(root));
  }
  if (m.roots.empty()) return;
  m.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (m.fd < 0) {
    throw FatalError(kExitSetup,
                     fmt::format("--watch-dir: inotify: {} (raise fs.inotify.max_user_instances)",
                                 ErrnoText(errno)));
  }
  m.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m.wake < 0) {
    throw FatalError(kExitSetup, fmt::format("--watch-dir: eventfd: {}", ErrnoText(errno)));
  }
  for (size_t i = 0; i < m.roots.size(); ++i) {
    if (m.AddWatch(i, "") < 0) {
      throw FatalError(kExitUsage, fmt::format("--watch-dir {}: cannot watch it: {}", m.roots[i],
                                               ErrnoText(m.watch_errno)));
    }
    m.Walk(i, "", Impl::Report::kNothing, 0);
  }
  m.last_read_ms = NowMs();
  LogInfo("file events: watching {} ({} directories)", fmt::join(m.roots, ", "), m.watches.size());
  m.thread = std::thread([&m] { m.Loop(); });
}

void FileWatcher::Stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  m.stop = true;
  const uint64_t one = 1;
  (void)!write(m.wake, &one, sizeof one);
  m.thread.join();
}

}  // namespace walhook
