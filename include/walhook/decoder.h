#pragma once
// wal2json format-version 2 → Change. Pure: bytes in, values out.
// Expects the options include-lsn, include-timestamp and include-pk.
// Thread-safety: a Decoder is used by one thread at a time.

#include <cstddef>

#include <rapidjson/document.h>

#include "walhook/change.h"
#include "walhook/result.h"

namespace walhook {

class Decoder {
 public:
  // REQUIRES: line[length] == '\0' (PQgetCopyData terminates its buffers).
  // Decodes one line in place: `line` is modified and must outlive `*out`'s
  // views (and stay unmodified) until the next call. `wal_pos` names the line
  // in error messages. Returns an error value for malformed input, never throws.
  Status Decode(char* line, size_t length, Lsn wal_pos, Change* out);

  // Whether the line last given to Decode is a begin or a commit, read from
  // its first bytes before it was parsed (in place), so it is known also
  // when the line did not decode: a begin or commit cannot be skipped.
  bool boundary() const { return boundary_; }

 private:
  // Values and the parser's stack live in pools cleared before each line, so
  // a line that fits needs no malloc.
  using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                                              rapidjson::MemoryPoolAllocator<>>;
  bool boundary_ = false;
  static constexpr size_t kStackBytes = 4 * 1024;
  // RapidJSON keeps its chunk headers at the start: 8-byte aligned (the
  // member before them is a bool; decoder_fuzz's UBSan found it).
  alignas(8) char pool_buffer_[64 * 1024];
  alignas(8) char stack_buffer_[16 * 1024];
  rapidjson::MemoryPoolAllocator<> alloc_{pool_buffer_, sizeof(pool_buffer_)};
  rapidjson::MemoryPoolAllocator<> stack_alloc_{stack_buffer_, sizeof(stack_buffer_)};
};

}  // namespace walhook
