// File events (--watch-dir), end to end: a real Postgres, the walhook binary
// watching a real directory, and a real webhook receiver.

#include <doctest/doctest.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "receiver.h"

namespace walhook::test {
namespace {

namespace fs = std::filesystem;

constexpr int kHookPort = 4451;

void Write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

void Init(const std::string& db) {
  Process init({WalhookBinary(), "init", "--source", db});
  REQUIRE_MESSAGE(init.Wait(30s) == 0, init.Output());
}

std::vector<std::string> RunArgs(const std::string& db, const std::vector<fs::path>& dirs) {
  std::vector<std::string> argv = {WalhookBinary(), "run",         "--source", db,
                                   "--secret",      "file-secret", "--listen", "off"};
  for (const fs::path& d : dirs) {
    argv.emplace_back("--watch-dir");
    argv.push_back(d.string());
  }
  return argv;
}

// walhook run watching `dirs`; returns once it streams.
std::unique_ptr<Process> StartRun(const std::string& db, const std::vector<fs::path>& dirs,
                                  std::vector<std::string> prefix = {}) {
  std::vector<std::string> argv = RunArgs(db, dirs);
  argv.insert(argv.begin(), prefix.begin(), prefix.end());
  auto p = std::make_unique<Process>(argv);
  const bool ok =
      WaitFor([&] { return p->Output().find("streaming slot") != std::string::npos; }, 30s, 50ms);
  INFO(p->Output());
  REQUIRE(p->Running());
  REQUIRE(ok);
  return p;
}

// "trigger|path|type" of every event, in id order.
std::vector<std::string> Events(const std::string& db, const std::string& where = "true") {
  const std::string rows =
      Q(db,
        "SELECT string_agg(trigger_name || '|' || (payload->>'path') || '|' || "
        "(payload->>'type'), ',' ORDER BY id) FROM eventing.event_logs "
        "WHERE " +
            where);
  std::vector<std::string> out;
  size_t start = 0;
  while (start < rows.size()) {
    const size_t comma = std::min(rows.find(',', start), rows.size());
    out.push_back(rows.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// Waits until event_logs has `n` rows WHERE `where`.
bool WaitEvents(const std::string& db, const std::string& where, long n,
                std::chrono::milliseconds timeout) {
  return WaitFor(
      [&] { return QL(db, "SELECT count(*) FROM eventing.event_logs WHERE " + where) == n; },
      timeout, 20ms);
}

using Lines = std::vector<std::string>;

// Waits until the events with id > *seen are exactly `want` (in order, or
// as a set when `any_order`), then moves *seen past them.
void Expect(const std::string& db, long* seen, const Lines& want, bool any_order = false) {
  const std::string where = "id > " + std::to_string(*seen);
  Lines got;
  WaitFor(
      [&] {
        got = Events(db, where);
        return got.size() >= want.size();
      },
      10s, 20ms);
  // Nothing more than that comes.
  std::this_thread::sleep_for(300ms);
  got = Events(db, where);
  // The difference, both ways.
  std::multiset<std::string> extra(got.begin(), got.end()), missing(want.begin(), want.end());
  for (const std::string& w : want) {
    if (auto it = extra.find(w); it != extra.end()) extra.erase(it);
  }
  for (const std::string& g : got) {
    if (auto it = missing.find(g); it != missing.end()) missing.erase(it);
  }
  std::string shown = "extra:";
  for (const std::string& g : extra) shown += " " + g;
  shown += "\nmissing:";
  for (const std::string& w : missing) shown += " " + w;
  INFO(shown);
  if (any_order) {
    CHECK(std::multiset<std::string>(got.begin(), got.end()) ==
          std::multiset<std::string>(want.begin(), want.end()));
  } else {
    CHECK(got == want);
  }
  *seen = QL(db, "SELECT coalesce(max(id), 0) FROM eventing.event_logs");
}

}  // namespace

TEST_CASE("file events: create, delete, renames and moves under the prefix, not outside it") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Receiver hook(kHookPort);
  const TempDir tmp_dir("files");
  const fs::path tmp = tmp_dir.path();
  const fs::path in = tmp / "in";
  const fs::path stage = tmp / "stage";
  fs::create_directories(in / "up");
  fs::create_directories(stage);
  Init(db);
  // fc/fd: under /up only; every_file: anywhere (proves the files outside
  // /up were seen); big: a condition on the size.
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, url, path_prefix, condition) VALUES "
       "('fc', 'FILE_CREATE', '" +
           hook.Url("/fc") +
           "', '/up/', NULL), "
           "('fd', 'FILE_DELETE', '" +
           hook.Url("/fd") +
           "', '/up', NULL), "
           "('every_file', 'FILE_CREATE', '" +
           hook.Url("/every") +
           "', NULL, "
           "  'payload.type = ''file'''), "
           "('big', 'FILE_CREATE', '" +
           hook.Url("/big") +
           "', NULL, "
           "  'payload.type = ''file'' AND payload.meta.size >= 100')");
  auto run = StartRun(db, {in});
  INFO(run->Output());
  long seen = 0;

