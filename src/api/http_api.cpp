#include "walhook/http_api.h"

#include <httplib.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <pqxx/pqxx>
#include <thread>

#include <fmt/format.h>

#include "walhook/chain.h"
#include "walhook/delivery.h"
#include "walhook/errors.h"
#include "walhook/event_batch.h"
#include "walhook/log.h"
#include "walhook/matcher.h"
#include "walhook/metrics.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Synchronous calls and keep-alive connections each hold a thread.
constexpr size_t kApiThreads = 64;
constexpr size_t kMaxBody = 1 << 20;
constexpr milliseconds kSyncWait{10000};
constexpr milliseconds kSyncPoll{10};
constexpr milliseconds kTriggerCache{1000};
constexpr milliseconds kHealthyBeat{5000};

std::string ErrorJson(std::string_view message) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  w.StartObject();
  w.Key("error");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  return std::string(b.GetString(), b.GetSize());
}

void Reply(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct HttpApi::Impl {
  Impl(const Config& c, Delivery& d) : cfg(c), delivery(d) {}

  const Config& cfg;
  Delivery& delivery;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> done{false};  // the server loop returned

  // Connections to the eventing database, lent one per request.
  std::mutex pool_mu;
  std::deque<std::unique_ptr<pqxx::connection>> pool;

  std::mutex triggers_mu;
  std::shared_ptr<const Matcher> matcher;
  Clock::time_point matcher_loaded;

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
                            c.quote_name(cfg.schema)));
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

  void Healthz(httplib::Response& res) {
    const auto since = GlobalMetrics().SinceBeat();
    const NodeRole role = GlobalMetrics().role();
    if (since > kHealthyBeat || role == NodeRole::kStarting) {
      Reply(res, 503, ErrorJson("the replication loop is not running (connecting or retrying)"));
      return;
    }
    try {
      auto c = Borrow();
      pqxx::nontransaction(*c).exec("SELECT 1");
      Return(std::move(c));
    } catch (const std::exception&) {
      Reply(res, 503, ErrorJson("the eventing database does not answer"));
      return;
    }
    Reply(res, 200,
          fmt::format(R"({{"status":"ok","role":"{}","node_id":"{}"}})",
                      role == NodeRole::kStreaming ? "streaming" : "standby", cfg.node_id));
  }

  void Queue(const httplib::Request& req, httplib::Response& res) {
    const std::string project = req.matches[1];
    if (project != cfg.project) {
      Reply(res, 404, ErrorJson(fmt::format("unknown project \"{}\"", project.substr(0, 64))));
      return;
    }
    const std::string auth = req.get_header_value("Authorization");
    const std::string_view bearer = "Bearer ";
    if (auth.size() <= bearer.size() || auth.compare(0, bearer.size(), bearer) != 0) {
      Reply(res, 401, ErrorJson("missing token: send Authorization: Bearer <JWT>"));
      return;
    }
    if (Status st = VerifyToken(std::string_view(auth).substr(bearer.size()), cfg.secret, NowS());
        !st.ok()) {
      Reply(res, 401, ErrorJson(fmt::format("bad token: {}", st.message())));
      return;
    }
    Result<QueueRequest> q = ParseQueueRequest(req.body);
    if (!q.ok()) {
      Reply(res, 400, ErrorJson(q.error()));
      return;
    }
    const std::string key = req.get_header_value("Idempotency-Key");
    std::unique_ptr<pqxx::connection> c;
    try {
      c = Borrow();
      const auto [status, body] = Store(*c, *q, key);
      Return(std::move(c));
      Reply(res, status, body);
    } catch (const std::exception& e) {
      LogWarn("queue API: {}", e.what());
      Reply(res, 503, ErrorJson("the eventing database is not available; try again"));
    }
  }

  // Stores the event for every matching trigger (durable before the reply),
  // and for a synchronous call waits for the first one's webhook.
  std::pair<int, std::string> Store(pqxx::connection& c, const QueueRequest& q,
                                    const std::string& key) {
    const std::string s = c.quote_name(cfg.schema);
    if (!key.empty()) {
      pqxx::nontransaction tx(c);
      const auto r =
          tx.exec_params(fmt::format("SELECT reply_status, reply_body FROM {}.idempotency_keys "
                                     "WHERE key = $1 AND created_at > now() - interval '24 h'",
                                     s),
                         key);
      if (!r.empty()) return {r[0][0].as<int>(), r[0][1].as<std::string>()};
    }
    const ChainedEvent& e = q.event;
    std::vector<const Trigger*> matched;
    const auto triggers = Triggers(c);
    triggers->MatchCustom(e.type, e.payload, &matched);
    std::string names = "{";
    for (const Trigger* t : matched) AppendArrayElement(&names, t->name);
    names += "}";
    std::vector<int64_t> ids;
    {
      pqxx::work tx(c);
      const auto rows = tx.exec_params(
          fmt::format("INSERT INTO {}.event_logs (trigger_name, type, status, payload, ts, "
                      "event_ts) SELECT n, $2, 'staged', $3::json, "
                      "greatest(now(), to_timestamp(nullif($5, '')::int8 / 1000.0)) "
                      "+ $4::int8 * interval '1 ms', now() FROM unnest($1::text[]) AS n "
                      "RETURNING id",
                      s),
          names, e.type, e.payload, e.delay_ms, e.at_ms ? std::to_string(*e.at_ms) : "");
      for (const auto& r : rows) ids.push_back(r[0].as<int64_t>());
      if (!key.empty()) {
        const auto kept = tx.exec_params(
            fmt::format("INSERT INTO {0}.idempotency_keys AS k (key, reply_status, reply_body) "
                        "VALUES ($1, 200, '{{}}') ON CONFLICT (key) DO UPDATE SET "
                        "reply_status = 200, reply_body = '{{}}', created_at = now() "
                        "WHERE k.created_at <= now() - interval '24 h' RETURNING key",
                        s),
            key);
        if (kept.empty()) {
          // Another request with this key got there first: its answer.
          tx.abort();
          pqxx::nontransaction again(c);
          const auto r = again.exec_params(
              fmt::format("SELECT reply_status, reply_body FROM {}.idempotency_keys "
                          "WHERE key = $1",
                          s),
              key);
          if (!r.empty()) return {r[0][0].as<int>(), r[0][1].as<std::string>()};
          return {409, ErrorJson("a request with this Idempotency-Key is in progress")};
        }
      }
      tx.commit();
    }
    GlobalMetrics().AddQueued(ids.size());
    if (!ids.empty()) delivery.Poke();
    if (!q.synchronous) return {200, "{}"};
    std::pair<int, std::string> reply =
        ids.empty() ? std::pair<int, std::string>{200, R"({"result":null})"} : Wait(c, ids.front());
    if (!key.empty() && reply.first == 200) {
      pqxx::nontransaction tx(c);
      tx.exec_params(
          fmt::format("UPDATE {}.idempotency_keys SET reply_body = $2 WHERE key = $1", s), key,
          reply.second);
    }
    return reply;
  }

  // Waits for event `id`'s delivery; its response's "response" is the result.
  std::pair<int, std::string> Wait(pqxx::connection& c, int64_t id) {
    const auto deadline = Clock::now() + kSyncWait;
    const std::string sql = fmt::format(
        "SELECT e.status, e.remark, (SELECT i.response_body FROM {0}.invocation_logs i "
        "  WHERE i.event_id = e.id ORDER BY i.id DESC LIMIT 1) "
        "FROM {0}.event_logs e WHERE e.id = $1",
        c.quote_name(cfg.schema));
    while (Clock::now() < deadline) {
      pqxx::nontransaction tx(c);
      const auto r = tx.exec_params(sql, id);
      const std::string status = r.empty() ? "" : r[0][0].as<std::string>();
      if (status == "processed") {
        const std::string body = r[0][2].is_null() ? "" : r[0][2].as<std::string>();
        const auto result = RawJsonMember(body, "response");
        return {200, fmt::format(R"({{"result":{}}})", result ? *result : "null")};
      }
      if (status == "failed" || status == "cancel") {
        const std::string remark = r[0][1].is_null() ? status : r[0][1].as<std::string>();
        return {502, ErrorJson(fmt::format("event {} was not delivered: {}", id, remark))};
      }
      std::this_thread::sleep_for(kSyncPoll);
    }
    return {504,
            ErrorJson(fmt::format("no answer from the webhook within {} s; event {} stays queued",
                                  kSyncWait.count() / 1000, id))};
  }
};

