#include "walhook/condition.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include <fmt/format.h>
#include <rapidjson/document.h>

#include "walhook/json.h"
#include "walhook/like.h"
#include "walhook/pg_value.h"
#include "walhook/utf8.h"

namespace walhook {

// The parsed tree: what Condition::Impl holds. Named (not anonymous) so the
// Impl defined below may contain it.
namespace condition_internal {

enum class NodeKind : uint8_t {
  kLiteral,   // arg: index into literals
  kRef,       // arg: index into refs
  kAnd,       // children: two or more
  kOr,        // children: two or more
  kNot,       // children: one
  kCompare,   // op; children: lhs, rhs
  kIsNull,    // negated; children: one
  kIsTruth,   // test, negated; children: one
  kDistinct,  // negated (IS NOT DISTINCT FROM); children: lhs, rhs
  kIn,        // negated; children: lhs, then the list
  kLike,      // negated, fold_case; arg: 1 + index into likes, or 0; children: text, pattern
};

enum class Op : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

struct Node {
  NodeKind kind = NodeKind::kLiteral;
  Op op = Op::kEq;
  bool negated = false;
  bool fold_case = false;
  Truth test = Truth::kTrue;
  uint32_t arg = 0;
  uint32_t first = 0;  // children are kids[first, first + count)
  uint32_t count = 0;
  uint32_t offset = 0;  // where the node starts in the text, for parse errors
  uint32_t length = 0;
};

struct Literal {
  ValueType type = ValueType::kNull;
  bool boolean = false;
  std::string text;
};

struct Ref {
  Scope scope = Scope::kNew;
  std::vector<std::string> path;
  std::vector<std::string_view> views;  // of path, rebuilt by Relink
};

struct Tree {
  std::vector<Node> nodes;
  std::vector<uint32_t> kids;
  std::vector<Literal> literals;
  std::vector<Ref> refs;
  std::vector<LikePattern> likes;  // literal LIKE patterns, compiled once
  uint32_t root = 0;

  // Points each ref's views at its own strings (after building or copying).
  void Relink() {
    for (Ref& r : refs) r.views.assign(r.path.begin(), r.path.end());
  }
};

}  // namespace condition_internal

using condition_internal::Literal;
using condition_internal::Node;
using condition_internal::NodeKind;
using condition_internal::Op;
using condition_internal::Ref;
using condition_internal::Tree;

struct Condition::Impl {
  std::string text;
  Tree tree;
};

namespace {

constexpr int64_t kMaxExponent = 1'000'000'000'000'000'000;  // 10^18
constexpr size_t kMaxJsonBytes = size_t{1} << 30;

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// ---------------------------------------------------------------------------
// Exact decimals.

// A nonzero decimal is 0.d1d2… × 10^exponent, sign apart. Its significant
// digits are head then tail (the digits before and after the point in the
// text, without leading or trailing zeros), so nothing is copied.
struct Decimal {
  bool negative = false;
  bool zero = true;
  int64_t exponent = 0;
  std::string_view head;
  std::string_view tail;

  size_t size() const { return head.size() + tail.size(); }
  char at(size_t i) const { return i < head.size() ? head[i] : tail[i - head.size()]; }
};

bool ParseDecimal(std::string_view s, Decimal* d) {
  size_t i = 0;
  const size_t n = s.size();
  *d = Decimal{};
  if (i < n && (s[i] == '+' || s[i] == '-')) {
    d->negative = s[i] == '-';
    ++i;
  }
  const size_t int_begin = i;
  while (i < n && IsDigit(s[i])) ++i;
  const std::string_view int_part = s.substr(int_begin, i - int_begin);
  std::string_view frac_part;
  if (i < n && s[i] == '.') {
    const size_t frac_begin = ++i;
    while (i < n && IsDigit(s[i])) ++i;
    frac_part = s.substr(frac_begin, i - frac_begin);
  }
  if (int_part.empty() && frac_part.empty()) return false;
  int64_t exponent = 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exponent_negative = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      exponent_negative = s[i] == '-';
      ++i;
    }
    const size_t exponent_begin = i;
    for (; i < n && IsDigit(s[i]); ++i) {
      const int digit = s[i] - '0';
      if (exponent > (kMaxExponent - digit) / 10) return false;
      exponent = exponent * 10 + digit;
    }
    if (i == exponent_begin) return false;
    if (exponent_negative) exponent = -exponent;
  }
  if (i != n) return false;

  const size_t int_lead = int_part.find_first_not_of('0');
  int64_t position = 0;  // the exponent for 0.d1d2… before applying `exponent`
  if (int_lead != std::string_view::npos) {
    d->head = int_part.substr(int_lead);
    d->tail = frac_part;
    position = static_cast<int64_t>(d->head.size());
  } else {
    const size_t frac_lead = frac_part.find_first_not_of('0');
    if (frac_lead == std::string_view::npos) return true;  // zero, whatever the sign
    d->tail = frac_part.substr(frac_lead);
    position = -static_cast<int64_t>(frac_lead);
  }
  while (!d->tail.empty() && d->tail.back() == '0') d->tail.remove_suffix(1);
  if (d->tail.empty()) {
    while (!d->head.empty() && d->head.back() == '0') d->head.remove_suffix(1);
  }
  d->zero = false;
  d->exponent = position + exponent;  // |position| < 2^40 and |exponent| <= 10^18: no overflow
  return true;
}

int CompareDecimals(const Decimal& a, const Decimal& b) {
  const int sign_a = a.zero ? 0 : (a.negative ? -1 : 1);
  const int sign_b = b.zero ? 0 : (b.negative ? -1 : 1);
  if (sign_a != sign_b) return sign_a < sign_b ? -1 : 1;
  if (sign_a == 0) return 0;
  int magnitude = 0;
  if (a.exponent != b.exponent) {
    magnitude = a.exponent < b.exponent ? -1 : 1;
  } else {
    const size_t common = std::min(a.size(), b.size());
    for (size_t i = 0; i < common && magnitude == 0; ++i) {
      if (a.at(i) != b.at(i)) magnitude = a.at(i) < b.at(i) ? -1 : 1;
    }
    // Neither has trailing zeros, so the longer one has more after the common part.
    if (magnitude == 0 && a.size() != b.size()) magnitude = a.size() < b.size() ? -1 : 1;
  }
  return sign_a > 0 ? magnitude : -magnitude;
}

