// Kriti's lexer and parser: text → Tree (kriti_internal.h). Recursive
// descent; every level of recursion is counted against kMaxNesting, and every
// node records its depth so the evaluator's recursion is bounded as well.
//
// Grammar (a JSON value is a Kriti expression; {{ }} groups one):
//   expr    := or
//   or      := and ('||' and)*
//   and     := cmp ('&&' cmp)*
//   cmp     := dflt (('=='|'!='|'<'|'<='|'>'|'>='|'in') dflt)*
//   dflt    := unary ('??' dflt)?
//   unary   := FUNCTION unary | postfix
//   postfix := (IDENT | '(' expr ')') ('.' NAME | '?.' NAME | '[' expr ']' | '?[' expr ']')*
//            | atom
//   atom    := NUMBER | 'true' | 'false' | 'null' | "string {{ expr }}" | 'string'
//            | '[' (expr (',' expr)*)? ']' | '{' (key ':' expr (',' key ':' expr)*)? '}'
//            | '{{' expr '}}'
//            | '{{' 'if' expr '}}' expr ('{{' 'elif' expr '}}' expr)*
//                ('{{' 'else' '}}' expr)? '{{' 'end' '}}'
//            | '{{' 'range' (IDENT|'_') ',' IDENT ':=' expr '}}' expr '{{' 'end' '}}'
// Comments run from '#' to the end of the line (outside strings).
#include <fmt/format.h>

#include "kriti_internal.h"
#include "walhook/utf8.h"

namespace walhook::kriti::internal {
namespace {

enum class Tok : uint8_t {
  kEof,
  kNumber,    // text: the JSON number
  kQuote,     // '"': a string template starts after it
  kSingle,    // text: a single-quoted string, decoded
  kIdent,     // text: the name
  kField,     // '.name'; text: name
  kOptField,  // '?.name'; text: name
  kLBracket,
  kOptLBracket,  // '?['
  kRBracket,
  kLBrace,
  kRBrace,
  kOpen,  // '{{'
  kLParen,
  kRParen,
  kComma,
  kColon,
  kAssign,  // ':='
  kOp,      // binop
};

struct Token {
  Tok kind = Tok::kEof;
  BinOp op = BinOp::kEq;
  size_t offset = 0;
  size_t end = 0;
  std::string text;
};

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsNameChar(char c) {
  return IsNameStart(c) || IsDigit(c) || c == '-';
}

std::string Shown(const Token& t, std::string_view text) {
  switch (t.kind) {
    case Tok::kEof: return "the end of the template";
    case Tok::kQuote: return "a string";
    default: break;
  }
  const std::string_view s = Utf8Prefix(text.substr(t.offset, t.end - t.offset), 24);
  return fmt::format("'{}'", s);
}

class Parser {
 public:
  Parser(std::string_view text, Tree* tree) : text_(text), tree_(tree) {}

  Status Run(Mode mode) {
    if (text_.size() > kMaxTemplateBytes) {
      return Status::Error(
          fmt::format("line 1, column 1: the template is longer than {} bytes", kMaxTemplateBytes));
    }
    if (!IsValidUtf8(text_)) {
      size_t i = 0;
      while (i < text_.size()) {
        const size_t n = Utf8SequenceLength(text_, i);
        if (n == 0) break;
        i += n;
      }
      return Status::Error(fmt::format("{}: invalid UTF-8", Position(text_, i)));
    }
    uint32_t root = 0;
    bool ok = false;
    if (mode == Mode::kString) {
      ok = StringTemplate(0, /*quoted=*/false, &root);
    } else {
      Advance();
      ok = Expr(&root);
      if (ok && tok_.kind != Tok::kEof)
        ok = Fail(tok_.offset, "expected the end of the template, found " + Shown(tok_, text_));
    }
    if (!ok) return Status::Error(std::move(error_));
    tree_->root = root;
    return Status::Ok();
  }

 private:
  // --- errors and nodes ---

