#pragma once
// Postgres values as wal2json prints them → JSON values (SPEC §4).
// Pure: no I/O. Thread-safety: stateless functions.

#include <string_view>

#include "walhook/json.h"

namespace walhook {

// How a Postgres type's values are written to JSON.
enum class TypeClass {
  kString,  // everything else: the text Postgres printed, as a JSON string
  kNumber,  // smallint, integer, bigint, real, double precision, numeric[(p,s)], oid
  kBool,    // boolean
  kJson,    // json, jsonb: embedded as JSON
};

// Classifies a type name as wal2json prints it ("integer", "numeric(10,2)",
// "character varying(20)", "jsonb", "public.mood"). For an array type
// ("text[]", "integer[]"), returns the class of its elements and sets *is_array.
TypeClass ClassifyType(std::string_view type_name, bool* is_array);

// Writes a Postgres array literal ("{1,2}", "{{t,f},{f,t}}", "{a,\"b c\",NULL}",
// "[0:1]={1,2}") as a JSON array whose elements are typed by `element`: numbers
// as raw numbers (NaN/Infinity → null), t/f → true/false, json → embedded,
// NULL → null, others → strings. Nested braces give nested arrays.
// Returns false, having written nothing, when the literal is malformed; the
// caller then writes the text as a string.
bool WritePgArray(std::string_view literal, TypeClass element, JsonWriter& writer);

}  // namespace walhook
