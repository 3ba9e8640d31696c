#pragma once
// Bridge: `walhook run`'s capture loop. One thread streams the slot, decodes,
// matches and writes event_logs in batches, and confirms to Postgres only what
// is durable. Connection losses restart the session with backoff; setup errors
// end the process (FatalError).
// Thread-safety: Run on one thread; RequestStop from a signal handler.

#include <atomic>
#include <string>

#include "walhook/config.h"

namespace walhook {

class Delivery;

class Bridge {
 public:
  explicit Bridge(Config config);

  // Runs until RequestStop; returns the exit code. Throws FatalError.
  int Run();
  // With init: migrations and slot only, then returns.
  void Init();

  static void RequestStop();

 private:
  void Session(Delivery& delivery);

  Config config_;
};

}  // namespace walhook
