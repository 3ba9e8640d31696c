#pragma once
// Delivery: the webhook engine of `walhook run` (SPEC §4). Two threads of its
// own: the dispatcher runs one libcurl multi loop (keep-alive, HTTP/2
// multiplexing where offered, TLS verified) over the events this node holds;
// the store thread claims due events, writes outcomes and invocation rows in
// batches, renews and releases leases, and applies retention. Events the
// capture side stores are leased to this node at insert and handed over in
// memory right after their commit, so delivery starts without a poll.
//
// Limits: at most kMaxInFlight requests at once and kTriggerInFlight per
// trigger, and a fair share of kMaxInFlight: with W triggers that have work,
// kMaxInFlight / (W + 1) each, and the last 64 slots only for triggers with
// less than half that in flight, so room stays free for the next (SPEC §9:
// endpoints that hang fill their own triggers' shares only); at most
// kMaxHeld events (kMaxHeldBytes of payload) held in memory, kTriggerHeld per trigger — the rest
// wait in event_logs. Beyond that, up to kMaxParked events are leased to this node at insert all
// the same and only their ids kept ("parked"): the sweep loads them by id when room opens, without
// the claim's write while their lease has long enough to run (see DeliveryStore::LoadParked). The
// rest are claimed. While other nodes deliver from the same eventing database, nothing is parked:
// the backlog is theirs to share. An event is held from its claim until its outcome is written, so
// a slow eventing database slows delivery instead of piling up outcomes. A slow endpoint fills only
// its own trigger's share.
//
// Thread-safety: Reserve/Poke from the capture thread, Committed/Dropped
// from writer threads, the rest from the owner; all of them may run at once.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "walhook/batch_writer.h"
#include "walhook/config.h"
#include "walhook/delivery_store.h"
#include "walhook/matcher.h"
#include "walhook/transform_request.h"

namespace walhook {

class Delivery : public CommitListener {
 public:
  static constexpr int kMaxInFlight = 256;
  static constexpr int kTriggerInFlight = 64;
  static constexpr size_t kMaxHeld = 20000;
  static constexpr size_t kTriggerHeld = 10000;
  static constexpr size_t kMaxHeldBytes = 64u << 20;
  static constexpr size_t kMaxParked = 200000;  // 8 bytes each

  explicit Delivery(const Config& config);
  ~Delivery() override;  // Stop()

  void Start();
  // Stops taking work, lets requests in flight finish (up to their timeout,
  // at most 10 s), writes their outcomes and releases the leases of events
  // not sent, so another node (or the next start) takes them at once: as
  // many as it can in 3 s after the last request (the rest wait out their lease).
  void Stop();

  // Room for one more event of `trigger` with a payload of `bytes`, to be
  // leased at insert and handed over by Committed; false leaves the event
  // to the sweep.
  bool Reserve(const std::string& trigger, size_t bytes);
  // When Reserve said no: room for one more parked event,
  // leased at insert, whose id Committed keeps; false leaves it to the sweep.
  bool Park();
  // Events of an ordered trigger were stored: sweep now.
  void Poke();

  void Committed(EventBatch& batch, const std::vector<StoredEvent>& stored) override;
  void Dropped(EventBatch& batch) override;

  // Attempts finished so far, and requests in flight now.
  uint64_t attempts() const { return attempts_.load(); }
  int in_flight() const { return in_flight_.load(); }

 private:
  class Dispatcher;
  void StoreLoop();
  void StoreSession(DeliveryStore& store);
  // `walk`: ordered triggers look for the first event of every key, not only
  // for the next event of the keys of `done` (events whose outcome was just
  // written); an ordered trigger whose last claim filled its room always does.
  void Sweep(DeliveryStore& store, bool walk, const std::vector<int64_t>& done);
  void LoadTargets(DeliveryStore& store);
  // The rows for the custom events `outcomes` queue: one per matching trigger.
  std::vector<QueuedRow> MatchQueued(const std::vector<AttemptRecord>& outcomes) const;
  void Unhold(const std::string& trigger, size_t bytes);  // REQUIRES: mu_ held
  // Up to `n` ids of `trigger`'s parked events, oldest first. REQUIRES: mu_ held.
  std::vector<int64_t> TakeParked(const std::string& trigger, size_t n);
  // At a stop: the next chunk of leases to give back into `releases`; a
  // while after the dispatcher has `sent_all`, forgets the rest. REQUIRES: mu_ held.
  void GiveBack(bool sent_all, std::vector<int64_t>* releases);
  void Wake();  // the store thread

  const Config& cfg_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::thread store_thread_;
  int wake_fd_ = -1;  // eventfd: the store thread has work

  std::mutex mu_;
  // Held: reserved, queued, being sent, or its outcome not yet written.
  // Counts shrink when the outcome is written.
  size_t held_ = 0;
  size_t held_bytes_ = 0;
  std::unordered_map<std::string, size_t> held_by_trigger_;
  std::unordered_set<int64_t> held_ids_;  // for lease renewal
  std::vector<AttemptRecord> outcomes_;   // to write
  // Outcomes are written together: from when the first of them came, the
  // store thread waits kOutcomeGather for more (the requests are made; only
  // psql sees their outcomes later), unless one of them lets an ordered
  // key's next event go, or a batch is full.
  std::chrono::steady_clock::time_point outcomes_since_;
  bool outcomes_urgent_ = false;
  // Whether outcomes_ are to be written now.
  // REQUIRES: mu_ held.
  bool OutcomesDue(std::chrono::steady_clock::time_point now) const;
  std::vector<int64_t> releases_;  // leases to give back, no attempt made
  // Parked events' ids by trigger, in insert order.
  std::unordered_map<std::string, std::deque<int64_t>> parked_;
  size_t parked_count_ = 0;     // in parked_
  size_t parked_reserved_ = 0;  // said yes to by Park, batch not yet written
  bool poke_ = false;
  bool reload_ = false;  // the dispatcher met a trigger it does not know
  bool stopping_ = false;
  bool store_done_ = false;
  std::optional<std::chrono::steady_clock::time_point> release_by_;  // at a stop

  // The store thread's own.
  std::string started_;  // the database's time at the first connection
  std::vector<std::string> target_names_;
  std::unordered_set<std::string> ordered_names_;
  Matcher custom_matcher_;     // for events that responses and failures queue
  TransformCache transforms_;  // the triggers' request transforms, parsed
  bool backlog_ = false;       // the last sweep filled some trigger's room
  // Ordered triggers whose room the last walking sweep filled.
  std::unordered_set<std::string> ordered_backlog_;

  std::atomic<bool> peers_{false};  // other nodes reported lately: park nothing
  std::atomic<uint64_t> attempts_{0};
  std::atomic<int> in_flight_{0};

  friend class Dispatcher;
};

}  // namespace walhook
