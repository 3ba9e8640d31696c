#pragma once
// Internal to the Kriti engine: the lexer the parser (kriti_parser.cpp)
// reads tokens from. Code mode only: the parser reads the text of strings and
// of string templates itself, from pos_, with Escape.
// Thread-safety: one per parse.

#include <cstdint>
#include <string>
#include <string_view>

#include "kriti_internal.h"

namespace walhook::kriti::internal {

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

// The token as an error message shows it ("'}'", "the end of the template").
std::string Shown(const Token& t, std::string_view text);

class Lexer {
 protected:
  explicit Lexer(std::string_view text) : text_(text) {}

  // Sets the error (the first one wins), "line L, column C: message"; false.
  bool Fail(size_t offset, std::string message);
  // "expected WHAT, found TOKEN" at the current token; false.
  bool Expected(std::string_view what);

  // Reads the token at pos_ into tok_; false (with the error set) on a bad one.
  bool Advance();
  // Reads one escape at text_[*i] == '\\' into *out (JSON's escapes, and \').
  bool Escape(size_t* i, std::string* out);

  std::string_view text_;
  size_t pos_ = 0;
  Token tok_;
  std::string error_;

 private:
  void SkipSpace();
  void Set(Tok kind, size_t start, size_t end);
  bool Name(size_t s, size_t name_start, Tok kind);
  bool Number(size_t s);
  bool SingleQuoted(size_t s);
};

}  // namespace walhook::kriti::internal
