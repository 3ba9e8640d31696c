#include "walhook/http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "walhook/log.h"

namespace walhook {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint64_t kListenKey = 0;
constexpr uint64_t kWakeKey = 1;
constexpr size_t kReadChunk = 16 * 1024;
// After an answer that closes the connection, what the client still sends
// is read and dropped for a while: closing with unread bytes would reset
// the connection and the client could lose the answer (a 413 sent while it
// still writes its body).
constexpr milliseconds kLinger{2000};
constexpr size_t kLingerBytes = 8 * 1024 * 1024;
constexpr milliseconds kTick{100};

const char* Reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

// On every answer (SPEC §12): nothing served here may be framed or run
// script from elsewhere, and no body is sniffed into another type.
constexpr std::string_view kSecurityHeaders =
    "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n";

std::string Serialize(const HttpResponse& r, bool close) {
  std::string out =
      fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}", r.status,
                  Reason(r.status), r.content_type, r.body.size(), kSecurityHeaders);
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += r.body;
  return out;
}

}  // namespace

// Answers handed back to the loop by responders, on any thread.
struct Completions {
  std::mutex mu;
  std::deque<std::pair<uint64_t, HttpResponse>> ready;  // guarded by mu
  bool closed = false;                                  // guarded by mu
  int wake_fd = -1;
};

struct HttpResponder::Target {
  std::shared_ptr<Completions> completions;
  uint64_t key;
  std::atomic<bool> used{false};
};

void HttpResponder::operator()(HttpResponse response) const {
  if (target_ == nullptr || target_->used.exchange(true)) return;
  Completions& c = *target_->completions;
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.closed) return;
  c.ready.emplace_back(target_->key, std::move(response));
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(c.wake_fd, &one, sizeof(one));
}

struct HttpServer::Impl {
  enum class Phase {
    kReading,   // a request's bytes
    kHandling,  // a whole request is with a handler
    kWriting,   // an answer goes out
    kLinger,    // answered, closing: what comes is dropped
  };

  struct Conn {
    explicit Conn(const HttpLimits& limits) : parser(limits) {}
    int fd = -1;
    uint64_t key = 0;
    Phase phase = Phase::kReading;
    HttpRequestParser parser;
    std::string pending;  // read, not yet consumed by the parser
    std::string out;
    size_t out_done = 0;
    bool close_after = false;
    bool keep_alive = true;
    size_t lingered = 0;
    Clock::time_point deadline;
    uint32_t interest = 0;
  };

  struct Job {
    HttpRequest request;
    HttpResponder respond;
  };

  Impl(HttpServerOptions o, HttpHandlers h) : options(std::move(o)), handlers(std::move(h)) {}

  HttpServerOptions options;
  HttpHandlers handlers;
  int listen_fd = -1;
  int epoll_fd = -1;
  std::shared_ptr<Completions> completions = std::make_shared<Completions>();
  std::atomic<bool> stopping{false};
  std::thread loop;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;  // loop thread only
  uint64_t next_key = 2;

  std::mutex jobs_mu;
  std::condition_variable jobs_cv;
  std::deque<Job> jobs;    // guarded by jobs_mu
  bool jobs_done = false;  // guarded by jobs_mu
  std::vector<std::thread> workers;

  void SetInterest(Conn& c, uint32_t events) {
    if (c.interest == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.key;
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
    c.interest = events;
  }

  void Close(uint64_t key) {
    auto it = conns.find(key);
    if (it == conns.end()) return;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, it->second->fd, nullptr);
    close(it->second->fd);
    conns.erase(it);
  }

