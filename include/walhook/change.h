#pragma once
// Change: one wal2json format-version 2 line, decoded. Views point into the
// line's buffer (decoded in situ), so a Change is valid only until that buffer
// is reused or freed. The vectors keep their capacity between lines, so a
// steady stream decodes without allocating.
// Thread-safety: plain value.

#include <cstdint>
#include <string_view>
#include <vector>

#include "walhook/lsn.h"

namespace walhook {

enum class ChangeKind { kBegin, kCommit, kInsert, kUpdate, kDelete, kTruncate, kMessage };

enum class ValueKind { kNull, kTrue, kFalse, kNumber, kString };

struct Column {
  std::string_view name;
  std::string_view type;  // as wal2json prints it: "integer", "text[]", "numeric(10,2)"
  ValueKind kind = ValueKind::kNull;
  std::string_view text;  // the digits of a number, the unescaped text of a string
};

struct Change {
  ChangeKind kind = ChangeKind::kBegin;
  // kBegin/kCommit: the commit record's LSN. Others: the change's own LSN,
  // which is not unique (a message and the next row can share one).
  Lsn lsn;
  // kBegin/kCommit: the end of the commit record, the position to confirm.
  Lsn next_lsn;
  std::string_view timestamp;  // commit time, "2026-11-28 04:06:36.900285+00"
  uint32_t xid = 0;            // the transaction's id (include-xids), 0 when not said

  std::string_view schema;  // row changes and kTruncate
  std::string_view table;
  std::vector<Column> columns;       // kInsert/kUpdate: the new row
  std::vector<Column> identity;      // kUpdate/kDelete: the old key, or the old row (FULL)
  std::vector<std::string_view> pk;  // primary key column names (empty: none)

  bool transactional = false;  // kMessage
  std::string_view prefix;
  std::string_view content;

  void Clear() {
    lsn = next_lsn = Lsn();
    xid = 0;
    timestamp = schema = table = prefix = content = {};
    columns.clear();
    identity.clear();
    pk.clear();
    transactional = false;
  }
};

}  // namespace walhook
