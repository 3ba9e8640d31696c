#pragma once
// A webhook receiver for integration tests: a cpp-httplib server on
// 127.0.0.1:<port>, running on its own threads, that records every request
// (arrival time, method, path, headers, body) and answers each one as a
// programmable policy says (status, body, extra headers, a delay, or no
// answer at all).
//
// Thread-safety: every public method may be called from any thread.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace httplib {
class Server;
}

namespace walhook::test {

// One request as the receiver saw it.
struct Arrival {
  size_t index = 0;                                   // 0-based, in order of arrival
  std::chrono::steady_clock::time_point at;           // when the whole request was read
  std::chrono::steady_clock::time_point answered_at;  // when the answer was handed to
                                                      // the server (valid if answered)
  bool answered = false;  // false while the policy's delay or hang lasts
  std::string method;
  std::string path;   // without the query string
  std::string query;  // the query string as sent, without "?"; "" when none
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, in order
  std::string body;
  int status = 0;  // the status the policy chose

  // The first value of header `name` (compared case-insensitively), "" if absent.
  std::string Header(std::string_view name) const;
  // How many times header `name` was sent.
  size_t HeaderCount(std::string_view name) const;
};

// What to answer.
struct Reply {
  int status = 200;
  std::string body = "{}";
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Retry-After", "1"}
  std::chrono::milliseconds delay{0};                        // wait this long before answering
  bool hang = false;  // never answer (until the receiver is destroyed)
};

// Decides the answer to a request. Called with the receiver's lock held, one
// call at a time, so a policy may keep state without locking of its own; it
// must not call back into the Receiver.
using Policy = std::function<Reply(const Arrival&)>;

class Receiver {
 public:
  // Listens on 127.0.0.1:`port` and answers by `policy` (default: 200 "{}").
  // Throws std::runtime_error if the port cannot be bound. Returns once the
  // server accepts connections.
  explicit Receiver(int port, Policy policy = {});

  // Cuts short every delay and hang, stops the server and joins its threads.
  // Never throws.
  ~Receiver();

  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  int port() const { return port_; }

  // "http://127.0.0.1:<port><path>".
  std::string Url(std::string_view path = "/") const;

  // Replaces the policy for requests that arrive from now on.
  void SetPolicy(Policy policy);

  // A copy of every request so far, in order of arrival.
  std::vector<Arrival> Arrivals() const;
  size_t Count() const;

  // Waits until at least `n` requests arrived; false if `timeout` passed first.
  bool WaitForCount(size_t n, std::chrono::milliseconds timeout) const;
  // Waits until a request to `path` whose body contains `needle` arrived
  // (it may have already); false if `timeout` passed first.
  bool WaitForBody(std::string_view path, std::string_view needle,
                   std::chrono::milliseconds timeout) const;

 private:
  // Records the request, asks the policy and waits as it says; returns the
  // reply and the arrival's index.
  Reply Handle(std::string method, std::string path, std::string query,
               std::vector<std::pair<std::string, std::string>> headers, std::string body,
               size_t* index);
  void MarkAnswered(size_t index);

  const int port_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // signalled on each arrival and on stop
  Policy policy_;                       // guarded by mu_
  std::vector<Arrival> arrivals_;       // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
};

}  // namespace walhook::test
