#pragma once
// UTF-8 checks for text from outside walhook (SPEC §9): rows of a source
// database that is not UTF-8, file names, webhook answers, error texts that
// quote user input. event_logs, invocation_logs and trigger_status are UTF-8
// text columns: whatever goes into them passes through here first. Pure.
// Thread-safety: plain functions.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace walhook {

// Length of the well-formed UTF-8 sequence at text[i] (REQUIRES: i <
// text.size()), or 0 when there is none there (overlongs, surrogates, bytes
// past U+10FFFF and cut-short sequences are not well formed).
size_t Utf8SequenceLength(std::string_view text, size_t i);

// True when `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

// Copies `text` to *out with each invalid byte replaced by U+FFFD.
void ReplaceInvalidUtf8(std::string_view text, std::string* out);

// `text` as a Postgres text value can hold it: valid UTF-8 (invalid bytes
// replaced by U+FFFD) and no NUL bytes (each replaced by U+FFFD).
std::string StorableText(std::string_view text);

// Writes code point `cp` (at most 0x10FFFF, not a surrogate) as UTF-8 to
// out[0..3]; returns how many bytes it took (1 to 4).
size_t EncodeUtf8(uint32_t cp, char* out);

// The longest prefix of `text` of at most `max_bytes` bytes that does not end
// inside a UTF-8 sequence (a byte that starts no sequence counts as one
// character, so the result is never longer than max_bytes).
std::string_view Utf8Prefix(std::string_view text, size_t max_bytes);

}  // namespace walhook
