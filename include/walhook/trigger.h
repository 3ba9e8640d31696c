#pragma once
// Triggers as users define them in eventing.triggers, and what the matcher
// needs to know about the source tables. Pure values.
// Thread-safety: plain values.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/condition.h"

namespace walhook {

enum class EventKind { kDbInsert, kDbUpdate, kDbDelete, kFileCreate, kFileDelete, kCustom };

// "DB_INSERT" → kDbInsert …; any other name is kCustom (the database's CHECK
// constraint has already refused malformed names).
EventKind ParseEventKind(std::string_view type);
std::string_view EventKindName(EventKind kind);  // "DB_INSERT"; "" for kCustom

struct Trigger {
  std::string name;
  std::string type;  // as written: "DB_INSERT", "ORDER_SHIPPED"
  EventKind kind = EventKind::kCustom;
  // DB_*: empty schema and table = every table; table_name "t" means public.t.
  std::string schema;
  std::string table;
  std::vector<std::string> columns;  // DB_UPDATE: fire when one of these changed
  std::optional<std::string> condition;
  // `condition` parsed, set by validation; null when there is none (or it
  // does not parse, which leaves the trigger inactive). Shared: copies of a
  // trigger share one immutable tree.
  std::shared_ptr<const Condition> parsed_condition;
  std::optional<std::string> path_prefix;
  // The `headers` column's JSON text (a jsonb object), when not NULL.
  std::optional<std::string> headers;
  // The `request_transform` and `token_claims` columns' JSON texts (SPEC
  // §11), when not NULL.
  std::optional<std::string> request_transform;
  std::optional<std::string> token_claims;
  // The role that wrote the trigger (SPEC §9): a DB_* trigger fires only for
  // tables this role may SELECT in the source database.
  std::string owner;
  bool enabled = true;
  bool ordered = false;  // delivered one at a time per primary key
  // Set by validation: false when a definition error keeps the trigger from
  // firing at all (the error is shown in trigger_status.last_error).
  bool active = true;
};

// Checks what only walhook can judge of a custom or FILE_* trigger: its
// condition parses and names payload.* only, and a FILE_* trigger's
// path_prefix is absolute without "." or ".." (stored normalized, see
// NormalizePathPrefix). Returns the message for trigger_status.last_error,
// or "" with t->parsed_condition set and t->path_prefix normalized.
// REQUIRES: t->kind is kCustom, kFileCreate or kFileDelete.
std::string CheckPayloadTrigger(Trigger* t);

// Whether a trigger's headers may not set `name` (SPEC §9), case-insensitively:
// Host, Content-Length, Transfer-Encoding, Connection, Content-Type,
// X-SC-Token and every webhook-* header are walhook's own.
bool IsReservedHeader(std::string_view name);

// Checks a trigger's `headers` (a JSON object's text): each member a string,
// its name an HTTP token that IsReservedHeader does not refuse, its value
// without CR, LF or NUL. Returns the message for trigger_status.last_error,
// naming the first bad header (quoted, control bytes escaped, cut short), or
// "" when every header may be sent.
std::string CheckTriggerHeaders(std::string_view headers_json);

// Whether `c` may appear in an HTTP header name (an RFC 9110 token).
bool IsHeaderTokenChar(char c);

// A name or value quoted in a message (last_error, a remark): control bytes
// and quotes escaped, at most 64 bytes of it, never cut inside a character.
std::string ShownInMessage(std::string_view text);

// A custom-event trigger as matching needs it, its condition parsed; nullopt
// when CheckPayloadTrigger refuses it (the streaming node's validation shows
// why in trigger_status.last_error).
std::optional<Trigger> CustomTrigger(std::string name, std::string type,
                                     std::optional<std::string> condition, bool enabled);

// Splits a table_name as users write it: "orders" → ("public", "orders"),
// "shop.orders" → ("shop", "orders"), "\"Shop\".\"Orders\"" keeps case and
// quotes removed; unquoted names fold to lower case, as in SQL.
// Returns false for names that are not one or two identifiers.
bool ParseTableName(std::string_view text, std::string* schema, std::string* table);

// What walhook learns about a source table from the catalog.
struct TableInfo {
  std::string schema;  // the table as wal2json names it (a leaf partition)
  std::string table;
  std::string root_schema;  // the partitioned table at the top, or the same table
  std::string root_table;
  char replica_identity = 'd';                // pg_class.relreplident: d, f (full), i (index), n
  std::vector<std::string> identity_columns;  // replica identity index columns ('i')
  // The live columns whose values can be TOASTed (variable length), in
  // attnum order: only these can be left out of an UPDATE as unchanged TOAST.
  std::vector<std::string> columns;
  // The trigger owners that may SELECT this table (or its partitioned root)
  // in the source database: a trigger with no table_name fires for this
  // table only when its owner is one of them (SPEC §9).
  std::vector<std::string> readers;
  bool is_partition() const { return schema != root_schema || table != root_table; }
};

}  // namespace walhook
