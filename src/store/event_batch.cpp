#include "walhook/event_batch.h"

#include <charconv>

#include <fmt/format.h>

#include "walhook/timestamp.h"

namespace walhook {
namespace {

void Separator(std::string* literal) {
  if (literal->size() > 1) literal->push_back(',');
}

}  // namespace

void AppendCopyField(std::string* row, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': row->append("\\\\"); break;
      case '\n': row->append("\\n"); break;
      case '\r': row->append("\\r"); break;
      case '\t': row->append("\\t"); break;
      default: row->push_back(c);
    }
  }
}

void AppendArrayElement(std::string* literal, std::string_view value) {
  Separator(literal);
  literal->push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') literal->push_back('\\');
    literal->push_back(c);
  }
  literal->push_back('"');
}

std::string EventBatch::Closed(const std::string& literal) {
  std::string out;
  out.reserve(literal.size() + 1);
  out.append(literal);
  out.push_back('}');
  return out;
}

void EventBatch::Clear() {
  size_ = 0;
  first_lsn_ = Lsn();
  for (std::string* s : {&triggers_, &types_, &statuses_, &payloads_, &timestamps_, &lsns_, &seqs_,
                         &remarks_, &owned_flags_, &ordered_flags_, &delays_, &ats_}) {
    s->clear();
    s->push_back('{');
  }
  owned_.clear();
  marks_.clear();
  parked_ = 0;
  has_ordered_ = false;
  has_scheduled_ = false;
  copyable_ = true;
  progress_.reset();
  rows_.clear();
  row_starts_.assign(1, 0);
  leased_.clear();
  // A batch moved from keeps no stale reading (its text may be gone).
  last_commit_ts_.clear();
  last_commit_ms_.reset();
}

void EventBatch::StopCopy() {
  copyable_ = false;
  rows_.clear();
  rows_.shrink_to_fit();
  row_starts_.assign(1, 0);
  leased_.clear();
}

void EventBatch::AddCopyRow(std::string_view trigger, std::string_view type,
                            std::string_view status, std::string_view payload,
                            std::string_view commit_ts, Lsn commit_lsn, int seq,
                            const std::optional<std::string>& remark, bool leased) {
  if (leased) {
    // One read per transaction: its events share the commit time.
    if (commit_ts != last_commit_ts_ || !last_commit_ms_) {
      last_commit_ts_.assign(commit_ts);
      last_commit_ms_ = PgTimestampMs(commit_ts);
    }
    if (!last_commit_ms_) {
      StopCopy();
      return;
    }
    leased_.push_back(
        LeasedRow{row_starts_.size() - 1,
                  StoredEvent{0, commit_lsn, seq, std::string(trigger), *last_commit_ms_}});
  }
  for (std::string_view field : {trigger, type, status, payload, commit_ts, commit_ts}) {
    AppendCopyField(&rows_, field);
    rows_.push_back('\t');
  }
  fmt::format_to(std::back_inserter(rows_), "{}\t{}\t", commit_lsn, seq);
  if (remark) {
    AppendCopyField(&rows_, *remark);
  } else {
    rows_.append("\\N");
  }
  row_starts_.push_back(rows_.size());
}

void EventBatch::Add(std::string_view trigger, std::string_view type, std::string_view payload,
                     std::string_view commit_ts, Lsn commit_lsn, int seq, Handoff handoff,
                     const Schedule& schedule) {
  std::optional<std::string> remark;
  if (payload.size() > kMaxEventBytes) {
    remark = fmt::format("event payload is {} bytes, over the {} MiB limit", payload.size(),
                         kMaxEventBytes >> 20);
  }
  Append(trigger, type, payload, commit_ts, commit_lsn, seq, handoff, schedule, remark);
}

void EventBatch::AddFailed(std::string_view trigger, std::string_view type,
                           std::string_view commit_ts, Lsn commit_lsn, int seq,
                           const std::string& remark) {
  Append(trigger, type, "null", commit_ts, commit_lsn, seq, Handoff::kSweep, Schedule{}, remark);
}

