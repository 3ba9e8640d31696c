#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef WALHOOK_SOURCE_ROOT
#define WALHOOK_SOURCE_ROOT "."
#endif

namespace walhook::test {
namespace {

using Env = std::vector<std::pair<std::string, std::string>>;

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void ThrowErrno(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

std::string TempRoot() {
  const char* tmpdir = std::getenv("TMPDIR");
  return (tmpdir != nullptr && tmpdir[0] != '\0') ? tmpdir : "/tmp";
}

// Creates a file from `pattern` (ending in XXXXXX plus `suffix_len` chars),
// opened O_CLOEXEC. Stores the final name in `pattern`.
int MakeTempFile(std::string& pattern, int suffix_len) {
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  int fd = ::mkostemps(name.data(), suffix_len, O_CLOEXEC);
  if (fd < 0) ThrowErrno("mkostemps " + pattern, errno);
  pattern = name.data();
  return fd;
}

std::string ReadFd(int fd) {
  std::string out;
  if (::lseek(fd, 0, SEEK_SET) < 0) return out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Exit code, or -signal.
int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

// Owns a posix_spawn_file_actions_t / posix_spawnattr_t.
struct SpawnActions {
  posix_spawn_file_actions_t value;
  SpawnActions() { ::posix_spawn_file_actions_init(&value); }
  ~SpawnActions() { ::posix_spawn_file_actions_destroy(&value); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};

struct SpawnAttr {
  posix_spawnattr_t value;
  SpawnAttr() { ::posix_spawnattr_init(&value); }
  ~SpawnAttr() { ::posix_spawnattr_destroy(&value); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
};

// Starts argv with stdin from /dev/null, stdout on out_fd and stderr on
// err_fd, in a new process group, with default signal dispositions and an
// empty signal mask. Returns the pid.
pid_t Spawn(const std::vector<std::string>& argv, const Env& env, int out_fd, int err_fd) {
  if (argv.empty()) throw std::invalid_argument("Spawn: empty argv");

  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::string_view key = text.substr(0, text.find('='));
    bool overridden = false;
    for (const auto& [name, value] : env) {
      if (name == key) overridden = true;
    }
    if (!overridden) env_strings.emplace_back(text);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);

  std::vector<char*> argv_ptrs;
  argv_ptrs.reserve(argv.size() + 1);
  for (const auto& arg : argv) argv_ptrs.push_back(const_cast<char*>(arg.c_str()));
  argv_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  env_ptrs.reserve(env_strings.size() + 1);
  for (auto& entry : env_strings) env_ptrs.push_back(entry.data());
  env_ptrs.push_back(nullptr);

  SpawnActions actions;
  ::posix_spawn_file_actions_addopen(&actions.value, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions.value, out_fd, 1);
  ::posix_spawn_file_actions_adddup2(&actions.value, err_fd, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Belt and braces: our own descriptors are O_CLOEXEC, but libraries' may not be.
  ::posix_spawn_file_actions_addclosefrom_np(&actions.value, 3);
#endif

  SpawnAttr attr;
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t default_signals;
  sigfillset(&default_signals);
  sigdelset(&default_signals, SIGKILL);
  sigdelset(&default_signals, SIGSTOP);
  ::posix_spawnattr_setflags(
      &attr.value, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  ::posix_spawnattr_setpgroup(&attr.value, 0);
  ::posix_spawnattr_setsigmask(&attr.value, &empty_mask);
  ::posix_spawnattr_setsigdefault(&attr.value, &default_signals);

  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, argv[0].c_str(), &actions.value, &attr.value, argv_ptrs.data(),
                           env_ptrs.data());
  if (err != 0) ThrowErrno("cannot start " + argv[0], err);
  return pid;
}

struct CommandResult {
  int status = 0;  // Exit code or -signal.
  std::string out;
  std::string err;
};

// Runs argv to completion, capturing stdout and stderr separately.
CommandResult RunCommand(const std::vector<std::string>& argv, const Env& env) {
  std::string out_name = TempRoot() + "/walhook-cmd-XXXXXX";
  std::string err_name = out_name;
  Fd out_fd(MakeTempFile(out_name, 0));
  ::unlink(out_name.c_str());
  Fd err_fd(MakeTempFile(err_name, 0));
  ::unlink(err_name.c_str());

  pid_t pid = Spawn(argv, env, out_fd.get(), err_fd.get());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) ThrowErrno("waitpid", errno);
  }
  return CommandResult{DecodeStatus(status), ReadFd(out_fd.get()), ReadFd(err_fd.get())};
}

std::string ScriptPath() {
  return SourceRoot() + "/contrib/pgtmp.sh";
}

std::string Trim(std::string text) {
  size_t end = text.find_last_not_of(" \t\r\n");
  text.erase(end == std::string::npos ? 0 : end + 1);
  size_t begin = text.find_first_not_of(" \t\r\n");
  return begin == std::string::npos ? std::string() : text.substr(begin);
}

}  // namespace

std::string SourceRoot() {
  return WALHOOK_SOURCE_ROOT;
}

// ---------------------------------------------------------------- TempPostgres

TempPostgres::TempPostgres() : TempPostgres(Options{}) {}

TempPostgres::TempPostgres(Options options) {
  std::string pattern = TempRoot() + "/walhook-pg-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  if (::mkdtemp(name.data()) == nullptr) ThrowErrno("mkdtemp " + pattern, errno);
  dir_ = name.data();

  Env env = {
      {"PGTMP_NO_WAL2JSON_ALLOW", options.allow_wal2json ? "0" : "1"},
      {"PGTMP_WAL_LEVEL", options.wal_level},
      {"PGTMP_CONF", options.extra_conf},
  };
  std::string failure;
  try {
    CommandResult result = RunCommand({"bash", ScriptPath(), "start", dir_}, env);
    if (result.status == 0) {
      port_ = std::stoi(Trim(result.out));  // Throws on garbage.
      if (port_ > 0) return;
    }
    failure = "pgtmp.sh start " + dir_ + " failed (status " + std::to_string(result.status) +
              "):\n" + result.err;
    if (!Trim(result.out).empty()) failure += "\nstdout: " + result.out;
    // pgtmp.sh prints the log tail itself when the server does not start.
    if (result.err.find("---- last lines of") == std::string::npos) {
      failure += "\nserver log:\n" + LogTail();
    }
  } catch (const std::exception& e) {
    failure = std::string("pgtmp.sh start failed: ") + e.what() + "\nserver log:\n" + LogTail();
  }
  try {
    RunCommand({"bash", ScriptPath(), "destroy", dir_}, {});
  } catch (...) {
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  throw std::runtime_error(failure);
}

TempPostgres::~TempPostgres() {
  try {
    RunCommand({"bash", ScriptPath(), "destroy", dir_}, {});
  } catch (...) {
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string TempPostgres::conninfo(const std::string& dbname, const std::string& user) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + dbname + " user=" + user +
         " connect_timeout=5";
}

std::string TempPostgres::LogTail(int lines) const {
  std::ifstream in(log_path(), std::ios::binary);
  if (!in) return "";
  constexpr std::streamoff kMaxBytes = 65536;
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  in.seekg(size > kMaxBytes ? size - kMaxBytes : 0);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (int i = 0; i < lines && pos != std::string::npos && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
  }
  return pos == std::string::npos ? text : text.substr(pos == 0 ? 0 : pos + 1);
}

void TempPostgres::RunScript(const std::string& command) const {
  CommandResult result = RunCommand({"bash", ScriptPath(), command, dir_}, {});
  if (result.status != 0) {
    throw std::runtime_error("pgtmp.sh " + command + " " + dir_ + " failed (status " +
                             std::to_string(result.status) + "):\n" + result.err +
                             "\nserver log:\n" + LogTail());
  }
  if (command == "start" && Trim(result.out) != std::to_string(port_)) {
    throw std::runtime_error("pgtmp.sh start: port changed from " + std::to_string(port_) + " to " +
                             Trim(result.out));
  }
}

void TempPostgres::Restart() {
  RunScript("restart");
}
void TempPostgres::Stop() {
  RunScript("stop");
}
void TempPostgres::Start() {
  RunScript("start");
}
void TempPostgres::Kill() {
  RunScript("kill");
}

// --------------------------------------------------------------------- Process

Process::Process(const std::vector<std::string>& argv, const Env& env) {
  log_path_ = TempRoot() + "/walhook-proc-XXXXXX.log";
  Fd log_fd(MakeTempFile(log_path_, 4));
  try {
    pid_ = Spawn(argv, env, log_fd.get(), log_fd.get());
  } catch (...) {
    ::unlink(log_path_.c_str());
    throw;
  }
}

Process::~Process() {
  Reset();
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(other.reaped_),
      status_(other.status_),
      log_path_(std::exchange(other.log_path_, std::string())) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Reset();
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = other.reaped_;
    status_ = other.status_;
    log_path_ = std::exchange(other.log_path_, std::string());
  }
  return *this;
}

void Process::Reset() noexcept {
  if (pid_ > 0 && !reaped_) {
    // The child leads its own process group; the group id cannot be reused
    // before we reap the child, so this cannot hit a stranger.
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (!log_path_.empty()) ::unlink(log_path_.c_str());
  pid_ = -1;
  reaped_ = false;
  status_ = 0;
  log_path_.clear();
}

bool Process::Running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return true;
  reaped_ = true;
  status_ = r == pid_ ? DecodeStatus(status) : -1;
  return false;
}

int Process::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = 1ms;
  while (Running()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return kTimedOut;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, 20ms);
  }
  return status_;
}

void Process::Signal(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

std::string Process::Output() const {
  std::ifstream in(log_path_, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// ---------------------------------------------------------------------- misc

TempDir::TempDir(const std::string& name) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / ("walhook-" + name + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           path_, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::remove_all(path_, ec);
}

void MakeSelfSignedCert(const std::string& dir) {
  Process gen({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
               "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", dir + "/key.pem",
               "-out", dir + "/cert.pem"});
  if (gen.Wait(std::chrono::seconds(30)) != 0) {
    throw std::runtime_error("openssl req failed: " + gen.Output());
  }
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(step, deadline - now));
    if (std::chrono::steady_clock::now() >= deadline) return pred();
  }
}

std::string WalhookBinary() {
  const char* env = std::getenv("WALHOOK_BIN");
  if (env != nullptr && env[0] != '\0') return env;
#ifdef WALHOOK_BINARY
  return WALHOOK_BINARY;
#else
  throw std::runtime_error("walhook binary unknown: set WALHOOK_BIN or define WALHOOK_BINARY");
#endif
}

std::string Q(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  const auto r = tx.exec(sql);
  if (r.empty() || r[0][0].is_null()) return "";
  return r[0][0].as<std::string>();
}

long QL(const std::string& conninfo, const std::string& sql) {
  const std::string v = Q(conninfo, sql);
  return v.empty() ? 0 : std::stol(v);
}

bool HasRole(const std::string& eventing, const std::string& node, const std::string& role) {
  try {
    pqxx::connection c(eventing);
    pqxx::nontransaction tx(c);
    return tx.exec_params1(
                 "SELECT count(*) FROM eventing.bridge_status "
                 "WHERE role = $1 AND node_id = $2",
                 role, node)[0]
               .as<long>() == 1;
  } catch (const std::exception&) {
    return false;
  }
}

void Exec(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

}  // namespace walhook::test
