// The condition language's lexer and parser (condition.h has the grammar),
// and the tree printed back as an S-expression.
#include <algorithm>
#include <array>
#include <string>

#include <fmt/format.h>

#include "condition_tree.h"
#include "walhook/utf8.h"

namespace walhook {
namespace condition_internal {
namespace {

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

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
    if (!CompareDecimal(text, text).has_value()) {
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

}  // namespace

Status ParseTree(std::string_view text, Tree* tree) {
  return Parser(text, tree).Run();
}

void PrintTree(const Tree& tree, uint32_t index, std::string* out) {
  Print(tree, index, out);
}

}  // namespace condition_internal
}  // namespace walhook