  bool Fail(size_t offset, std::string message) {
    if (error_.empty()) error_ = fmt::format("{}: {}", Position(text_, offset), message);
    return false;
  }
  bool Expected(std::string_view what) {
    return Fail(tok_.offset, fmt::format("expected {}, found {}", what, Shown(tok_, text_)));
  }

  // A node with `kids`; false when it nests too deep.
  bool Add(Node node, const std::vector<uint32_t>& kids, uint32_t* out) {
    node.first = static_cast<uint32_t>(tree_->kids.size());
    node.count = static_cast<uint32_t>(kids.size());
    uint16_t depth = 1;
    node.start = node.offset;
    for (uint32_t k : kids) {
      depth = std::max<uint16_t>(depth, static_cast<uint16_t>(tree_->nodes[k].depth + 1));
      node.start = std::min(node.start, tree_->nodes[k].start);
    }
    if (depth > kMaxNesting) {
      return Fail(node.offset, fmt::format("nested deeper than {} levels", kMaxNesting));
    }
    node.depth = depth;
    tree_->kids.insert(tree_->kids.end(), kids.begin(), kids.end());
    *out = static_cast<uint32_t>(tree_->nodes.size());
    tree_->nodes.push_back(node);
    return true;
  }
  bool Literal(size_t offset, const Value* v, uint32_t* out) {
    Node n;
    n.op = Op::kLiteral;
    n.offset = static_cast<uint32_t>(offset);
    n.literal = v;
    return Add(n, {}, out);
  }

  // Counts recursion; Parser methods that recurse hold one.
  struct Depth {
    explicit Depth(Parser* p) : p(p) { ++p->depth_; }
    ~Depth() { --p->depth_; }
    bool ok(size_t offset) const {
      return p->depth_ <= kMaxNesting ||
             p->Fail(offset, fmt::format("nested deeper than {} levels", kMaxNesting));
    }
    Parser* p;
  };

  // --- lexer ---

  void SkipSpace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  void Set(Tok kind, size_t start, size_t end) {
    tok_.kind = kind;
    tok_.offset = start;
    tok_.end = end;
    pos_ = end;
  }

  // Reads the token at pos_ into tok_; false (with the error set) on a bad one.
  bool Advance() {
    SkipSpace();
    tok_.text.clear();
    const size_t s = pos_;
    if (s >= text_.size()) {
      Set(Tok::kEof, s, s);
      return true;
    }
    const char c = text_[s];
    const char d = s + 1 < text_.size() ? text_[s + 1] : '\0';
    auto op = [&](BinOp o, size_t len) {
      tok_.op = o;
      Set(Tok::kOp, s, s + len);
      return true;
    };
    switch (c) {
      case '"': Set(Tok::kQuote, s, s + 1); return true;
      case '\'': return SingleQuoted(s);
      case '[': Set(Tok::kLBracket, s, s + 1); return true;
      case ']': Set(Tok::kRBracket, s, s + 1); return true;
      case '{': Set(d == '{' ? Tok::kOpen : Tok::kLBrace, s, s + (d == '{' ? 2 : 1)); return true;
      case '}': Set(Tok::kRBrace, s, s + 1); return true;
      case '(': Set(Tok::kLParen, s, s + 1); return true;
      case ')': Set(Tok::kRParen, s, s + 1); return true;
      case ',': Set(Tok::kComma, s, s + 1); return true;
      case ':': Set(d == '=' ? Tok::kAssign : Tok::kColon, s, s + (d == '=' ? 2 : 1)); return true;
      case '.': return Name(s, s + 1, Tok::kField);
      case '?':
        if (d == '.') return Name(s, s + 2, Tok::kOptField);
        if (d == '[') {
          Set(Tok::kOptLBracket, s, s + 2);
          return true;
        }
        if (d == '?') return op(BinOp::kDefault, 2);
        break;
      case '=':
        if (d == '=') return op(BinOp::kEq, 2);
        break;
      case '!':
        if (d == '=') return op(BinOp::kNe, 2);
        break;
      case '<': return d == '=' ? op(BinOp::kLe, 2) : op(BinOp::kLt, 1);
      case '>': return d == '=' ? op(BinOp::kGe, 2) : op(BinOp::kGt, 1);
      case '&':
        if (d == '&') return op(BinOp::kAnd, 2);
        break;
      case '|':
        if (d == '|') return op(BinOp::kOr, 2);
        break;
      default: break;
    }
    if (c == '-' || IsDigit(c)) return Number(s);
    if (IsNameStart(c)) {
      size_t e = s + 1;
      while (e < text_.size() && IsNameChar(text_[e])) ++e;
      tok_.text.assign(text_.substr(s, e - s));
      Set(Tok::kIdent, s, e);
      return true;
    }
    const size_t len = std::max<size_t>(1, Utf8SequenceLength(text_, s));
    return Fail(s, fmt::format("unexpected '{}'", text_.substr(s, len)));
  }

