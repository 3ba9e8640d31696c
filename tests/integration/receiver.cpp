#include "receiver.h"

#include <strings.h>
#include <sys/socket.h>

#include <httplib.h>

#include <stdexcept>

namespace walhook::test {
namespace {

// Enough workers that hung requests to one receiver do not keep it from
// reading the next ones (each request in a delay or hang holds a worker),
// and that two nodes can each keep a trigger's 64 connections open (each
// kept-alive connection holds a worker too).
constexpr size_t kWorkerThreads = 160;
// httplib 0.11 listens with a backlog of 5; a burst of connections beyond it
// would wait for SYN retransmits (1 s) and distort the timings tests measure.
constexpr int kListenBacklog = 1024;
constexpr time_t kKeepAliveTimeoutS = 2;  // also bounds how long stopping can take
constexpr size_t kKeepAliveMaxRequests = 10000;

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Headers httplib adds to a request itself; not sent by the client.
bool IsSynthetic(const std::string& name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
         name == "LOCAL_PORT";
}

}  // namespace

std::string Arrival::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (SameName(k, name)) return v;
  }
  return "";
}

size_t Arrival::HeaderCount(std::string_view name) const {
  size_t n = 0;
  for (const auto& h : headers) {
    if (SameName(h.first, name)) ++n;
  }
  return n;
}

Receiver::Receiver(int port, Policy policy)
    : port_(port), server_(std::make_unique<httplib::Server>()), policy_(std::move(policy)) {
  // httplib owns and deletes the queue it gets from this factory.
  server_->new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // Answers go out in more than one write: without this, each waits up to
  // 40 ms for the client's delayed ACK (Nagle's algorithm).
  server_->set_tcp_nodelay(true);
  server_->set_keep_alive_timeout(kKeepAliveTimeoutS);
  server_->set_keep_alive_max_count(kKeepAliveMaxRequests);
  // Keep the listening socket to raise its backlog after the bind. No
  // SO_REUSEPORT: two receivers on one port is a test bug and must fail.
  auto listen_fd = std::make_shared<int>(-1);
  server_->set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *listen_fd = sock;
  });

  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& [k, v] : req.headers) {
      if (!IsSynthetic(k)) headers.emplace_back(k, v);
    }
    size_t index = 0;
    const size_t mark = req.target.find('?');
    std::string query = mark == std::string::npos ? "" : req.target.substr(mark + 1);
    Reply reply =
        Handle(req.method, req.path, std::move(query), std::move(headers), req.body, &index);
    res.status = reply.status;
    for (const auto& [k, v] : reply.headers) res.set_header(k, v);
    res.set_content(reply.body, reply.content_type);
    MarkAnswered(index);
  };
  server_->Post(".*", handler);
  server_->Put(".*", handler);
  server_->Patch(".*", handler);
  server_->Get(".*", handler);
  server_->Delete(".*", handler);

  if (!server_->bind_to_port("127.0.0.1", port_)) {
    throw std::runtime_error("receiver: cannot listen on 127.0.0.1:" + std::to_string(port_));
  }
  if (*listen_fd >= 0) ::listen(*listen_fd, kListenBacklog);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs, so wait for it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Receiver::~Receiver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  // stop() does nothing before the accept loop runs (the constructor's wait
  // may have run out).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string Receiver::Url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void Receiver::SetPolicy(Policy policy) {
  std::lock_guard<std::mutex> lock(mu_);
  policy_ = std::move(policy);
}

std::vector<Arrival> Receiver::Arrivals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return arrivals_;
}

size_t Receiver::Count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return arrivals_.size();
}

bool Receiver::WaitForCount(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return arrivals_.size() >= n; });
}

bool Receiver::WaitForBody(std::string_view path, std::string_view needle,
                           std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    for (const Arrival& a : arrivals_) {
      if (a.path == path && a.body.find(needle) != std::string::npos) return true;
    }
    return false;
  });
}

Reply Receiver::Handle(std::string method, std::string path, std::string query,
                       std::vector<std::pair<std::string, std::string>> headers, std::string body,
                       size_t* index) {
  std::unique_lock<std::mutex> lock(mu_);
  Arrival a;
  a.index = arrivals_.size();
  a.at = std::chrono::steady_clock::now();
  a.method = std::move(method);
  a.path = std::move(path);
  a.query = std::move(query);
  a.headers = std::move(headers);
  a.body = std::move(body);
  Reply reply = policy_ ? policy_(a) : Reply{};
  a.status = reply.status;
  *index = a.index;
  arrivals_.push_back(std::move(a));
  cv_.notify_all();
  if (reply.hang) {
    cv_.wait(lock, [&] { return stopping_; });
  } else if (reply.delay.count() > 0) {
    cv_.wait_for(lock, reply.delay, [&] { return stopping_; });
  }
  return reply;
}

void Receiver::MarkAnswered(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  arrivals_[index].answered = true;
  arrivals_[index].answered_at = std::chrono::steady_clock::now();
}

}  // namespace walhook::test
