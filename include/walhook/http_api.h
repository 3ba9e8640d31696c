#pragma once
// The HTTP API of `walhook run` (SPEC §5), on --listen:
//   POST /v1/api/{project}/eventing/queue   custom events (Space Cloud's clients)
//   GET  /healthz                           200 while this node does its role
//   GET  /metrics                           Prometheus text
// A cpp-httplib server on its own threads, with its own connections to the
// eventing database.
// Thread-safety: Start/Stop from one thread.

#include <memory>

#include "walhook/config.h"

namespace walhook {

class Delivery;

class HttpApi {
 public:
  // `delivery` is poked when events are queued; it must outlive the API.
  HttpApi(const Config& cfg, Delivery& delivery);
  ~HttpApi();  // stops the server

  // Binds --listen and serves on a thread. Throws FatalError (exit 2) when
  // the address cannot be bound.
  void Start();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace walhook
