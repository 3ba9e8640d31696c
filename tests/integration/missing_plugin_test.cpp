// Setup errors that need a special server build: a source server without the
// wal2json output plugin (SPEC §2). wal2json stays installed system-wide; the
// cluster runs from a private copy of the PostgreSQL 15 install that lacks it.

#include <stdlib.h>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "harness.h"

namespace walhook::test {
namespace {

namespace fs = std::filesystem;

// Debian's PostgreSQL 15 layout. The server finds its lib and share
// directories relative to its own (symlink-resolved) executable, so a copy of
// bin/ placed in the same relative layout uses the lib/ and share/ beside it.
constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
constexpr const char* kLibDir = "/usr/lib/postgresql/15/lib";
constexpr const char* kShareDir = "/usr/share/postgresql/15";
constexpr const char* kPluginFile = "wal2json.so";

constexpr const char* kHint =
    "the wal2json output plugin is not installed on the source server: install it "
    "(Debian: apt-get install postgresql-15-wal2json) and try again";

int RunToExit(const std::vector<std::string>& args, std::string* output,
              std::chrono::milliseconds timeout = 20s) {
  Process p(args);
  const int code = p.Wait(timeout);
  *output = p.Output();
  return code;
}

size_t CountLines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// A private PostgreSQL 15 install in a fresh temporary directory: real copies
// of the binaries, symlinks to every file of the system lib directory except
// wal2json.so, and a symlink to the system share directory. Deleted (links,
// not their targets) on destruction.
class InstallWithoutWal2json {
 public:
  InstallWithoutWal2json() {
    const char* tmp = getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/walhook-nowal2json.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed for " + pattern);
    }
    root_ = pattern;
    try {
      Build();
    } catch (...) {
      Remove();
      throw;
    }
  }

  ~InstallWithoutWal2json() { Remove(); }

  InstallWithoutWal2json(const InstallWithoutWal2json&) = delete;
  InstallWithoutWal2json& operator=(const InstallWithoutWal2json&) = delete;

  std::string bindir() const { return (root_ / fs::path(kBinDir).relative_path()).string(); }

 private:
  // The cluster runs as another user (postgres) when the test runs as root.
  static void MakeDir(const fs::path& dir) {
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  }

  static fs::path Mirror(const fs::path& root, const char* system_path) {
    return root / fs::path(system_path).relative_path();
  }

  void Build() {
    for (const char* dir : {kBinDir, kLibDir, kShareDir}) {
      if (!fs::is_directory(dir)) throw std::runtime_error(std::string("missing ") + dir);
    }
    // Every directory from root_ down, so the postgres user can traverse it.
    for (const char* dir : {kBinDir, kLibDir, kShareDir}) {
      fs::path p = root_;
      MakeDir(p);
      for (const auto& part : fs::path(dir).parent_path().relative_path()) {
        p /= part;
        MakeDir(p);
      }
    }
    // Real copies: the server resolves symlinks of its executable.
    const fs::path bin = Mirror(root_, kBinDir);
    MakeDir(bin);
    for (const auto& entry : fs::directory_iterator(kBinDir)) {
      fs::copy(entry.path(), bin / entry.path().filename(),
               fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    }
    const fs::path lib = Mirror(root_, kLibDir);
    MakeDir(lib);
    for (const auto& entry : fs::directory_iterator(kLibDir)) {
      if (entry.path().filename() == kPluginFile) continue;
      fs::create_symlink(entry.path(), lib / entry.path().filename());
    }
    fs::create_symlink(kShareDir, Mirror(root_, kShareDir));
  }

  void Remove() noexcept {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);  // Does not follow symlinks.
  }

  fs::path root_;
};

// Sets an environment variable for its lifetime, then restores the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST_CASE("setup: wal2json is not installed on the source: one line with how to install, exit 1") {
  // Destroyed in reverse: the cluster (pgtmp.sh reads PGTMP_BINDIR on every
  // command), then the variable, then the install tree.
  InstallWithoutWal2json install;
  ScopedEnv bindir("PGTMP_BINDIR", install.bindir());
  TempPostgres pg;  // Default options: wal2json is allowed as an output plugin.
  const std::string db = pg.conninfo();

  // The premise: allowed, yet not loadable, on this server.
  const std::string allowed =
      Q(db, "SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries'");
  INFO("output_plugin_libraries = " << allowed);
  CHECK((allowed.empty() || allowed.find("wal2json") != std::string::npos));
  std::string refusal;
  try {
    Q(db, "SELECT pg_create_logical_replication_slot('probe', 'wal2json')");
  } catch (const pqxx::sql_error& e) {
    refusal = e.what();
  }
  INFO("server said: " << refusal);
  REQUIRE(refusal.find("could not access file \"wal2json\"") != std::string::npos);

  std::string out;
  CHECK(RunToExit({WalhookBinary(), "init", "--source", db}, &out) == 1);
  INFO("init said: " << out);
  CHECK(out.find(kHint) != std::string::npos);
  CHECK(CountLines(out, "\n") == 1);

  CHECK(RunToExit({WalhookBinary(), "run", "--source", db, "--secret", "s"}, &out) == 1);
  INFO("run said: " << out);
  CHECK(out.find(kHint) != std::string::npos);
  CHECK(CountLines(out, "\n") == 1);

  CHECK(Q(db, "SELECT count(*) FROM pg_replication_slots") == "0");
}

}  // namespace
}  // namespace walhook::test