// ---------------------------------------------------------------------------
// Values.

Truth FromBool(bool b) {
  return b ? Truth::kTrue : Truth::kFalse;
}

Truth Not(Truth t) {
  switch (t) {
    case Truth::kTrue: return Truth::kFalse;
    case Truth::kFalse: return Truth::kTrue;
    case Truth::kNull: return Truth::kNull;
  }
  return Truth::kNull;
}

bool Distinct(const Value& a, const Value& b) {
  const bool null_a = a.type() == ValueType::kNull;
  const bool null_b = b.type() == ValueType::kNull;
  if (null_a || null_b) return null_a != null_b;
  if (std::optional<int> c = CompareValues(a, b)) return *c != 0;
  if (a.type() != b.type()) return true;
  // kOther values without their text cannot be told equal.
  if (a.type() == ValueType::kOther && (a.text().empty() || b.text().empty())) return true;
  return a.text() != b.text();
}

Truth ApplyOp(Op op, int c) {
  switch (op) {
    case Op::kEq: return FromBool(c == 0);
    case Op::kNe: return FromBool(c != 0);
    case Op::kLt: return FromBool(c < 0);
    case Op::kLe: return FromBool(c <= 0);
    case Op::kGt: return FromBool(c > 0);
    case Op::kGe: return FromBool(c >= 0);
  }
  return Truth::kNull;
}

// ---------------------------------------------------------------------------
// Evaluation. Recursion depth is bounded by the parser's nesting limit.

class Evaluator {
 public:
  Evaluator(const Tree& tree, const ValueSource& source) : tree_(tree), source_(source) {}

  Truth Bool(uint32_t index) const {
    const Node& n = tree_.nodes[index];
    const uint32_t* kids = tree_.kids.data() + n.first;
    switch (n.kind) {
      case NodeKind::kLiteral:
      case NodeKind::kRef: {
        const Value v = Val(index);
        return v.type() == ValueType::kBool ? FromBool(v.boolean()) : Truth::kNull;
      }
      case NodeKind::kAnd: {
        Truth result = Truth::kTrue;
        for (uint32_t i = 0; i < n.count; ++i) {
          const Truth t = Bool(kids[i]);
          if (t == Truth::kFalse) return Truth::kFalse;
          if (t == Truth::kNull) result = Truth::kNull;
        }
        return result;
      }
      case NodeKind::kOr: {
        Truth result = Truth::kFalse;
        for (uint32_t i = 0; i < n.count; ++i) {
          const Truth t = Bool(kids[i]);
          if (t == Truth::kTrue) return Truth::kTrue;
          if (t == Truth::kNull) result = Truth::kNull;
        }
        return result;
      }
      case NodeKind::kNot: return Not(Bool(kids[0]));
      case NodeKind::kCompare: {
        const std::optional<int> c = CompareValues(Val(kids[0]), Val(kids[1]));
        return c ? ApplyOp(n.op, *c) : Truth::kNull;
      }
      case NodeKind::kIsNull:
        return FromBool((Val(kids[0]).type() == ValueType::kNull) != n.negated);
      case NodeKind::kIsTruth: return FromBool((Bool(kids[0]) == n.test) != n.negated);
      case NodeKind::kDistinct: return FromBool(Distinct(Val(kids[0]), Val(kids[1])) != n.negated);
      case NodeKind::kIn: {
        const Value lhs = Val(kids[0]);
        Truth result = Truth::kFalse;
        for (uint32_t i = 1; i < n.count; ++i) {
          const std::optional<int> c = CompareValues(lhs, Val(kids[i]));
          if (!c) {
            result = Truth::kNull;
          } else if (*c == 0) {
            result = Truth::kTrue;
            break;
          }
        }
        return n.negated ? Not(result) : result;
      }
      case NodeKind::kLike: {
        const Value text = Val(kids[0]);
        const Value pattern = Val(kids[1]);
        if (text.type() != ValueType::kString || pattern.type() != ValueType::kString) {
          return Truth::kNull;
        }
        if (n.arg != 0) {
          return FromBool(tree_.likes[n.arg - 1].Matches(text.text()) != n.negated);
        }
        const std::optional<bool> m = LikeMatch(text.text(), pattern.text(), n.fold_case);
        return m ? FromBool(*m != n.negated) : Truth::kNull;
      }
    }
    return Truth::kNull;
  }

  Value Val(uint32_t index) const {
    const Node& n = tree_.nodes[index];
    if (n.kind == NodeKind::kLiteral) {
      const Literal& l = tree_.literals[n.arg];
      switch (l.type) {
        case ValueType::kBool: return Value::Bool(l.boolean);
        case ValueType::kNumber: return Value::Number(l.text);
        case ValueType::kString: return Value::String(l.text);
        default: return Value::Null();
      }
    }
    if (n.kind == NodeKind::kRef) {
      const Ref& r = tree_.refs[n.arg];
      return source_.Get(r.scope, r.views);
    }
    const Truth t = Bool(index);
    return t == Truth::kNull ? Value::Null() : Value::Bool(t == Truth::kTrue);
  }

 private:
  const Tree& tree_;
  const ValueSource& source_;
};

// ---------------------------------------------------------------------------
// Parsing.

enum class Tok : uint8_t {
  kEnd,
  kIdent,   // value: folded to lower case
  kQuoted,  // value: "…" without the quotes
  kString,  // value: '…' without the quotes
  kNumber,  // value: the digits
  kOp,      // op
  kLParen,
  kRParen,
  kComma,
  kDot,
  kMinus,
  kPlus,
  kBad,  // value: the whole error message
};

struct Token {
  Tok kind = Tok::kEnd;
  Op op = Op::kEq;
  size_t offset = 0;
  size_t length = 0;
  std::string value;
};

bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdentChar(char c) {
  return IsIdentStart(c) || IsDigit(c) || c == '$';
}
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool IsReserved(std::string_view word) {
  static constexpr std::array<std::string_view, 10> kReserved = {
      "and", "or", "not", "is", "in", "like", "ilike", "distinct", "from", "unknown"};
  return std::find(kReserved.begin(), kReserved.end(), word) != kReserved.end();
}