  bool Name(size_t s, size_t name_start, Tok kind) {
    size_t e = name_start;
    while (e < text_.size() && IsNameChar(text_[e])) ++e;
    if (e == name_start) return Fail(s, "expected a name after '.'");
    tok_.text.assign(text_.substr(name_start, e - name_start));
    Set(kind, s, e);
    return true;
  }

  // JSON's number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
  bool Number(size_t s) {
    size_t e = s;
    if (text_[e] == '-') ++e;
    const size_t digits = e;
    while (e < text_.size() && IsDigit(text_[e])) ++e;
    if (e == digits) return Fail(s, "expected a digit after '-'");
    if (text_[digits] == '0' && e - digits > 1) return Fail(s, "a number cannot start with 0");
    if (e < text_.size() && text_[e] == '.') {
      const size_t f = ++e;
      while (e < text_.size() && IsDigit(text_[e])) ++e;
      if (e == f) return Fail(s, "expected a digit after '.'");
    }
    if (e < text_.size() && (text_[e] == 'e' || text_[e] == 'E')) {
      ++e;
      if (e < text_.size() && (text_[e] == '+' || text_[e] == '-')) ++e;
      const size_t x = e;
      while (e < text_.size() && IsDigit(text_[e])) ++e;
      if (e == x) return Fail(s, "expected a digit in the exponent");
    }
    tok_.text.assign(text_.substr(s, e - s));
    Set(Tok::kNumber, s, e);
    return true;
  }

  // Reads one escape at text_[*i] == '\\' into *out; JSON's escapes, and \'.
  bool Escape(size_t* i, std::string* out) {
    const size_t s = *i;
    if (s + 1 >= text_.size()) return Fail(s, "unterminated string");
    const char e = text_[s + 1];
    *i = s + 2;
    switch (e) {
      case '"': out->push_back('"'); return true;
      case '\'': out->push_back('\''); return true;
      case '\\': out->push_back('\\'); return true;
      case '/': out->push_back('/'); return true;
      case 'b': out->push_back('\b'); return true;
      case 'f': out->push_back('\f'); return true;
      case 'n': out->push_back('\n'); return true;
      case 'r': out->push_back('\r'); return true;
      case 't': out->push_back('\t'); return true;
      case 'u': break;
      default: return Fail(s, "unknown escape in a string");
    }
    auto hex4 = [&](size_t at, uint32_t* v) {
      if (at + 4 > text_.size()) return false;
      *v = 0;
      for (size_t k = at; k < at + 4; ++k) {
        const char h = text_[k];
        const int x = IsDigit(h)               ? h - '0'
                      : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                      : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                               : -1;
        if (x < 0) return false;
        *v = *v * 16 + static_cast<uint32_t>(x);
      }
      return true;
    };
    uint32_t cp = 0;
    if (!hex4(s + 2, &cp)) return Fail(s, "expected four hex digits after \\u");
    *i = s + 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t lo = 0;
      if (s + 7 < text_.size() && text_[s + 6] == '\\' && text_[s + 7] == 'u' && hex4(s + 8, &lo) &&
          lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        *i = s + 12;
      } else {
        return Fail(s, "a lone surrogate in a \\u escape");
      }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return Fail(s, "a lone surrogate in a \\u escape");
    }
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return true;
  }

