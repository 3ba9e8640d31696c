// libFuzzer target: any bytes through the condition parser give a condition
// or a one-line error, never a crash; a condition that parses evaluates
// against fixed events through every ValueSource without crashing, and obeys
// a few laws (NOT flips the truth, copies agree, comparisons are antisymmetric).
//
// Input: "<condition>" or "<condition>\0<JSON data>": with a NUL byte, the
// rest is the data object too (conditions never hold NUL: Postgres text can't).
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "walhook/condition.h"
#include "walhook/utf8.h"

namespace {

using walhook::Truth;

constexpr std::string_view kOrder = R"({"db": "shop", "schema": "public", "col": "orders",
  "doc": {"id": 1, "status": "paid", "total": 12.50, "big": 9007199254740993, "note": null,
          "flag": true, "name": "Zo\u00eb", "tags": ["x", "y"], "meta": {"k": 1}, "a": "1e3"},
  "find": {"id": 1},
  "before": {"id": 1, "status": "new", "total": 12.5, "note": null, "meta": {"k": 2}}})";

constexpr std::string_view kPayload = R"({"a": {"b": [1, 2.5, "x", true, null, {"c": 1}]},
  "s": "line\nbreak \u00e9", "n": -0.0e-5, "dup": 1, "dup": 2, "a.b": "%_\\"})";

void Check(bool ok) {
  if (!ok) std::abort();
}

// LIKE by its definition (like.h), by dynamic programming over characters:
// slow and obvious, for short inputs. nullopt for a pattern ending in \.
std::optional<bool> ReferenceLike(std::string_view text, std::string_view pattern, bool fold) {
  auto lower = [&](std::string_view s) {
    std::string out(s);
    for (char& c : out) {
      if (fold && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  };
  // The pattern as items: 1 for %, 2 for _, else a literal byte (+256 so it
  // is never 1 or 2); runs of literal bytes are then read as characters.
  std::vector<int> marked;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' || pattern[i] == '_') {
      marked.push_back(pattern[i] == '%' ? 1 : 2);
      continue;
    }
    if (pattern[i] == '\\' && ++i == pattern.size()) return std::nullopt;
    marked.push_back(256 + static_cast<unsigned char>(pattern[i]));
  }
  std::vector<std::pair<int, std::string>> items;  // (1 %, 2 _, 3 character)
  for (size_t i = 0; i < marked.size();) {
    if (marked[i] < 256) {
      items.push_back({marked[i++], ""});
      continue;
    }
    std::string run;
    while (i < marked.size() && marked[i] >= 256)
      run.push_back(static_cast<char>(marked[i++] - 256));
    for (size_t k = 0; k < run.size();) {
      const size_t len = walhook::LikeCharLength(run, k);
      items.push_back({3, lower(std::string_view(run).substr(k, len))});
      k += len;
    }
  }
  std::vector<std::string> chars;
  for (size_t k = 0; k < text.size();) {
    const size_t len = walhook::LikeCharLength(text, k);
    chars.push_back(lower(text.substr(k, len)));
    k += len;
  }
  std::vector<bool> ok(chars.size() + 1, false);
  ok[0] = true;
  for (const auto& [kind, bytes] : items) {
    std::vector<bool> next(chars.size() + 1, false);
    for (size_t j = 0; j <= chars.size(); ++j) {
      if (kind == 1) {
        next[j] = ok[j] || (j > 0 && next[j - 1]);
      } else if (j > 0 && ok[j - 1]) {
        next[j] = kind == 2 || chars[j - 1] == bytes;
      }
    }
    ok = std::move(next);
  }
  return static_cast<bool>(ok[chars.size()]);
}

Truth Not(Truth t) {
  if (t == Truth::kNull) return t;
  return t == Truth::kTrue ? Truth::kFalse : Truth::kTrue;
}

struct Fixture {
  walhook::JsonDataSource order;
  walhook::JsonDataSource payload;
  rapidjson::Document doc;
  walhook::Change change;
  Fixture() {
    Check(order.Reset(kOrder, walhook::DataShape::kDbEvent).ok());
    Check(payload.Reset(kPayload, walhook::DataShape::kPayload).ok());
    doc.Parse(kPayload.data(), kPayload.size());
    Check(!doc.HasParseError());
    change.kind = walhook::ChangeKind::kUpdate;
    change.columns = {{"id", "integer", walhook::ValueKind::kNumber, "1"},
                      {"status", "text", walhook::ValueKind::kString, "paid"},
                      {"meta", "jsonb", walhook::ValueKind::kString, "{}"}};
    change.identity = {{"id", "integer", walhook::ValueKind::kNumber, "1"},
                       {"body", "text", walhook::ValueKind::kString, "toast"}};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  static walhook::JsonDataSource custom;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);

  // The building blocks on halves of the input.
  const std::string_view left = text.substr(0, text.size() / 2);
  const std::string_view right = text.substr(text.size() / 2);
  const std::optional<int> c1 = walhook::CompareDecimal(left, right);
  const std::optional<int> c2 = walhook::CompareDecimal(right, left);
  Check(c1.has_value() == c2.has_value());
  if (c1) Check(*c1 == -*c2 && *c1 >= -1 && *c1 <= 1);
  if (c1) Check(walhook::CompareDecimal(left, left) == 0);
  // LIKE agrees with its definition (short inputs: the reference is slow).
  for (const bool fold : {false, true}) {
    const std::optional<bool> like = walhook::LikeMatch(left, right, fold);
    if (left.size() <= 64 && right.size() <= 64) Check(like == ReferenceLike(left, right, fold));
  }

  walhook::Result<walhook::Condition> condition = walhook::ParseCondition(text);
  if (!condition.ok()) {
    const std::string& error = condition.error();
    Check(error.starts_with("condition: ") && error.find('\n') == std::string::npos);
    Check(walhook::IsValidUtf8(error));  // it goes into trigger_status.last_error
    return 0;
  }
  const walhook::Condition& c = *condition;
  const walhook::RapidJsonPayloadSource rapid(fixture.doc);
  const walhook::ChangeValueSource change(fixture.change);
  const Truth on_order = c.Evaluate(fixture.order);
  const Truth on_payload = c.Evaluate(fixture.payload);
  (void)c.Evaluate(rapid);
  (void)c.Evaluate(change);
  (void)c.Columns(walhook::Scope::kNew);
  (void)c.Columns(walhook::Scope::kOld);
  (void)c.DebugString();

  const walhook::Condition copy = c;
  Check(copy.Evaluate(fixture.order) == on_order);
  Check(copy.Evaluate(fixture.payload) == on_payload);

  // NOT (…) flips the result, when the extra level still fits.
  walhook::Result<walhook::Condition> negated =
      walhook::ParseCondition("NOT (" + std::string(text) + ")");
  if (negated.ok()) {
    Check(negated->Evaluate(fixture.order) == Not(on_order));
    Check(negated->Evaluate(fixture.payload) == Not(on_payload));
  }

  if (nul != std::string_view::npos) {
    const std::string_view json = input.substr(nul + 1);
    for (walhook::DataShape shape : {walhook::DataShape::kDbEvent, walhook::DataShape::kPayload}) {
      if (custom.Reset(json, shape).ok()) (void)c.Evaluate(custom);
    }
  }
  return 0;
}