// Text from a condition quoted for an error message: one line, printable,
// in double quotes when it holds a single one ('x' → "'x'").
std::string Quote(std::string_view text) {
  constexpr size_t kShown = 24;
  const char quote = text.find('\'') == std::string_view::npos ? '\'' : '"';
  std::string out(1, quote);
  // Cut between characters: the message goes into a text column.
  const std::string_view shown = Utf8Prefix(text, kShown);
  for (size_t i = 0; i < shown.size(); ++i) {
    const auto c = static_cast<unsigned char>(shown[i]);
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (text.size() > shown.size()) out += "...";
  out.push_back(quote);
  return StorableText(out);
}

class Parser {
 public:
  Parser(std::string_view text, Tree* tree) : text_(text), tree_(tree) {}

  Status Run() {
    if (text_.size() > kMaxConditionBytes) {
      return Status::Error(fmt::format("condition: longer than {} bytes", kMaxConditionBytes));
    }
    Advance();
    uint32_t root = 0;
    if (ParseOr(0, &root) && RequireBoolean(root)) {
      if (tok_.kind == Tok::kEnd) {
        tree_->root = root;
        tree_->Relink();
        return Status::Ok();
      }
      Expected("AND, OR or the end of the condition");
    }
    return Status::Error(std::move(error_));
  }

 private:
  // --- lexer ---

  void Bad(size_t offset, size_t end, std::string message) {
    tok_.kind = Tok::kBad;
    tok_.offset = offset;
    tok_.length = end - offset;
    tok_.value = std::move(message);
    pos_ = end;
  }

  // Reads the next token. In a path (after new, old, payload or one of their
  // names) '.' is always a dot and a name may start with a digit.
  void Advance(bool path = false) {
    const size_t n = text_.size();
    size_t i = pos_;
    while (i < n && IsSpace(text_[i])) ++i;
    tok_ = Token{};
    tok_.offset = i;
    if (i >= n) {
      pos_ = i;
      return;
    }
    const char c = text_[i];
    size_t j = i + 1;
    if (IsIdentStart(c) || (path && IsDigit(c))) {
      while (j < n && IsIdentChar(text_[j])) ++j;
      tok_.kind = Tok::kIdent;
      for (size_t k = i; k < j; ++k) tok_.value.push_back(LowerAscii(text_[k]));
    } else if (c == '"' || c == '\'') {
      // '' inside '…' and "" inside "…" stand for one quote.
      for (;; ++j) {
        if (j >= n) {
          return Bad(i, n,
                     fmt::format("condition: unterminated {} starting at offset {}",
                                 c == '"' ? "quoted name" : "string", i));
        }
        if (text_[j] != c) {
          tok_.value.push_back(text_[j]);
        } else if (j + 1 < n && text_[j + 1] == c) {
          tok_.value.push_back(c);
          ++j;
        } else {
          break;
        }
      }
      ++j;
      tok_.kind = c == '"' ? Tok::kQuoted : Tok::kString;
      if (c == '"' && tok_.value.empty()) {
        return Bad(i, j, fmt::format("condition: empty quoted name at offset {}", i));
      }
    } else if (IsDigit(c) || (c == '.' && !path && j < n && IsDigit(text_[j]))) {
      j = i;
      while (j < n && IsDigit(text_[j])) ++j;
      if (j < n && text_[j] == '.') {
        ++j;
        while (j < n && IsDigit(text_[j])) ++j;
      }
      bool ok = true;
      if (j < n && (text_[j] == 'e' || text_[j] == 'E')) {
        ++j;
        if (j < n && (text_[j] == '+' || text_[j] == '-')) ++j;
        ok = j < n && IsDigit(text_[j]);
        while (j < n && IsDigit(text_[j])) ++j;
      }
      if (!ok || (j < n && (IsIdentChar(text_[j]) || text_[j] == '.'))) {
        while (j < n && (IsIdentChar(text_[j]) || text_[j] == '.')) ++j;
        return Bad(i, j,
                   fmt::format("condition: malformed number {} at offset {}",
                               Quote(text_.substr(i, j - i)), i));
      }
      tok_.kind = Tok::kNumber;
      tok_.value.assign(text_.substr(i, j - i));
    } else {
      const char next = j < n ? text_[j] : '\0';
      switch (c) {
        case '(': tok_.kind = Tok::kLParen; break;
        case ')': tok_.kind = Tok::kRParen; break;
        case ',': tok_.kind = Tok::kComma; break;
        case '.': tok_.kind = Tok::kDot; break;
        case '-': tok_.kind = Tok::kMinus; break;
        case '+': tok_.kind = Tok::kPlus; break;
        case '=':
          tok_.kind = Tok::kOp;
          tok_.op = Op::kEq;
          break;
        case '<':
          tok_.kind = Tok::kOp;
          tok_.op = Op::kLt;
          if (next == '=') {
            tok_.op = Op::kLe;
            ++j;
          } else if (next == '>') {
            tok_.op = Op::kNe;
            ++j;
          }
          break;
        case '>':
          tok_.kind = Tok::kOp;
          tok_.op = Op::kGt;
          if (next == '=') {
            tok_.op = Op::kGe;
            ++j;
          }
          break;
        case '!':
          if (next == '=') {
            tok_.kind = Tok::kOp;
            tok_.op = Op::kNe;
            ++j;
            break;
          }
          [[fallthrough]];
        default:
          return Bad(i, j,
                     fmt::format("condition: unexpected character {} at offset {}",
                                 Quote(text_.substr(i, 1)), i));
      }
    }
    tok_.length = j - i;
    pos_ = j;
  }

  bool Keyword(std::string_view word) const {
    return tok_.kind == Tok::kIdent && tok_.value == word;
  }

  // --- errors ---

  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  bool Expected(std::string_view what) {
    if (tok_.kind == Tok::kBad) return Fail(tok_.value);
    if (tok_.kind == Tok::kEnd) {
      return Fail(fmt::format("condition: expected {} at offset {}, found the end of the condition",
                              what, tok_.offset));
    }
    return Fail(fmt::format("condition: expected {} at offset {}, found {}", what, tok_.offset,
                            Quote(text_.substr(tok_.offset, tok_.length))));
  }

  bool TooDeep() {
    return Fail(fmt::format("condition: nested deeper than {} levels at offset {}",
                            kMaxConditionDepth, tok_.offset));
  }

  // A number or string literal cannot stand where a truth value is needed.
  bool RequireBoolean(uint32_t index) {
    const Node& n = tree_->nodes[index];
    if (n.kind != NodeKind::kLiteral) return true;
    const ValueType type = tree_->literals[n.arg].type;
    if (type != ValueType::kNumber && type != ValueType::kString) return true;
    return Fail(fmt::format("condition: expected a boolean expression at offset {}, found {}",
                            n.offset, Quote(text_.substr(n.offset, n.length))));
  }

  // --- tree ---

  uint32_t Add(Node node, std::initializer_list<uint32_t> kids) {
    return Add(node, std::span<const uint32_t>(kids.begin(), kids.size()));
  }
  uint32_t Add(Node node, std::span<const uint32_t> kids) {
    node.first = static_cast<uint32_t>(tree_->kids.size());
    node.count = static_cast<uint32_t>(kids.size());
    tree_->kids.insert(tree_->kids.end(), kids.begin(), kids.end());
    tree_->nodes.push_back(node);
    return static_cast<uint32_t>(tree_->nodes.size() - 1);
  }

  // A node that starts where `offset` (a text offset) does. Only literals
  // need a length: they are the ones quoted in errors.
  static Node Start(NodeKind kind, size_t offset) {
    Node n;
    n.kind = kind;
    n.offset = static_cast<uint32_t>(offset);
    return n;
  }
  Node StartAt(NodeKind kind, uint32_t first_kid) const {
    return Start(kind, tree_->nodes[first_kid].offset);
  }

  uint32_t AddLiteral(ValueType type, std::string text, bool boolean = false) {
    tree_->literals.push_back(Literal{type, boolean, std::move(text)});
    Node n = Start(NodeKind::kLiteral, tok_.offset);
    n.arg = static_cast<uint32_t>(tree_->literals.size() - 1);
    n.length = static_cast<uint32_t>(tok_.offset + tok_.length - n.offset);
    tree_->nodes.push_back(n);
    return static_cast<uint32_t>(tree_->nodes.size() - 1);
  }

  // --- grammar ---

  // Both AND and OR: a list of operands of the next level down.
  bool ParseOr(int depth, uint32_t* out) { return ParseList(depth, NodeKind::kOr, "or", out); }
  bool ParseAnd(int depth, uint32_t* out) { return ParseList(depth, NodeKind::kAnd, "and", out); }

  bool ParseList(int depth, NodeKind kind, std::string_view word, uint32_t* out) {
    uint32_t first = 0;
    if (!(kind == NodeKind::kOr ? ParseAnd(depth, &first) : ParseNot(depth, &first))) return false;
    if (!Keyword(word)) {
      *out = first;
      return true;
    }
    std::vector<uint32_t> items = {first};
    while (Keyword(word)) {
      Advance();
      uint32_t next = 0;
      if (!(kind == NodeKind::kOr ? ParseAnd(depth, &next) : ParseNot(depth, &next))) return false;
      items.push_back(next);
    }
    for (uint32_t item : items) {
      if (!RequireBoolean(item)) return false;
    }
    *out = Add(StartAt(kind, items.front()), items);
    return true;
  }

  bool ParseNot(int depth, uint32_t* out) {
    if (!Keyword("not")) return ParsePredicate(depth, out);
    if (depth >= kMaxConditionDepth) return TooDeep();
    const Node node = Start(NodeKind::kNot, tok_.offset);
    Advance();
    uint32_t operand = 0;
    if (!ParseNot(depth + 1, &operand) || !RequireBoolean(operand)) return false;
    *out = Add(node, {operand});
    return true;
  }

  bool ParsePredicate(int depth, uint32_t* out) {
    uint32_t lhs = 0;
    if (!ParseOperand(depth, &lhs)) return false;
    if (tok_.kind == Tok::kOp) {
      Node node = StartAt(NodeKind::kCompare, lhs);
      node.op = tok_.op;
      Advance();
      uint32_t rhs = 0;
      if (!ParseOperand(depth, &rhs)) return false;
      *out = Add(node, {lhs, rhs});
      return true;
    }
    if (Keyword("is")) return ParseIs(depth, lhs, out);
    bool negated = false;
    if (Keyword("not")) {
      Advance();
      if (!Keyword("in") && !Keyword("like") && !Keyword("ilike")) {
        return Expected("IN, LIKE or ILIKE after NOT");
      }
      negated = true;
    }
    if (Keyword("in")) {
      Advance();
      if (tok_.kind != Tok::kLParen) return Expected("'(' after IN");
      Advance();
      std::vector<uint32_t> items = {lhs};
      for (;;) {
        uint32_t item = 0;
        if (!ParseOperand(depth, &item)) return false;
        items.push_back(item);
        if (tok_.kind == Tok::kRParen) break;
        if (tok_.kind != Tok::kComma) return Expected("',' or ')' in the IN list");
        Advance();
      }
      Advance();
      Node node = StartAt(NodeKind::kIn, lhs);
      node.negated = negated;
      *out = Add(node, items);
      return true;
    }
    if (Keyword("like") || Keyword("ilike")) {
      Node node = StartAt(NodeKind::kLike, lhs);
      node.negated = negated;
      node.fold_case = Keyword("ilike");
      Advance();
      uint32_t pattern = 0;
      if (!ParseOperand(depth, &pattern) || !CheckPattern(pattern)) return false;
      const Node& p = tree_->nodes[pattern];
      if (p.kind == NodeKind::kLiteral && tree_->literals[p.arg].type == ValueType::kString) {
        // Checked above: it compiles (a literal is shorter than any limit).
        std::optional<LikePattern> compiled =
            LikePattern::Compile(tree_->literals[p.arg].text, node.fold_case);
        if (compiled) {
          tree_->likes.push_back(std::move(*compiled));
          node.arg = static_cast<uint32_t>(tree_->likes.size());
        }
      }
      *out = Add(node, {lhs, pattern});
      return true;
    }
    *out = lhs;
    return true;
  }

  bool CheckPattern(uint32_t index) {
    const Node& n = tree_->nodes[index];
    if (n.kind != NodeKind::kLiteral) return true;
    const Literal& l = tree_->literals[n.arg];
    if (l.type == ValueType::kNumber || l.type == ValueType::kBool) {
      return Fail(fmt::format("condition: expected a string pattern at offset {}, found {}",
                              n.offset, Quote(text_.substr(n.offset, n.length))));
    }
    if (l.type == ValueType::kString && PatternEndsWithEscape(l.text)) {
      return Fail(fmt::format(
          "condition: LIKE pattern at offset {} ends with the escape character '\\'", n.offset));
    }
    return true;
  }

  bool ParseIs(int depth, uint32_t lhs, uint32_t* out) {
    Advance();
    const bool negated = Keyword("not");
    if (negated) Advance();
    Node node = StartAt(NodeKind::kIsNull, lhs);
    node.negated = negated;
    if (Keyword("null")) {
      Advance();
      *out = Add(node, {lhs});
      return true;
    }
    if (Keyword("true") || Keyword("false") || Keyword("unknown")) {
      node.kind = NodeKind::kIsTruth;
      node.test = Keyword("true") ? Truth::kTrue : Keyword("false") ? Truth::kFalse : Truth::kNull;
      if (!RequireBoolean(lhs)) return false;
      Advance();
      *out = Add(node, {lhs});
      return true;
    }
    if (Keyword("distinct")) {
      Advance();
      if (!Keyword("from")) return Expected("FROM after DISTINCT");
      Advance();
      node.kind = NodeKind::kDistinct;
      uint32_t rhs = 0;
      if (!ParseOperand(depth, &rhs)) return false;
      *out = Add(node, {lhs, rhs});
      return true;
    }
    return Expected(negated ? "NULL, TRUE, FALSE, UNKNOWN or DISTINCT FROM after IS NOT"
                            : "NULL, NOT, TRUE, FALSE, UNKNOWN or DISTINCT FROM after IS");
  }

  bool ParseOperand(int depth, uint32_t* out) {
    switch (tok_.kind) {
      case Tok::kLParen: {
        if (depth >= kMaxConditionDepth) return TooDeep();
        const size_t offset = tok_.offset;
        Advance();
        if (!ParseOr(depth + 1, out)) return false;
        if (tok_.kind != Tok::kRParen) return Expected("')'");
        Node& inner = tree_->nodes[*out];
        if (inner.kind == NodeKind::kLiteral) {
          // Keep "(5)" whole in messages about it.
          inner.offset = static_cast<uint32_t>(offset);
          inner.length = static_cast<uint32_t>(tok_.offset + 1 - offset);
        }
        Advance();
        return true;
      }
      case Tok::kMinus:
      case Tok::kPlus: {
        const size_t offset = tok_.offset;
        std::string text(tok_.kind == Tok::kMinus ? "-" : "");
        Advance();
        if (tok_.kind != Tok::kNumber) return Expected("a number after the sign");
        text += tok_.value;
        if (!AddNumber(std::move(text), out)) return false;
        Node& n = tree_->nodes[*out];
        n.length += static_cast<uint32_t>(n.offset - offset);
        n.offset = static_cast<uint32_t>(offset);
        return true;
      }
      case Tok::kNumber: return AddNumber(tok_.value, out);
      case Tok::kString:
        *out = AddLiteral(ValueType::kString, std::move(tok_.value));
        Advance();
        return true;
      case Tok::kIdent:
        if (Keyword("true") || Keyword("false")) {
          *out = AddLiteral(ValueType::kBool, {}, Keyword("true"));
          Advance();
          return true;
        }
        if (Keyword("null")) {
          *out = AddLiteral(ValueType::kNull, {});
          Advance();
          return true;
        }
        if (Keyword("new")) return ParseRef(Scope::kNew, out);
        if (Keyword("old")) return ParseRef(Scope::kOld, out);
        if (Keyword("payload")) return ParseRef(Scope::kPayload, out);
        if (IsReserved(tok_.value)) return Expected("a value");
        return Expected("new.<column>, old.<column>, payload.<path> or a literal");
      case Tok::kQuoted: return Expected("new.<column>, old.<column>, payload.<path> or a literal");
      default: return Expected("a value");
    }
  }

  bool AddNumber(std::string text, uint32_t* out) {
    Decimal d;
    if (!ParseDecimal(text, &d)) {
      return Fail(fmt::format("condition: number {} at offset {} is out of range",
                              Quote(text_.substr(tok_.offset, tok_.length)), tok_.offset));
    }
    *out = AddLiteral(ValueType::kNumber, std::move(text));
    Advance();
    return true;
  }

  bool ParseRef(Scope scope, uint32_t* out) {
    const std::string_view scope_name = tok_.value == "new"   ? "new"
                                        : tok_.value == "old" ? "old"
                                                              : "payload";
    Ref ref;
    ref.scope = scope;
    Node node = Start(NodeKind::kRef, tok_.offset);
    Advance(true);
    while (tok_.kind == Tok::kDot) {
      if (scope != Scope::kPayload && !ref.path.empty()) {
        return Fail(
            fmt::format("condition: {}.<column> takes one column name (paths are for payload.a.b), "
                        "found '.' at offset {}",
                        scope_name, tok_.offset));
      }
      if (ref.path.size() == kMaxPathNames) {
        return Fail(fmt::format("condition: path longer than {} names at offset {}", kMaxPathNames,
                                tok_.offset));
      }
      Advance(true);
      if (tok_.kind != Tok::kIdent && tok_.kind != Tok::kQuoted) {
        return Expected(scope == Scope::kPayload ? "a key after '.'" : "a column name after '.'");
      }
      ref.path.push_back(std::move(tok_.value));
      Advance(true);
    }
    if (scope != Scope::kPayload && ref.path.empty()) {
      return Expected(fmt::format("'.' and a column name after {}", scope_name));
    }
    tree_->refs.push_back(std::move(ref));
    node.arg = static_cast<uint32_t>(tree_->refs.size() - 1);
    tree_->nodes.push_back(node);
    *out = static_cast<uint32_t>(tree_->nodes.size() - 1);
    return true;
  }

  std::string_view text_;
  Tree* tree_;
  size_t pos_ = 0;
  Token tok_;
  std::string error_;
};

// ---------------------------------------------------------------------------
// DebugString.

void AppendQuoted(std::string* out, std::string_view text, char quote) {
  out->push_back(quote);
  for (char c : text) {
    if (c == quote) out->push_back(quote);
    out->push_back(c);
  }
  out->push_back(quote);
}

bool IsPlainName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!IsIdentChar(c) || (c >= 'A' && c <= 'Z')) return false;
  }
  return true;
}

