#pragma once
// FileWatcher: the file events of `walhook run` (SPEC §6). Each --watch-dir
// is watched recursively with inotify on a thread of its own; changes become
// FILE_CREATE / FILE_DELETE events (file_event.h), matched against the FILE_*
// triggers (reloaded at most a second after a change to eventing.triggers)
// and written to event_logs in batches, then delivery is poked.
//
// What a change becomes: a file closed after writing, or moved in, is a
// FILE_CREATE; a created directory is one FILE_CREATE ("type": "dir") and
// starts being watched, with one event for each entry already inside (so a
// directory moved in is reported with everything in it); deleted or moved
// out is a FILE_DELETE (one for a directory moved out, whose contents are
// no longer seen); a rename inside the watched trees is a FILE_DELETE of the
// old path and a FILE_CREATE of the new. Symbolic links are reported, never
// followed. Entries a walk of a new directory finds are reported once the
// queue is drained, so one whose own event is in the queue (cp -r writing
// into a directory just made) is reported once, by that event.
//
// When the kernel's inotify queue overflows, the trees are rescanned: new
// directories are watched and reported with their contents, vanished ones
// are reported deleted, and files changed since the last read are reported
// again (FILE_CREATE); files deleted during the overflow are not seen. Said
// in the log.
//
// Memory: one entry per watched directory, and at most one batch of events
// (kBatch) in hand; while the eventing database is down the watcher waits
// and the kernel's queue holds what comes (then overflows, see above).
//
// Thread-safety: Start/Stop from one thread.

#include <memory>

#include "walhook/config.h"

namespace walhook {

class Delivery;

class FileWatcher {
 public:
  // `delivery` is poked when events are stored; it must outlive the watcher.
  FileWatcher(const Config& cfg, Delivery& delivery);
  ~FileWatcher();  // Stop()

  // Watches every --watch-dir, then runs on a thread. Throws FatalError
  // (exit 2) for a --watch-dir that is not a readable directory, or that is
  // inside another one (its changes would come twice).
  void Start();
  // Writes the events in hand (unless the database is down) and returns.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace walhook