  bool SingleQuoted(size_t s) {
    size_t i = s + 1;
    std::string out;
    while (true) {
      if (i >= text_.size()) return Fail(s, "unterminated string");
      const char c = text_[i];
      if (c == '\'') break;
      if (c == '\\') {
        if (!Escape(&i, &out)) return false;
      } else {
        out.push_back(c);
        ++i;
      }
    }
    tok_.text = std::move(out);
    Set(Tok::kSingle, s, i + 1);
    return true;
  }

  // At tok_ == '}' with another '}' right after it: consumes both.
  bool Close(std::string_view what) {
    if (tok_.kind != Tok::kRBrace || tok_.offset + 1 >= text_.size() ||
        text_[tok_.offset + 1] != '}') {
      return Expected(fmt::format("'}}}}' to close {}", what));
    }
    pos_ = tok_.offset + 2;
    return Advance();
  }
  bool Take(Tok kind, std::string_view what) {
    if (tok_.kind != kind) return Expected(what);
    return Advance();
  }
  bool IsWord(std::string_view w) const { return tok_.kind == Tok::kIdent && tok_.text == w; }

  // --- strings ---

  // Parses text from `start` up to the closing quote (quoted) or the end of
  // the text (Mode::kString) into a literal or a kTemplate node. Escapes are
  // read only in quoted strings. On return, for a quoted string, tok_ is the
  // token after it.
  bool StringTemplate(size_t start, bool quoted, uint32_t* out) {
    const size_t open = quoted ? start - 1 : start;
    std::vector<uint32_t> parts;
    std::string chunk;
    size_t chunk_at = start;
    auto flush = [&]() {
      if (chunk.empty()) return true;
      uint32_t n = 0;
      if (!Literal(chunk_at, MakeString(tree_->literals, chunk), &n)) return false;
      parts.push_back(n);
      chunk.clear();
      return true;
    };
    size_t i = start;
    while (true) {
      if (i >= text_.size()) {
        if (quoted) return Fail(open, "unterminated string");
        break;
      }
      const char c = text_[i];
      if (quoted && c == '"') {
        ++i;
        break;
      }
      if (c == '{' && i + 1 < text_.size() && text_[i + 1] == '{') {
        if (!flush()) return false;
        pos_ = i + 2;
        if (!Advance()) return false;
        uint32_t e = 0;
        if (!Expr(&e)) return false;
        // '}}' ends the expression; the text after it is the string's again.
        if (tok_.kind != Tok::kRBrace || tok_.offset + 1 >= text_.size() ||
            text_[tok_.offset + 1] != '}') {
          return Expected("'}}' to close the expression");
        }
        parts.push_back(e);
        i = tok_.offset + 2;
        chunk_at = i;
        continue;
      }
      if (quoted && c == '\\') {
        if (chunk.empty()) chunk_at = i;
        if (!Escape(&i, &chunk)) return false;
        continue;
      }
      if (chunk.empty()) chunk_at = i;
      chunk.push_back(c);
      ++i;
    }
    if (!flush()) return false;
    if (quoted) {
      pos_ = i;
      if (!Advance()) return false;
    }
    if (parts.size() == 1 && tree_->nodes[parts[0]].op == Op::kLiteral) {
      *out = parts[0];
      return true;
    }
    if (parts.empty()) return Literal(open, MakeString(tree_->literals, ""), out);
    Node n;
    n.op = Op::kTemplate;
    n.offset = static_cast<uint32_t>(open);
    return Add(n, parts, out);
  }

  // --- expressions ---

  bool Expr(uint32_t* out) {
    Depth guard(this);
    if (!guard.ok(tok_.offset)) return false;
    return Binary(0, out);
  }

