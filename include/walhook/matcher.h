#pragma once
// Matcher: which triggers a row change fires. Built once per trigger reload;
// Match is on the hot path and allocates nothing once `out` has capacity.
// Thread-safety: one thread at a time (Match uses a scratch key).

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "walhook/change.h"
#include "walhook/condition.h"
#include "walhook/trigger.h"

namespace walhook {

class Matcher {
 public:
  Matcher() = default;
  // Keeps the enabled, active triggers of `triggers`; one with a condition
  // only when validation parsed it (Trigger::parsed_condition), a FILE_* one
  // with its path_prefix normalized (CheckPayloadTrigger).
  explicit Matcher(std::vector<Trigger> triggers);

  // Appends to *out the triggers that `change` (kInsert/kUpdate/kDelete on the
  // table described by `table`) fires: its type, `columns` and condition (new.x,
  // old.x; SQL's three-valued logic, fires only on true). A trigger on a partitioned table
  // matches its partitions; one on a leaf matches that leaf. A trigger with no
  // table fires only when its owner is one of table.readers (SPEC §9).
  void Match(const Change& change, const TableInfo& table, std::vector<const Trigger*>* out) const;

  // Appends to *out the custom triggers of type `type` whose condition (over
  // payload.a.b) holds for `payload`, a JSON text. Allocates nothing once
  // `out` has capacity and the scratch source has seen payloads this big.
  void MatchCustom(std::string_view type, std::string_view payload,
                   std::vector<const Trigger*>* out) const;

  // Appends to *out the FILE_* triggers of `kind` whose path_prefix holds
  // `path` and whose condition holds for `payload` (the event's data object).
  // Allocates nothing once `out` has capacity, as MatchCustom.
  void MatchFile(EventKind kind, std::string_view path, std::string_view payload,
                 std::vector<const Trigger*>* out) const;

  bool empty() const { return triggers_.empty(); }
  bool has_db() const { return has_db_; }
  bool has_file() const { return !file_.empty(); }
  const std::vector<Trigger>& triggers() const { return triggers_; }

 private:
  bool Fires(const Trigger& trigger, const Change& change, const TableInfo& table) const;
  // Whether the trigger's condition holds for `payload`; indexes it once.
  bool PayloadFires(const Trigger& trigger, std::string_view payload, bool* indexed) const;

  std::vector<Trigger> triggers_;
  // "schema.table" → indexes into triggers_; and the triggers on every table.
  std::unordered_map<std::string, std::vector<size_t>> by_table_;
  std::vector<size_t> any_table_;
  std::unordered_map<std::string, std::vector<size_t>> by_type_;  // custom triggers
  std::vector<size_t> file_;                                      // FILE_* triggers
  bool has_db_ = false;
  // Scratch for custom conditions (behind a pointer: the source is not movable).
  std::unique_ptr<JsonDataSource> payload_source_ = std::make_unique<JsonDataSource>();
  mutable std::string key_;  // scratch for lookups
};

// DB_UPDATE with `columns`: did one of them change? Exact when `old_row` is the
// whole row (REPLICA IDENTITY FULL); otherwise every listed column counts as
// changed (SPEC §3). A column absent from the new row (unchanged TOAST) did not
// change.
bool AnyColumnChanged(const std::vector<std::string>& columns, const Change& change,
                      bool old_row_complete);

}  // namespace walhook