void EventBatch::Append(std::string_view trigger, std::string_view type, std::string_view payload,
                        std::string_view commit_ts, Lsn commit_lsn, int seq, Handoff handoff,
                        const Schedule& schedule, const std::optional<std::string>& remark) {
  if (size_++ == 0) first_lsn_ = commit_lsn;
  Marks marks;
  const auto literals = Literals();
  for (size_t i = 0; i < literals.size(); ++i) {
    marks.pos[i] = static_cast<uint32_t>(literals[i]->size());
  }
  marks.parked = handoff == Handoff::kParked;
  if (handoff == Handoff::kParked) ++parked_;
  AppendArrayElement(&triggers_, trigger);
  AppendArrayElement(&types_, type);
  AppendArrayElement(&timestamps_, commit_ts);
  Separator(&lsns_);
  fmt::format_to(std::back_inserter(lsns_), "{}", commit_lsn);
  Separator(&seqs_);
  fmt::format_to(std::back_inserter(seqs_), "{}", seq);
  Separator(&delays_);
  fmt::format_to(std::back_inserter(delays_), "{}", schedule.delay_ms);
  Separator(&ats_);
  if (schedule.at_ms.has_value()) {
    fmt::format_to(std::back_inserter(ats_), "{}", *schedule.at_ms);
  } else {
    ats_ += "NULL";
  }
  // Events due later are found by the sweep when they fall due.
  if (schedule.later()) {
    handoff = Handoff::kSweep;
    has_scheduled_ = true;
    marks.scheduled = true;
  }
  if (remark) handoff = Handoff::kSweep;
  Separator(&owned_flags_);
  owned_flags_.push_back(handoff == Handoff::kOwned || handoff == Handoff::kParked ? 't' : 'f');
  Separator(&ordered_flags_);
  ordered_flags_.push_back(handoff == Handoff::kOrdered ? 't' : 'f');
  has_ordered_ |= handoff == Handoff::kOrdered;
  marks.ordered = handoff == Handoff::kOrdered;
  if (handoff == Handoff::kOrdered || schedule.later()) StopCopy();
  if (remark) {
    AppendArrayElement(&statuses_, "failed");
    AppendArrayElement(&payloads_, "null");
    AppendArrayElement(&remarks_, *remark);
    if (copyable_) {
      AddCopyRow(trigger, type, "failed", "null", commit_ts, commit_lsn, seq, remark, false);
    }
    marks_.push_back(marks);
    return;
  }
  AppendArrayElement(&statuses_, "staged");
  AppendArrayElement(&payloads_, payload);
  Separator(&remarks_);
  remarks_ += "NULL";
  if (copyable_) {
    AddCopyRow(trigger, type, "staged", payload, commit_ts, commit_lsn, seq, std::nullopt,
               handoff == Handoff::kOwned || handoff == Handoff::kParked);
  }
  if (handoff == Handoff::kOwned) {
    marks.owned = static_cast<int32_t>(owned_.size());
    owned_.push_back(
        OwnedEvent{std::string(trigger), std::string(type), std::string(payload), commit_lsn, seq});
  }
  marks_.push_back(marks);
}

std::array<std::string*, 12> EventBatch::Literals() {
  return {&triggers_, &types_,   &statuses_,    &payloads_,      &timestamps_, &lsns_,
          &seqs_,     &remarks_, &owned_flags_, &ordered_flags_, &delays_,     &ats_};
}

std::array<const std::string*, 12> EventBatch::Literals() const {
  return {&triggers_, &types_,   &statuses_,    &payloads_,      &timestamps_, &lsns_,
          &seqs_,     &remarks_, &owned_flags_, &ordered_flags_, &delays_,     &ats_};
}

std::string_view EventBatch::ElementText(size_t literal, size_t i) const {
  const std::string& l = *Literals()[literal];
  const size_t from = marks_[i].pos[literal] + (i > 0 ? 1 : 0);
  const size_t to = i + 1 < size_ ? marks_[i + 1].pos[literal] : l.size();
  return std::string_view(l).substr(from, to - from);
}

std::string EventBatch::Element(size_t literal, size_t i) const {
  const std::string_view text = ElementText(literal, i);
  if (text.empty() || text.front() != '"') return std::string(text);
  // A quoted element: AppendArrayElement escaped '"' and '\\' only.
  std::string out;
  for (size_t k = 1; k + 1 < text.size(); ++k) {
    if (text[k] == '\\') ++k;
    out.push_back(text[k]);
  }
  return out;
}

EventBatch::EventRef EventBatch::Event(size_t i) const {
  EventRef e;
  e.trigger = Element(0, i);
  e.type = Element(1, i);
  e.commit_ts = Element(4, i);
  e.lsn = Lsn::Parse(Element(5, i)).value_or(Lsn());
  const std::string seq = Element(6, i);
  std::from_chars(seq.data(), seq.data() + seq.size(), e.seq);
  return e;
}

EventBatch EventBatch::Slice(size_t begin, size_t end) const {
  EventBatch out;
  out.StopCopy();
  if (begin >= end || end > size_) return out;
  const auto from = Literals();
  const auto to = out.Literals();
  std::array<size_t, 12> start{};
  for (size_t l = 0; l < from.size(); ++l) {
    start[l] = marks_[begin].pos[l] + (begin > 0 ? 1 : 0);
    const size_t stop = end < size_ ? marks_[end].pos[l] : from[l]->size();
    to[l]->append(*from[l], start[l], stop - start[l]);
  }
  for (size_t k = begin; k < end; ++k) {
    Marks m = marks_[k];
    for (size_t l = 0; l < m.pos.size(); ++l) {
      m.pos[l] = k == begin ? 1 : static_cast<uint32_t>(marks_[k].pos[l] - start[l] + 1);
    }
    if (m.owned >= 0) {
      out.owned_.push_back(owned_[static_cast<size_t>(m.owned)]);
      m.owned = static_cast<int32_t>(out.owned_.size() - 1);
    }
    out.parked_ += m.parked ? 1 : 0;
    out.has_ordered_ |= m.ordered;
    out.has_scheduled_ |= m.scheduled;
    out.marks_.push_back(m);
  }
  out.size_ = end - begin;
  out.first_lsn_ = Event(begin).lsn;
  return out;
}

}  // namespace walhook