std::string_view ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kNew: return "new";
    case Scope::kOld: return "old";
    case Scope::kPayload: return "payload";
  }
  return "";
}

std::string_view NodeName(const Node& n) {
  switch (n.kind) {
    case NodeKind::kAnd: return "and";
    case NodeKind::kOr: return "or";
    case NodeKind::kNot: return "not";
    case NodeKind::kCompare:
      switch (n.op) {
        case Op::kEq: return "=";
        case Op::kNe: return "<>";
        case Op::kLt: return "<";
        case Op::kLe: return "<=";
        case Op::kGt: return ">";
        case Op::kGe: return ">=";
      }
      break;
    case NodeKind::kIsNull: return n.negated ? "is-not-null" : "is-null";
    case NodeKind::kIsTruth:
      switch (n.test) {
        case Truth::kTrue: return n.negated ? "is-not-true" : "is-true";
        case Truth::kFalse: return n.negated ? "is-not-false" : "is-false";
        case Truth::kNull: return n.negated ? "is-not-unknown" : "is-unknown";
      }
      break;
    case NodeKind::kDistinct: return n.negated ? "not-distinct" : "distinct";
    case NodeKind::kIn: return n.negated ? "not-in" : "in";
    case NodeKind::kLike:
      if (n.fold_case) return n.negated ? "not-ilike" : "ilike";
      return n.negated ? "not-like" : "like";
    default: break;
  }
  return "?";
}

