#pragma once
// The `data` object of a DB event (SPEC §4), built from a decoded Change.
// Pure. Thread-safety: a PayloadBuilder is used by one thread at a time.

#include <string>
#include <string_view>
#include <vector>

#include "walhook/change.h"
#include "walhook/json.h"
#include "walhook/trigger.h"
#include "walhook/utf8.h"

namespace walhook {

class PayloadBuilder {
 public:
  // Builds {"db","schema","col","doc","find","before"[,"unchanged_toast"]
  // [,"partition"]} for a kInsert/kUpdate/kDelete `change` on `table`.
  // The returned view is valid until the next call. Invalid UTF-8 (a source
  // database in SQL_ASCII or LATIN1 hands out its bytes as they are) is
  // replaced with U+FFFD, so event_logs, which is UTF-8, can always store it.
  std::string_view Build(const Change& change, const TableInfo& table, std::string_view db);
  // Whether the last Build replaced invalid UTF-8.
  bool replaced_invalid_utf8() const { return replaced_; }

 private:
  std::string clean_;  // the payload with invalid UTF-8 replaced
  bool replaced_ = false;
  JsonBuffer buffer_;
  std::vector<std::string_view> missing_;  // unchanged TOAST columns of this change
  std::vector<std::string_view> key_names_;
};

// Writes one column's value by its type (SPEC §4): numbers with their exact
// digits, booleans, json/jsonb embedded, arrays as typed JSON arrays, the rest
// as strings, NULL as null.
void WriteColumnValue(const Column& column, JsonWriter& writer);

}  // namespace walhook
