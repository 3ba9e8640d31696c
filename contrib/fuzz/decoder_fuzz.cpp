// libFuzzer target: any bytes through the wal2json decoder and the payload
// builder must give a value or an error, never a crash.
#include <cstdint>
#include <string>

#include "walhook/decoder.h"
#include "walhook/payload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static walhook::Decoder decoder;
  static walhook::PayloadBuilder builder;
  std::string line(reinterpret_cast<const char*>(data), size);
  walhook::Change change;
  if (!decoder.Decode(line.data(), line.size(), walhook::Lsn(1), &change).ok()) return 0;
  if (change.kind == walhook::ChangeKind::kInsert || change.kind == walhook::ChangeKind::kUpdate ||
      change.kind == walhook::ChangeKind::kDelete) {
    walhook::TableInfo table;
    table.schema = table.root_schema = std::string(change.schema);
    table.table = table.root_table = std::string(change.table);
    table.replica_identity = 'f';
    table.columns = {"a", "b"};
    builder.Build(change, table, "db");
  }
  return 0;
}
