#pragma once
// The admin API's adapter (SPEC §12, docs/admin-api.md): answers the routes
// of admin_api.h from the eventing database (and the source's catalog for
// /tables) through the same SQL a psql user has — INSERT/UPDATE/DELETE on
// triggers, redeliver(), cancel(), backfill(), cancel_backfill(), the status
// views. The token and the route were checked from the request's head.
// Database errors become 400/404/409 with a field where the value is the
// client's, 503 when the database is unavailable; never exception text.
// Thread-safety: Handle may be called from several threads at once.

#include <memory>

#include "walhook/admin_api.h"
#include "walhook/config.h"
#include "walhook/http_parser.h"

namespace walhook {

class AdminHandler {
 public:
  explicit AdminHandler(const Config& cfg);
  ~AdminHandler();

  // Every route but kQueue (which the queue API's path answers).
  HttpResponse Handle(const admin::AdminTarget& target, const HttpRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace walhook
