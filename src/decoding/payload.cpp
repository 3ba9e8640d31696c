#include "walhook/payload.h"

#include <algorithm>

#include "walhook/pg_value.h"

namespace walhook {
namespace {

const Column* Find(const std::vector<Column>& row, std::string_view name) {
  for (const Column& c : row) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

rapidjson::SizeType Len(std::string_view s) {
  return static_cast<rapidjson::SizeType>(s.size());
}

}  // namespace

void WriteColumnValue(const Column& column, JsonWriter& writer) {
  switch (column.kind) {
    case ValueKind::kNull: writer.Null(); return;
    case ValueKind::kTrue: writer.Bool(true); return;
    case ValueKind::kFalse: writer.Bool(false); return;
    case ValueKind::kNumber:
      // RawValue, not RawNumber: RapidJSON 1.1 writes RawNumber as a quoted string.
      writer.RawValue(column.text.data(), Len(column.text), rapidjson::kNumberType);
      return;
    case ValueKind::kString: break;
  }
  bool is_array = false;
  const TypeClass type = ClassifyType(column.type, &is_array);
  if (is_array) {
    if (WritePgArray(column.text, type, writer)) return;
  } else if (type == TypeClass::kJson && !column.text.empty()) {
    // Postgres only hands out valid json/jsonb text.
    writer.RawValue(column.text.data(), Len(column.text), rapidjson::kObjectType);
    return;
  }
  writer.String(column.text.data(), Len(column.text));
}

std::string_view PayloadBuilder::Build(const Change& change, const TableInfo& table,
                                       std::string_view db) {
  buffer_.Clear();
  missing_.clear();
  JsonWriter w(buffer_);
  const bool full_old_row = table.replica_identity == 'f';
  const std::vector<Column>* new_row =
      change.kind == ChangeKind::kDelete ? nullptr : &change.columns;

  // Columns the catalog knows that the new row lacks: wal2json leaves out
  // unchanged TOAST values. Fill them from the old row when it is complete.
  if (change.kind == ChangeKind::kUpdate) {
    for (const std::string& name : table.columns) {
      if (Find(change.columns, name) != nullptr) continue;
      if (full_old_row && Find(change.identity, name) != nullptr) continue;
      missing_.push_back(name);
    }
  }

  auto write_row = [&](const std::vector<Column>& row, bool fill) {
    w.StartObject();
    for (const Column& c : row) {
      w.Key(c.name.data(), Len(c.name));
      WriteColumnValue(c, w);
    }
    if (fill) {
      for (const std::string& name : table.columns) {
        if (Find(row, name) != nullptr) continue;
        const Column* old = Find(change.identity, name);
        if (old == nullptr) continue;
        w.Key(old->name.data(), Len(old->name));
        WriteColumnValue(*old, w);
      }
    }
    w.EndObject();
  };

  // The key: the primary key; without one, the replica identity index; under
  // REPLICA IDENTITY FULL without a key, the whole row.
  key_names_.clear();
  bool whole_row_key = false;
  if (!change.pk.empty()) {
    key_names_ = change.pk;
  } else if (table.replica_identity == 'i') {
    for (const std::string& c : table.identity_columns) key_names_.emplace_back(c);
  } else if (full_old_row) {
    whole_row_key = true;
  }
  const std::vector<Column>& key_row = new_row != nullptr ? *new_row : change.identity;

  w.StartObject();
  w.Key("db");
  w.String(db.data(), Len(db));
  const std::string_view schema = table.is_partition() ? table.root_schema : change.schema;
  const std::string_view col = table.is_partition() ? table.root_table : change.table;
  w.Key("schema");
  w.String(schema.data(), Len(schema));
  w.Key("col");
  w.String(col.data(), Len(col));
  if (table.is_partition()) {
    w.Key("partition");
    w.String(change.table.data(), Len(change.table));
  }
  w.Key("doc");
  if (new_row == nullptr) {
    w.Null();
  } else {
    write_row(*new_row, change.kind == ChangeKind::kUpdate && full_old_row);
  }
  w.Key("find");
  if (whole_row_key) {
    write_row(key_row, change.kind == ChangeKind::kUpdate);
  } else if (key_names_.empty()) {
    w.Null();
  } else {
    w.StartObject();
    for (std::string_view name : key_names_) {
      const Column* c = Find(key_row, name);
      if (c == nullptr) c = Find(change.identity, name);
      w.Key(name.data(), Len(name));
      if (c == nullptr) {
        w.Null();
      } else {
        WriteColumnValue(*c, w);
      }
    }
    w.EndObject();
  }
  if (change.kind != ChangeKind::kInsert) {
    w.Key("before");
    if (change.identity.empty()) {
      w.Null();
    } else {
      write_row(change.identity, false);
    }
  }
  if (!missing_.empty()) {
    w.Key("unchanged_toast");
    w.StartArray();
    for (std::string_view name : missing_) w.String(name.data(), Len(name));
    w.EndArray();
  }
  w.EndObject();
  const std::string_view built(buffer_.GetString(), buffer_.GetSize());
  replaced_ = !IsValidUtf8(built);
  if (!replaced_) return built;
  // Invalid bytes can only sit inside JSON strings (every structural
  // character is ASCII), so replacing them keeps the JSON valid.
  ReplaceInvalidUtf8(built, &clean_);
  return clean_;
}

}  // namespace walhook