  void Accept() {
    for (;;) {
      const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or out of descriptors: try again on the next event
      if (conns.size() >= options.max_connections) {
        // Closed unanswered: 503 means only that the eventing database is
        // unavailable (SPEC §9), and a client holding hundreds of
        // connections is not owed an answer.
        close(fd);
        continue;
      }
      int yes = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
      auto c = std::make_unique<Conn>(options.limits);
      c->fd = fd;
      c->key = next_key++;
      c->deadline = Clock::now() + options.request_deadline;
      c->interest = EPOLLIN;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = c->key;
      if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        continue;
      }
      conns.emplace(c->key, std::move(c));
    }
  }

  // Queues `r`; the connection closes after it when `close_after`.
  void Answer(Conn& c, const HttpResponse& r, bool close_after) {
    c.out += Serialize(r, close_after);
    c.close_after = close_after;
    c.phase = Phase::kWriting;
    // A client that does not read its answer is closed after this.
    c.deadline = Clock::now() + options.request_deadline;
    Flush(c);
  }

  // Writes what is queued; moves on when it is all out. May close `c`.
  void Flush(Conn& c) {
    while (c.out_done < c.out.size()) {
      const ssize_t n =
          send(c.fd, c.out.data() + c.out_done, c.out.size() - c.out_done, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        SetInterest(c, EPOLLOUT);
        return;
      }
      if (n < 0 && errno == EINTR) continue;
      Close(c.key);
      return;
    }
    c.out.clear();
    c.out_done = 0;
    if (c.phase != Phase::kWriting) {  // a 100 Continue went out: back to reading
      SetInterest(c, EPOLLIN);
      return;
    }
    if (c.close_after) {
      shutdown(c.fd, SHUT_WR);
      c.phase = Phase::kLinger;
      c.deadline = Clock::now() + kLinger;
      SetInterest(c, EPOLLIN);
      return;
    }
    c.phase = Phase::kReading;
    c.deadline = Clock::now() + options.request_deadline;
    SetInterest(c, EPOLLIN);
    if (!c.pending.empty()) Parse(c);  // a pipelined request
  }

  void Refuse(Conn& c, int status, std::string_view why) {
    Answer(c, HttpError(status, why), true);
  }

  // Feeds what was read to the parser and acts on what it has. May close `c`.
  void Parse(Conn& c) {
    for (;;) {
      const size_t used = c.parser.Feed(c.pending);
      c.pending.erase(0, used);
      switch (c.parser.state()) {
        case HttpRequestParser::State::kHead:
        case HttpRequestParser::State::kBody: return;  // everything was consumed
        case HttpRequestParser::State::kError:
          return Refuse(c, c.parser.error_status(), c.parser.error_message());
        case HttpRequestParser::State::kHeadDone: {
          std::optional<HttpResponse> refused;
          if (handlers.check_head) refused = handlers.check_head(c.parser.request());
          if (refused) return Answer(c, *refused, true);
          c.parser.ReadBody();
          if (c.parser.expects_continue() && c.parser.state() == HttpRequestParser::State::kBody &&
              c.pending.empty()) {
            c.out += "HTTP/1.1 100 Continue\r\n\r\n";
            Flush(c);
            if (conns.find(c.key) == conns.end()) return;
          }
          continue;
        }
        case HttpRequestParser::State::kDone: {
          HttpRequest request = c.parser.TakeRequest();
          c.keep_alive = request.keep_alive;
          c.phase = Phase::kHandling;
          SetInterest(c, 0);
          auto target = std::make_shared<HttpResponder::Target>();
          target->completions = completions;
          target->key = c.key;
          {
            std::lock_guard<std::mutex> lock(jobs_mu);
            jobs.push_back(Job{std::move(request), HttpResponder(std::move(target))});
          }
          jobs_cv.notify_one();
          return;
        }
      }
    }
  }

  void OnReadable(Conn& c) {
    const uint64_t key = c.key;  // `c` may be closed on the way
    char buf[kReadChunk];
    for (int rounds = 0; rounds < 8; ++rounds) {
      const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
      if (n == 0) return Close(c.key);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) Close(c.key);
        return;
      }
      if (c.phase == Phase::kLinger) {
        c.lingered += static_cast<size_t>(n);
        if (c.lingered > kLingerBytes) return Close(c.key);
        continue;
      }
      if (c.phase != Phase::kReading) return;
      c.pending.append(buf, static_cast<size_t>(n));
      Parse(c);
      // Parse may have closed it, or handed a request over.
      if (conns.find(key) == conns.end() || c.phase != Phase::kReading) return;
    }
  }

  void Drain() {
    uint64_t count;
    [[maybe_unused]] const ssize_t n = read(completions->wake_fd, &count, sizeof(count));
    std::deque<std::pair<uint64_t, HttpResponse>> ready;
    {
      std::lock_guard<std::mutex> lock(completions->mu);
      ready.swap(completions->ready);
    }
    for (auto& [key, response] : ready) {
      auto it = conns.find(key);
      if (it == conns.end() || it->second->phase != Phase::kHandling) continue;
      Conn& c = *it->second;
      Answer(c, response, !c.keep_alive);
    }
  }

  void Sweep() {
    const auto now = Clock::now();
    std::vector<uint64_t> late;
    for (const auto& [key, c] : conns) {
      if ((c->phase == Phase::kReading || c->phase == Phase::kLinger ||
           c->phase == Phase::kWriting) &&
          now >= c->deadline) {
        late.push_back(key);
      }
    }
    for (const uint64_t key : late) {
      auto it = conns.find(key);
      if (it == conns.end()) continue;
      Conn& c = *it->second;
      if (c.phase == Phase::kReading && (c.parser.started() || !c.pending.empty())) {
        Refuse(
            c, 408,
            fmt::format("no whole request within {} s", options.request_deadline.count() / 1000));
        // A client that does not read its 408 goes at the next sweep.
        if (conns.find(key) != conns.end()) it->second->deadline = now + kLinger;
      } else {
        Close(key);
      }
    }
  }

  void Loop() {
    std::vector<epoll_event> events(64);
    auto last_sweep = Clock::now();
    while (!stopping) {
      const int n = epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()),
                               static_cast<int>(kTick.count()));
      for (int i = 0; i < n; ++i) {
        const uint64_t key = events[i].data.u64;
        if (key == kListenKey) {
          Accept();
          continue;
        }
        if (key == kWakeKey) {
          Drain();
          continue;
        }
        auto it = conns.find(key);
        if (it == conns.end()) continue;
        Conn& c = *it->second;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          Close(key);
          continue;
        }
        if (events[i].events & EPOLLIN) {
          OnReadable(c);
          if (conns.find(key) == conns.end()) continue;
        }
        if (events[i].events & EPOLLOUT) Flush(c);
      }
      if (Clock::now() - last_sweep >= kTick) {
        Sweep();
        last_sweep = Clock::now();
      }
    }
  }

  void Work() {
    for (;;) {
      std::unique_lock<std::mutex> lock(jobs_mu);
      jobs_cv.wait(lock, [&] { return jobs_done || !jobs.empty(); });
      if (jobs_done) return;
      Job job = std::move(jobs.front());
      jobs.pop_front();
      lock.unlock();
      try {
        handlers.handle(std::move(job.request), job.respond);
      } catch (const std::exception& e) {
        LogWarn("HTTP API: a handler failed: {}", e.what());
        job.respond(HttpError(500, "internal error"));
      }
    }
  }
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handlers))) {}

