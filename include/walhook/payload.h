#pragma once
// The `data` object of a DB event (SPEC §4), built from a decoded Change.
// Pure. Thread-safety: a PayloadBuilder is used by one thread at a time.

#include <string>
#include <string_view>
#include <vector>

#include "walhook/change.h"
#include "walhook/json.h"
#include "walhook/trigger.h"

namespace walhook {

class PayloadBuilder {
 public:
  // Builds {"db","schema","col","doc","find","before"[,"unchanged_toast"]
  // [,"partition"]} for a kInsert/kUpdate/kDelete `change` on `table`.
  // The returned view is valid until the next call.
  std::string_view Build(const Change& change, const TableInfo& table, std::string_view db);

 private:
  JsonBuffer buffer_;
  std::vector<std::string_view> missing_;  // unchanged TOAST columns of this change
  std::vector<std::string_view> key_names_;
};

// Writes one column's value by its type (SPEC §4): numbers with their exact
// digits, booleans, json/jsonb embedded, arrays as typed JSON arrays, the rest
// as strings, NULL as null.
void WriteColumnValue(const Column& column, JsonWriter& writer);

}  // namespace walhook
