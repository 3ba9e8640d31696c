#include "walhook/delivery.h"

#include <curl/curl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <set>

#include "walhook/attempt.h"
#include "walhook/errors.h"
#include "walhook/log.h"
#include "walhook/metrics.h"
#include "walhook/retry.h"
#include "walhook/transform_request.h"
#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A response buffer larger than this is not kept for the handle's next
// request. A body may grow past it only with a grant of the rest of
// kMaxResponseBody from kResponseMemory, for all requests together: a
// request that finds none left waits (paused) until one is given back, so
// 256 requests in flight cannot hold 256 MiB of answers.
constexpr size_t kResponseKeep = 64 << 10;
constexpr size_t kResponseMemory = 32u << 20;
constexpr milliseconds kSweepInterval{1000};
constexpr milliseconds kRenewInterval{10000};
constexpr milliseconds kReportInterval{1000};
constexpr milliseconds kRetentionInterval{60000};
constexpr milliseconds kFoldInterval{5000};  // of event_counts
constexpr milliseconds kStopWait{10000};
constexpr milliseconds kMaxBackoff{30000};
constexpr int kClaimMax = 1000;            // per trigger and sweep
constexpr size_t kClaimBytes = 16u << 20;  // of payload, per sweep
constexpr size_t kMaxDone = 10000;         // ordered events done, kept for the next sweep
constexpr size_t kRecordMax = 2000;        // outcomes per statement
// How long outcomes wait for more before they are written; as many as this
// are written at once. At 1,000 deliveries/s, one statement (with its
// commit, and what the slot's walsender decodes of it) per 1.4 outcomes
// became one per ~10.
constexpr milliseconds kOutcomeGather{10};
constexpr size_t kOutcomesNow = 256;
constexpr size_t kReleaseMax = 2000;  // leases given back per statement at a stop
// How long a stop goes on giving leases back after its last request ended.
constexpr milliseconds kStopReleaseTime{3000};
constexpr size_t kRetryTimers = 4096;
// Of Delivery::kMaxInFlight, the requests kept for triggers that have less
// than half their share in flight (see StartRequests).
constexpr int kHeadroom = 64;
constexpr int kRetentionBatch = 1000;
constexpr int kRetentionBatchesPerRun = 20;

int64_t EpochMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' '))
    s.remove_suffix(1);
  return s;
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

