#include "walhook/http_api.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <pqxx/pqxx>
#include <thread>

#include <fmt/format.h>

#include "walhook/admin_api.h"
#include "walhook/admin_handler.h"
#include "walhook/api_request.h"
#include "walhook/chain.h"
#include "walhook/console.h"
#include "walhook/delivery.h"
#include "walhook/errors.h"
#include "walhook/event_batch.h"
#include "walhook/http_server.h"
#include "walhook/json.h"
#include "walhook/log.h"
#include "walhook/matcher.h"
#include "walhook/metrics.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kSyncWait{10000};
constexpr milliseconds kSyncPoll{10};
constexpr milliseconds kTriggerCache{1000};
constexpr milliseconds kHealthyBeat{5000};
// A keyed synchronous call whose answer was never stored (its node stopped
// while it waited) is answered 504 once it is this old.
constexpr std::chrono::seconds kAbandonedKey{30};

int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a database error means for the client (SPEC §9): a value of the
// request Postgres refused (SQLSTATE class 22, data exception, or 54, a
// limit) is the client's mistake; a lost or refused connection is 503; any
// other error is walhook's. Never the exception's text.
HttpResponse DatabaseError(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    const std::string cls = state.substr(0, 2);
    if (cls == "22" || cls == "54") {
      return HttpError(400, fmt::format("the database refused a value of this request "
                                        "(SQLSTATE {})",
                                        Utf8Prefix(state, 5)));
    }
    if (cls != "08" && cls != "53" && cls != "57" && !state.empty()) {
      LogWarn("queue API: SQLSTATE {}: {}", state, e.what());
      return HttpError(500, fmt::format("internal error (SQLSTATE {})", Utf8Prefix(state, 5)));
    }
  }
  LogWarn("queue API: {}", e.what());
  return HttpError(503, "the eventing database is not available; try again");
}

// A request's answer as the Idempotency-Key stores it.
struct Stored {
  int status;
  std::string body;
};

}  // namespace

struct HttpApi::Impl {
  Impl(const Config& c, Delivery& d)
      : cfg(c),
        delivery(d),
        server(HttpServerOptions{},
               HttpHandlers{[this](const HttpRequest& head) {
                              if (admin::IsAdminPath(head.path)) return CheckAdminHead(head);
                              return CheckApiHead(head, cfg.project, cfg.secret, NowS());
                            },
                            [this](HttpRequest request, HttpResponder respond) {
                              Handle(std::move(request), std::move(respond));
                            }}) {}

  const Config& cfg;
  Delivery& delivery;
  AdminHandler admin_handler{cfg};
  HttpServer server;

  // Connections to the eventing database, lent one per request.
  std::mutex pool_mu;
  std::deque<std::unique_ptr<pqxx::connection>> pool;

  std::mutex triggers_mu;
  std::shared_ptr<const Matcher> matcher;
  Clock::time_point matcher_loaded;

  // Synchronous calls waiting for their webhook: one thread polls them all,
  // so a waiting call holds no worker.
  struct Waiting {
    int64_t event_id;
    Clock::time_point deadline;
    std::string key;  // its Idempotency-Key, "" for none
    HttpResponder respond;
  };
  std::mutex wait_mu;
  std::condition_variable wait_cv;
  std::vector<Waiting> waiting;  // guarded by wait_mu
  bool wait_stop = false;        // guarded by wait_mu
  std::thread waiter;

  std::string Schema(pqxx::connection& c) const { return c.quote_name(cfg.schema); }

