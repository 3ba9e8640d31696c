#include "walhook/matcher.h"

#include <algorithm>

#include "walhook/file_event.h"

namespace walhook {
namespace {

EventKind KindOf(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kInsert: return EventKind::kDbInsert;
    case ChangeKind::kUpdate: return EventKind::kDbUpdate;
    case ChangeKind::kDelete: return EventKind::kDbDelete;
    default: return EventKind::kCustom;
  }
}

const Column* Find(const std::vector<Column>& row, std::string_view name) {
  for (const Column& c : row) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

void MakeKey(std::string* key, std::string_view schema, std::string_view table) {
  key->assign(schema);
  key->push_back('.');
  key->append(table);
}

}  // namespace

Matcher::Matcher(std::vector<Trigger> triggers) {
  for (Trigger& t : triggers) {
    // A condition that was not parsed (validation refused it) never fires
    // unconditionally.
    const bool condition_ok = !t.condition.has_value() || t.parsed_condition != nullptr;
    if (t.enabled && t.active && condition_ok) {
      triggers_.push_back(std::move(t));
    }
  }
  for (size_t i = 0; i < triggers_.size(); ++i) {
    const Trigger& t = triggers_[i];
    if (t.kind == EventKind::kCustom) {
      by_type_[t.type].push_back(i);
      continue;
    }
    if (t.kind == EventKind::kFileCreate || t.kind == EventKind::kFileDelete) {
      file_.push_back(i);
      continue;
    }
    has_db_ = true;
    if (t.table.empty()) {
      any_table_.push_back(i);
    } else {
      MakeKey(&key_, t.schema, t.table);
      by_table_[key_].push_back(i);
    }
  }
}

bool Matcher::Fires(const Trigger& trigger, const Change& change, const TableInfo& table) const {
  if (trigger.kind != KindOf(change.kind)) return false;
  if (trigger.kind == EventKind::kDbUpdate && !trigger.columns.empty() &&
      !AnyColumnChanged(trigger.columns, change, table.replica_identity == 'f')) {
    return false;
  }
  if (trigger.parsed_condition != nullptr) {
    return trigger.parsed_condition->Fires(ChangeValueSource(change));
  }
  return true;
}

void Matcher::Match(const Change& change, const TableInfo& table,
                    std::vector<const Trigger*>* out) const {
  const size_t first = out->size();
  auto add = [&](const std::vector<size_t>& indexes, bool check_reader) {
    for (size_t i : indexes) {
      const Trigger* t = &triggers_[i];
      // A trigger on every table sees only those its owner may read (SPEC
      // §9); one naming its table was checked when triggers were validated.
      if (check_reader &&
          std::find(table.readers.begin(), table.readers.end(), t->owner) == table.readers.end()) {
        continue;
      }
      if (!Fires(*t, change, table)) continue;
      // A trigger on the root and one on the leaf are different triggers, but
      // one trigger must not fire twice.
      if (std::find(out->begin() + static_cast<std::ptrdiff_t>(first), out->end(), t) !=
          out->end()) {
        continue;
      }
      out->push_back(t);
    }
  };
  MakeKey(&key_, change.schema, change.table);
  if (auto it = by_table_.find(key_); it != by_table_.end()) add(it->second, false);
  if (table.is_partition()) {
    MakeKey(&key_, table.root_schema, table.root_table);
    if (auto it = by_table_.find(key_); it != by_table_.end()) add(it->second, false);
  }
  add(any_table_, true);
}

void Matcher::MatchCustom(std::string_view type, std::string_view payload,
                          std::vector<const Trigger*>* out) const {
  key_.assign(type);
  const auto it = by_type_.find(key_);
  if (it == by_type_.end()) return;
  bool indexed = false;
  for (size_t i : it->second) {
    const Trigger* t = &triggers_[i];
    if (PayloadFires(*t, payload, &indexed)) out->push_back(t);
  }
}

void Matcher::MatchFile(EventKind kind, std::string_view path, std::string_view payload,
                        std::vector<const Trigger*>* out) const {
  bool indexed = false;
  for (size_t i : file_) {
    const Trigger* t = &triggers_[i];
    if (t->kind != kind) continue;
    if (t->path_prefix.has_value() && !PathUnderPrefix(path, *t->path_prefix)) continue;
    if (PayloadFires(*t, payload, &indexed)) out->push_back(t);
  }
}

bool Matcher::PayloadFires(const Trigger& trigger, std::string_view payload, bool* indexed) const {
  if (trigger.parsed_condition == nullptr) return true;
  if (!*indexed) {
    // Not JSON: every name is NULL, so a condition does not fire.
    (void)payload_source_->Reset(payload, DataShape::kPayload);
    *indexed = true;
  }
  return trigger.parsed_condition->Fires(*payload_source_);
}

bool AnyColumnChanged(const std::vector<std::string>& columns, const Change& change,
                      bool old_row_complete) {
  if (!old_row_complete) return true;
  for (const std::string& name : columns) {
    const Column* now = Find(change.columns, name);
    if (now == nullptr) continue;  // unchanged TOAST, or no such column
    const Column* before = Find(change.identity, name);
    if (before == nullptr) return true;
    if (before->kind != now->kind || before->text != now->text) return true;
  }
  return false;
}

}  // namespace walhook
