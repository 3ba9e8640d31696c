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

#include "kriti_lexer.h"
#include "walhook/utf8.h"

namespace walhook::kriti::internal {
namespace {

class Parser : private Lexer {
 public:
  Parser(std::string_view text, Tree* tree) : Lexer(text), tree_(tree) {}

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

  Tree* tree_;
  int depth_ = 0;
  std::vector<Bound> scope_;
};
}  // namespace

Status ParseTree(std::string_view text, Mode mode, Tree* tree) {
  tree->text.assign(text);
  tree->mode = mode;
  return Parser(tree->text, tree).Run(mode);
}

}  // namespace walhook::kriti::internal