  // A file written under /up, and one in a sibling whose name starts with "up".
  fs::create_directories(in / "uploads");
  Write(in / "up" / "a.txt", "hello");
  Write(in / "uploads" / "x.txt", "x");
  Expect(db, &seen,
         {"fc|/up/a.txt|file", "every_file|/up/a.txt|file", "every_file|/uploads/x.txt|file"},
         true);
  CHECK(Q(db, "SELECT payload::text FROM eventing.event_logs WHERE trigger_name = 'fc'")
            .find("\"root\":\"" + in.string() +
                  "\",\"path\":\"/up/a.txt\",\"type\":\"file\","
                  "\"meta\":{\"size\":5,\"mtime\":\"") != std::string::npos);

  // A directory made, then a rename inside the tree into it.
  fs::create_directory(in / "up" / "new");
  Expect(db, &seen, {"fc|/up/new|dir"});
  fs::rename(in / "up" / "a.txt", in / "up" / "new" / "b.txt");
  Expect(db, &seen, {"fd|/up/a.txt|file", "fc|/up/new/b.txt|file", "every_file|/up/new/b.txt|file"},
         true);

  // A tree moved in: one event for it and one for each thing inside.
  fs::create_directories(stage / "t" / "y");
  Write(stage / "t" / "x", std::string(150, 'x'));
  Write(stage / "t" / "y" / "z", "z");
  fs::rename(stage / "t", in / "up" / "t");
  Expect(db, &seen,
         {"fc|/up/t|dir", "fc|/up/t/x|file", "every_file|/up/t/x|file", "big|/up/t/x|file",
          "fc|/up/t/y|dir", "fc|/up/t/y/z|file", "every_file|/up/t/y/z|file"},
         true);

  // A directory renamed inside the tree: its subdirectories are watched
  // under their new path.
  fs::rename(in / "up" / "t", in / "up" / "t2");
  Expect(db, &seen, {"fd|/up/t|dir", "fc|/up/t2|dir"});
  Write(in / "up" / "t2" / "y" / "w", "w");
  Expect(db, &seen, {"fc|/up/t2/y/w|file", "every_file|/up/t2/y/w|file"}, true);

  // Moved out: one FILE_DELETE, and nothing from where it went.
  fs::rename(in / "up" / "t2", stage / "gone");
  Expect(db, &seen, {"fd|/up/t2|dir"});
  Write(stage / "gone" / "y" / "after", "not watched");
  Write(in / "up" / "sentinel", "s");
  Expect(db, &seen, {"fc|/up/sentinel|file", "every_file|/up/sentinel|file"}, true);

  // A directory filled right after it is made (cp -r): each file once,
  // whether the walk of the new directory or inotify saw it first.
  fs::create_directory(in / "up" / "burst");
  Lines burst = {"fc|/up/burst|dir"};
  for (int i = 0; i < 300; ++i) {
    const std::string name = "/up/burst/" + std::to_string(i);
    Write(in / name.substr(1), "b");
    burst.push_back("fc|" + name + "|file");
    burst.push_back("every_file|" + name + "|file");
  }
  Expect(db, &seen, burst, true);
  fs::remove_all(in / "up" / "burst");
  Expect(
      db, &seen,
      [] {
        Lines gone = {"fd|/up/burst|dir"};
        for (int i = 0; i < 300; ++i) gone.push_back("fd|/up/burst/" + std::to_string(i) + "|file");
        return gone;
      }(),
      true);

  // A name that is not UTF-8 (Linux names are bytes): U+FFFD in the event,
  // and the events after it still flow.
  Write(in / "up" / "caf\xe9", "c");
  Expect(db, &seen, {"fc|/up/caf\xEF\xBF\xBD|file", "every_file|/up/caf\xEF\xBF\xBD|file"}, true);

