#pragma once
// The API's HTTP/1.1 server (SPEC §9 "HTTP clients"): one epoll thread owns
// the sockets and reads every request through an HttpRequestParser, so what
// a client can make walhook hold before its token is checked is bounded
// (head 64 KiB and 100 headers, body 1 MiB whatever the encoding, 10 s to
// send a whole request, a fixed number of connections). Slow clients cost
// the loop a socket each, never a thread. Whole requests go to a few worker
// threads; a handler answers through a Responder it may keep and call later
// from any thread (a synchronous queue call waits without holding a worker).
// Every answer the server makes itself (400, 408, 413, 431, 503) is JSON
// {"error": "…"}.
// Why not cpp-httplib 0.11.4: it reads chunked bodies and headers without
// bound and gives each connection a thread. Why not libmicrohttpd 0.9.75: its
// own error answers (431, 413) are HTML, it has no whole-request deadline
// (its timeout is per read) and no header count; each would need a patch
// around it, and a synchronous wait needs suspend/resume. The parser this
// server reads through is pure and unit-tested (http_parser.h).
// Thread-safety: Start/Stop from one thread; a Responder from any thread.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "walhook/http_parser.h"
#include "walhook/result.h"

namespace walhook {

// Sends the answer to one request. Call it once; calls after the connection
// closed (or the server stopped) do nothing. Cheap to copy.
class HttpResponder {
 public:
  struct Target;
  explicit HttpResponder(std::shared_ptr<Target> target) : target_(std::move(target)) {}
  void operator()(HttpResponse response) const;

 private:
  std::shared_ptr<Target> target_;
};

struct HttpServerOptions {
  HttpLimits limits;
  std::chrono::milliseconds request_deadline{10000};  // from the first byte (or accept) to a
                                                      // whole request
  size_t max_connections = 512;
  // Handlers that wait (for the database) hold one; synchronous calls do not.
  size_t worker_threads = 8;
};

struct HttpHandlers {
  // On the loop thread once a request's head is read, before its body: an
  // answer refuses the request unread (no token, an unknown path). Must be
  // quick and must not block.
  std::function<std::optional<HttpResponse>(const HttpRequest& head)> check_head;
  // On a worker thread with the whole request. Answers through `respond`,
  // now or later.
  std::function<void(HttpRequest request, HttpResponder respond)> handle;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandlers handlers);
  ~HttpServer();  // Stop()

  // Binds host:port (IPv4 or IPv6 literal, or a host name). The error says
  // why not.
  Status Bind(const std::string& host, int port);
  // REQUIRES: Bind succeeded. Serves on a thread of its own and workers.
  void Start();
  // Closes every connection and joins the threads. Idempotent.
  void Stop();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace walhook
