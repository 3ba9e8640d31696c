#pragma once
// One line per log record on stderr, as text or JSON (--log-format).
// Never log a secret or a token. Thread-safety: lines are written whole.

#include <string_view>

#include <fmt/format.h>

namespace walhook {

enum class LogLevel { kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

void SetLogFormat(LogFormat format);
void LogLine(LogLevel level, std::string_view message);

// An outage seen by several threads is said once: true the first time
// `message` is claimed, false while it stays claimed; Unclaim once recovered.
bool ClaimMessage(const std::string& message);
void UnclaimMessage(const std::string& message);

template <typename... Args>
void LogInfo(fmt::format_string<Args...> f, Args&&... args) {
  LogLine(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void LogWarn(fmt::format_string<Args...> f, Args&&... args) {
  LogLine(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void LogError(fmt::format_string<Args...> f, Args&&... args) {
  LogLine(LogLevel::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace walhook
