#include "walhook/log.h"

#include <unistd.h>

#include <chrono>
#include <mutex>
#include <set>
#include <string>

#include "walhook/json.h"

namespace walhook {
namespace {

LogFormat g_format = LogFormat::kText;
std::mutex g_claimed_mu;
std::set<std::string, std::less<>> g_claimed;

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string Now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

}  // namespace

void SetLogFormat(LogFormat format) {
  g_format = format;
}

void LogLine(LogLevel level, std::string_view raw) {
  // Server messages carry newlines (ERROR, DETAIL, HINT): keep one line each.
  std::string flat(raw);
  while (!flat.empty() && (flat.back() == '\n' || flat.back() == ' ')) flat.pop_back();
  for (char& c : flat) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  const std::string_view message = flat;
  std::string line;
  if (g_format == LogFormat::kJson) {
    JsonBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("ts");
    const std::string ts = Now();
    w.String(ts.c_str());
    w.Key("level");
    w.String(LevelName(level).data());
    w.Key("msg");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
    w.EndObject();
    line.assign(buf.GetString(), buf.GetSize());
  } else {
    line = fmt::format("{} {} {}", Now(), LevelName(level), message);
  }
  line.push_back('\n');
  // One write(2) per line, so lines from several threads never interleave.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

bool ClaimMessage(const std::string& message) {
  std::lock_guard<std::mutex> lock(g_claimed_mu);
  return g_claimed.insert(message).second;
}

void UnclaimMessage(const std::string& message) {
  std::lock_guard<std::mutex> lock(g_claimed_mu);
  g_claimed.erase(message);
}

}  // namespace walhook