  // A directory removed and made again before walhook looked: the new one
  // is watched.
  fs::create_directories(in / "up" / "r" / "s");
  fs::remove(in / "up" / "r" / "s");
  fs::create_directory(in / "up" / "r" / "s");
  WaitFor(
      [&] {
        return QL(db, "SELECT count(*) FROM eventing.event_logs WHERE id > " +
                          std::to_string(seen) +
                          " AND type = 'FILE_CREATE' AND "
                          "payload->>'path' = '/up/r/s'") >= 1;
      },
      5s);
  std::this_thread::sleep_for(300ms);
  seen = QL(db, "SELECT max(id) FROM eventing.event_logs");
  Write(in / "up" / "r" / "s" / "f", "f");
  Expect(db, &seen, {"fc|/up/r/s/f|file", "every_file|/up/r/s/f|file"}, true);

  // Deletes, of a file and of a tree.
  fs::remove(in / "up" / "new" / "b.txt");
  Expect(db, &seen, {"fd|/up/new/b.txt|file"});
  fs::remove_all(in / "up" / "new");
  Expect(db, &seen, {"fd|/up/new|dir"});
  fs::remove(in / "uploads" / "x.txt");  // no FILE_DELETE trigger outside /up
  Write(in / "up" / "sentinel2", "s");
  Expect(db, &seen, {"fc|/up/sentinel2|file", "every_file|/up/sentinel2|file"}, true);

  // Each reached its webhook as a CloudEvent with the data object.
  const long stored = QL(db, "SELECT count(*) FROM eventing.event_logs");
  REQUIRE(hook.WaitForCount(static_cast<size_t>(stored), 10s));
  bool found = false;
  for (const Arrival& a : hook.Arrivals()) {
    if (a.path != "/fd") continue;
    if (a.body.find("\"type\":\"FILE_DELETE\"") != std::string::npos &&
        a.body.find("\"path\":\"/up/new/b.txt\",\"type\":\"file\",\"meta\":{}") !=
            std::string::npos) {
      found = true;
    }
  }
  CHECK(found);
  // Outcomes are written in batches, just after the answers.
  CHECK(WaitEvents(db, "status <> 'processed'", 0, 5s));
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE source_lsn IS NOT NULL") == 0);
}

TEST_CASE("file events: trigger definitions, ordered per path, and reload without restart") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Receiver hook(kHookPort);
  const TempDir tmp_dir("files");
  const fs::path tmp = tmp_dir.path();
  Init(db);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, url, path_prefix, condition) VALUES "
       "('relative', 'FILE_CREATE', '" +
           hook.Url() +
           "', 'up', NULL), "
           "('dotdot', 'FILE_CREATE', '" +
           hook.Url() +
           "', '/up/../etc', NULL), "
           "('rowcond', 'FILE_DELETE', '" +
           hook.Url() + "', NULL, 'new.size > 1')");
  auto run = StartRun(db, {tmp});
  INFO(run->Output());
  CHECK(WaitFor(
      [&] {
        return QL(db,
                  "SELECT count(*) FROM eventing.trigger_status "
                  "WHERE NOT active AND last_error IS NOT NULL") == 3;
      },
      5s));
  CHECK(Q(db, "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'relative'")
            .find("must start with /") != std::string::npos);
  CHECK(Q(db, "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'dotdot'")
            .find("\"..\"") != std::string::npos);
  CHECK(Q(db, "SELECT last_error FROM eventing.trigger_status WHERE trigger_name = 'rowcond'")
            .find("payload.path") != std::string::npos);
  // The database refuses what a constraint can say.
  CHECK_THROWS(Exec(db,
                    "INSERT INTO eventing.triggers (name, type, url, table_name) VALUES "
                    "('t', 'FILE_CREATE', 'http://x', 'orders')"));
  CHECK_THROWS(Exec(db,
                    "INSERT INTO eventing.triggers (name, type, url, path_prefix) VALUES "
                    "('t', 'DB_INSERT', 'http://x', '/a')"));

  // A trigger added while running fires within a second, without a restart.
  Write(tmp / "before", "b");
  std::this_thread::sleep_for(300ms);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, url, ordered, retry_interval_ms) VALUES "
       "('ordered_all', 'FILE_CREATE', '" +
           hook.Url("/ordered") + "', true, 200)");
  std::this_thread::sleep_for(1100ms);
  // Ordered per path: the first delivery of /k fails twice; the rewrite of
  // /k waits for it, /other does not.
  std::atomic<int> failures{0};
  hook.SetPolicy([&](const Arrival& a) {
    Reply r;
    if (a.body.find("\"path\":\"/k\",\"type\":\"file\",\"meta\":{\"size\":1,") !=
            std::string::npos &&
        failures < 2) {
      ++failures;
      r.status = 500;
    }
    return r;
  });
  Write(tmp / "k", "1");
  std::this_thread::sleep_for(100ms);
  Write(tmp / "k", "22");
  std::this_thread::sleep_for(100ms);
  Write(tmp / "other", "o");
  REQUIRE(WaitEvents(db, "status = 'processed'", 3, 15s));
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE payload->>'path' = '/before'") == 0);
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs WHERE order_key = '/k'") == 2);
  // Arrival order at the webhook: /other did not wait; the second write of
  // /k came only after the first one succeeded.
  std::vector<std::string> order;
  for (const Arrival& a : hook.Arrivals()) {
    std::string what = "other";
    if (a.body.find("\"path\":\"/k\"") != std::string::npos) {
      what = a.body.find("\"size\":1,") != std::string::npos ? "k1" : "k2";
    }
    order.push_back(what + "=" + std::to_string(a.status));
  }
  std::string shown;
  for (const std::string& o : order) shown += o + " ";
  INFO(shown);
  REQUIRE(order.size() == 5);
  CHECK(std::count(order.begin(), order.end(), "k1=500") == 2);
  const auto first = std::find(order.begin(), order.end(), "k1=200");
  const auto second = std::find(order.begin(), order.end(), "k2=200");
  REQUIRE(first != order.end());
  REQUIRE(second != order.end());
  CHECK(first < second);
  CHECK(std::find(order.begin(), order.end(), "other=200") < first);
}

