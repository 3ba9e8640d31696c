#pragma once
// ReplicationStream: a libpq walsender connection (replication=database)
// streaming a logical slot with wal2json in COPY BOTH mode, as pg_recvlogical
// does. The adapter at the edge: no decoding or matching here.
// Thread-safety: one thread.

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "walhook/lsn.h"
#include "walhook/source_identity.h"
#include "walhook/wire.h"

namespace walhook {

class ReplicationStream {
 public:
  // One CopyData message from the server. `bytes` is owned (PQfreemem).
  struct Message {
    std::unique_ptr<char, decltype(&PQfreemem)> bytes{nullptr, &PQfreemem};
    size_t size = 0;
  };
  enum class Read { kMessage, kWouldBlock, kEnd };

  // Connects to `conninfo` as a walsender, with TimeZone=UTC and DateStyle=ISO
  // so values print as SPEC §4 says. Throws SessionError (or FatalError for a
  // setup error the user must fix).
  ReplicationStream(const std::string& conninfo, std::string slot);

  // IDENTIFY_SYSTEM: the server's system identifier and current timeline.
  // Throws SessionError.
  SourceId IdentifySystem();

  // START_REPLICATION SLOT … LOGICAL 0/0 with wal2json format-version 2.
  // `options` are extra ("name", "value") plugin options.
  void Start(const std::vector<std::pair<std::string, std::string>>& options);

  // Reads the next message without blocking. kEnd: the server ended the stream.
  // Throws SessionError on a lost connection.
  Read Next(Message* out);

  // Sends a standby status update and flushes it.
  void SendStatus(Lsn position, bool reply_requested);

  // Ends the COPY cleanly (PQputCopyEnd) and waits briefly for the server.
  void Finish();

  int socket() const { return PQsocket(conn_.get()); }

 private:
  static void OnNotice(void* arg, const char* message);
  void Flush();
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn_{nullptr, &PQfinish};
  std::string slot_;
  std::chrono::steady_clock::time_point last_notice_;
  int suppressed_notices_ = 0;
};

// Raises a FatalError when `message` is a setup error (errors.h SetupHint),
// else a SessionError naming `what`.
[[noreturn]] void ThrowServerError(const std::string& what, const std::string& message,
                                   const std::string& slot);

}  // namespace walhook