HttpApi::HttpApi(const Config& cfg, Delivery& delivery)
    : impl_(std::make_unique<Impl>(cfg, delivery)) {}

HttpApi::~HttpApi() {
  Stop();
}

void HttpApi::Start() {
  Impl& m = *impl_;
  m.server.new_task_queue = [] { return new httplib::ThreadPool(kApiThreads); };
  m.server.set_payload_max_length(kMaxBody);
  // An answer goes out in more than one write; with Nagle's algorithm the
  // last one waits for the client's delayed ACK, 40 ms per request.
  m.server.set_tcp_nodelay(true);
  m.server.Get("/healthz",
               [&m](const httplib::Request&, httplib::Response& res) { m.Healthz(res); });
  m.server.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(GlobalMetrics().Render(), "text/plain; version=0.0.4");
  });
  m.server.Post(R"(/v1/api/([^/]+)/eventing/queue)",
                [&m](const httplib::Request& req, httplib::Response& res) { m.Queue(req, res); });
  // Every other answer is JSON with an "error" too: 404, 405, 413.
  m.server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string why;
    switch (res.status) {
      case 404: why = fmt::format("no such path: {} {}", req.method, req.path); break;
      case 405: why = fmt::format("{} is not allowed on {}", req.method, req.path); break;
      case 413: why = fmt::format("the body is over {} bytes", kMaxBody); break;
      default: why = fmt::format("{} {}: refused with status {}", req.method, req.path, res.status);
    }
    res.set_content(ErrorJson(why), "application/json");
  });
  const auto colon = m.cfg.listen.rfind(':');
  const std::string host = m.cfg.listen.substr(0, colon);
  const int port = std::stoi(m.cfg.listen.substr(colon + 1));
  if (!m.server.bind_to_port(host.c_str(), port)) {
    throw FatalError(kExitUsage, fmt::format("--listen: cannot listen on {} (in use, or not an "
                                             "address of this host); use another, or off",
                                             m.cfg.listen));
  }
  // Said with the streaming line: a setup error stays the only line.
  m.thread = std::thread([&m] {
    m.server.listen_after_bind();
    m.done = true;
  });
  // stop() before the loop runs would be missed, and Stop would wait forever.
  for (int i = 0; i < 500 && !m.server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void HttpApi::Stop() {
  if (!impl_->thread.joinable()) return;
  // Until the loop has ended: a stop() that came before it started is lost.
  while (!impl_->done) {
    impl_->server.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->thread.join();
}

}  // namespace walhook
