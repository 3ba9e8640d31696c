#pragma once
// JSON in walhook. Writing: RapidJSON's Writer into a StringBuffer, so
// numbers pass through as the digits Postgres printed and embedded json/jsonb
// as raw text, both through RawValue (RapidJSON 1.1 writes RawNumber quoted).
// Reading JSON from outside walhook's trust (HTTP bodies, logical messages,
// webhook answers, SPEC §9): through CheckJson/ParseJson only, which bound
// the nesting, validate UTF-8 and never recurse on the input's shape.
// Thread-safety: plain functions.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string_view>

#include "walhook/result.h"

namespace walhook {

using JsonBuffer = rapidjson::StringBuffer;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// How deep JSON from outside may nest (SPEC §9). Postgres's own json parser
// stops somewhat past 6,000 levels with its default stack; walhook's DOM
// walks recurse.
inline constexpr int kMaxJsonDepth = 512;

// Whether `text` is exactly one JSON value, its strings valid UTF-8 (escapes
// included: a lone surrogate is refused), nested at most `max_depth` arrays
// and objects deep. The error is one line: "not JSON (…) at byte N",
// "invalid UTF-8 at byte N", "nested deeper than 512 levels". Iterative: no
// input, however deep, takes stack.
Status CheckJson(std::string_view text, int max_depth = kMaxJsonDepth);

// CheckJson, then parses `text` into *doc. Integers are exact; a double may
// differ from the text in its last digit (keep the text where digits matter).
// On an error *doc is left null.
Status ParseJson(std::string_view text, rapidjson::Document* doc, int max_depth = kMaxJsonDepth);

}  // namespace walhook
