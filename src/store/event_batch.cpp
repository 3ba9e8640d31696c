#include "walhook/event_batch.h"

#include <fmt/format.h>

namespace walhook {
namespace {

void Separator(std::string* literal) {
  if (literal->size() > 1) literal->push_back(',');
}

// `n` digits at `pos`.
bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t year_of_era = y - era * 400;
  const int64_t day_of_year = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

}  // namespace

std::optional<int64_t> PgTimestampMs(std::string_view s) {
  // YYYY-MM-DD HH:MM:SS[.f{1,6}]±HH[:MM[:SS]]
  int year, month, day, hour, minute, second;
  if (s.size() < 22 || !Digits(s, 0, 4, &year) || s[4] != '-' || !Digits(s, 5, 2, &month) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || s[10] != ' ' || !Digits(s, 11, 2, &hour) ||
      s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' || !Digits(s, 17, 2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t us = 0;
  if (s[pos] == '.') {
    const size_t start = ++pos;
    int64_t scale = 100000;
    while (pos < s.size() && pos - start < 6 && s[pos] >= '0' && s[pos] <= '9') {
      us += (s[pos++] - '0') * scale;
      scale /= 10;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-')) return std::nullopt;
  const int sign = s[pos] == '+' ? 1 : -1;
  int offset[3] = {0, 0, 0};  // hours, minutes, seconds
  if (!Digits(s, pos + 1, 2, &offset[0])) return std::nullopt;
  pos += 3;
  for (int i = 1; i < 3 && pos < s.size() && s[pos] == ':'; ++i) {
    if (!Digits(s, pos + 1, 2, &offset[i])) return std::nullopt;
    pos += 3;
  }
  if (pos != s.size()) return std::nullopt;
  const int64_t secs = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                       second - sign * (offset[0] * 3600 + offset[1] * 60 + offset[2]);
  const int64_t total_us = secs * 1000000 + us;
  return total_us >= 0 ? (total_us + 500) / 1000 : -((500 - total_us) / 1000);
}

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
  parked_ = 0;
  has_ordered_ = false;
  has_scheduled_ = false;
  copyable_ = true;
  rows_.clear();
  row_starts_.assign(1, 0);
  leased_.clear();
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
        LeasedRow{row_starts_.size() - 1, commit_lsn, seq, std::string(trigger), *last_commit_ms_});
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
  if (size_++ == 0) first_lsn_ = commit_lsn;
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
  }
  if (payload.size() > kMaxEventBytes) handoff = Handoff::kSweep;
  Separator(&owned_flags_);
  owned_flags_.push_back(handoff == Handoff::kOwned || handoff == Handoff::kParked ? 't' : 'f');
  Separator(&ordered_flags_);
  ordered_flags_.push_back(handoff == Handoff::kOrdered ? 't' : 'f');
  has_ordered_ |= handoff == Handoff::kOrdered;
  if (handoff == Handoff::kOrdered || schedule.later()) StopCopy();
  if (payload.size() > kMaxEventBytes) {
    const std::string remark = fmt::format("event payload is {} bytes, over the {} MiB limit",
                                           payload.size(), kMaxEventBytes >> 20);
    AppendArrayElement(&statuses_, "failed");
    AppendArrayElement(&payloads_, "null");
    AppendArrayElement(&remarks_, remark);
    if (copyable_) {
      AddCopyRow(trigger, type, "failed", "null", commit_ts, commit_lsn, seq, remark, false);
    }
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
    owned_.push_back(
        OwnedEvent{std::string(trigger), std::string(type), std::string(payload), commit_lsn, seq});
  }
}

}  // namespace walhook
