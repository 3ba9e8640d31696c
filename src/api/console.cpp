#include "walhook/console.h"

#include <fmt/format.h>

#include "walhook/utf8.h"

namespace walhook {
namespace {

constexpr std::string_view kRoot = "/console";

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool IsConsolePath(std::string_view path) {
  return path == kRoot || (path.size() > kRoot.size() && path.substr(0, kRoot.size()) == kRoot &&
                           path[kRoot.size()] == '/');
}

std::string_view ConsoleContentType(std::string_view name) {
  if (EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (EndsWith(name, ".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

HttpResponse ConsoleResponse(std::string_view method, std::string_view path) {
  if (method != "GET") {
    return HttpError(
        405, fmt::format("{} is not allowed on {}", Utf8Prefix(method, 20), Utf8Prefix(path, 200)));
  }
  std::string_view name = path.substr(kRoot.size());
  if (!name.empty()) name.remove_prefix(1);  // the '/'
  if (name.empty()) name = "index.html";
  for (const ConsoleFile& f : ConsoleFiles()) {
    if (f.name == name) return {200, std::string(f.body), std::string(ConsoleContentType(name))};
  }
  return HttpError(404, fmt::format("no such file in the console: {}", Utf8Prefix(name, 200)));
}

}  // namespace walhook
