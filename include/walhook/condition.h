#pragma once
// Trigger conditions (SPEC §3.1): a SQL boolean expression over new.col,
// old.col and payload.a.b, parsed once when triggers are (re)loaded and
// evaluated for each event. Pure: no I/O.
//
//   Result<Condition> c = ParseCondition("new.status = 'paid' AND new.total >= 100");
//   if (!c.ok()) { /* c.error(): "condition: expected ... at offset N, found ..." */ }
//   JsonDataSource data;
//   if (data.Reset(payload_json, DataShape::kDbEvent).ok() && c->Fires(data)) { ... }
//
// The language:
//   expr      := expr OR expr | expr AND expr | NOT expr | predicate
//                (precedence NOT > AND > OR, as in SQL)
//   predicate := operand [ (= | <> | != | < | <= | > | >=) operand
//                        | IS [NOT] NULL | IS [NOT] TRUE | IS [NOT] FALSE | IS [NOT] UNKNOWN
//                        | IS [NOT] DISTINCT FROM operand
//                        | [NOT] IN ( operand [, operand]... )
//                        | [NOT] LIKE operand | [NOT] ILIKE operand ]
//   operand   := ( expr ) | new.col | old.col | payload[.key]... | literal
//   literal   := 'string' ('' is a quote) | [+|-]number (12, 12.50, .5, 1e3, 1.5E-7)
//              | TRUE | FALSE | NULL
// Keywords are case-insensitive. Names fold to lower case (ASCII) unless
// double-quoted: new."userId" ("" is a quote). new/old take exactly one column
// name; a payload path takes any number of keys, and a key of digits
// (payload.items.0) also indexes an array. Backslash is not special in string
// literals; in LIKE/ILIKE patterns % matches any run of characters, _ one
// UTF-8 character and \ escapes the next one.
//
// Semantics (SQL's three-valued logic; a trigger fires only on kTrue):
// - A name that is absent (no such column, no old row, a path that leads
//   nowhere) is NULL. Callers check names against the table with Columns().
// - A comparison with NULL is NULL; NULL AND FALSE is FALSE; NULL OR TRUE is
//   TRUE; NOT NULL is NULL. IS [NOT] DISTINCT FROM and IS [NOT] NULL/TRUE/
//   FALSE/UNKNOWN are never NULL. x IN (a, b) is x = a OR x = b.
// - Numbers compare as exact decimals, on their digits (never through a
//   double): 12.50 = 12.5, 1e3 = 1000, -0 = 0, 9007199254740993 >
//   9007199254740992. A number whose exponent is beyond ±10^18 is treated as
//   not a number.
// - A string compared with a number compares numerically when the whole
//   string is a decimal number ('12.50' = 12.5 is TRUE; no spaces, no NaN);
//   otherwise the comparison is NULL. Two strings compare by their bytes
//   (UTF-8 code point order, like COLLATE "C"), even when both look numeric.
// - Booleans compare with booleans (FALSE < TRUE). Any other pairing of
//   unlike types — bool with number or string, any object or array — is NULL.
// - LIKE/ILIKE need two strings, else NULL. ILIKE folds ASCII letters only.
// - A bare operand used as a condition (new.active) is its boolean value;
//   anything else there is NULL. A string or number literal in that place is
//   refused when parsing.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/fwd.h>

#include "walhook/change.h"
#include "walhook/like.h"
#include "walhook/result.h"