// The libcurl multi loop. Events arrive through Add; each attempt's outcome
// goes to Delivery::outcomes_. Thread-safety: Add/SetTargets/Stop from any
// thread; the loop runs on its own.
class Delivery::Dispatcher {
 public:
  explicit Dispatcher(Delivery& owner)
      : owner_(owner),
        multi_(curl_multi_init(), &curl_multi_cleanup),
        signer_(owner.cfg_.secret, owner.cfg_.node_id),
        webhook_signer_(owner.cfg_.signing_secret.empty()
                            ? Result<WebhookSigner>(Status::Error("no --signing-secret"))
                            : WebhookSigner::Make(owner.cfg_.signing_secret)),
        rng_(std::random_device{}()) {
    curl_multi_setopt(multi_.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi_.get(), CURLMOPT_MAX_TOTAL_CONNECTIONS, long{kMaxInFlight});
    curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, long{kMaxInFlight});
  }

  ~Dispatcher() {
    Stop();
    for (auto& [easy, request] : active_) {
      curl_multi_remove_handle(multi_.get(), easy);
      Free(*request);
    }
    for (auto& request : spare_) Free(*request);
  }

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    curl_multi_wakeup(multi_.get());
    if (thread_.joinable()) thread_.join();
  }

  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

  void Add(std::vector<HeldEvent>&& events) {
    if (events.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!closing_) {
        for (HeldEvent& e : events) inbox_.push_back(std::move(e));
        events.clear();
      }
    }
    // Too late to send: give the leases back.
    if (!events.empty()) {
      std::lock_guard<std::mutex> lock(owner_.mu_);
      for (const HeldEvent& e : events) {
        owner_.releases_.push_back(e.id);
        owner_.Unhold(e.trigger, e.payload.size());
      }
      owner_.Wake();
      return;
    }
    curl_multi_wakeup(multi_.get());
  }

  void SetTargets(std::vector<Target> targets) {
    auto map = std::make_shared<std::unordered_map<std::string, Target>>();
    for (Target& t : targets) map->emplace(t.name, std::move(t));
    {
      std::lock_guard<std::mutex> lock(mu_);
      targets_ = std::move(map);
    }
    curl_multi_wakeup(multi_.get());
  }

 private:
  struct Request {
    CURL* easy = nullptr;
    HeldEvent event;
    std::string body;
    curl_slist* headers = nullptr;
    std::string response;       // at most kMaxResponseBody
    bool response_cut = false;  // the body went on past kMaxResponseBody: not read further
    Dispatcher* dispatcher = nullptr;
    size_t granted = 0;   // of kResponseMemory, for a body past kResponseKeep
    bool paused = false;  // waits for a grant
    std::string retry_after;
    int64_t started_ms = 0;
    Clock::time_point started;
    int retries = 0;
    int retry_interval_ms = 0;
    bool ordered = false;  // the trigger's, when sent: its key's next event waits for the outcome
    int timeout_ms = 0;
    char error[CURL_ERROR_SIZE] = {};
  };

  struct Queue {
    std::deque<HeldEvent> events;
    int in_flight = 0;
  };

  static size_t OnBody(char* data, size_t size, size_t n, void* user) {
    auto* r = static_cast<Request*>(user);
    const size_t bytes = size * n;
    if (bytes > kMaxResponseBody - r->response.size()) {
      // Not read further: the transfer ends here (CURLE_WRITE_ERROR), and
      // the body is judged as cut.
      r->response_cut = true;
      return 0;
    }
    if (r->granted == 0 && r->response.size() + bytes > kResponseKeep) {
      Dispatcher& d = *r->dispatcher;
      constexpr size_t kGrant = kMaxResponseBody - kResponseKeep;
      if (d.response_granted_ + kGrant > kResponseMemory) {
        // libcurl keeps these bytes and hands them over again once resumed.
        r->paused = true;
        d.paused_.push_back(r->easy);
        return CURL_WRITEFUNC_PAUSE;
      }
      d.response_granted_ += kGrant;
      r->granted = kGrant;
      r->response.reserve(kMaxResponseBody);
    }
    r->response.append(data, bytes);
    return bytes;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* user) {
    auto* r = static_cast<Request*>(user);
    const std::string_view line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) r->retry_after.clear();  // a new response (after a 1xx)
    if (StartsWithNoCase(line, "retry-after:")) {
      r->retry_after.assign(Trim(line.substr(12)));
    }
    return size * n;
  }

  static void Free(Request& r) {
    if (r.headers != nullptr) curl_slist_free_all(r.headers);
    r.headers = nullptr;
    if (r.easy != nullptr) curl_easy_cleanup(r.easy);
    r.easy = nullptr;
  }

  void Loop() {
    bool draining = false;
    Clock::time_point deadline;
    for (;;) {
      std::shared_ptr<const std::unordered_map<std::string, Target>> targets;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (HeldEvent& e : inbox_) {
          const std::string trigger = e.trigger;
          queues_[trigger].events.push_back(std::move(e));
        }
        inbox_.clear();
        targets = targets_;
        if (stop_ && !draining) {
          draining = true;
          deadline = Clock::now() + kStopWait;
        }
      }
      if (!draining && targets) StartRequests(*targets);
      int running = 0;
      curl_multi_perform(multi_.get(), &running);
      const size_t finished = Finish();
      if (draining && (active_.empty() || Clock::now() >= deadline)) break;
      // Slots just freed are filled at once, not after the next wake-up.
      if (finished > 0 && !draining) continue;
      curl_multi_poll(multi_.get(), nullptr, 0, 100, nullptr);
    }
    // What was not sent, and what is still on the wire past the deadline,
    // goes back to the store: another node (or the next start) sends it.
    std::vector<HeldEvent> late;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;  // from now on Add gives events straight back
      late.swap(inbox_);
    }
    {
      std::lock_guard<std::mutex> lock(owner_.mu_);
      auto release = [&](const HeldEvent& e) {
        owner_.releases_.push_back(e.id);
        owner_.Unhold(e.trigger, e.payload.size());
      };
      for (auto& [easy, request] : active_) release(request->event);
      for (auto& [name, queue] : queues_) {
        for (const HeldEvent& e : queue.events) release(e);
      }
      for (const HeldEvent& e : late) release(e);
      queues_.clear();
      owner_.in_flight_ = 0;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    owner_.Wake();
  }

  void StartRequests(const std::unordered_map<std::string, Target>& targets) {
    // Round robin from a different trigger each time, so one trigger's
    // backlog does not always go first.
    if (queues_.empty()) return;
    auto start = queues_.upper_bound(last_served_);
    std::vector<std::map<std::string, Queue>::iterator> order;
    for (auto it = start; it != queues_.end(); ++it) order.push_back(it);
    for (auto it = queues_.begin(); it != start; ++it) order.push_back(it);
    // Fair shares (SPEC §9): with W triggers that have work, each may have
    // kMaxInFlight / (W + 1) requests in flight (at most kTriggerInFlight);
    // and past kMaxInFlight - kHeadroom requests in all, a trigger gets only
    // half its share. So endpoints that hang (whose requests free no slot
    // until their timeout) fill their triggers' shares and never the node's
    // cap, however their work came in: the next trigger still finds room.
    const int share =
        std::clamp(kMaxInFlight / (static_cast<int>(queues_.size()) + 1), 1, kTriggerInFlight);
    auto may_start = [&](const Queue& q) {
      const int active = static_cast<int>(active_.size());
      return q.in_flight < share && active < kMaxInFlight &&
             (q.in_flight < std::max(share / 2, 1) || active < kMaxInFlight - kHeadroom);
    };
    for (auto it : order) {
      Queue& q = it->second;
      const auto target = targets.find(it->first);
      if (target == targets.end()) {
        // A trigger deleted (its staged events were cancelled with it), or
        // one so new the targets are not reloaded yet: give the events back
        // and reload; the sweep brings back whatever is still staged.
        std::lock_guard<std::mutex> lock(owner_.mu_);
        for (const HeldEvent& e : q.events) {
          owner_.releases_.push_back(e.id);
          owner_.Unhold(e.trigger, e.payload.size());
        }
        q.events.clear();
        owner_.reload_ = true;
        owner_.Wake();
        continue;
      }
      while (!q.events.empty() && may_start(q)) {
        if (Send(std::move(q.events.front()), target->second)) ++q.in_flight;
        q.events.pop_front();
        last_served_ = it->first;
      }
    }
    // Empty queues go, so the map holds only triggers with work.
    for (auto it = queues_.begin(); it != queues_.end();) {
      it = it->second.events.empty() && it->second.in_flight == 0 ? queues_.erase(it) : ++it;
    }
    owner_.in_flight_ = static_cast<int>(active_.size());
  }

  // Sends `event` to `target`; false when no request is made (its outcome
  // is in failed_now_).
  bool Send(HeldEvent event, const Target& target) {
    const int64_t now_ms = EpochMs();
    std::string body =
        BuildCloudEvent(event.id, event.type, owner_.cfg_.node_id, event.ts_ms, event.payload);
    // SPEC §11: the request shaped by the trigger's transform, as it is now
    // (also for a retry); one that does not evaluate fails the event at once.
    std::optional<ShapedRequest> shaped;
    if (target.transform || !target.transform_error.empty()) {
      Result<ShapedRequest> s = target.transform_error.empty()
                                    ? ShapeRequest(*target.transform, body, target.url)
                                    : Status::Error("transform: " + target.transform_error);
      if (!s.ok()) {
        AttemptRecord rec = FailAttempt(event, s.error());
        rec.started_ms = now_ms;
        failed_now_.push_back(std::move(rec));
        failed_now_urgent_ = failed_now_urgent_ || target.ordered;
        return false;
      }
      shaped = std::move(*s);
    }
    std::unique_ptr<Request> r;
    if (!spare_.empty()) {
      r = std::move(spare_.back());
      spare_.pop_back();
    } else {
      r = std::make_unique<Request>();
      r->easy = curl_easy_init();
      Configure(*r);
    }
    r->event = std::move(event);
    r->body = shaped ? std::move(shaped->body) : std::move(body);
    r->response.clear();
    r->response_cut = false;
    r->dispatcher = this;
    r->granted = 0;
    r->paused = false;
    r->retry_after.clear();
    r->error[0] = '\0';
    r->started_ms = now_ms;
    r->started = Clock::now();
    r->retries = target.retries;
    r->retry_interval_ms = target.retry_interval_ms;
    r->ordered = target.ordered;
    r->timeout_ms = target.timeout_ms;
    if (r->headers != nullptr) curl_slist_free_all(r->headers);
    r->headers = nullptr;
    auto add = [&](const std::string& line) {
      r->headers = curl_slist_append(r->headers, line.c_str());
    };
    const bool has_body = !shaped || shaped->has_body;
    if (!shaped) {
      add("Content-Type: application/json");
    } else if (has_body) {
      add("Content-Type: " + shaped->content_type);
    }
    add("Expect:");  // no 100-continue round trip for large bodies
    if (shaped && !shaped->claims.empty()) {
      add("X-SC-Token: " + signer_.HeaderWithClaims(now_ms / 1000, shaped->claims));
    } else {
      add("X-SC-Token: " + signer_.Header(now_ms / 1000));
    }
    if (webhook_signer_.ok()) {
      const std::string id = std::to_string(r->event.id);
      const int64_t ts = now_ms / 1000;
      auto sig = webhook_signer_->Sign(id, ts, r->body);
      add("webhook-id: " + id);
      add("webhook-timestamp: " + std::to_string(ts));
      if (sig.ok()) add("webhook-signature: " + *sig);
    }
    for (const std::string& h : target.headers) {
      if (!shaped || !shaped->Replaces(h)) add(h);
    }
    if (shaped) {
      for (const std::string& h : shaped->headers) {
        // "Name:" would remove the header; "Name;" sends it empty.
        add(h.back() == ' ' && h[h.size() - 2] == ':' ? h.substr(0, h.size() - 2) + ";" : h);
      }
    }

    // The rest was set once, by Configure.
    CURL* e = r->easy;
    const std::string& url = shaped ? shaped->url : target.url;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    const std::string_view method = shaped ? std::string_view(shaped->method) : "POST";
    if (has_body || method == "POST" || method == "PUT" || method == "PATCH") {
      // POSTFIELDS makes it a POST again after a GET on this handle.
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r->body.size()));
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                       method == "POST" ? nullptr : shaped->method.c_str());
    } else {
      // GET and DELETE without a body (SPEC §11).
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                       method == "GET" ? nullptr : shaped->method.c_str());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(target.timeout_ms));
    // Over TLS, ALPN tells at the handshake whether a connection multiplexes:
    // a request may wait for that rather than open a connection of its own.
    // Over plain HTTP nothing tells before the first answer, so waiting
    // would put every request behind the first one, however long that one
    // hangs (SPEC §9: a slow endpoint gets its requests in parallel).
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, StartsWithNoCase(url, "https:") ? 1L : 0L);
    curl_multi_add_handle(multi_.get(), e);
    active_.emplace(e, std::move(r));
    return true;
  }

  // What every request of a handle shares; a handle keeps its Request.
  void Configure(Request& r) {
    CURL* e = r.easy;
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    if (!owner_.cfg_.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, owner_.cfg_.ca_file.c_str());
    }
    curl_easy_setopt(e, CURLOPT_USERAGENT, "walhook/" WALHOOK_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Dispatcher::OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Dispatcher::OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r.error);
  }

  // Turns finished transfers into outcomes; returns how many.
  size_t Finish() {
    int left = 0;
    std::vector<AttemptRecord> records;
    bool urgent = false;  // an outcome an ordered key waits for
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode rc = msg->data.result;
      curl_multi_remove_handle(multi_.get(), easy);
      auto it = active_.find(easy);
      if (it == active_.end()) continue;
      std::unique_ptr<Request> r = std::move(it->second);
      active_.erase(it);
      GiveBackResponseMemory(*r);
      records.push_back(Judge(*r, rc));
      urgent = urgent || r->ordered;
      auto q = queues_.find(r->event.trigger);
      if (q != queues_.end()) --q->second.in_flight;
      r->event.payload.clear();
      r->event.payload.shrink_to_fit();
      r->body.clear();
      r->body.shrink_to_fit();
      if (r->response.capacity() > kResponseKeep) std::string().swap(r->response);
      spare_.push_back(std::move(r));
    }
    ResumePaused();
    if (!failed_now_.empty()) {
      // Events a transform failed before any request (see Send).
      urgent = urgent || failed_now_urgent_;
      records.insert(records.end(), std::make_move_iterator(failed_now_.begin()),
                     std::make_move_iterator(failed_now_.end()));
      failed_now_.clear();
      failed_now_urgent_ = false;
    }
    if (records.empty()) return 0;
    owner_.attempts_ += records.size();
    owner_.in_flight_ = static_cast<int>(active_.size());
    GlobalMetrics().SetInFlight(static_cast<int>(active_.size()));
    const int64_t now_ms = std::chrono::duration_cast<milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    for (const AttemptRecord& rec : records) {
      switch (rec.status) {
        case EventStatus::kProcessed:
          GlobalMetrics().AddDelivery("processed",
                                      static_cast<double>(now_ms - rec.due_ms) / 1000.0);
          break;
        case EventStatus::kFailed: GlobalMetrics().AddDelivery("failed"); break;
        case EventStatus::kStaged: GlobalMetrics().AddDelivery("retry"); break;
      }
    }
    // The events stay held until their outcomes are written: a store that
    // falls behind slows the dispatcher instead of piling up outcomes.
    std::lock_guard<std::mutex> lock(owner_.mu_);
    const bool first = owner_.outcomes_.empty();
    if (first) owner_.outcomes_since_ = Clock::now();
    for (AttemptRecord& rec : records) owner_.outcomes_.push_back(std::move(rec));
    owner_.outcomes_urgent_ = owner_.outcomes_urgent_ || urgent;
    // The store thread knows when the first came; it is woken again only
    // when the outcomes cannot wait.
    if (first || urgent || owner_.outcomes_.size() >= kOutcomesNow) owner_.Wake();
    return records.size();
  }

  void GiveBackResponseMemory(Request& r) {
    response_granted_ -= std::min(response_granted_, r.granted);
    r.granted = 0;
    if (r.paused) {
      // Ended while it waited (its timeout): no longer to resume.
      paused_.erase(std::remove(paused_.begin(), paused_.end(), r.easy), paused_.end());
      r.paused = false;
    }
  }

  // Requests that wait for response memory try again once some is free.
  void ResumePaused() {
    constexpr size_t kGrant = kMaxResponseBody - kResponseKeep;
    if (paused_.empty() || response_granted_ + kGrant > kResponseMemory) return;
    std::vector<CURL*> waiting;
    waiting.swap(paused_);
    for (CURL* easy : waiting) {
      auto it = active_.find(easy);
      if (it == active_.end()) continue;
      it->second->paused = false;
      // May call OnBody at once, which may pause it again (into paused_).
      curl_easy_pause(easy, CURLPAUSE_CONT);
    }
  }

  AttemptRecord Judge(Request& r, CURLcode rc) {
    long code = 0;
    curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &code);
    std::string transport;
    // A body cut by OnBody ends the transfer with a write error: the
    // response came all the same, as far as it was read.
    const bool answered = rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r.response_cut);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      transport = fmt::format("timed out after {} ms", r.timeout_ms);
    } else if (!answered) {
      transport = r.error[0] != '\0' ? r.error : curl_easy_strerror(rc);
    }
    // A response cut short (by the network) is no answer, whatever its
    // status line said.
    AttemptResponse response;
    response.status = answered ? code : 0;
    response.body = r.response;
    response.body_cut = r.response_cut;
    response.transport_error = transport;
    response.retry_after = r.retry_after;
    AttemptRecord rec = JudgeAttempt(r.event, response, {r.retries, r.retry_interval_ms},
                                     std::chrono::system_clock::now(),
                                     std::uniform_real_distribution<double>(0, 1)(rng_));
    rec.http_status = code;  // also of a response cut short: invocation_logs shows it
    rec.started_ms = r.started_ms;
    rec.duration_ms = static_cast<int>(
        std::chrono::duration_cast<milliseconds>(Clock::now() - r.started).count());
    return rec;
  }

  Delivery& owner_;
  std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)> multi_;
  TokenSigner signer_;
  Result<WebhookSigner> webhook_signer_;  // an error without --signing-secret
  std::mt19937_64 rng_;
  std::thread thread_;

  std::mutex mu_;  // guards the five below
  std::vector<HeldEvent> inbox_;
  std::shared_ptr<const std::unordered_map<std::string, Target>> targets_;
  bool stop_ = false;
  bool closing_ = false;  // the loop is ending: Add releases instead
  bool done_ = false;     // ended, and everything it held is given back

  // The loop thread's own.
  std::map<std::string, Queue> queues_;
  std::string last_served_;
  std::unordered_map<CURL*, std::unique_ptr<Request>> active_;
  std::vector<std::unique_ptr<Request>> spare_;
  size_t response_granted_ = 0;  // of kResponseMemory
  std::vector<CURL*> paused_;    // requests waiting for a grant, oldest first
  // Outcomes of events failed without a request (a transform that does not
  // evaluate), for the next Finish; and whether an ordered key waits for one.
  std::vector<AttemptRecord> failed_now_;
  bool failed_now_urgent_ = false;
};

