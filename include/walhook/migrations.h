#pragma once
// The SQL migrations of sql/, embedded at build time. Forward only: a
// migration once released is never edited, a change is a new file.

#include <string_view>
#include <vector>

namespace walhook {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;  // "@schema@" stands for the quoted schema name
};

// In version order.
const std::vector<Migration>& Migrations();

}  // namespace walhook
