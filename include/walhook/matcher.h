#pragma once
// Matcher: which triggers a row change fires. Built once per trigger reload;
// Match is on the hot path and allocates nothing once `out` has capacity.
// Thread-safety: one thread at a time (Match uses a scratch key).

#include <string>
#include <unordered_map>
#include <vector>

#include "walhook/change.h"
#include "walhook/trigger.h"

namespace walhook {

class Matcher {
 public:
  Matcher() = default;
  // Keeps the enabled, active DB_* triggers of `triggers`; one with a
  // condition only when validation parsed it (Trigger::parsed_condition).
  explicit Matcher(std::vector<Trigger> triggers);

  // Appends to *out the triggers that `change` (kInsert/kUpdate/kDelete on the
  // table described by `table`) fires: its type, `columns` and condition (new.x,
  // old.x; SQL's three-valued logic, fires only on true). A trigger on a partitioned table
  // matches its partitions; one on a leaf matches that leaf.
  void Match(const Change& change, const TableInfo& table, std::vector<const Trigger*>* out) const;

  bool empty() const { return triggers_.empty(); }
  const std::vector<Trigger>& triggers() const { return triggers_; }

 private:
  bool Fires(const Trigger& trigger, const Change& change, const TableInfo& table) const;

  std::vector<Trigger> triggers_;
  // "schema.table" → indexes into triggers_; and the triggers on every table.
  std::unordered_map<std::string, std::vector<size_t>> by_table_;
  std::vector<size_t> any_table_;
  mutable std::string key_;  // scratch for lookups
};

// DB_UPDATE with `columns`: did one of them change? Exact when `old_row` is the
// whole row (REPLICA IDENTITY FULL); otherwise every listed column counts as
// changed (SPEC §3). A column absent from the new row (unchanged TOAST) did not
// change.
bool AnyColumnChanged(const std::vector<std::string>& columns, const Change& change,
                      bool old_row_complete);

}  // namespace walhook