namespace walhook {

// The result of a condition. A trigger fires only on kTrue.
enum class Truth { kTrue, kFalse, kNull };

// Where a name points: new.col, old.col or payload.a.b.
enum class Scope { kNew, kOld, kPayload };

enum class ValueType {
  kNull,
  kBool,
  kNumber,  // decimal digits as printed: "12.50", "-3", "1e3"
  kString,  // the string's bytes, unescaped
  kOther,   // an object, an array, or anything else that compares with nothing
};

// A value looked up for a condition: a type and a view of its text. Cheap to
// copy; allocates nothing. The view of a kNumber/kString/kOther value points
// into storage owned by whoever made the Value, except for numbers made by
// Int/Uint/Double, whose digits are kept inside the Value.
// Thread-safety: plain value.
class Value {
 public:
  Value() = default;  // NULL
  static Value Null() { return Value(); }
  static Value Bool(bool b);
  // `text` is a decimal number as printed; text that is not one compares as
  // NULL with every number.
  static Value Number(std::string_view text);
  static Value Int(int64_t v);
  static Value Uint(uint64_t v);
  static Value Double(double v);  // shortest round-trip digits
  static Value String(std::string_view bytes);
  // `json` is the value's JSON text when known, used only by IS DISTINCT FROM
  // (two kOther values are not distinct when their non-empty texts are equal).
  static Value Other(std::string_view json = {});

  ValueType type() const { return type_; }
  bool boolean() const { return boolean_; }  // kBool only
  std::string_view text() const {
    return inline_size_ != 0 ? std::string_view(inline_, inline_size_) : text_;
  }

 private:
  ValueType type_ = ValueType::kNull;
  bool boolean_ = false;
  uint8_t inline_size_ = 0;
  std::string_view text_;
  char inline_[32] = {};  // digits of Int/Uint/Double
};

// Where a condition finds the values its names refer to.
// Implementations: JsonDataSource, ChangeValueSource, RapidJsonPayloadSource.
class ValueSource {
 public:
  virtual ~ValueSource() = default;
  // The value of scope.path[0].path[1]…; Value::Null() when absent.
  // `path` has exactly one name for kNew/kOld and any number (even none: the
  // whole payload) for kPayload. The returned view must stay valid until the
  // Evaluate call that asked for it returns. Must not throw.
  virtual Value Get(Scope scope, std::span<const std::string_view> path) const = 0;
};

inline constexpr size_t kMaxConditionBytes = 16 * 1024;
inline constexpr int kMaxConditionDepth = 64;  // nested parentheses and NOTs
inline constexpr size_t kMaxPathNames = 32;    // payload.a.b.… names

// A parsed condition. Immutable once built; copying it copies the tree. A
// moved-from Condition may only be destroyed or assigned to.
// Thread-safety: const methods may be called from several threads at once
// (on sources that allow it).
class Condition {
 public:
  Condition(const Condition& other);
  Condition& operator=(const Condition& other);
  Condition(Condition&& other) noexcept;
  Condition& operator=(Condition&& other) noexcept;
  ~Condition();

  // Evaluates against `source`. Never throws; the recursion is bounded by
  // kMaxConditionDepth. Allocates nothing, except for a LIKE whose pattern
  // is not a literal (new.a LIKE new.b), which is compiled each time. A
  // LIKE costs at most milliseconds over a 1 MB value (see like.h).
  Truth Evaluate(const ValueSource& source) const;
  bool Fires(const ValueSource& source) const { return Evaluate(source) == Truth::kTrue; }

  // The distinct column names used under new (kNew) or old (kOld), sorted,
  // as they will be looked up (folded or quoted). Empty for kPayload.
  std::vector<std::string> Columns(Scope scope) const;
  // Whether any name is under `scope`: a DB trigger should refuse payload.*,
  // a custom or file trigger new.* and old.*.
  bool Uses(Scope scope) const;

  const std::string& text() const;  // as given to ParseCondition
  // The tree as an S-expression, for tests and logs:
  // (and (= new.status 'paid') (not (is-null old.x))).
  std::string DebugString() const;