Delivery::Delivery(const Config& config) : cfg_(config) {
  static CurlGlobal curl_global;
  if (!cfg_.ca_file.empty() && access(cfg_.ca_file.c_str(), R_OK) != 0) {
    throw FatalError(kExitUsage,
                     fmt::format("--ca-file {}: cannot read it: {}", cfg_.ca_file,
                                 std::strerror(errno)));  // NOLINT(concurrency-mt-unsafe)
  }
  if (!cfg_.signing_secret.empty()) {
    auto check = SignStandardWebhook(cfg_.signing_secret, "1", 0, "");
    if (!check.ok()) {
      throw FatalError(kExitUsage, fmt::format("--signing-secret: {}", check.error()));
    }
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  dispatcher_ = std::make_unique<Dispatcher>(*this);
}

Delivery::~Delivery() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Delivery::Start() {
  dispatcher_->Start();
  store_thread_ = std::thread([this] { StoreLoop(); });
}

void Delivery::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !store_thread_.joinable()) return;
    stopping_ = true;
  }
  dispatcher_->Stop();
  Wake();
  if (store_thread_.joinable()) store_thread_.join();
}

bool Delivery::Reserve(const std::string& trigger, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || held_ >= kMaxHeld || held_bytes_ + bytes > kMaxHeldBytes) return false;
  size_t& n = held_by_trigger_[trigger];
  if (n >= kTriggerHeld) return false;
  ++n;
  ++held_;
  held_bytes_ += bytes;
  GlobalMetrics().SetHeld(held_, parked_reserved_);
  return true;
}

