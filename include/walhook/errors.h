#pragma once
// The two exceptions of walhook; expected failures are values (result.h).

#include <stdexcept>
#include <string>
#include <string_view>

namespace walhook {

// Exit codes of SPEC §2.
constexpr int kExitOk = 0;
constexpr int kExitSetup = 1;  // a setup the user must fix
constexpr int kExitUsage = 2;  // a bad flag or unusable value

// Ends the process: main prints what() as one line and exits with exit_code.
class FatalError : public std::runtime_error {
 public:
  FatalError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Ends the current session (a lost connection, a server error mid-stream):
// the bridge drops its connections and starts again with backoff.
class SessionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Maps a server's error text to what the user must do, for the setup errors
// walhook knows (wal_level, wal2json missing or not allowed, REPLICATION
// privilege). Empty when the error is not one of them.
std::string SetupHint(std::string_view server_error, std::string_view slot);

}  // namespace walhook
