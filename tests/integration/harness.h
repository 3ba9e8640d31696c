#pragma once
// Integration-test harness: throwaway Postgres clusters (through
// contrib/pgtmp.sh), child processes with captured output, and polling.
//
// Compile definitions (string literals, both optional):
//   WALHOOK_SOURCE_ROOT  repository root, used to find contrib/pgtmp.sh
//                        (default ".").
//   WALHOOK_BINARY       path of the walhook executable; env WALHOOK_BIN
//                        overrides it.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace walhook::test {

using namespace std::chrono_literals;

// A Postgres 15 cluster in a fresh temporary directory ($TMPDIR or /tmp),
// listening on 127.0.0.1 with trust auth for user "postgres". When the test
// runs as root the cluster runs as user "postgres" (see contrib/pgtmp.sh).
// The cluster's settings come from pgtmp.sh; env PGTMP_FAST=1 is passed on
// (fsync and synchronous_commit off: committed data can then be lost by
// Kill(), so leave it unset for crash tests).
//
// Thread-safety: const methods may be called concurrently; Start, Stop,
// Restart and Kill need external synchronization.
class TempPostgres {
 public:
  struct Options {
    // Adds wal2json to output_plugin_libraries (when the server has that
    // setting). False reproduces the "may not be used as an output plugin"
    // refusal of Postgres 15.19+.
    bool allow_wal2json = true;
    std::string wal_level = "logical";
    // Extra postgresql.conf lines (newline-separated), applied last.
    std::string extra_conf;
  };

  // Creates and starts the cluster. Throws std::runtime_error (with the
  // script's stderr and the tail of the server log) if that fails; nothing is
  // left behind in that case.
  TempPostgres();
  explicit TempPostgres(Options options);

  // Stops the cluster and deletes its directory. Never throws.
  ~TempPostgres();

  TempPostgres(const TempPostgres&) = delete;
  TempPostgres& operator=(const TempPostgres&) = delete;

  // The TCP port; it stays the same across Stop/Start/Restart/Kill.
  int port() const { return port_; }

  // The directory holding data/, log and the Unix socket.
  const std::string& dir() const { return dir_; }

  // Path of the server log.
  std::string log_path() const { return dir_ + "/log"; }

  // "host=127.0.0.1 port=N dbname=DBNAME user=USER connect_timeout=5".
  std::string conninfo(const std::string& dbname = "postgres",
                       const std::string& user = "postgres") const;

  // The last `lines` lines of the server log ("" if unreadable).
  std::string LogTail(int lines = 40) const;

  // Each throws std::runtime_error on failure and returns once the server is
  // accepting connections (Start, Restart) or has exited (Stop, Kill).
  void Restart();  // Fast shutdown, then start.
  void Stop();     // Fast shutdown; no-op if not running.
  void Start();    // No-op if running.
  void Kill();     // Immediate shutdown (crash: recovery runs on next start).

 private:
  void RunScript(const std::string& command) const;

  std::string dir_;
  int port_ = 0;
};

// A child process whose stdout and stderr go to a temporary log file;
// stdin is /dev/null. The child gets its own process group and inherits no
// file descriptors besides 0-2.
//
// Thread-safety: not thread-safe; use one Process from one thread at a time.
class Process {
 public:
  // Returned by Wait() when the process is still running at the deadline.
  static constexpr int kTimedOut = std::numeric_limits<int>::min();

  // Starts argv[0] (searched in PATH if it has no '/') with argv, the current
  // environment plus `env` (which overrides variables of the same name).
  // Throws std::runtime_error if the program cannot be started.
  explicit Process(const std::vector<std::string>& argv,
                   const std::vector<std::pair<std::string, std::string>>& env = {});

  // Kills the process group with SIGKILL if the process is still running,
  // reaps it and deletes the log file. Never throws.
  ~Process();

  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // True until the process has exited (reaps it when it has).
  bool Running();

  // Waits up to `timeout` for the process to exit. Returns its exit code, or
  // -N if it was killed by signal N, or kTimedOut if still running. Calling
  // it again after the exit returns the same value.
  int Wait(std::chrono::milliseconds timeout);

  // Sends `sig` to the process (not its group). No-op once it was reaped.
  void Signal(int sig);

  // Everything the process wrote to stdout and stderr so far.
  std::string Output() const;

 private:
  void Reset() noexcept;

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;  // Exit code or -signal, valid once reaped_.
  std::string log_path_;
};

// A fresh directory under $TMPDIR ("walhook-<name>-XXXXXX"), removed with
// everything in it on destruction (permissions a test took away are given
// back first). Throws std::runtime_error if it cannot be made.
class TempDir {
 public:
  explicit TempDir(const std::string& name = "test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Makes key.pem and cert.pem in `dir`: a self-signed certificate for
// 127.0.0.1 (CN and subjectAltName), with the openssl command. Throws
// std::runtime_error with its output if that fails.
void MakeSelfSignedCert(const std::string& dir);

// Calls `pred` every `step` until it returns true (returns true) or until
// `timeout` has passed and one last call returned false (returns false).
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step = 50ms);

// Path of the walhook binary: env WALHOOK_BIN if set and non-empty, else the
// WALHOOK_BINARY compile definition. Throws std::runtime_error if neither is
// available.
std::string WalhookBinary();

// The repository root (WALHOOK_SOURCE_ROOT, default ".").
std::string SourceRoot();

// SQL for tests, a connection per call. Q: the first column of the first
// row ("" when there is none or it is NULL); QL: the same as a number (0 for
// ""); Exec: runs statements, ignoring results. They throw on SQL errors.
std::string Q(const std::string& conninfo, const std::string& sql);
long QL(const std::string& conninfo, const std::string& sql);

// Whether eventing.bridge_status shows node `node` in `role` ("streaming",
// "standby"); false also when it cannot be read (the eventing
// database not ready, walhook's migrations not run yet).
bool HasRole(const std::string& eventing, const std::string& node,
             const std::string& role = "streaming");
void Exec(const std::string& conninfo, const std::string& sql);

}  // namespace walhook::test