void Print(const Tree& tree, uint32_t index, std::string* out) {
  const Node& n = tree.nodes[index];
  if (n.kind == NodeKind::kLiteral) {
    const Literal& l = tree.literals[n.arg];
    switch (l.type) {
      case ValueType::kBool: *out += l.boolean ? "TRUE" : "FALSE"; break;
      case ValueType::kNumber: *out += l.text; break;
      case ValueType::kString: AppendQuoted(out, l.text, '\''); break;
      default: *out += "NULL"; break;
    }
    return;
  }
  if (n.kind == NodeKind::kRef) {
    const Ref& r = tree.refs[n.arg];
    *out += ScopeName(r.scope);
    for (const std::string& name : r.path) {
      out->push_back('.');
      if (IsPlainName(name)) {
        *out += name;
      } else {
        AppendQuoted(out, name, '"');
      }
    }
    return;
  }
  out->push_back('(');
  *out += NodeName(n);
  for (uint32_t i = 0; i < n.count; ++i) {
    out->push_back(' ');
    Print(tree, tree.kids[n.first + i], out);
  }
  out->push_back(')');
}

// The value of a decoded column, by its type (SPEC §4).
Value ColumnValue(const Column& c) {
  switch (c.kind) {
    case ValueKind::kNull: return Value::Null();
    case ValueKind::kTrue: return Value::Bool(true);
    case ValueKind::kFalse: return Value::Bool(false);
    case ValueKind::kNumber: return Value::Number(c.text);
    case ValueKind::kString: break;
  }
  bool is_array = false;
  const TypeClass type_class = ClassifyType(c.type, &is_array);
  if (is_array || type_class == TypeClass::kJson) return Value::Other(c.text);
  return Value::String(c.text);
}