bool Delivery::Park() {
  // With other nodes delivering from this eventing database, a backlog is
  // left unleased for all of them to claim.
  if (peers_) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || parked_count_ + parked_reserved_ >= kMaxParked) return false;
  ++parked_reserved_;
  GlobalMetrics().SetHeld(held_, parked_reserved_);
  return true;
}

std::vector<int64_t> Delivery::TakeParked(const std::string& trigger, size_t n) {
  std::vector<int64_t> ids;
  auto it = parked_.find(trigger);
  if (it == parked_.end()) return ids;
  std::deque<int64_t>& q = it->second;
  size_t taken = 0;
  while (!q.empty() && taken < n) {
    // Never an event held already: loading it again would send it twice.
    if (held_ids_.count(q.front()) == 0) ids.push_back(q.front());
    q.pop_front();
    ++taken;
  }
  parked_count_ -= taken;
  if (q.empty()) parked_.erase(it);
  return ids;
}

void Delivery::Unhold(const std::string& trigger, size_t bytes) {
  held_ = held_ > 0 ? held_ - 1 : 0;
  held_bytes_ = held_bytes_ >= bytes ? held_bytes_ - bytes : 0;
  auto it = held_by_trigger_.find(trigger);
  if (it != held_by_trigger_.end() && --it->second == 0) held_by_trigger_.erase(it);
  GlobalMetrics().SetHeld(held_, parked_reserved_);
}

