#pragma once
// Internal to the Kriti engine (src/transform): values, the arena they live
// in, the parsed tree, and the pieces the parser, evaluator and functions
// share. Not part of any contract outside src/transform; kriti.h is.
// Thread-safety: a Tree is immutable once parsed; an Arena belongs to one
// thread at a time.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/kriti.h"
#include "walhook/result.h"

namespace walhook::kriti {
namespace internal {

// How deep a template's tree may nest (parser and evaluator recurse on it; a
// deeper template is refused with an error, never by running out of stack).
inline constexpr int kMaxNesting = 128;
// How long a template may be.
inline constexpr size_t kMaxTemplateBytes = 256 * 1024;

// ---------------------------------------------------------------------------
// Values: JSON values that point into an Arena (or into the input's arena).
// A number keeps its JSON text; a string holds its decoded UTF-8 bytes.

enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

struct Value;

struct Member {
  std::string_view key;
  const Value* value = nullptr;
};

struct Value {
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string_view text;                // kNumber: its JSON text; kString: its contents
  const Value* const* items = nullptr;  // kArray: `count` items
  const Member* members = nullptr;      // kObject: `count` members, in order
  uint32_t count = 0;
};

const Value& NullValue();
const Value& BoolValue(bool b);

// "null", "boolean", "number", "string", "array", "object".
std::string_view KindName(Kind kind);

// A bump allocator: what one Render (or one parsed input) builds lives here
// and is freed at once. Only trivially destructible things go in.
class Arena {
 public:
  Arena() {}  // NOLINT(modernize-use-equals-default): leaves inline_ uninitialized
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void* Allocate(size_t bytes, size_t align);
  template <typename T>
  T* NewArray(size_t n) {
    return static_cast<T*>(Allocate(sizeof(T) * (n == 0 ? 1 : n), alignof(T)));
  }
  Value* NewValue() { return new (Allocate(sizeof(Value), alignof(Value))) Value(); }
  std::string_view Copy(std::string_view s);

  // Bytes handed out so far (what the memory budget counts).
  size_t used() const { return used_; }

 private:
  static constexpr size_t kInline = 2048;
  alignas(16) char inline_[kInline];
  std::vector<std::unique_ptr<char[]>> blocks_;
  char* cur_ = inline_;
  size_t left_ = kInline;
  size_t used_ = 0;
};

// New values in `arena`.
const Value* MakeString(Arena& arena, std::string_view bytes);  // copies `bytes`
const Value* MakeNumber(Arena& arena, std::string_view json);   // copies `json`
const Value* MakeArray(Arena& arena, const std::vector<const Value*>& items);
const Value* MakeObject(Arena& arena, const std::vector<Member>& members);  // keys copied by caller

// Reads JSON text into values in `arena`, in one pass with json.h's checks
// (ReadCheckedJson: bounded in depth, valid UTF-8, CheckJson's errors), with
// numbers kept as their text; given `paths`, only the parts they name
// (BodyPaths in kriti.h). Duplicate keys are kept; lookups take the last.
Result<const Value*> ReadJson(std::string_view text, Arena& arena,
                              const BodyPaths* paths = nullptr);

// Compact JSON of `v` appended to *out; false (and *out cut short) when it
// would pass `max_bytes`.
bool WriteJson(const Value& v, std::string* out, size_t max_bytes);

// Kriti's total order on JSON values (as Haskell's Ord on Aeson values):
// values of different kinds order object < array < string < number < boolean
// < null; numbers compare exactly by value (12.50 == 12.5), strings by code
// point, arrays element by element, objects as their (key, value) lists
// sorted by key. Recursion is bounded by the values' depth (input ≤ 512,
// templates ≤ kMaxNesting).
// *work (when given) grows by the values visited, for the step limit.
int Compare(const Value& a, const Value& b, size_t* work = nullptr);

// The member named `key` (the last one, if repeated), or nullptr.
const Value* FindMember(const Value& object, std::string_view key);

// Character count of UTF-8 text (valid by construction).
size_t CountChars(std::string_view text);

// "line L, column C" of byte `offset` of `text` (1-based; columns count characters).
std::string Position(std::string_view text, size_t offset);

// ---------------------------------------------------------------------------
// Functions.

enum class Fn : uint8_t {
  kEscapeUri,
  kToLower,
  kToUpper,
  kToTitle,
  kToCaseFold,
  kNot,
  kEmpty,
  kSize,
  kHead,
  kTail,
  kConcat,
  kInverse,
  kToPairs,
  kFromPairs,
  kRemoveNulls,
};

// The function named `name`, or false.
bool FindFunction(std::string_view name, Fn* fn);
std::string_view FunctionName(Fn fn);

// Applies `fn` to `arg`. On an error returns nullptr with *error set (a
// message without position). *work grows by the elements and characters
// touched, for the step limit.
const Value* Apply(Fn fn, const Value& arg, Arena& arena, size_t* work, std::string* error);

// ---------------------------------------------------------------------------
// The parsed tree.

enum class Op : uint8_t {
  kLiteral,   // literal
  kTemplate,  // string template: kids are its parts (literal strings and expressions)
  kArray,     // kids: the items
  kObject,    // kids: key, value, key, value… (keys are string templates or literals)
  kVar,       // slot
  kField,     // kids: base, key; optional
  kIf,        // kids: cond, then, [cond, then]…, [else]; has_else
  kRange,     // kids: source, body; slot (item), index_slot (or kNoSlot)
  kCall,      // fn; kids: the argument
  kBinary,    // binop; kids: lhs, rhs
};

enum class BinOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kAnd, kOr, kIn, kDefault };

inline constexpr uint32_t kNoSlot = UINT32_MAX;

// Fixed slots for the names a template may use without binding them.
enum Slot : uint32_t { kSlotDollar = 0, kSlotBody, kSlotBaseUrl, kSlotSession, kFixedSlots };

struct Node {
  Op op = Op::kLiteral;
  BinOp binop = BinOp::kEq;
  Fn fn = Fn::kNot;
  bool optional = false;
  bool has_else = false;
  uint16_t depth = 1;
  uint32_t offset = 0;  // where the node is in the text (a lookup: its '.x' or '[')
  uint32_t start = 0;   // where its whole expression starts
  uint32_t first = 0;   // kids are kids[first, first + count)
  uint32_t count = 0;
  uint32_t slot = kNoSlot;
  uint32_t index_slot = kNoSlot;
  const Value* literal = nullptr;
};

struct Tree {
  std::string text;
  Mode mode = Mode::kJson;
  std::vector<Node> nodes;
  std::vector<uint32_t> kids;
  uint32_t root = 0;
  uint32_t slots = kFixedSlots;  // fixed slots plus range binders
  Arena literals;                // literal values
};

// Parses `text` into *tree. Errors start with the position.
Status ParseTree(std::string_view text, Mode mode, Tree* tree);

// The evaluated inputs: $body (and $) and $base_url.
struct InputValues {
  Arena arena;
  const Value* body = nullptr;
  const Value* base_url = nullptr;  // nullptr: unbound (null)
};

}  // namespace internal

class Template {
 public:
  internal::Tree tree;
};

}  // namespace walhook::kriti