const Column* FindColumn(const std::vector<Column>& row, std::string_view name) {
  for (const Column& c : row) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// An array index written as a name: digits, no leading zero.
std::optional<size_t> ArrayIndex(std::string_view name) {
  if (name.empty() || name.size() > 9 || (name.size() > 1 && name[0] == '0')) return std::nullopt;
  size_t index = 0;
  for (char c : name) {
    if (!IsDigit(c)) return std::nullopt;
    index = index * 10 + static_cast<size_t>(c - '0');
  }
  return index;
}

}  // namespace

// ---------------------------------------------------------------------------
// Value.

Value Value::Bool(bool b) {
  Value v;
  v.type_ = ValueType::kBool;
  v.boolean_ = b;
  return v;
}

Value Value::Number(std::string_view text) {
  Value v;
  v.type_ = ValueType::kNumber;
  v.text_ = text;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.type_ = ValueType::kNumber;
  const auto r = std::to_chars(v.inline_, v.inline_ + sizeof(v.inline_), i);
  v.inline_size_ = static_cast<uint8_t>(r.ptr - v.inline_);
  return v;
}

Value Value::Uint(uint64_t u) {
  Value v;
  v.type_ = ValueType::kNumber;
  const auto r = std::to_chars(v.inline_, v.inline_ + sizeof(v.inline_), u);
  v.inline_size_ = static_cast<uint8_t>(r.ptr - v.inline_);
  return v;
}

Value Value::Double(double d) {
  Value v;
  v.type_ = ValueType::kNumber;
  const auto r = std::to_chars(v.inline_, v.inline_ + sizeof(v.inline_), d);
  v.inline_size_ = r.ec == std::errc() ? static_cast<uint8_t>(r.ptr - v.inline_) : 0;
  return v;
}

Value Value::String(std::string_view bytes) {
  Value v;
  v.type_ = ValueType::kString;
  v.text_ = bytes;
  return v;
}

Value Value::Other(std::string_view json) {
  Value v;
  v.type_ = ValueType::kOther;
  v.text_ = json;
  return v;
}

// ---------------------------------------------------------------------------
// Comparisons.

std::optional<int> CompareDecimal(std::string_view a, std::string_view b) {
  Decimal x;
  Decimal y;
  if (!ParseDecimal(a, &x) || !ParseDecimal(b, &y)) return std::nullopt;
  return CompareDecimals(x, y);
}