void Delivery::Poke() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    poke_ = true;
  }
  Wake();
}

void Delivery::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void Delivery::Committed(EventBatch& batch, const std::vector<StoredEvent>& stored) {
  std::vector<OwnedEvent>& owned = batch.owned();
  std::vector<bool> taken(owned.size(), false);
  // Stored rows leased to this node are held events (in `owned`) or parked
  // ones. (lsn, seq, trigger) is unique, so a row is held exactly when its
  // key is in `owned`: found by key, whatever order the rows come back in.
  struct Key {
    uint64_t lsn;
    int seq;
    std::string_view trigger;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(k.lsn) ^ (std::hash<int>()(k.seq) * 31) ^
             std::hash<std::string_view>()(k.trigger);
    }
  };
  std::unordered_map<Key, size_t, KeyHash> index;
  index.reserve(owned.size());
  for (size_t i = 0; i < owned.size(); ++i) {
    index.emplace(Key{owned[i].lsn.value(), owned[i].seq, owned[i].trigger}, i);
  }
  std::vector<HeldEvent> events;
  events.reserve(stored.size());
  std::vector<const StoredEvent*> parked;
  for (const StoredEvent& s : stored) {
    const auto found = index.find(Key{s.lsn.value(), s.seq, s.trigger});
    if (found == index.end()) {
      parked.push_back(&s);
      continue;
    }
    const size_t i = found->second;
    taken[i] = true;
    HeldEvent e;
    e.id = s.id;
    e.trigger = owned[i].trigger;  // a copy: `index` keys view these names
    e.type = std::move(owned[i].type);
    e.payload = std::move(owned[i].payload);
    e.ts_ms = s.ts_ms;
    events.push_back(std::move(e));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Owned events not inserted (a replay: already stored) were reserved for nothing.
    for (size_t i = 0; i < owned.size(); ++i) {
      if (!taken[i]) Unhold(owned[i].trigger, owned[i].payload.size());
    }
    for (const HeldEvent& e : events) held_ids_.insert(e.id);
    // Parked events not inserted (a replay) were reserved for nothing too.
    parked_reserved_ -= std::min(parked_reserved_, batch.parked());
    GlobalMetrics().SetHeld(held_, parked_reserved_);
    for (const StoredEvent* p : parked) {
      std::deque<int64_t>& q = parked_[p->trigger];
      if (q.empty()) poke_ = true;  // the sweep loads them once room opens
      q.push_back(p->id);
      ++parked_count_;
    }
  }
  if (!parked.empty()) Wake();
  GlobalMetrics().AddTaken(events.size(), 0, 0);
  dispatcher_->Add(std::move(events));
  // The sweep delivers these, and learns from them when to look next.
  if (batch.has_ordered() || batch.has_scheduled()) Poke();
}

void Delivery::Dropped(EventBatch& batch) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const OwnedEvent& e : batch.owned()) Unhold(e.trigger, e.payload.size());
  parked_reserved_ -= std::min(parked_reserved_, batch.parked());
  GlobalMetrics().SetHeld(held_, parked_reserved_);
}

