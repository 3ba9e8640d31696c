#pragma once
// The JSON writer every payload is built with: RapidJSON's Writer into a
// StringBuffer, so numbers pass through as the digits Postgres printed
// and embedded json/jsonb as raw text, both through RawValue (RapidJSON 1.1
// writes RawNumber quoted).

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace walhook {

using JsonBuffer = rapidjson::StringBuffer;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

}  // namespace walhook
