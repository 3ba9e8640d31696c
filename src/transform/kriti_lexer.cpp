// Kriti's lexer (kriti_lexer.h): tokens of the code between {{ }} and of
// JSON templates, with positions for errors.
#include "kriti_lexer.h"

#include <fmt/format.h>

#include "walhook/json.h"
#include "walhook/utf8.h"

namespace walhook::kriti::internal {
namespace {

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

}  // namespace

std::string Shown(const Token& t, std::string_view text) {
  switch (t.kind) {
    case Tok::kEof: return "the end of the template";
    case Tok::kQuote: return "a string";
    default: break;
  }
  // One line, printable: the message goes into last_error and a remark.
  const std::string_view token = text.substr(t.offset, t.end - t.offset);
  const std::string_view shown = Utf8Prefix(token, 24);
  std::string out = "'";
  for (char ch : shown) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(ch);
    }
  }
  if (shown.size() < token.size()) out += "...";
  out += "'";
  return out;
}

bool Lexer::Fail(size_t offset, std::string message) {
  if (error_.empty()) error_ = fmt::format("{}: {}", Position(text_, offset), message);
  return false;
}
bool Lexer::Expected(std::string_view what) {
  return Fail(tok_.offset, fmt::format("expected {}, found {}", what, Shown(tok_, text_)));
}

void Lexer::SkipSpace() {
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

void Lexer::Set(Tok kind, size_t start, size_t end) {
  tok_.kind = kind;
  tok_.offset = start;
  tok_.end = end;
  pos_ = end;
}

// Reads the token at pos_ into tok_; false (with the error set) on a bad one.
bool Lexer::Advance() {
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

bool Lexer::Name(size_t s, size_t name_start, Tok kind) {
  size_t e = name_start;
  while (e < text_.size() && IsNameChar(text_[e])) ++e;
  if (e == name_start) return Fail(s, "expected a name after '.'");
  tok_.text.assign(text_.substr(name_start, e - name_start));
  Set(kind, s, e);
  return true;
}

// JSON's number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
bool Lexer::Number(size_t s) {
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
  // What walhook's JSON reader (and so a receiver's) refuses is refused here:
  // an exponent past a double's range (found by kriti_fuzz).
  if (!CheckJson(text_.substr(s, e - s)).ok()) return Fail(s, "a number out of range");
  tok_.text.assign(text_.substr(s, e - s));
  Set(Tok::kNumber, s, e);
  return true;
}

// Reads one escape at text_[*i] == '\\' into *out; JSON's escapes, and \'.
bool Lexer::Escape(size_t* i, std::string* out) {
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
  char bytes[4];
  out->append(bytes, EncodeUtf8(cp, bytes));
  return true;
}

bool Lexer::SingleQuoted(size_t s) {
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

}  // namespace walhook::kriti::internal