void Delivery::StoreLoop() {
  milliseconds backoff(500);
  std::string last_error;
  bool said = false;
  for (;;) {
    try {
      DeliveryStore store(cfg_.eventing_db, cfg_.schema, cfg_.node_id, &started_);
      store.Listen();
      if (said) {
        UnclaimMessage(last_error);
        LogInfo("delivery: the eventing database answers again");
      }
      last_error.clear();
      said = false;
      backoff = milliseconds(500);
      StoreSession(store);
      return;
    } catch (const pqxx::undefined_table&) {
      // The capture side has not applied the migrations yet: wait quietly.
      std::this_thread::sleep_for(milliseconds(200));
      continue;
    } catch (const std::exception& e) {
      bool stopping;
      {
        std::lock_guard<std::mutex> lock(mu_);
        stopping = stopping_;
      }
      if (stopping && dispatcher_->stopped()) {
        LogWarn("delivery: {}; outcomes not yet written are retried after their lease", e.what());
        return;
      }
      if (e.what() != last_error) {
        if (said) UnclaimMessage(last_error);
        said = ClaimMessage(e.what());
        if (said) LogError("{}; retrying with backoff", e.what());
        last_error = e.what();
      }
      const auto until = Clock::now() + backoff;
      while (Clock::now() < until) {
        pollfd fd{wake_fd_, POLLIN, 0};
        ::poll(&fd, 1, 100);
        bool stop_now;
        {
          std::lock_guard<std::mutex> lock(mu_);
          stop_now = stopping_;
        }
        if (stop_now && dispatcher_->stopped()) break;
      }
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
}

// Upkeep (retention, folding counts) that fails with an SQL error (a
// statement_timeout, a trigger of the user's refusing a delete) is said once
// per distinct error and tried again at its next turn: it does not end the
// delivery session, which would reconnect and fail /healthz meanwhile. A lost
// connection (not an SQL error) still ends it.
template <typename Fn>
static void Upkeep(const char* task, std::string* last_error, const Fn& fn) {
  try {
    fn();
    last_error->clear();
  } catch (const pqxx::sql_error& e) {
    if (e.what() != *last_error) LogWarn("{}: {}; tried again at its next turn", task, e.what());
    *last_error = e.what();
  }
}

void Delivery::StoreSession(DeliveryStore& store) {
  LoadTargets(store);

  auto now = Clock::now();
  auto next_sweep = now;
  // A sweep at or after next_walk looks for every ordered key's first event;
  // one sooner, made only because ordered events were done, looks for the
  // next event of their keys.
  auto next_walk = now;
  std::vector<int64_t> done;
  auto next_renew = now + kRenewInterval;
  auto next_report = now;  // at once: it also tells whether other nodes deliver
  auto next_retention = now + milliseconds(5000);
  auto next_fold = now + kFoldInterval;
  uint64_t reported_attempts = attempts_;
  auto last_report = now;
  std::string retention_error, fold_error;  // the last one said, per task
  std::vector<AttemptRecord> outcomes;
  std::vector<int64_t> releases;
  // When retries fall due: each one is a reason to sweep at that moment.
  std::priority_queue<Clock::time_point, std::vector<Clock::time_point>, std::greater<>>
      retries_due;
  for (;;) {
    const DeliveryStore::Notices notices = store.Poll();
    bool reload;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reload = reload_;
      reload_ = false;
    }
    if (notices.triggers_changed || reload) {
      LoadTargets(store);
      next_sweep = next_walk = Clock::now();
    }
    const bool sent_all = dispatcher_->stopped();  // before mu_: its releases are in
    bool finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // At most kRecordMax outcomes per statement; the rest in the next turn.
      if (!OutcomesDue(Clock::now())) {
        // Not yet: they wait for more.
      } else if (outcomes_.size() <= kRecordMax) {
        outcomes.swap(outcomes_);
        outcomes_urgent_ = false;
      } else {
        const auto end = outcomes_.begin() + static_cast<std::ptrdiff_t>(kRecordMax);
        outcomes.assign(std::make_move_iterator(outcomes_.begin()), std::make_move_iterator(end));
        outcomes_.erase(outcomes_.begin(), end);
      }
      if (stopping_) {
        GiveBack(sent_all, &releases);
      } else {
        releases.swap(releases_);
      }
      if (poke_ || notices.wake) next_sweep = next_walk = Clock::now();
      poke_ = false;
      finished = stopping_;
    }
    finished = finished && sent_all;
    try {
      if (!outcomes.empty()) {
        const std::vector<QueuedRow> queued = MatchQueued(outcomes);
        store.Record(&outcomes, queued);
        now = Clock::now();
        // Due now, or the sweep sets their timer.
        if (!queued.empty()) next_sweep = next_walk = now;
        for (const AttemptRecord& r : outcomes) {
          if (r.status == EventStatus::kStaged) {
            const auto due = now + milliseconds(r.retry_in_ms);
            next_sweep = std::min(next_sweep, due);
            next_walk = std::min(next_walk, due);
            // Beyond this many, the periodic sweep finds the rest.
            if (retries_due.size() < kRetryTimers) retries_due.push(due);
          }
        }
        // Room opened: a backlog can come in now. An ordered trigger's
        // event done lets the next event of its key go.
        bool ordered = false;
        for (const AttemptRecord& r : outcomes) {
          if (ordered_names_.count(r.trigger) == 0) continue;
          ordered = true;
          if (r.status != EventStatus::kStaged) done.push_back(r.event_id);
        }
        // Beyond this many keys, a walk finds their next events.
        if (done.size() > kMaxDone) {
          done.clear();
          next_walk = now;
        }
        if (backlog_ || ordered) next_sweep = now;
      }
      if (!releases.empty()) store.Release(releases);
    } catch (...) {
      // Not written: keep them for the next connection.
      std::lock_guard<std::mutex> lock(mu_);
      outcomes_.insert(outcomes_.begin(), std::make_move_iterator(outcomes.begin()),
                       std::make_move_iterator(outcomes.end()));
      releases_.insert(releases_.begin(), releases.begin(), releases.end());
      throw;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const AttemptRecord& r : outcomes) {
        held_ids_.erase(r.event_id);
        Unhold(r.trigger, r.payload_bytes);
      }
      for (int64_t id : releases) held_ids_.erase(id);
    }
    outcomes.clear();
    releases.clear();
    if (finished) {
      std::lock_guard<std::mutex> lock(mu_);
      if (outcomes_.empty() && releases_.empty() && parked_.empty()) return;
      continue;
    }

    now = Clock::now();
    if (now >= next_sweep) {
      const bool walk = now >= next_walk;
      Sweep(store, walk, done);
      done.clear();
      now = Clock::now();
      while (!retries_due.empty() && retries_due.top() <= now) retries_due.pop();
      const auto pending_walk = next_walk;
      next_sweep = now + kSweepInterval;
      if (!retries_due.empty()) next_sweep = std::min(next_sweep, retries_due.top());
      // Events due later (scheduled, or retries from before a restart): a
      // timer on the earliest, on the database's clock, re-armed each sweep.
      std::vector<std::string> names;
      {
        std::lock_guard<std::mutex> lock(mu_);
        names = target_names_;
      }
      if (const auto due = store.NextDue(names)) {
        next_sweep = std::min(next_sweep, Clock::now() + *due + milliseconds(1));
      }
      // Timed sweeps walk; a walk still owed stays owed.
      if (!walk) next_sweep = std::min(next_sweep, pending_walk);
      next_walk = next_sweep;
    }
    if (now >= next_renew) {
      std::vector<int64_t> ids;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ids.assign(held_ids_.begin(), held_ids_.end());
      }
      store.Renew(ids);
      next_renew = now + kRenewInterval;
    }
    if (now >= next_report) {
      const double secs = std::chrono::duration<double>(now - last_report).count();
      const uint64_t a = attempts_;
      const size_t peers = store.ReportDeliveries(
          secs > 0 ? static_cast<double>(a - reported_attempts) / secs : 0, in_flight_);
      peers_ = peers > 0;
      reported_attempts = a;
      last_report = now;
      next_report = now + kReportInterval;
    }
    if (now >= next_retention) {
      size_t deleted = 0;
      Upkeep("retention", &retention_error, [&] {
        for (int i = 0; i < kRetentionBatchesPerRun; ++i) {
          const size_t n = store.Retain(cfg_.retention, cfg_.failed_retention, kRetentionBatch);
          deleted += n;
          if (n < static_cast<size_t>(kRetentionBatch)) break;
        }
      });
      if (deleted > 0) LogInfo("retention: deleted {} old events", deleted);
      next_retention = now + kRetentionInterval;
    }

    if (now >= next_fold) {
      Upkeep("folding status counts", &fold_error, [&] { store.FoldCounts(); });
      next_fold = now + kFoldInterval;
    }

    // Sleep until there is work, a notification, or the next timer.
    bool pending;
    Clock::time_point gathered;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // While stopping: leases to give back, or the last requests have ended
      // (until then the dispatcher wakes this thread with their outcomes).
      pending = OutcomesDue(Clock::now()) || !releases_.empty() || poke_ || reload_ ||
                (stopping_ && (!parked_.empty() || sent_all));
      gathered = outcomes_.empty() ? Clock::time_point::max() : outcomes_since_ + kOutcomeGather;
    }
    if (pending) continue;
    const auto wake_at =
        std::min({next_sweep, next_renew, next_report, next_retention, next_fold, gathered});
    const auto wait = std::chrono::ceil<milliseconds>(wake_at - Clock::now()).count();
    if (wait > 0) {
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {store.socket(), POLLIN, 0}};
      ::poll(fds, 2, static_cast<int>(std::min<int64_t>(wait, 1000)));
    }
    uint64_t drained;
    [[maybe_unused]] ssize_t n = read(wake_fd_, &drained, sizeof(drained));
  }
}