TEST_CASE("file events: a --watch-dir that cannot be watched is a clear error") {
  const TempDir tmp_dir("files");
  const fs::path tmp = tmp_dir.path();
  fs::create_directories(tmp / "a" / "b");
  Write(tmp / "file", "f");
  // The directories are checked before any database is needed.
  const std::string db = "host=127.0.0.1 port=1 dbname=x connect_timeout=1";
  struct Row {
    std::vector<fs::path> dirs;
    std::string says;
  };
  for (const Row& r :
       {Row{{tmp / "missing"}, "No such file or directory"}, Row{{tmp / "file"}, "not a directory"},
        Row{{tmp / "a", tmp / "a" / "b"}, "overlap"}, Row{{tmp / "a" / "b", tmp / "a/"}, "overlap"},
        Row{{tmp / "a", tmp / "a"}, "overlap"}}) {
    Process p(RunArgs(db, r.dirs));
    CHECK(p.Wait(10s) == 2);
    const std::string out = p.Output();
    CAPTURE(out);
    CHECK(out.find("--watch-dir") != std::string::npos);
    CHECK(out.find(r.says) != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  }
}

TEST_CASE("file events: an unreadable directory is said and the rest is watched") {
  // As root every directory is readable: walhook then runs as "postgres".
  std::vector<std::string> prefix;
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (uid == 0) {
    const passwd* pw = getpwnam("postgres");
    REQUIRE_MESSAGE(pw != nullptr, "no user postgres to run walhook as");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    prefix = {"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid),
              "--clear-groups", "--"};
  }
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Receiver hook(kHookPort);
  const TempDir tmp_dir("files");
  const fs::path tmp = tmp_dir.path();
  const fs::path in = tmp / "in";
  fs::create_directories(in / "closed");
  fs::create_directories(in / "open");
  REQUIRE(chown(tmp.c_str(), uid, gid) == 0);
  REQUIRE(chown(in.c_str(), uid, gid) == 0);
  REQUIRE(chown((in / "open").c_str(), uid, gid) == 0);
  fs::permissions(in / "closed", fs::perms::none);
  Init(db);
  Exec(db, "INSERT INTO eventing.triggers (name, type, url) VALUES ('fc', 'FILE_CREATE', '" +
               hook.Url() + "')");
  {
    // The root itself unreadable: exit 2.
    std::vector<std::string> argv = RunArgs(db, {in / "closed"});
    argv.insert(argv.begin(), prefix.begin(), prefix.end());
    Process q(argv);
    CHECK(q.Wait(10s) == 2);
    CHECK(q.Output().find("cannot read it: Permission denied") != std::string::npos);
  }
  auto run = StartRun(db, {in}, prefix);
  CHECK(run->Output().find((in / "closed").string() +
                           ": Permission denied; changes under it are not seen") !=
        std::string::npos);
  std::this_thread::sleep_for(1100ms);
  Write(in / "open" / "f", "f");
  CHECK(WaitEvents(db, "true", 1, 10s));
  CHECK(Q(db, "SELECT payload->>'path' FROM eventing.event_logs") == "/open/f");
  CHECK(run->Running());
}

TEST_CASE("file events: an inotify queue overflow rescans and says so") {
  long limit = 0;
  std::ifstream("/proc/sys/fs/inotify/max_queued_events") >> limit;
  REQUIRE(limit > 0);
  REQUIRE_MESSAGE(limit <= 200000, "fs.inotify.max_queued_events is too large to overflow here");
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Receiver hook(kHookPort);
  const TempDir tmp_dir("files");
  const fs::path tmp = tmp_dir.path();
  fs::create_directories(tmp / "old" / "sub");
  fs::create_directories(tmp / "many");
  fs::create_directories(tmp / "before" / "deep");
  Init(db);
  Exec(db,
       "INSERT INTO eventing.triggers (name, type, url) VALUES "
       "('fc', 'FILE_CREATE', '" +
           hook.Url() +
           "'), "
           "('fd', 'FILE_DELETE', '" +
           hook.Url() + "')");
  auto run = StartRun(db, {tmp});
  INFO(run->Output());
  std::this_thread::sleep_for(1100ms);

  // While walhook is stopped the kernel's queue overflows: two events per file.
  run->Signal(SIGSTOP);
  const long files = limit / 2 + 2000;
  for (long i = 0; i < files; ++i) Write(tmp / "many" / std::to_string(i), "x");
  // After the overflow: a tree made and one removed, seen only by the rescan.
  fs::create_directories(tmp / "late" / "inner");
  Write(tmp / "late" / "inner" / "f", "f");
  fs::remove_all(tmp / "old");
  fs::rename(tmp / "before", tmp / "after");
  run->Signal(SIGCONT);

  const std::string distinct =
      "SELECT count(DISTINCT payload->>'path') FROM eventing.event_logs WHERE type = ";
  CHECK(WaitFor([&] { return QL(db, distinct + "'FILE_CREATE'") == files + 5; }, 60s, 200ms));
  CHECK(QL(db, distinct + "'FILE_CREATE' AND payload->>'path' LIKE '/many/%'") == files);
  CHECK(QL(db, distinct + "'FILE_CREATE' AND payload->>'path' IN ('/late', '/late/inner', "
                          "'/late/inner/f', '/after', '/after/deep')") == 5);
  CHECK(WaitFor([&] { return QL(db, distinct + "'FILE_DELETE'") == 4; }, 10s));
  CHECK(QL(db, distinct + "'FILE_DELETE' AND payload->>'path' IN ('/old', '/old/sub', "
                          "'/before', '/before/deep')") == 4);
  const std::string out = run->Output();
  CHECK(out.find("inotify queue overflowed") != std::string::npos);
  CHECK(out.find("rescanned") != std::string::npos);
  // Still watching, the new directories too.
  const long before = QL(db, "SELECT count(*) FROM eventing.event_logs");
  Write(tmp / "late" / "inner" / "g", "g");
  Write(tmp / "after" / "deep" / "h", "h");
  CHECK(WaitEvents(db, "payload->>'path' IN ('/late/inner/g', '/after/deep/h')", 2, 10s));
  CHECK(QL(db, "SELECT count(*) FROM eventing.event_logs") == before + 2);
}

TEST_CASE("file events: the eventing database down pauses them, nothing lost") {
  TempPostgres pg;
  const std::string db = pg.conninfo();
  Receiver hook(kHookPort);
  const TempDir tmp_dir("files");
  const fs::path tmp = tmp_dir.path();
  Init(db);
  Exec(db, "INSERT INTO eventing.triggers (name, type, url) VALUES ('fc', 'FILE_CREATE', '" +
               hook.Url() + "')");
  auto run = StartRun(db, {tmp});
  INFO(run->Output());
  std::this_thread::sleep_for(1100ms);
  Write(tmp / "first", "1");
  REQUIRE(WaitEvents(db, "true", 1, 10s));
  pg.Stop();
  for (int i = 0; i < 50; ++i) Write(tmp / ("down" + std::to_string(i)), "d");
  std::this_thread::sleep_for(1500ms);
  pg.Start();
  CHECK(WaitEvents(db, "true", 51, 30s));
  CHECK(QL(db, "SELECT count(DISTINCT payload->>'path') FROM eventing.event_logs") == 51);
  CHECK(hook.WaitForCount(51, 20s));
  CHECK(run->Running());
}

}  // namespace walhook::test
