#pragma once
// The adapters on libpqxx: EventStore (the eventing database: migrations,
// triggers, event_logs, node status) and SourceCatalog (the source database:
// setup checks, the slot, table facts, heartbeats). Errors from the server
// surface as pqxx exceptions, which end the session; setup errors as FatalError.
// Thread-safety: each object is used by one thread.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "walhook/event_batch.h"
#include "walhook/lsn.h"
#include "walhook/source_identity.h"
#include "walhook/trigger.h"

namespace walhook {

// The logical message prefix of events queued with eventing.queue_event.
std::string MessagePrefix(const std::string& schema);

struct TriggerHealth {
  std::string trigger_name;
  std::string last_error;
  bool blocking = true;  // the trigger makes no events at all
  // "schema.table" when the trigger's table does not exist yet: shown
  // inactive, it stays in the matcher, so the table's first row fires.
  std::string waiting_for;
};

struct NodeReport {
  std::string role;  // "streaming" | "standby"
  std::string slot;
  Lsn confirmed;
  std::optional<int64_t> lag_bytes;
  double events_per_s = 0;
};

class EventStore {
 public:
  EventStore(const std::string& conninfo, std::string schema, std::string node_id);
  ~EventStore();

  // Applies the embedded migrations not yet recorded in schema_migrations,
  // under an advisory lock, in one transaction.
  void Migrate();

  // Starts listening for trigger changes (call once per connection).
  void Listen();
  // Handles arrived notifications without blocking; true when triggers changed.
  bool TriggersChanged();
  int socket() const;

  std::vector<Trigger> LoadTriggers();
  // Replaces trigger_health with `health` (texts made storable, see
  // StorableText). A row the database refuses is logged and skipped: the
  // others are written and nothing is thrown for it (SPEC §9); a lost
  // connection still throws.
  void WriteTriggerHealth(const std::vector<TriggerHealth>& health);

  // Writes the batch in one transaction. With `replay`, events already stored
  // (same commit LSN, position and trigger) are skipped; without, one of them
  // is an error (pqxx::unique_violation) that ends the session. Owned events
  // are leased to this node (kLease); *owned gets those inserted, with ids.
  // `before_commit` runs between the insert and the commit (it may throw to
  // abandon the batch); when it is empty, the insert is a statement of its
  // own, committed with it (one round trip instead of three). Returns the
  // number inserted.
  // A batch not replayed, copyable and of at least kCopyMin events is
  // written with COPY, the others with one INSERT; the rows are the same.
  size_t Insert(const EventBatch& batch, bool replay, std::vector<StoredEvent>* owned,
                const std::function<void()>& before_commit);
  static constexpr size_t kCopyMin = 64;
  // Writes a backfill's progress on its own (a batch with no events; see
  // EventBatch::progress, which Insert writes in the batch's transaction).
  void WriteProgress(const BackfillProgress& progress);
  // The highest source_lsn stored in this connection's epoch (0/0 when
  // none): batches wholly past it cannot hold a stored event.
  Lsn LastStoredLsn();

  // The source epoch this connection stores WAL events in (SPEC §13): part
  // of their unique key. REQUIRES: called before Insert.
  void SetEpoch(int64_t epoch);
  // What source_identity recorded for `slot`.
  std::optional<RecordedSource> LoadSource(const std::string& slot);
  // The highest epoch of any WAL event stored, with that epoch's highest LSN.
  std::optional<std::pair<int64_t, Lsn>> LastEpoch();
  // Records `slot`'s source and epoch (its confirmed LSN forgotten when the
  // epoch changes).
  void SaveSource(const std::string& slot, const SourceId& id, int64_t epoch);

  void Report(const NodeReport& report);
  void Forget();  // removes this node's status row (clean exit)

  const std::string& schema() const { return schema_; }

 private:
  class Receiver;
  std::string Quoted();
  void UpsertTriggerHealth(pqxx::work& tx, const std::vector<TriggerHealth>& health);
  void WriteProgress(pqxx::transaction_base& tx, const BackfillProgress& progress);
  size_t Copy(const EventBatch& batch, std::vector<StoredEvent>* owned,
              const std::function<void()>& before_commit);

  int64_t epoch_ = 0;
  pqxx::connection conn_;
  std::string schema_;
  std::string node_id_;
  std::unique_ptr<Receiver> receiver_;
  bool changed_ = false;
};

// The keys eventing.queue_event signs its messages with (sql/014).
struct QueueEventKeys {
  std::map<int64_t, std::string> keys;  // id → raw key bytes
  Lsn legacy_before;  // unsigned messages committed before this are queue_event's of before 014
};

struct SlotState {
  bool exists = false;
  std::string plugin;
  std::string wal_status;  // reserved | extended | unreserved | lost
  bool active = false;
  Lsn confirmed_flush;
};

class SourceCatalog {
 public:
  explicit SourceCatalog(const std::string& conninfo);

  // FatalError when wal_level is not logical or the role may not replicate.
  void CheckSetup();
  SlotState Slot(const std::string& slot);
  // Creates a wal2json logical slot; a setup error (plugin missing or not
  // allowed, no privilege) is a FatalError with what to do.
  void CreateSlot(const std::string& slot);
  void DropSlot(const std::string& slot);
  // Creates or replaces `schema`.queue_event in the source database, for a
  // source that is not the eventing database (where a migration makes it).
  void InstallQueueEvent(const std::string& schema);
  // The rows of `schema`.queue_event_keys (readable by its owner only: in a
  // separate source database walhook's source role made it, in the eventing
  // database the migrations did). Throws pqxx errors (no table, no right).
  QueueEventKeys ReadQueueEventKeys(const std::string& schema);
  // Session advisory lock that makes one node the streaming one.
  bool TryLockSlot(const std::string& slot);
  // Session advisory lock around looking at and creating the slot, so nodes
  // that start together do it one at a time (waits for the lock).
  void LockSlotSetup(const std::string& slot, bool lock);

  std::string Database();
  Lsn CurrentWalLsn();
  // Facts about a table, with TableInfo::readers among the owners of the
  // DB_* triggers the last Validate saw (one round trip in all); a table
  // that no longer exists gets a TableInfo that names only itself (and that
  // no one may read).
  TableInfo LookupTable(const std::string& schema, const std::string& table);
  // Checks each trigger against the catalog (its headers, its condition, its
  // table, and that its owner may SELECT that table), sets Trigger::active,
  // and returns the definition errors to show in trigger_status. Remembers
  // the DB_* triggers' owners for LookupTable.
  std::vector<TriggerHealth> Validate(std::vector<Trigger>* triggers);
  // A non-transactional logical message so an idle slot has something to confirm.
  void Heartbeat(const std::string& prefix);

 private:
  pqxx::connection conn_;
  int tcp_timeouts_pid_ = 0;         // the backend TryLockSlot gave its TCP settings
  std::vector<std::string> owners_;  // of the DB_* triggers Validate saw, sorted
};

}  // namespace walhook