std::optional<int> CompareValues(const Value& a, const Value& b) {
  const ValueType ta = a.type();
  const ValueType tb = b.type();
  if (ta == ValueType::kBool && tb == ValueType::kBool) {
    return static_cast<int>(a.boolean()) - static_cast<int>(b.boolean());
  }
  if (ta == ValueType::kString && tb == ValueType::kString) {
    const int c = a.text().compare(b.text());  // memcmp: unsigned bytes
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  const bool numeric_a = ta == ValueType::kNumber || ta == ValueType::kString;
  const bool numeric_b = tb == ValueType::kNumber || tb == ValueType::kString;
  // Here at least one is a number (two strings were handled above).
  if (numeric_a && numeric_b) return CompareDecimal(a.text(), b.text());
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Condition.

Condition::Condition(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Condition::Condition(const Condition& other) : impl_(std::make_unique<Impl>(*other.impl_)) {
  impl_->tree.Relink();
}
Condition& Condition::operator=(const Condition& other) {
  if (this != &other) *this = Condition(other);
  return *this;
}
Condition::Condition(Condition&& other) noexcept = default;
Condition& Condition::operator=(Condition&& other) noexcept = default;
Condition::~Condition() = default;

Truth Condition::Evaluate(const ValueSource& source) const {
  return Evaluator(impl_->tree, source).Bool(impl_->tree.root);
}

std::vector<std::string> Condition::Columns(Scope scope) const {
  std::vector<std::string> names;
  if (scope == Scope::kPayload) return names;
  for (const Ref& r : impl_->tree.refs) {
    if (r.scope == scope && !r.path.empty()) names.push_back(r.path.front());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

bool Condition::Uses(Scope scope) const {
  const std::vector<Ref>& refs = impl_->tree.refs;
  return std::any_of(refs.begin(), refs.end(), [scope](const Ref& r) { return r.scope == scope; });
}

const std::string& Condition::text() const {
  return impl_->text;
}

std::string Condition::DebugString() const {
  std::string out;
  Print(impl_->tree, impl_->tree.root, &out);
  return out;
}

Result<Condition> ParseCondition(std::string_view text) {
  auto impl = std::make_unique<Condition::Impl>();
  Status status = Parser(text, &impl->tree).Run();
  if (!status.ok()) return status;
  impl->text.assign(text);
  return Condition(std::move(impl));
}

// ---------------------------------------------------------------------------
// JsonDataSource.

Status JsonDataSource::Reset(std::string_view data, DataShape shape) {
  text_ = data;
  pos_ = 0;
  written_ = 0;
  shape_ = shape;
  nodes_.clear();
  if (data.size() > kMaxJsonBytes) return Status::Error("data: JSON larger than 1 GiB");
  bool ok = ParseValue(0, {});
  if (ok) {
    SkipSpace();
    ok = pos_ == text_.size();
  }
  if (!ok) {
    nodes_.clear();
    return Status::Error(fmt::format("data: not valid JSON (or nested deeper than {}) at offset {}",
                                     kMaxJsonDepth, pos_));
  }
  return Status::Ok();
}

void JsonDataSource::SkipSpace() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
    ++pos_;
  }
}

bool JsonDataSource::ParseValue(int depth, std::string_view key) {
  SkipSpace();
  const size_t n = text_.size();
  if (pos_ >= n) return false;
  const auto index = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(Node{});
  const size_t start = pos_;
  const char c = text_[pos_];
  Node node;
  node.key = key;
  auto literal = [&](std::string_view word, ValueType type) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    node.type = type;
    node.text = word;
    return true;
  };
  switch (c) {
    case '{':
    case '[': {
      if (depth >= kMaxJsonDepth) return false;
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      SkipSpace();
      if (pos_ < n && text_[pos_] == close) {
        ++pos_;
      } else {
        for (;;) {
          std::string_view member;
          if (c == '{') {
            SkipSpace();
            if (pos_ >= n || text_[pos_] != '"' || !ParseString(&member)) return false;
            SkipSpace();
            if (pos_ >= n || text_[pos_] != ':') return false;
            ++pos_;
          }
          if (!ParseValue(depth + 1, member)) return false;
          SkipSpace();
          if (pos_ >= n) return false;
          if (text_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (text_[pos_] != close) return false;
          ++pos_;
          break;
        }
      }
      node.type = ValueType::kOther;
      node.container = c;
      node.text = text_.substr(start, pos_ - start);
      break;
    }
    case '"':
      if (!ParseString(&node.text)) return false;
      node.type = ValueType::kString;
      break;
    case 't':
      if (!literal("true", ValueType::kBool)) return false;
      break;
    case 'f':
      if (!literal("false", ValueType::kBool)) return false;
      break;
    case 'n':
      if (!literal("null", ValueType::kNull)) return false;
      break;
    default:
      if (!ParseNumber()) return false;
      node.type = ValueType::kNumber;
      node.text = text_.substr(start, pos_ - start);
      break;
  }
  node.end = static_cast<uint32_t>(nodes_.size());
  nodes_[index] = node;
  return true;
}

bool JsonDataSource::ParseNumber() {
  const size_t n = text_.size();
  auto digits = [&] {
    const size_t begin = pos_;
    while (pos_ < n && IsDigit(text_[pos_])) ++pos_;
    return pos_ > begin;
  };
  if (pos_ < n && text_[pos_] == '-') ++pos_;
  if (pos_ < n && text_[pos_] == '0') {
    ++pos_;
  } else if (!digits()) {
    return false;
  }
  if (pos_ < n && text_[pos_] == '.') {
    ++pos_;
    if (!digits()) return false;
  }
  if (pos_ < n && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < n && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    if (!digits()) return false;
  }
  return true;
}

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The 4 hex digits of a \u escape at text[i]; -1 if malformed.
int32_t Hex4(std::string_view text, size_t i) {
  if (i + 4 > text.size()) return -1;
  int32_t v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const int d = HexDigit(text[i + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

size_t EncodeUtf8(uint32_t cp, char* out) {
  if (cp < 0x80) {
    out[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<char>(0xC0 | (cp >> 6));
    out[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (cp >> 12));
    out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (cp >> 18));
  out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

}  // namespace

bool JsonDataSource::ParseString(std::string_view* out) {
  const size_t n = text_.size();
  const size_t begin = ++pos_;  // after the opening quote
  // Most strings have no escapes: view them in place.
  while (pos_ < n) {
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      *out = text_.substr(begin, pos_ - begin);
      ++pos_;
      return true;
    }
    if (c == '\\') break;
    if (c < 0x20) return false;
    ++pos_;
  }
  if (pos_ >= n) return false;
  // Decoded text is never longer than its escaped form, so a buffer as long
  // as the document holds every string; sized once, its views stay put.
  if (unescaped_.size() < n) unescaped_.resize(n);
  char* buffer = unescaped_.data();
  const size_t out_begin = written_;
  std::copy(text_.begin() + static_cast<std::ptrdiff_t>(begin),
            text_.begin() + static_cast<std::ptrdiff_t>(pos_), buffer + written_);
  written_ += pos_ - begin;
  while (pos_ < n) {
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      *out = std::string_view(buffer + out_begin, written_ - out_begin);
      ++pos_;
      return true;
    }
    if (c < 0x20) return false;
    if (c != '\\') {
      buffer[written_++] = static_cast<char>(c);
      ++pos_;
      continue;
    }
    if (pos_ + 1 >= n) return false;
    const char e = text_[pos_ + 1];
    pos_ += 2;
    char simple = 0;
    switch (e) {
      case '"': simple = '"'; break;
      case '\\': simple = '\\'; break;
      case '/': simple = '/'; break;
      case 'b': simple = '\b'; break;
      case 'f': simple = '\f'; break;
      case 'n': simple = '\n'; break;
      case 'r': simple = '\r'; break;
      case 't': simple = '\t'; break;
      case 'u': break;
      default: return false;
    }
    if (e != 'u') {
      buffer[written_++] = simple;
      continue;
    }
    const int32_t unit = Hex4(text_, pos_);
    if (unit < 0) return false;
    pos_ += 4;
    uint32_t cp = static_cast<uint32_t>(unit);
    if (unit >= 0xD800 && unit <= 0xDBFF && pos_ + 1 < n && text_[pos_] == '\\' &&
        text_[pos_ + 1] == 'u') {
      const int32_t low = Hex4(text_, pos_ + 2);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((static_cast<uint32_t>(unit) - 0xD800) << 10) +
             (static_cast<uint32_t>(low) - 0xDC00);
        pos_ += 6;
      }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate
    written_ += EncodeUtf8(cp, buffer + written_);
  }
  return false;
}

Value JsonDataSource::ToValue(const Node& node) {
  switch (node.type) {
    case ValueType::kNull: return Value::Null();
    case ValueType::kBool: return Value::Bool(node.text == "true");
    case ValueType::kNumber: return Value::Number(node.text);
    case ValueType::kString: return Value::String(node.text);
    case ValueType::kOther: return Value::Other(node.text);
  }
  return Value::Null();
}

Value JsonDataSource::Lookup(uint32_t index, std::span<const std::string_view> path) const {
  for (std::string_view name : path) {
    const Node& n = nodes_[index];
    uint32_t found = 0;  // 0 is the root, never a child
    if (n.container == '{') {
      for (uint32_t i = index + 1; i < n.end; i = nodes_[i].end) {
        if (nodes_[i].key == name) found = i;  // the last duplicate wins
      }
    } else if (n.container == '[') {
      const std::optional<size_t> wanted = ArrayIndex(name);
      if (!wanted) return Value::Null();
      size_t k = 0;
      for (uint32_t i = index + 1; i < n.end; i = nodes_[i].end, ++k) {
        if (k == *wanted) {
          found = i;
          break;
        }
      }
    }
    if (found == 0) return Value::Null();
    index = found;
  }
  return ToValue(nodes_[index]);
}

Value JsonDataSource::Get(Scope scope, std::span<const std::string_view> path) const {
  if (nodes_.empty()) return Value::Null();
  if (shape_ == DataShape::kPayload) {
    return scope == Scope::kPayload ? Lookup(0, path) : Value::Null();
  }
  if (scope == Scope::kPayload) return Value::Null();
  // Walk "doc" or "before", then the column.
  if (path.size() > kMaxPathNames) return Value::Null();
  std::array<std::string_view, 1 + kMaxPathNames> full;
  full[0] = scope == Scope::kNew ? "doc" : "before";
  std::copy(path.begin(), path.end(), full.begin() + 1);
  return Lookup(0, std::span<const std::string_view>(full.data(), path.size() + 1));
}

// ---------------------------------------------------------------------------
// ChangeValueSource.

Value ChangeValueSource::Get(Scope scope, std::span<const std::string_view> path) const {
  if (scope == Scope::kPayload || path.size() != 1) return Value::Null();
  const std::string_view name = path[0];
  const ChangeKind kind = change_.kind;
  if (scope == Scope::kNew) {
    if (kind != ChangeKind::kInsert && kind != ChangeKind::kUpdate) return Value::Null();
    if (const Column* c = FindColumn(change_.columns, name)) return ColumnValue(*c);
    // Left out as unchanged TOAST: the old row has the same value, if it has it.
    if (kind == ChangeKind::kUpdate) {
      if (const Column* c = FindColumn(change_.identity, name)) return ColumnValue(*c);
    }
    return Value::Null();
  }
  if (kind != ChangeKind::kUpdate && kind != ChangeKind::kDelete) return Value::Null();
  const Column* c = FindColumn(change_.identity, name);
  return c != nullptr ? ColumnValue(*c) : Value::Null();
}

// ---------------------------------------------------------------------------
// RapidJsonPayloadSource.

Value RapidJsonPayloadSource::Get(Scope scope, std::span<const std::string_view> path) const {
  if (scope != Scope::kPayload) return Value::Null();
  const rapidjson::Value* v = &payload_;
  for (std::string_view name : path) {
    const rapidjson::Value* found = nullptr;
    if (v->IsObject()) {
      for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m) {
        if (std::string_view(m->name.GetString(), m->name.GetStringLength()) == name) {
          found = &m->value;  // the last duplicate wins
        }
      }
    } else if (v->IsArray()) {
      const std::optional<size_t> index = ArrayIndex(name);
      if (index && *index < v->Size()) found = &(*v)[static_cast<rapidjson::SizeType>(*index)];
    }
    if (found == nullptr) return Value::Null();
    v = found;
  }
  if (v->IsNull()) return Value::Null();
  if (v->IsBool()) return Value::Bool(v->GetBool());
  if (v->IsString()) return Value::String(std::string_view(v->GetString(), v->GetStringLength()));
  if (v->IsUint64()) return Value::Uint(v->GetUint64());
  if (v->IsInt64()) return Value::Int(v->GetInt64());
  if (v->IsNumber()) return Value::Double(v->GetDouble());
  return Value::Other();
}

Truth EvaluateOnData(const Condition& condition, std::string_view data, DataShape shape) {
  JsonDataSource source;
  if (!source.Reset(data, shape).ok()) return Truth::kNull;
  return condition.Evaluate(source);
}

}  // namespace walhook