bool Delivery::OutcomesDue(Clock::time_point now) const {
  return !outcomes_.empty() && (stopping_ || outcomes_urgent_ || outcomes_.size() >= kOutcomesNow ||
                                now >= outcomes_since_ + kOutcomeGather);
}

void Delivery::GiveBack(bool sent_all, std::vector<int64_t>* releases) {
  // Leases of events not sent go back, so another node (or the next start)
  // takes them at once: those the dispatcher gave back, then each trigger's
  // parked ones, oldest first, a chunk a turn. A stop does not wait on a long
  // backlog (each release rewrites its row: 200k took 2.5 s here, and a CI
  // run with as many did not stop within 20 s): what is left
  // kStopReleaseTime after the last request ended keeps its lease until that
  // runs out, as after a crash.
  const auto now = Clock::now();
  if (sent_all && !release_by_) release_by_ = now + kStopReleaseTime;
  if (release_by_ && now >= *release_by_) {
    if (const size_t left = releases_.size() + parked_count_; left > 0) {
      LogInfo("stopping: {} events keep their lease until it runs out (at most {} s)", left,
              kLease.count());
    }
    releases_.clear();
    parked_.clear();
    parked_count_ = 0;
    return;
  }
  const auto n = static_cast<std::ptrdiff_t>(std::min(kReleaseMax, releases_.size()));
  releases->assign(releases_.begin(), releases_.begin() + n);
  releases_.erase(releases_.begin(), releases_.begin() + n);
  size_t room = kReleaseMax - static_cast<size_t>(n);
  for (auto it = parked_.begin(); it != parked_.end() && room > 0;) {
    std::deque<int64_t>& q = it->second;
    const auto k = static_cast<std::ptrdiff_t>(std::min(room, q.size()));
    releases->insert(releases->end(), q.begin(), q.begin() + k);
    q.erase(q.begin(), q.begin() + k);
    room -= static_cast<size_t>(k);
    parked_count_ -= static_cast<size_t>(k);
    it = q.empty() ? parked_.erase(it) : std::next(it);
  }
}

void Delivery::LoadTargets(DeliveryStore& store) {
  std::vector<Target> targets = store.LoadTargets();
  // SPEC §11: each transform parsed once per version of its texts.
  for (Target& t : targets) {
    if (!t.request_transform && !t.token_claims) continue;
    const auto& parsed = transforms_.Get(t.name, t.request_transform, t.token_claims);
    if (parsed.ok()) {
      t.transform = *parsed;
    } else {
      t.transform_error = parsed.error();
    }
  }
  transforms_.Prune();
  target_names_.clear();
  ordered_names_.clear();
  std::vector<Trigger> custom;
  for (const Target& t : targets) {
    target_names_.push_back(t.name);
    if (t.ordered) ordered_names_.insert(t.name);
    if (ParseEventKind(t.type) != EventKind::kCustom) continue;
    if (auto c = CustomTrigger(t.name, t.type, t.condition, t.enabled)) {
      custom.push_back(std::move(*c));
    }
  }
  custom_matcher_ = Matcher(std::move(custom));
  dispatcher_->SetTargets(std::move(targets));
}

std::vector<QueuedRow> Delivery::MatchQueued(const std::vector<AttemptRecord>& outcomes) const {
  std::vector<QueuedRow> rows;
  std::vector<const Trigger*> matched;
  for (const AttemptRecord& r : outcomes) {
    for (const ChainedEvent& e : r.queued) {
      matched.clear();
      custom_matcher_.MatchCustom(e.type, e.payload, &matched);
      for (const Trigger* t : matched) {
        rows.push_back(
            QueuedRow{t->name, e.type, e.payload, e.delay_ms, e.at_ms, r.queued_depth, r.event_id});
      }
    }
  }
  return rows;
}