  // Levels: 0 ||, 1 &&, 2 comparisons and in.
  static int Level(BinOp op) {
    switch (op) {
      case BinOp::kOr: return 0;
      case BinOp::kAnd: return 1;
      case BinOp::kDefault: return 3;
      default: return 2;
    }
  }
  bool AtBinOp(int level, BinOp* op) const {
    if (tok_.kind == Tok::kOp && Level(tok_.op) == level) {
      *op = tok_.op;
      return true;
    }
    if (level == 2 && IsWord("in")) {
      *op = BinOp::kIn;
      return true;
    }
    return false;
  }

  bool Binary(int level, uint32_t* out) {
    if (level == 3) return Default(out);
    const size_t start = tok_.offset;
    uint32_t lhs = 0;
    if (!Binary(level + 1, &lhs)) return false;
    BinOp op = BinOp::kEq;
    while (AtBinOp(level, &op)) {
      if (!Advance()) return false;
      uint32_t rhs = 0;
      if (!Binary(level + 1, &rhs)) return false;
      Node n;
      n.op = Op::kBinary;
      n.binop = op;
      n.offset = static_cast<uint32_t>(start);
      if (!Add(n, {lhs, rhs}, &lhs)) return false;
    }
    *out = lhs;
    return true;
  }

  bool Default(uint32_t* out) {
    const size_t start = tok_.offset;
    uint32_t lhs = 0;
    if (!Unary(&lhs)) return false;
    if (tok_.kind != Tok::kOp || tok_.op != BinOp::kDefault) {
      *out = lhs;
      return true;
    }
    if (!Advance()) return false;
    Depth guard(this);  // a ?? b ?? c … recurses
    if (!guard.ok(tok_.offset)) return false;
    uint32_t rhs = 0;
    if (!Default(&rhs)) return false;
    Node n;
    n.op = Op::kBinary;
    n.binop = BinOp::kDefault;
    n.offset = static_cast<uint32_t>(start);
    return Add(n, {lhs, rhs}, out);
  }

  bool Unary(uint32_t* out) {
    Fn fn = Fn::kNot;
    if (tok_.kind == Tok::kIdent && FindFunction(tok_.text, &fn)) {
      const size_t start = tok_.offset;
      const std::string name = tok_.text;
      if (!Advance()) return false;
      if (!StartsOperand()) return Expected(fmt::format("an argument for {}", name));
      Depth guard(this);  // f g h … x recurses
      if (!guard.ok(tok_.offset)) return false;
      uint32_t arg = 0;
      if (!Unary(&arg)) return false;
      Node n;
      n.op = Op::kCall;
      n.fn = fn;
      n.offset = static_cast<uint32_t>(start);
      return Add(n, {arg}, out);
    }
    return Postfix(out);
  }

  bool StartsOperand() const {
    switch (tok_.kind) {
      case Tok::kNumber:
      case Tok::kQuote:
      case Tok::kSingle:
      case Tok::kLBracket:
      case Tok::kLBrace:
      case Tok::kOpen:
      case Tok::kLParen: return true;
      case Tok::kIdent: return tok_.text != "in";
      default: return false;
    }
  }

  bool Postfix(uint32_t* out) {
    const size_t start = tok_.offset;
    uint32_t base = 0;
    if (tok_.kind == Tok::kLParen) {
      if (!Advance() || !Expr(&base) || !Take(Tok::kRParen, "')'")) return false;
    } else if (tok_.kind == Tok::kIdent && !IsKeyword(tok_.text)) {
      if (!Variable(&base)) return false;
    } else {
      return Atom(out);
    }
    while (true) {
      Node n;
      n.op = Op::kField;
      n.offset = static_cast<uint32_t>(tok_.offset);
      uint32_t key = 0;
      if (tok_.kind == Tok::kField || tok_.kind == Tok::kOptField) {
        n.optional = tok_.kind == Tok::kOptField;
        if (!Literal(tok_.offset, MakeString(tree_->literals, tok_.text), &key)) return false;
        if (!Advance()) return false;
      } else if (tok_.kind == Tok::kLBracket || tok_.kind == Tok::kOptLBracket) {
        n.optional = tok_.kind == Tok::kOptLBracket;
        if (!Advance() || !Expr(&key) || !Take(Tok::kRBracket, "']'")) return false;
      } else {
        break;
      }
      if (!Add(n, {base, key}, &base)) return false;
    }
    (void)start;
    *out = base;
    return true;
  }

