#pragma once
// BackfillRunner: runs the backfills of eventing.backfills (SPEC §10) in the
// streaming session, on a thread and connections of its own (never the
// stream's): one backfill at a time, oldest first. For each chunk it writes
// the watermarks into the source's WAL and reads the rows between them, and
// the stream side (BackfillChannel, in bridge.cpp) turns them into events.
// Its state is in the database, so a node that takes the stream over takes
// a running backfill over too, after its last written chunk.
// Thread-safety: Start/Stop from one thread.

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "walhook/backfill.h"
#include "walhook/config.h"

namespace walhook {

class BackfillRunner {
 public:
  // `channel` must outlive the runner.
  BackfillRunner(const Config& cfg, BackfillChannel& channel);
  ~BackfillRunner();  // stops and joins
  BackfillRunner(const BackfillRunner&) = delete;
  BackfillRunner& operator=(const BackfillRunner&) = delete;

  void Start();
  void Stop();

  // Rows per chunk (at most), and bytes read per chunk (about).
  static constexpr int64_t kChunkRows = 5000;
  static constexpr size_t kChunkBytes = 16u << 20;
  // Chunks whose events may be waiting to be written at once: the stream
  // has as many writers for them (BatchWriter's chunk writers), so two
  // chunks are written side by side while the next is read.
  static constexpr int64_t kChunksInFlight = 2;
  // While live changes flow (one matched a trigger within kLiveWindow), a
  // backfill takes turns with them: chunks of at most kLiveChunkRows, one
  // out at a time, each followed by a pause as long as it took (from its
  // low watermark to its events' commit), so live events keep at least
  // half of the cores' time, and a live change waits behind at most a small
  // chunk's rows in the walsender, the stream and the writer.
  static constexpr int64_t kLiveChunkRows = 500;
  static constexpr std::chrono::milliseconds kLiveWindow{1000};

 private:
  void Loop();

  const Config& cfg_;
  BackfillChannel& channel_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace walhook
