#pragma once
// The web console (SPEC §12): the static files of console/, embedded at build
// time (tools/embed_files.py), served at /console/ with no token (they hold
// no data: every value the page shows comes from the admin API, which needs
// an admin token). Pure: a lookup from a request's method and path to an
// answer.
// Thread-safety: plain functions over constant data.

#include <optional>
#include <string_view>
#include <vector>

#include "walhook/http_parser.h"

namespace walhook {

struct ConsoleFile {
  std::string_view name;  // "index.html", "app.js", … (no directories)
  std::string_view body;
};

// Every embedded file, in name order.
const std::vector<ConsoleFile>& ConsoleFiles();

// Whether `path` is the console's: "/console" or under "/console/".
bool IsConsolePath(std::string_view path);

// The Content-Type of a file name by its extension (utf-8 for text);
// "application/octet-stream" for an unknown one.
std::string_view ConsoleContentType(std::string_view name);

// The answer to `method` `path`: "/console" and "/console/" are index.html,
// "/console/<name>" an embedded file; 404 (JSON) for any other name, 405 for
// a method other than GET. REQUIRES: IsConsolePath(path).
HttpResponse ConsoleResponse(std::string_view method, std::string_view path);

}  // namespace walhook
