// libFuzzer target: what the admin API reads from a client holding an admin
// token (SPEC §12), as any bytes. The first byte chooses the reader: the
// route of a method and path, the query string and the events filter, a
// trigger body (create, and update against a stored row with masked
// headers), a validate body (condition, transform and claims checked), a
// bulk body, a backfill body; a trigger row read back as JSON. Each gives a
// value or a 4xx with a one-line message, never a crash, and what it writes
// is valid JSON.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "walhook/admin_api.h"
#include "walhook/json.h"

namespace {

using namespace walhook::admin;

void CheckRefusal(const std::optional<FieldError>& e) {
  if (!e) return;
  if (e->status < 400 || e->status > 499 || e->message.empty()) __builtin_trap();
  if (!walhook::CheckJson(ErrorResponse(*e).body).ok()) __builtin_trap();
}

void CheckJsonText(const std::string& text) {
  if (!walhook::CheckJson(text).ok()) __builtin_trap();
}

constexpr std::string_view kStored =
    R"({"name": "t", "type": "DB_UPDATE", "headers": {"X-K": "s"}, "condition": "new.a = 1",
        "request_transform": {"headers": {"A": "b"}}})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 8) {
    case 0: {
      const size_t space = input.find(' ');
      AdminTarget t;
      const std::string_view method = input.substr(0, space);
      const std::string path =
          "/v1/admin/" +
          std::string(space == std::string_view::npos ? "" : input.substr(space + 1));
      CheckRefusal(RouteAdmin(method, path, &t));
      break;
    }
    case 1: {
      std::map<std::string, std::string> q;
      const auto e = ParseQuery("/v1/admin/events?" + std::string(input), &q);
      CheckRefusal(e);
      if (!e) {
        EventFilter f;
        const auto fe = ParseEventFilter(q, &f);
        CheckRefusal(fe);
        if (!fe && (f.limit == 0 || f.limit > kMaxPage)) __builtin_trap();
      }
      break;
    }
    case 2: {
      TriggerWrite w;
      const auto e = ParseTriggerWrite(input, std::nullopt, "", &w);
      CheckRefusal(e);
      if (!e) CheckJsonText(w.json);
      break;
    }
    case 3: {
      TriggerWrite w;
      const auto e = ParseTriggerWrite(input, kStored, "t", &w);
      CheckRefusal(e);
      if (!e) CheckJsonText(w.json);
      break;
    }
    case 4: {
      ValidateRequest v;
      const auto e = ParseValidateRequest(input, &v);
      CheckRefusal(e);
      if (e) break;
      std::vector<Problem> problems;
      if (v.condition) problems = CheckCondition(*v.condition, v.type);
      if (v.request_transform) {
        for (auto& p : CheckTransform(*v.request_transform)) problems.push_back(std::move(p));
      }
      if (v.token_claims) {
        for (auto& p : CheckTokenClaims(*v.token_claims)) problems.push_back(std::move(p));
      }
      std::vector<Problem> render;
      const std::string preview =
          RenderPreview(v, R"({"id": "1", "data": {"a": 12.50}})", "http://h", &render);
      CheckJsonText(preview);
      CheckJsonText(ValidateJson(problems, preview));
      break;
    }
    case 5: {
      BulkRequest b;
      const auto e = ParseBulkRequest(input, &b);
      CheckRefusal(e);
      if (!e && !b.dry_run && !b.max_id) __builtin_trap();
      break;
    }
    case 6: {
      BackfillRequest b;
      CheckRefusal(ParseBackfillRequest(input, &b));
      break;
    }
    case 7: {
      TriggerStatus st;
      st.last_error = std::string(input.substr(0, 64));
      CheckJsonText(TriggerJson(input, &st));
      break;
    }
  }
  return 0;
}
