#include "walhook/sink.h"

#include <sys/socket.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <random>
#include <thread>

#include "walhook/errors.h"
#include "walhook/log.h"
#include "walhook/utf8.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

httplib::Server* g_server = nullptr;

void StopSink(int sig) {
  if (g_server != nullptr) g_server->stop();
  signal(sig, SIG_DFL);
}

}  // namespace

// A keep-alive connection holds one of the server's threads while it is
// open, and walhook opens up to 64 per trigger: have a thread for each.
constexpr size_t kSinkThreads = 256;

int RunSink(const Config& cfg) {
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kSinkThreads); };
  // A response goes out in more than one write; with Nagle's algorithm the
  // last one waits for the client's delayed ACK, 40 ms per request.
  server.set_tcp_nodelay(true);
  std::mutex mu;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  // Every method (SPEC §11: a request transform may send PUT, PATCH, DELETE
  // or GET), with its query and body.
  auto handler = [&](const httplib::Request& req, httplib::Response& res) {
    if (cfg.sink_delay.count() > 0) std::this_thread::sleep_for(cfg.sink_delay);
    ReceivedRequest r;
    const std::string token = req.get_header_value("X-SC-Token");
    const std::string id = req.get_header_value("webhook-id");
    const std::string ts = req.get_header_value("webhook-timestamp");
    const std::string sig = req.get_header_value("webhook-signature");
    r.token_header = token;
    r.webhook_id = id;
    r.webhook_timestamp = ts;
    r.webhook_signature = sig;
    r.body = req.body;
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    bool fail = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      fail = cfg.sink_fail_rate > 0 && unit(rng) < cfg.sink_fail_rate;
    }
    const int status = fail ? cfg.sink_status : 200;
    const std::string described = DescribeDelivery(r, cfg.secret, cfg.signing_secret, now);
    // The standard request (a POST without a query) as it always was; any
    // other with its method and target first.
    if (req.method == "POST" && req.target.find('?') == std::string::npos) {
      LogInfo("{} {}", status, described);
    } else {
      LogInfo("{} {} {} {}", status, req.method, StorableText(Utf8Prefix(req.target, 300)),
              described);
    }
    res.status = status;
    res.set_content(fail ? R"({"error":"walhook sink --fail-rate"})" : "{}", "application/json");
  };
  server.Post(".*", handler);
  server.Put(".*", handler);
  server.Patch(".*", handler);
  server.Delete(".*", handler);
  server.Get(".*", handler);
  server.Options(".*", handler);
  // cpp-httplib listens with a backlog of 5: a burst of new connections
  // (walhook opens many at once) would wait for SYN retransmits, seconds
  // each. Linux lets listen() be called again to raise it.
  int listen_fd = -1;
  server.set_socket_options([&listen_fd](int fd) {
    int yes = 1;  // httplib's own defaults
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &yes, sizeof(yes));
    listen_fd = fd;
  });
  const auto colon = cfg.listen.rfind(':');
  const std::string host = cfg.listen.substr(0, colon);
  const int port = std::stoi(cfg.listen.substr(colon + 1));
  if (!server.bind_to_port(host, port)) {
    throw FatalError(kExitSetup, fmt::format("walhook sink: cannot listen on {}", cfg.listen));
  }
  if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  g_server = &server;
  signal(SIGTERM, StopSink);
  signal(SIGINT, StopSink);
  LogInfo("walhook sink listening on http://{} (token {}, signature {}, fail rate {})", cfg.listen,
          cfg.secret.empty() ? "unchecked" : "checked",
          cfg.signing_secret.empty() ? "unchecked" : "checked", cfg.sink_fail_rate);
  server.listen_after_bind();
  g_server = nullptr;
  return kExitOk;
}

}  // namespace walhook