  std::unique_ptr<pqxx::connection> Borrow() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!pool.empty()) {
        auto c = std::move(pool.front());
        pool.pop_front();
        return c;
      }
    }
    return std::make_unique<pqxx::connection>(cfg.eventing_db);
  }
  void Return(std::unique_ptr<pqxx::connection> c) {
    if (c == nullptr || !c->is_open()) return;
    std::lock_guard<std::mutex> lock(pool_mu);
    pool.push_back(std::move(c));
  }

  // The custom triggers, reloaded when older than kTriggerCache.
  std::shared_ptr<const Matcher> Triggers(pqxx::connection& c) {
    std::lock_guard<std::mutex> lock(triggers_mu);
    if (matcher != nullptr && Clock::now() - matcher_loaded < kTriggerCache) return matcher;
    pqxx::nontransaction tx(c);
    const auto rows =
        tx.exec(fmt::format("SELECT name, type, condition, enabled FROM {}.triggers "
                            "WHERE type !~ '^(DB|FILE)_'",
                            Schema(c)));
    std::vector<Trigger> triggers;
    for (const auto& r : rows) {
      std::optional<std::string> condition;
      if (!r[2].is_null()) condition = r[2].as<std::string>();
      if (auto t = CustomTrigger(r[0].as<std::string>(), r[1].as<std::string>(),
                                 std::move(condition), r[3].as<bool>())) {
        triggers.push_back(std::move(*t));
      }
    }
    matcher = std::make_shared<const Matcher>(std::move(triggers));
    matcher_loaded = Clock::now();
    return matcher;
  }

  // The admin API's head (SPEC §12): an admin token first, then the route;
  // its queue route takes an Idempotency-Key as the queue API does.
  std::optional<HttpResponse> CheckAdminHead(const HttpRequest& head) const {
    if (auto refused = admin::CheckAdminToken(head, cfg.secret, NowS())) return refused;
    admin::AdminTarget target;
    if (auto e = admin::RouteAdmin(head.method, head.path, &target)) {
      return admin::ErrorResponse(*e);
    }
    if (target.route == admin::Route::kQueue) {
      const size_t keys = head.HeaderCount("Idempotency-Key");
      if (keys > 1) return HttpError(400, "more than one Idempotency-Key header");
      if (keys == 1) {
        if (Status st = CheckIdempotencyKey(head.Header("Idempotency-Key")); !st.ok()) {
          return HttpError(400, st.message());
        }
      }
    }
    return std::nullopt;
  }

  void Handle(HttpRequest request, HttpResponder respond) {
    if (admin::IsAdminPath(request.path)) {
      admin::AdminTarget target;
      if (auto e = admin::RouteAdmin(request.method, request.path, &target)) {
        return respond(admin::ErrorResponse(*e));
      }
      if (target.route == admin::Route::kQueue) return Queue(request, std::move(respond));
      return respond(admin_handler.Handle(target, request));
    }
    switch (RouteOf(request)) {
      case ApiRoute::kHealthz: return respond(Healthz());
      case ApiRoute::kMetrics:
        return respond({200, GlobalMetrics().Render(), "text/plain; version=0.0.4"});
      case ApiRoute::kQueue: return Queue(request, std::move(respond));
      case ApiRoute::kConsole: return respond(ConsoleResponse(request.method, request.path));
      case ApiRoute::kNone: return respond(HttpError(404, "no such path"));
    }
  }

  HttpResponse Healthz() {
    const auto since = GlobalMetrics().SinceBeat();
    const NodeRole role = GlobalMetrics().role();
    if (since > kHealthyBeat || role == NodeRole::kStarting) {
      return HttpError(503, "the replication loop is not running (connecting or retrying)");
    }
    try {
      auto c = Borrow();
      pqxx::nontransaction(*c).exec("SELECT 1");
      Return(std::move(c));
    } catch (const std::exception&) {
      return HttpError(503, "the eventing database does not answer");
    }
    JsonBuffer b;
    JsonWriter w(b);
    w.StartObject();
    w.Key("status");
    w.String("ok");
    w.Key("role");
    w.String(role == NodeRole::kStreaming ? "streaming" : "standby");
    w.Key("node_id");
    std::string node_id;
    ReplaceInvalidUtf8(cfg.node_id, &node_id);
    w.String(node_id.data(), static_cast<rapidjson::SizeType>(node_id.size()));
    // The backfill this node runs (SPEC §10), if any.
    const Metrics::BackfillFigures bf = GlobalMetrics().backfill();
    if (bf.id != 0) {
      w.Key("backfill");
      w.StartObject();
      w.Key("id");
      w.Int64(bf.id);
      w.Key("trigger");
      w.String(bf.trigger.data(), static_cast<rapidjson::SizeType>(bf.trigger.size()));
      w.Key("rows_done");
      w.Int64(bf.rows_done);
      w.Key("rows_estimate");
      if (bf.rows_estimate < 0) {
        w.Null();
      } else {
        w.Int64(bf.rows_estimate);
      }
      w.EndObject();
    }
    w.EndObject();
    return {200, std::string(b.GetString(), b.GetSize()), "application/json"};
  }

  void Queue(const HttpRequest& req, HttpResponder respond) {
    // The head (project, token, key) was checked before the body was read.
    Result<QueueRequest> q = ParseQueueRequest(req.body);
    if (!q.ok()) return respond(HttpError(400, q.error()));
    const std::string key(req.Header("Idempotency-Key"));
    std::unique_ptr<pqxx::connection> c;
    try {
      c = Borrow();
      std::optional<HttpResponse> now = Store(*c, *q, key, req.body, respond);
      Return(std::move(c));
      if (now) respond(std::move(*now));
    } catch (const std::exception& e) {
      respond(DatabaseError(e));
    }
  }

  // A request with this key was answered or is in progress: its answer.
  HttpResponse Replay(pqxx::connection& c, const std::string& key, const std::string& hash) {
    const std::string s = Schema(c);
    pqxx::nontransaction tx(c);
    const auto r = tx.exec_params(
        fmt::format("SELECT reply_status, reply_body, request_hash, final, "
                    "created_at < now() - $2::int8 * interval '1 s' FROM {}.idempotency_keys "
                    "WHERE key = $1",
                    s),
        key, static_cast<int64_t>(kAbandonedKey.count()));
    if (r.empty()) return HttpError(409, "a request with this Idempotency-Key is in progress");
    if (!r[0][2].is_null() && r[0][2].as<std::string>() != hash) {
      return HttpError(422, "this Idempotency-Key was used with another request body");
    }
    if (r[0][3].as<bool>()) return {r[0][0].as<int>(), r[0][1].as<std::string>()};
    if (!r[0][4].as<bool>()) {
      return HttpError(409, "a request with this Idempotency-Key is in progress; retry later");
    }
    // Its node stopped while it waited: the events stay queued.
    const HttpResponse gone =
        HttpError(504,
                  "the first request with this Idempotency-Key ended without the webhook's answer; "
                  "its events stay queued");
    const auto kept = tx.exec_params(
        fmt::format("UPDATE {}.idempotency_keys SET reply_status = $2, reply_body = $3, "
                    "final = true WHERE key = $1 AND NOT final RETURNING key",
                    s),
        key, gone.status, gone.body);
    if (kept.empty()) return Replay(c, key, hash);  // answered meanwhile
    return gone;
  }

  // Stores the event for every matching trigger (durable before the reply),
  // and the key with it. An answer now, or nullopt when a synchronous call
  // waits (`respond` is then called by the waiter).
  std::optional<HttpResponse> Store(pqxx::connection& c, const QueueRequest& q,
                                    const std::string& key, const std::string& body,
                                    const HttpResponder& respond) {
    const std::string s = Schema(c);
    const std::string hash = key.empty() ? "" : RequestHash(body);
    const ChainedEvent& e = q.event;
    std::vector<const Trigger*> matched;
    const auto triggers = Triggers(c);
    triggers->MatchCustom(e.type, e.payload, &matched);
    std::string names = "{";
    for (const Trigger* t : matched) AppendArrayElement(&names, t->name);
    names += "}";
    // A synchronous call's answer is final only once its webhook answered.
    const bool final_now = !q.synchronous || matched.empty();
    const Stored first = !q.synchronous    ? Stored{200, "{}"}
                         : matched.empty() ? Stored{200, R"({"result":null})"}
                                           : Stored{0, ""};
    std::vector<int64_t> ids;
    {
      pqxx::work tx(c);
      if (!key.empty()) {
        // Taken first: a concurrent duplicate waits here for this
        // transaction, then sees the key.
        const auto kept = tx.exec_params(
            fmt::format("INSERT INTO {0}.idempotency_keys AS k (key, reply_status, reply_body, "
                        "request_hash, final) VALUES ($1, $2, $3, $4, $5) "
                        "ON CONFLICT (key) DO UPDATE SET reply_status = $2, reply_body = $3, "
                        "request_hash = $4, final = $5, created_at = now() "
                        "WHERE k.created_at <= now() - interval '24 h' RETURNING key",
                        s),
            key, first.status, first.body, hash, final_now);
        if (kept.empty()) {
          tx.abort();
          return Replay(c, key, hash);
        }
      }
      const auto rows = tx.exec_params(
          fmt::format("INSERT INTO {}.event_logs (trigger_name, type, status, payload, ts, "
                      "event_ts) SELECT n, $2, 'staged', $3::json, "
                      "greatest(now(), to_timestamp(nullif($5, '')::int8 / 1000.0)) "
                      "+ $4::int8 * interval '1 ms', now() FROM unnest($1::text[]) AS n "
                      "RETURNING id",
                      s),
          names, e.type, e.payload, e.delay_ms, e.at_ms ? std::to_string(*e.at_ms) : "");
      for (const auto& r : rows) ids.push_back(r[0].as<int64_t>());
      tx.commit();
    }
    GlobalMetrics().AddQueued(ids.size());
    if (!ids.empty()) delivery.Poke();
    if (final_now) return HttpResponse{first.status, first.body, "application/json"};
    {
      std::lock_guard<std::mutex> lock(wait_mu);
      waiting.push_back(Waiting{ids.front(), Clock::now() + kSyncWait, key, respond});
    }
    wait_cv.notify_one();
    return std::nullopt;
  }

  // The answer to a synchronous call once its event is done; nullopt while
  // it is not.
  static std::optional<HttpResponse> Outcome(int64_t id, const pqxx::row& r) {
    const std::string status = r[1].as<std::string>();
    if (status == "processed") {
      // A body over 4 KiB left its "response" whole in response_result.
      if (!r[4].is_null()) {
        return HttpResponse{200, fmt::format(R"({{"result":{}}})", r[4].as<std::string>()),
                            "application/json"};
      }
      const std::string body = r[3].is_null() ? "" : r[3].as<std::string>();
      const auto result = RawJsonMember(body, "response");
      return HttpResponse{200, fmt::format(R"({{"result":{}}})", result ? *result : "null"),
                          "application/json"};
    }
    if (status == "failed" || status == "cancel") {
      const std::string remark = r[2].is_null() ? status : r[2].as<std::string>();
      return HttpError(502, fmt::format("event {} was not delivered: {}", id, remark));
    }
    return std::nullopt;
  }

  // Stores a synchronous call's final answer under its key, then sends it.
  void Finish(pqxx::connection* c, const Waiting& w, const HttpResponse& answer) {
    if (!w.key.empty() && c != nullptr) {
      try {
        pqxx::nontransaction tx(*c);
        tx.exec_params(fmt::format("UPDATE {}.idempotency_keys SET reply_status = $2, "
                                   "reply_body = $3, final = true WHERE key = $1",
                                   Schema(*c)),
                       w.key, answer.status, answer.body);
      } catch (const std::exception& e) {
        // A retry then gets 409 until kAbandonedKey, then 504.
        LogWarn("queue API: the answer of Idempotency-Key could not be stored: {}", e.what());
      }
    }
    w.respond(answer);
  }

  void WaitLoop() {
    std::unique_ptr<pqxx::connection> c;
    std::unique_lock<std::mutex> lock(wait_mu);
    while (!wait_stop) {
      if (waiting.empty()) {
        wait_cv.wait(lock, [&] { return wait_stop || !waiting.empty(); });
        continue;
      }
      std::vector<Waiting> batch = waiting;
      lock.unlock();
      std::string ids = "{";
      for (const Waiting& w : batch) ids += std::to_string(w.event_id) + ",";
      ids.back() = '}';
      std::vector<std::pair<int64_t, HttpResponse>> done;
      try {
        if (c == nullptr) c = std::make_unique<pqxx::connection>(cfg.eventing_db);
        pqxx::nontransaction tx(*c);
        const auto rows = tx.exec_params(
            fmt::format("SELECT e.id, e.status, e.remark, i.response_body, "
                        "i.response_result::text FROM {0}.event_logs e LEFT JOIN LATERAL ("
                        "SELECT response_body, response_result FROM {0}.invocation_logs i "
                        "WHERE i.event_id = e.id ORDER BY i.id DESC LIMIT 1) i ON true "
                        "WHERE e.id = ANY($1::int8[])",
                        Schema(*c)),
            ids);
        for (const auto& r : rows) {
          const int64_t id = r[0].as<int64_t>();
          if (auto answer = Outcome(id, r)) done.emplace_back(id, std::move(*answer));
        }
      } catch (const std::exception& e) {
        LogWarn("queue API: waiting for synchronous calls: {}", e.what());
        c.reset();
      }
      const auto now = Clock::now();
      lock.lock();
      std::vector<std::pair<Waiting, HttpResponse>> finished;
      for (auto it = waiting.begin(); it != waiting.end();) {
        std::optional<HttpResponse> answer;
        for (auto& [id, a] : done) {
          if (id == it->event_id) answer = a;
        }
        if (!answer && now >= it->deadline) {
          answer = HttpError(504, fmt::format("no answer from the webhook within {} s; event {} "
                                              "stays queued",
                                              kSyncWait.count() / 1000, it->event_id));
        }
        if (answer) {
          finished.emplace_back(std::move(*it), std::move(*answer));
          it = waiting.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (const auto& [w, answer] : finished) Finish(c.get(), w, answer);
      lock.lock();
      wait_cv.wait_for(lock, kSyncPoll, [&] { return wait_stop; });
    }
  }
};

HttpApi::HttpApi(const Config& cfg, Delivery& delivery)
    : impl_(std::make_unique<Impl>(cfg, delivery)) {}

HttpApi::~HttpApi() {
  Stop();
}

void HttpApi::Start() {
  Impl& m = *impl_;
  const auto colon = m.cfg.listen.rfind(':');
  const std::string host = m.cfg.listen.substr(0, colon);
  const int port = std::stoi(m.cfg.listen.substr(colon + 1));
  if (Status st = m.server.Bind(host, port); !st.ok()) {
    throw FatalError(kExitUsage, fmt::format("--listen: cannot listen on {} ({}); use another "
                                             "address, or off",
                                             m.cfg.listen, st.message()));
  }
  m.server.Start();
  m.waiter = std::thread([&m] { m.WaitLoop(); });
}

void HttpApi::Stop() {
  Impl& m = *impl_;
  if (!m.waiter.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(m.wait_mu);
    m.wait_stop = true;
  }
  m.wait_cv.notify_all();
  m.waiter.join();
  m.server.Stop();
}

}  // namespace walhook
