#pragma once
// `walhook sink`: a webhook receiver for trying walhook out. Prints one line
// per delivery saying whether X-SC-Token and the Standard Webhooks signature
// verify, and answers a share of requests with an error (--fail-rate).
// Thread-safety: RunSink blocks the calling thread until SIGTERM/SIGINT.

#include "walhook/config.h"

namespace walhook {

// Serves until stopped; returns the exit code. Throws FatalError when the
// address cannot be bound.
int RunSink(const Config& config);

}  // namespace walhook
