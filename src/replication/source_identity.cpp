#include "walhook/source_identity.h"

#include <algorithm>

#include <fmt/format.h>

namespace walhook {
namespace {

constexpr const char* kHowOn =
    "; run `walhook init --accept-gap` to start a new source epoch from now (and re-sync what "
    "changed meanwhile)";

std::string Captured(const SourceFacts& f) {
  Lsn last = f.last_captured;
  if (f.recorded && f.recorded->confirmed.valid() && f.recorded->confirmed > last) {
    last = f.recorded->confirmed;
  }
  if (!last.valid()) return "nothing was captured yet";
  return fmt::format("walhook captured changes up to LSN {}; changes after it may be missing",
                     last);
}

SourceDecision Refuse(const SourceFacts& f, const std::string& what) {
  SourceDecision d;
  d.action = SourceDecision::Action::kRefuse;
  d.message = fmt::format("slot \"{}\": {}: {}{}", f.slot, what, Captured(f), kHowOn);
  return d;
}

// The first epoch no stored event has.
int64_t NextEpoch(const SourceFacts& f) {
  int64_t last = -1;
  if (f.recorded) last = f.recorded->epoch;
  if (f.max_event_epoch) last = std::max(last, *f.max_event_epoch);
  return last + 1;
}

// What differs between the recorded source and this one, or "".
std::string Changed(const SourceFacts& f) {
  if (!f.recorded) return {};
  const SourceId& was = f.recorded->id;
  if (was.system_identifier != f.current.system_identifier) {
    return fmt::format(
        "the source is another server (system identifier {}, events were captured from {})",
        f.current.system_identifier, was.system_identifier);
  }
  if (was.timeline != f.current.timeline) {
    return fmt::format(
        "the source's timeline is {}, events were captured on timeline {} (a failover to a "
        "standby or a restore from a backup)",
        f.current.timeline, was.timeline);
  }
  return {};
}

bool StreamedBefore(const SourceFacts& f) {
  if (f.recorded) return f.recorded->confirmed.valid();
  return f.max_event_epoch.has_value();
}

}  // namespace

SourceDecision DecideSource(const SourceFacts& f) {
  const std::string changed = Changed(f);
  const bool gap = !changed.empty() || f.slot_lost || (!f.slot_exists && StreamedBefore(f));
  if (f.accept_gap) {
    SourceDecision d;
    if (!gap && f.recorded) {
      d.action = SourceDecision::Action::kGoOn;
      d.epoch = f.recorded->epoch;
      d.message = "the source is the one recorded and its slot is there: no gap to accept";
      return d;
    }
    d.action = SourceDecision::Action::kNewEpoch;
    d.epoch = NextEpoch(f);
    d.message = fmt::format("slot \"{}\": source epoch {} starts now; {}", f.slot, d.epoch,
                            gap ? Captured(f) : "nothing was recorded before");
    return d;
  }
  if (!changed.empty()) return Refuse(f, changed);
  if (f.slot_lost) {
    return Refuse(f, "the slot was invalidated by Postgres (wal_status = lost)");
  }
  if (!f.slot_exists && StreamedBefore(f)) {
    return Refuse(f, "the replication slot is missing (dropped, or the source is a new server)");
  }
  SourceDecision d;
  if (f.recorded) {
    d.action = SourceDecision::Action::kGoOn;
    d.epoch = f.recorded->epoch;
    return d;
  }
  // First start, or events captured before identities were recorded (an
  // upgrade): the slot is there, so the source is the one they came from.
  d.action = SourceDecision::Action::kRecord;
  d.epoch = f.max_event_epoch.value_or(0);
  return d;
}

}  // namespace walhook