 private:
  friend Result<Condition> ParseCondition(std::string_view text);
  struct Impl;
  explicit Condition(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses `text`. On failure the error is one line a user can act on:
//   "condition: expected ')' at offset 17, found the end of the condition".
// Refuses text longer than kMaxConditionBytes and nesting deeper than
// kMaxConditionDepth with an error, never by running out of stack.
Result<Condition> ParseCondition(std::string_view text);

// The building blocks Evaluate uses, exposed for tests and fuzzing.

// Three-way comparison under the rules above: <0, 0, >0, or nullopt for NULL
// (a NULL operand or unlike types).
std::optional<int> CompareValues(const Value& a, const Value& b);
// Exact comparison of two decimal numbers written as text
// ([+-]digits[.digits][e[+-]digits], or .digits); nullopt when either is not one.
std::optional<int> CompareDecimal(std::string_view a, std::string_view b);
// LikeMatch (SQL LIKE and ILIKE) is in walhook/like.h.

// What a JSON data object holds (SPEC §4).
enum class DataShape {
  kDbEvent,  // {"doc": …, "before": …}: new.x is doc.x, old.x is before.x; payload is NULL
  kPayload,  // custom and file events: payload.a.b is data.a.b; new and old are NULL
};

// Values from an event's data object given as JSON text. Reset indexes the
// text once (in one pass); lookups then walk the index. Its buffers keep their
// capacity, so a source reused for a stream of events stops allocating.
// Numbers keep the digits written in the text. With duplicate keys the last
// one wins (as in jsonb).
// Thread-safety: Reset needs exclusive access; Get may run concurrently.
class JsonDataSource : public ValueSource {
 public:
  JsonDataSource() = default;
  JsonDataSource(const JsonDataSource&) = delete;
  JsonDataSource& operator=(const JsonDataSource&) = delete;

  // Indexes `data`, which must stay alive and unmodified while this source is
  // used. On an error (not JSON, nested deeper than 256, over 1 GiB) every
  // lookup gives NULL until the next successful Reset.
  Status Reset(std::string_view data, DataShape shape);

  Value Get(Scope scope, std::span<const std::string_view> path) const override;

 private:
  struct Node {
    ValueType type = ValueType::kNull;
    char container = 0;    // '{' or '[' for kOther values that have members
    uint32_t end = 0;      // index one past this node's subtree
    std::string_view key;  // member name, when the parent is an object
    std::string_view text;
  };
  bool ParseValue(int depth, std::string_view key);
  bool ParseString(std::string_view* out);
  bool ParseNumber();
  void SkipSpace();
  Value Lookup(uint32_t node, std::span<const std::string_view> path) const;
  static Value ToValue(const Node& node);

  std::string_view text_;
  size_t pos_ = 0;
  size_t written_ = 0;       // bytes of unescaped_ used by this text
  std::string unescaped_;    // strings with escapes, decoded
  std::vector<Node> nodes_;  // empty: not a valid document
  DataShape shape_ = DataShape::kPayload;
};

// Values of a decoded row change: new.x from change.columns (a column left out
// as unchanged TOAST is read from change.identity, where it has the same
// value), old.x from change.identity (the whole old row only under REPLICA
// IDENTITY FULL; otherwise the key, and other columns are NULL). json/jsonb
// and array columns are kOther with the text Postgres printed. payload is NULL.
// REQUIRES: `change` outlives this source and its views stay valid.
// Thread-safety: as `change`.
class ChangeValueSource : public ValueSource {
 public:
  explicit ChangeValueSource(const Change& change) : change_(change) {}
  Value Get(Scope scope, std::span<const std::string_view> path) const override;

 private:
  const Change& change_;
};

// payload.a.b over a parsed RapidJSON document (a custom event's payload);
// new and old are NULL. Numbers parsed as doubles compare by their shortest
// round-trip digits; parse with kParseFullPrecisionFlag, or use
// JsonDataSource on the text, to keep what was written. Objects and arrays
// are kOther without text (always distinct from each other).
// REQUIRES: `payload` outlives this source and is not modified while used.
class RapidJsonPayloadSource : public ValueSource {
 public:
  explicit RapidJsonPayloadSource(const rapidjson::Value& payload) : payload_(payload) {}
  Value Get(Scope scope, std::span<const std::string_view> path) const override;

 private:
  const rapidjson::Value& payload_;
};

// Parses `data` and evaluates `condition` against it; kNull when `data` is not
// valid JSON. Allocates: for tests and cold paths. On a hot path keep a
// JsonDataSource and Reset it per event.
Truth EvaluateOnData(const Condition& condition, std::string_view data, DataShape shape);

}  // namespace walhook
