#pragma once
// DeliveryStore: the delivery side of the eventing database (libpqxx) —
// webhook targets, claims with leases on the database's clock, batched
// outcomes and invocation rows, lease renewal and release, retention, and
// the node's delivery figures. Errors from the server are pqxx exceptions.
// Thread-safety: one thread (the delivery store thread).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "walhook/attempt.h"
#include "walhook/chain.h"
#include "walhook/transform_request.h"

namespace walhook {

// How long a node owns an event it claimed, unless it renews the lease.
constexpr std::chrono::seconds kLease{30};
// A parked event (leased at insert, not held in memory) is loaded without a
// write while its lease has at least this long to run: time for the next
// renewal, which comes every 10 s.
constexpr std::chrono::seconds kLoadMargin{15};

// What delivery needs of a trigger, read again on every change.
struct Target {
  std::string name;
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  int retries = 3;
  int timeout_ms = 5000;
  int retry_interval_ms = 5000;
  bool ordered = false;
  // What custom events queued by responses are matched on.
  std::string type;
  std::optional<std::string> condition;
  bool enabled = true;
  // SPEC §11: the columns' JSON texts (nullopt for NULL), and what they
  // parse to, set by Delivery once per trigger version: null for the
  // standard request, or with transform_error set when they do not parse.
  std::optional<std::string> request_transform;
  std::optional<std::string> token_claims;
  std::shared_ptr<const RequestTransform> transform;
  std::string transform_error;
};

// How many due events a claim may take for one trigger.
struct ClaimRoom {
  std::string trigger;
  int room = 0;
  bool ordered = false;  // the trigger's `ordered`, as this node last read it
  // For an ordered trigger: look for the first event of every key (a walk
  // in commit order), not only for the next event of the keys just done.
  bool walk = true;
};

// A custom event to insert with a batch of outcomes, for one trigger.
struct QueuedRow {
  std::string trigger;
  std::string type;
  std::string payload;  // JSON text
  int64_t delay_ms = 0;
  std::optional<int64_t> at_ms;
  int chain_depth = 0;
  int64_t origin = 0;  // the event whose outcome queued it
};

class DeliveryStore {
 public:
  // `*started` is the database's time when this node's first store
  // connected (set here when empty): leases this node's name holds from
  // before it are a previous run's.
  DeliveryStore(const std::string& conninfo, std::string schema, std::string node_id,
                std::string* started);
  ~DeliveryStore();

  // Listens for trigger changes and wake-ups (redeliver).
  void Listen();
  int socket() const;
  struct Notices {
    bool triggers_changed = false;
    bool wake = false;
  };
  // Handles arrived notifications without blocking.
  Notices Poll();

  std::vector<Target> LoadTargets();

  // Claims due events without a live lease, up to `room` per trigger (events
  // of an ordered trigger: only the first staged event of each key; keyed
  // events of a trigger no longer ordered go in any order), with a lease of
  // kLease. Leases this node's name held before `started` (a previous run
  // with the same --node-id) count as expired. `done`: events whose outcome
  // was just written; the next event of their key is looked for first.
  // Together the claimed payloads hold at most `max_bytes` (the triggers
  // taken in turn), or one event over it when `one_over` (nothing else is
  // held: an event larger than the room still goes).
  std::vector<HeldEvent> Claim(const std::vector<ClaimRoom>& room, const std::vector<int64_t>& done,
                               size_t max_bytes, bool one_over);

  // Loads the events `ids` names that are still staged and leased to this
  // node (parked events): a read for those whose lease has at least
  // kLoadMargin to run, time for the next renewal; the others' leases are
  // renewed on the way (a write, as a claim's). Payloads in id order up to
  // `max_bytes` (one over it when `one_over`); the events past that go to
  // *unfit with their id and trigger only, still leased, to load later.
  std::vector<HeldEvent> LoadParked(const std::vector<int64_t>& ids, size_t max_bytes,
                                    bool one_over, std::vector<HeldEvent>* unfit);

  // Writes outcomes and invocation rows in one statement, and with them
  // the custom events they queued (`queued`, each by its QueuedRow::origin).
  // An outcome is written only where this node holds the event's lease
  // (lease_owner is this node: a lease that ran out and that no other node
  // took is still this node's, for no other node has sent the event);
  // elsewhere the event keeps what its holder writes, only the invocation
  // row is added, and what the outcome queued is not. An event no longer
  // staged (cancelled meanwhile) keeps its status.
  // One outcome that cannot be stored (a chained event whose due time is out
  // of range, …) never fails the others: when the statement fails on its
  // values (a data error), the batch is written in halves down to the
  // outcomes that fail; each of those is stored `failed`, without what it
  // queued, its remark saying why, and *records shows it so. If even that
  // cannot be stored, it is logged and its lease released.
  // Other errors (a lost connection, a timeout) are thrown, nothing written.
  void Record(std::vector<AttemptRecord>* records, const std::vector<QueuedRow>& queued);
  void Renew(const std::vector<int64_t>& ids);
  // How long until the earliest staged event of these triggers that is not
  // due yet falls due (on the database's clock); nullopt when none is waiting.
  std::optional<std::chrono::milliseconds> NextDue(const std::vector<std::string>& triggers);
  void Release(const std::vector<int64_t>& ids);

  // Deletes up to `limit` events (and their invocation rows) past retention;
  // returns how many. Also cancels staged events whose trigger is gone.
  size_t Retain(std::chrono::seconds retention, std::chrono::seconds failed_retention, int limit);

  // Folds event_counts (the changes whose sums trigger_status shows) into
  // one row per trigger, unless another node is doing it at the moment.
  void FoldCounts();

  // Writes this node's delivery figures; returns how many other nodes
  // reported within the last 5 s (they deliver too).
  size_t ReportDeliveries(double deliveries_per_s, int in_flight);

 private:
  class Receiver;
  // Records [begin, end) of `records` and what they queued: one statement.
  void RecordBatch(const std::vector<AttemptRecord>& records, size_t begin, size_t end,
                   const std::vector<QueuedRow>& queued);
  // Records [begin, end), which failed together with the data error `why`,
  // in halves (see Record).
  void RecordApart(std::vector<AttemptRecord>* records, size_t begin, size_t end,
                   const std::vector<QueuedRow>& queued, const std::string& why);
  pqxx::connection conn_;
  std::string schema_;
  std::string node_id_;
  std::string started_;  // the database's now() when this store connected
  std::string claim_sql_;
  std::string next_due_sql_;
  std::unique_ptr<Receiver> receiver_;
  Notices notices_;
};

}  // namespace walhook