HttpServer::~HttpServer() {
  Stop();
  if (impl_->listen_fd >= 0) close(impl_->listen_fd);
}

Status HttpServer::Bind(const std::string& host_in, int port) {
  std::string host = host_in;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc =
          getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    return Status::Error(gai_strerror(rc));
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
      impl_->listen_fd = fd;
      break;
    }
    why = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  if (impl_->listen_fd < 0) return Status::Error(why);
  return Status::Ok();
}

void HttpServer::Start() {
  Impl& m = *impl_;
  m.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  m.completions->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenKey;
  epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.listen_fd, &ev);
  ev.data.u64 = kWakeKey;
  epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.completions->wake_fd, &ev);
  for (size_t i = 0; i < m.options.worker_threads; ++i) {
    m.workers.emplace_back([&m] { m.Work(); });
  }
  m.loop = std::thread([&m] { m.Loop(); });
}

void HttpServer::Stop() {
  Impl& m = *impl_;
  if (!m.loop.joinable()) return;
  m.stopping = true;
  m.loop.join();
  {
    std::lock_guard<std::mutex> lock(m.jobs_mu);
    m.jobs_done = true;
  }
  m.jobs_cv.notify_all();
  for (auto& w : m.workers) w.join();
  m.workers.clear();
  {
    std::lock_guard<std::mutex> lock(m.completions->mu);
    m.completions->closed = true;
    m.completions->ready.clear();
    close(m.completions->wake_fd);
  }
  std::vector<uint64_t> keys;
  for (const auto& [key, c] : m.conns) keys.push_back(key);
  for (const uint64_t key : keys) m.Close(key);
  close(m.epoll_fd);
  m.epoll_fd = -1;
}

}  // namespace walhook