  static bool IsKeyword(std::string_view w) {
    return w == "true" || w == "false" || w == "null" || w == "if" || w == "elif" || w == "else" ||
           w == "end" || w == "range" || w == "in" || w == "_";
  }

  bool Variable(uint32_t* out) {
    Node n;
    n.op = Op::kVar;
    n.offset = static_cast<uint32_t>(tok_.offset);
    const std::string& name = tok_.text;
    for (size_t i = scope_.size(); i-- > 0;) {
      if (scope_[i].name == name) {
        n.slot = scope_[i].slot;
        break;
      }
    }
    if (n.slot == kNoSlot) {
      if (name == "$") {
        n.slot = kSlotDollar;
      } else if (name == "$body") {
        n.slot = kSlotBody;
      } else if (name == "$base_url") {
        n.slot = kSlotBaseUrl;
      } else if (name == "$session_variables") {
        n.slot = kSlotSession;
      } else {
        return Fail(tok_.offset,
                    fmt::format("unknown name '{}' (known: $, $body, $base_url{})",
                                Utf8Prefix(name, 40), scope_.empty() ? "" : " and range binders"));
      }
    }
    return Add(n, {}, out) && Advance();
  }

  bool Atom(uint32_t* out) {
    const size_t start = tok_.offset;
    switch (tok_.kind) {
      case Tok::kNumber: {
        const Value* v = MakeNumber(tree_->literals, tok_.text);
        return Literal(start, v, out) && Advance();
      }
      case Tok::kSingle: {
        const Value* v = MakeString(tree_->literals, tok_.text);
        return Literal(start, v, out) && Advance();
      }
      case Tok::kQuote: return StringTemplate(start + 1, /*quoted=*/true, out);
      case Tok::kIdent:
        if (tok_.text == "true" || tok_.text == "false") {
          return Literal(start, &BoolValue(tok_.text == "true"), out) && Advance();
        }
        if (tok_.text == "null") return Literal(start, &NullValue(), out) && Advance();
        return Fail(start, fmt::format("unexpected '{}'", tok_.text));
      case Tok::kLBracket: return Array(out);
      case Tok::kLBrace: return Object(out);
      case Tok::kOpen: return Block(out);
      default: return Expected("a value");
    }
  }

  bool Array(uint32_t* out) {
    Node n;
    n.op = Op::kArray;
    n.offset = static_cast<uint32_t>(tok_.offset);
    if (!Advance()) return false;
    std::vector<uint32_t> items;
    if (tok_.kind != Tok::kRBracket) {
      while (true) {
        uint32_t item = 0;
        if (!Expr(&item)) return false;
        items.push_back(item);
        if (tok_.kind != Tok::kComma) break;
        if (!Advance()) return false;
      }
    }
    return Take(Tok::kRBracket, "',' or ']'") && Add(n, items, out);
  }

  bool Object(uint32_t* out) {
    Node n;
    n.op = Op::kObject;
    n.offset = static_cast<uint32_t>(tok_.offset);
    if (!Advance()) return false;
    std::vector<uint32_t> kids;
    if (tok_.kind != Tok::kRBrace) {
      while (true) {
        uint32_t key = 0;
        if (tok_.kind == Tok::kQuote) {
          if (!StringTemplate(tok_.offset + 1, /*quoted=*/true, &key)) return false;
        } else if (tok_.kind == Tok::kSingle) {
          if (!Literal(tok_.offset, MakeString(tree_->literals, tok_.text), &key) || !Advance()) {
            return false;
          }
        } else {
          return Expected("a key in quotes");
        }
        uint32_t value = 0;
        if (!Take(Tok::kColon, "':'") || !Expr(&value)) return false;
        kids.push_back(key);
        kids.push_back(value);
        if (tok_.kind != Tok::kComma) break;
        if (!Advance()) return false;
      }
    }
    return Take(Tok::kRBrace, "',' or '}'") && Add(n, kids, out);
  }