void Delivery::Sweep(DeliveryStore& store, bool walk, const std::vector<int64_t>& done) {
  // Room is reserved before the claim, so capture cannot take it meanwhile;
  // what the claim does not fill is given back.
  std::vector<ClaimRoom> room;
  std::vector<int64_t> parked;   // to load, not claim
  std::vector<int> parked_room;  // of each room, what `parked` fills
  bool parked_left = false;
  size_t bytes_room = 0;  // of payload, reserved in held_bytes_
  bool one_over = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    // Parked events of a trigger this node does not know (deleted, or not
    // loaded yet): their leases go back, so the sweep claims what is still staged.
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (std::find(target_names_.begin(), target_names_.end(), it->first) != target_names_.end()) {
        ++it;
        continue;
      }
      releases_.insert(releases_.end(), it->second.begin(), it->second.end());
      parked_count_ -= it->second.size();
      it = parked_.erase(it);
    }
    for (const std::string& name : target_names_) {
      const size_t global = kMaxHeld > held_ ? kMaxHeld - held_ : 0;
      if (global == 0 || held_bytes_ >= kMaxHeldBytes) break;
      const size_t mine = held_by_trigger_.count(name) ? held_by_trigger_[name] : 0;
      const size_t n = std::min(
          {global, kTriggerHeld > mine ? kTriggerHeld - mine : 0, static_cast<size_t>(kClaimMax)});
      // Under a backlog, wait for room for a whole claim rather than paying
      // a claim statement per few events freed.
      if (n == 0 ||
          (n < static_cast<size_t>(kClaimMax) && mine >= static_cast<size_t>(kClaimMax))) {
        continue;
      }
      const bool ordered = ordered_names_.count(name) > 0;
      // Parked events first: the claim takes only what room they leave.
      const std::vector<int64_t> ids = TakeParked(name, n);
      parked.insert(parked.end(), ids.begin(), ids.end());
      room.push_back(
          {name, static_cast<int>(n), ordered, walk || ordered_backlog_.count(name) > 0});
      parked_room.push_back(static_cast<int>(ids.size()));
      held_by_trigger_[name] += n;
      held_ += n;
      GlobalMetrics().SetHeld(held_, parked_reserved_);
    }
    parked_left = parked_count_ > 0;
    if (!room.empty()) {
      // Bytes too, not only counts: a claim of 1,000 events of 8 MiB each
      // would be 8 GB. What the claim may take (kClaimBytes at most, so
      // capture keeps room meanwhile) is reserved until the payloads are
      // in; one event over it only when nothing else is held (it goes all
      // the same).
      bytes_room =
          std::min(kMaxHeldBytes > held_bytes_ ? kMaxHeldBytes - held_bytes_ : 0, kClaimBytes);
      one_over = held_bytes_ == 0;
      held_bytes_ += bytes_room;
    }
  }
  if (room.empty()) {
    backlog_ = true;
    return;
  }
  std::vector<HeldEvent> events;
  std::vector<HeldEvent> unfit;  // parked events past bytes_room: still parked
  size_t loaded = 0;
  size_t bytes = 0;  // of the payloads taken
  try {
    events = store.LoadParked(parked, bytes_room, one_over, &unfit);
    loaded = events.size();
    for (const HeldEvent& e : events) bytes += e.payload.size();
    // A trigger whose parked events did not all fit claims nothing more
    // (they go first); the others claim what the bytes left allow.
    std::set<std::string> waiting;
    for (const HeldEvent& e : unfit) waiting.insert(e.trigger);
    std::vector<ClaimRoom> claim;
    for (size_t i = 0; i < room.size(); ++i) {
      const ClaimRoom& r = room[i];
      if (r.room > parked_room[i] && waiting.count(r.trigger) == 0) {
        claim.push_back({r.trigger, r.room - parked_room[i], r.ordered, r.walk});
      }
    }
    if (!claim.empty() && (bytes < bytes_room || (one_over && events.empty()))) {
      std::vector<HeldEvent> claimed = store.Claim(
          claim, done, bytes_room > bytes ? bytes_room - bytes : 0, one_over && events.empty());
      for (const HeldEvent& e : claimed) bytes += e.payload.size();
      events.insert(events.end(), std::make_move_iterator(claimed.begin()),
                    std::make_move_iterator(claimed.end()));
    }
  } catch (...) {
    // What was loaded stays leased until the lease runs out; then any node claims it.
    std::lock_guard<std::mutex> lock(mu_);
    for (const ClaimRoom& r : room) {
      for (int i = 0; i < r.room; ++i) Unhold(r.trigger, 0);
    }
    held_bytes_ -= std::min(held_bytes_, bytes_room);
    throw;
  }
  std::map<std::string, int> claimed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_bytes_ -= std::min(held_bytes_, bytes_room);
    // Back to the front of their triggers' parked queues, in their order.
    for (auto it = unfit.rbegin(); it != unfit.rend(); ++it) {
      parked_[it->trigger].push_front(it->id);
      ++parked_count_;
      parked_left = true;
    }
    for (const HeldEvent& e : events) {
      ++claimed[e.trigger];
      held_bytes_ += e.payload.size();
      held_ids_.insert(e.id);
    }
    // Bytes, not counts, may have cut this sweep short: sweep again as room opens.
    backlog_ = parked_left || bytes >= bytes_room / 2;
    for (const ClaimRoom& r : room) {
      const int got = claimed.count(r.trigger) ? claimed[r.trigger] : 0;
      for (int i = got; i < r.room; ++i) Unhold(r.trigger, 0);
      if (got == r.room) backlog_ = true;
      if (r.ordered && r.walk) {
        if (got == r.room) {
          ordered_backlog_.insert(r.trigger);
        } else {
          ordered_backlog_.erase(r.trigger);
        }
      }
    }
  }
  GlobalMetrics().AddTaken(0, loaded, events.size() - loaded);
  dispatcher_->Add(std::move(events));
}

}  // namespace walhook
