#include "walhook/replication_stream.h"

#include <poll.h>
#include <cstdlib>

#include <chrono>

#include <fmt/format.h>

#include "walhook/errors.h"
#include "walhook/log.h"

namespace walhook {
namespace {

using ResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

std::string Trimmed(const char* text) {
  std::string s = text == nullptr ? "" : text;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string QuoteLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string QuoteIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace

void ThrowServerError(const std::string& what, const std::string& message,
                      const std::string& slot) {
  std::string hint = SetupHint(message, slot);
  if (!hint.empty()) throw FatalError(kExitSetup, hint);
  throw SessionError(fmt::format("{}: {}", what, message));
}

ReplicationStream::ReplicationStream(const std::string& conninfo, std::string slot)
    : slot_(std::move(slot)) {
  // The user's conninfo first (expand_dbname), then our overrides; the
  // user's own "options" are kept, ours appended.
  std::string options;
  char* parse_error = nullptr;
  if (PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error)) {
    for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
      if (std::string_view(o->keyword) == "options" && o->val != nullptr) options = o->val;
    }
    PQconninfoFree(parsed);
  }
  PQfreemem(parse_error);
  options += " -c TimeZone=UTC -c DateStyle=ISO";
  const char* keys[] = {"dbname", "replication", "options", "application_name", nullptr};
  const char* values[] = {conninfo.c_str(), "database", options.c_str(), "walhook", nullptr};
  conn_.reset(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  // wal2json warns per row (e.g. an UPDATE it cannot identify): log them as
  // our lines, at most one a second, instead of libpq's raw stderr.
  PQsetNoticeProcessor(conn_.get(), &ReplicationStream::OnNotice, this);
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    ThrowServerError("replication connection failed", Trimmed(PQerrorMessage(conn_.get())), slot_);
  }
}

void ReplicationStream::OnNotice(void* arg, const char* message) {
  auto* self = static_cast<ReplicationStream*>(arg);
  const auto now = std::chrono::steady_clock::now();
  if (now - self->last_notice_ < std::chrono::seconds(1)) {
    ++self->suppressed_notices_;
    return;
  }
  self->last_notice_ = now;
  if (self->suppressed_notices_ > 0) {
    LogWarn("slot \"{}\": {} (and {} more notices in the last second)", self->slot_,
            Trimmed(message), self->suppressed_notices_);
  } else {
    LogWarn("slot \"{}\": {}", self->slot_, Trimmed(message));
  }
  self->suppressed_notices_ = 0;
}

SourceId ReplicationStream::IdentifySystem() {
  ResultPtr res(PQexec(conn_.get(), "IDENTIFY_SYSTEM"), &PQclear);
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK || PQntuples(res.get()) != 1 ||
      PQnfields(res.get()) < 2) {
    ThrowServerError("IDENTIFY_SYSTEM failed", Trimmed(PQerrorMessage(conn_.get())), slot_);
  }
  SourceId id;
  id.system_identifier = PQgetvalue(res.get(), 0, 0);
  id.timeline = std::strtoll(PQgetvalue(res.get(), 0, 1), nullptr, 10);
  return id;
}

void ReplicationStream::Start(const std::vector<std::pair<std::string, std::string>>& options) {
  std::string sql = fmt::format("START_REPLICATION SLOT {} LOGICAL 0/0 (", QuoteIdent(slot_));
  bool first = true;
  for (const auto& [name, value] : options) {
    if (!first) sql += ", ";
    first = false;
    sql += QuoteIdent(name) + " " + QuoteLiteral(value);
  }
  sql += ")";
  ResultPtr res(PQexec(conn_.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(res.get()) != PGRES_COPY_BOTH) {
    ThrowServerError(fmt::format("START_REPLICATION on slot \"{}\" failed", slot_),
                     Trimmed(PQerrorMessage(conn_.get())), slot_);
  }
}

ReplicationStream::Read ReplicationStream::Next(Message* out) {
  char* buf = nullptr;
  int n = PQgetCopyData(conn_.get(), &buf, /*async=*/1);
  if (n == 0) {
    if (PQconsumeInput(conn_.get()) == 0) {
      throw SessionError(
          fmt::format("replication connection lost: {}", Trimmed(PQerrorMessage(conn_.get()))));
    }
    n = PQgetCopyData(conn_.get(), &buf, 1);
    if (n == 0) return Read::kWouldBlock;
  }
  if (n > 0) {
    out->bytes.reset(buf);
    out->size = static_cast<size_t>(n);
    return Read::kMessage;
  }
  if (n == -1) {
    // The COPY ended: read the final result to learn why.
    ResultPtr res(PQgetResult(conn_.get()), &PQclear);
    if (res && PQresultStatus(res.get()) == PGRES_FATAL_ERROR) {
      ThrowServerError("replication stream ended", Trimmed(PQresultErrorMessage(res.get())), slot_);
    }
    return Read::kEnd;
  }
  throw SessionError(
      fmt::format("replication read failed: {}", Trimmed(PQerrorMessage(conn_.get()))));
}

void ReplicationStream::SendStatus(Lsn position, bool reply_requested) {
  const std::string msg = StandbyStatus(position, PgNowMicros(), reply_requested);
  if (PQputCopyData(conn_.get(), msg.data(), static_cast<int>(msg.size())) <= 0) {
    throw SessionError(
        fmt::format("could not send standby status: {}", Trimmed(PQerrorMessage(conn_.get()))));
  }
  Flush();
}

void ReplicationStream::Flush() {
  for (int i = 0; i < 100; ++i) {
    const int r = PQflush(conn_.get());
    if (r == 0) return;
    if (r < 0) {
      throw SessionError(
          fmt::format("replication write failed: {}", Trimmed(PQerrorMessage(conn_.get()))));
    }
    pollfd p{PQsocket(conn_.get()), POLLOUT, 0};
    ::poll(&p, 1, 100);
  }
  throw SessionError("replication write stalled for 10 s");
}

void ReplicationStream::Finish() {
  if (PQputCopyEnd(conn_.get(), nullptr) <= 0) return;
  try {
    Flush();
  } catch (const SessionError&) {
    return;
  }
  // Drain what the server still sends until it ends the COPY, for at most
  // 2 s. Only then may PQgetResult be called: while CopyData is unread it
  // returns PGRES_COPY_OUT again and again without reading on. A walsender
  // still busy decoding is left to see the connection close instead.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn_.get(), &buf, 1);
    if (n > 0) {
      PQfreemem(buf);
    } else if (n == -1) {
      break;  // the COPY is over
    } else if (n < -1) {
      return;
    } else {
      pollfd p{PQsocket(conn_.get()), POLLIN, 0};
      ::poll(&p, 1, 100);
      if (PQconsumeInput(conn_.get()) == 0) return;
    }
    if (std::chrono::steady_clock::now() >= deadline) return;
  }
  while (PGresult* r = PQgetResult(conn_.get())) PQclear(r);
}

}  // namespace walhook