  // At '{{': an if, a range or one expression.
  bool Block(uint32_t* out) {
    const size_t start = tok_.offset;
    if (!Advance()) return false;
    if (IsWord("if")) return If(start, out);
    if (IsWord("range")) return Range(start, out);
    if (IsWord("elif") || IsWord("else") || IsWord("end")) {
      return Fail(tok_.offset, fmt::format("'{}' without 'if' or 'range'", tok_.text));
    }
    return Expr(out) && Close("the expression");
  }

  // At '{{' before elif/else/end: the word after it, consumed.
  bool Clause(std::string* word) {
    if (tok_.kind != Tok::kOpen) return Expected("'{{ else }}', '{{ elif … }}' or '{{ end }}'");
    if (!Advance()) return false;
    if (!(IsWord("elif") || IsWord("else") || IsWord("end"))) return Expected("elif, else or end");
    *word = tok_.text;
    return Advance();
  }

  bool If(size_t start, uint32_t* out) {
    Node n;
    n.op = Op::kIf;
    n.offset = static_cast<uint32_t>(start);
    std::vector<uint32_t> kids;
    if (!Advance()) return false;  // 'if'
    while (true) {
      uint32_t cond = 0;
      uint32_t then = 0;
      if (!Expr(&cond) || !Close("the condition") || !Expr(&then)) return false;
      kids.push_back(cond);
      kids.push_back(then);
      std::string word;
      if (!Clause(&word)) return false;
      if (word == "elif") continue;
      if (word == "else") {
        uint32_t otherwise = 0;
        if (!Close("else") || !Expr(&otherwise)) return false;
        kids.push_back(otherwise);
        n.has_else = true;
        if (!Clause(&word)) return false;
        if (word != "end") return Fail(tok_.offset, "expected '{{ end }}' after else");
      }
      break;
    }
    return Close("end") && Add(n, kids, out);
  }

  bool Binder(std::string* name) {
    if (tok_.kind != Tok::kIdent || (IsKeyword(tok_.text) && tok_.text != "_")) {
      return Expected("a name");
    }
    Fn fn = Fn::kNot;
    if (FindFunction(tok_.text, &fn))
      return Fail(tok_.offset, fmt::format("'{}' is a function", tok_.text));
    *name = tok_.text;
    return Advance();
  }

  bool Range(size_t start, uint32_t* out) {
    Node n;
    n.op = Op::kRange;
    n.offset = static_cast<uint32_t>(start);
    std::string index;
    std::string item;
    if (!Advance() || !Binder(&index) || !Take(Tok::kComma, "','") || !Binder(&item)) return false;
    if (item == "_") return Fail(tok_.offset, "the item cannot be '_'");
    uint32_t source = 0;
    if (!Take(Tok::kAssign, "':='") || !Expr(&source) || !Close("range")) return false;
    const size_t mark = scope_.size();
    if (index != "_") {
      n.index_slot = tree_->slots++;
      scope_.push_back({index, n.index_slot});
    }
    n.slot = tree_->slots++;
    scope_.push_back({item, n.slot});
    uint32_t body = 0;
    const bool ok = Expr(&body);
    scope_.resize(mark);
    if (!ok) return false;
    std::string word;
    if (!Clause(&word)) return false;
    if (word != "end") return Fail(tok_.offset, "expected '{{ end }}' to close range");
    return Close("end") && Add(n, {source, body}, out);
  }

  struct Bound {
    std::string name;
    uint32_t slot;
  };

  std::string_view text_;
  Tree* tree_;
  size_t pos_ = 0;
  Token tok_;
  int depth_ = 0;
  std::vector<Bound> scope_;
  std::string error_;
};

}  // namespace

Status ParseTree(std::string_view text, Mode mode, Tree* tree) {
  tree->text.assign(text);
  tree->mode = mode;
  return Parser(tree->text, tree).Run(mode);
}

}  // namespace walhook::kriti::internal
