// Kriti's functions (hasura/kriti-lang's basic function map), each a value in,
// a value out. Case mappings are Unicode's simple (one-to-one) mappings from
// the C library's C.UTF-8 tables, plus ß (toUpper "SS", toCaseFold "ss").
#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include <fmt/format.h>

#include "kriti_internal.h"
#include "walhook/utf8.h"

namespace walhook::kriti::internal {
namespace {

struct Named {
  std::string_view name;
  Fn fn;
};

constexpr Named kFunctions[] = {
    {"escapeUri", Fn::kEscapeUri},
    {"toLower", Fn::kToLower},
    {"toUpper", Fn::kToUpper},
    {"toTitle", Fn::kToTitle},
    {"toCaseFold", Fn::kToCaseFold},
    {"not", Fn::kNot},
    {"empty", Fn::kEmpty},
    {"size", Fn::kSize},
    {"head", Fn::kHead},
    {"tail", Fn::kTail},
    {"concat", Fn::kConcat},
    {"inverse", Fn::kInverse},
    {"toPairs", Fn::kToPairs},
    {"fromPairs", Fn::kFromPairs},
    {"removeNulls", Fn::kRemoveNulls},
};

// --- UTF-8 code points (the text is valid UTF-8) ---

uint32_t Decode(std::string_view s, size_t* i) {
  const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[k])); };
  const uint32_t c = b(*i);
  if (c < 0x80) {
    *i += 1;
    return c;
  }
  if (c < 0xE0) {
    const uint32_t cp = ((c & 0x1F) << 6) | (b(*i + 1) & 0x3F);
    *i += 2;
    return cp;
  }
  if (c < 0xF0) {
    const uint32_t cp = ((c & 0x0F) << 12) | ((b(*i + 1) & 0x3F) << 6) | (b(*i + 2) & 0x3F);
    *i += 3;
    return cp;
  }
  const uint32_t cp = ((c & 0x07) << 18) | ((b(*i + 1) & 0x3F) << 12) | ((b(*i + 2) & 0x3F) << 6) |
                      (b(*i + 3) & 0x3F);
  *i += 4;
  return cp;
}

void Encode(uint32_t cp, std::string* out) {
  char bytes[4];
  out->append(bytes, EncodeUtf8(cp, bytes));
}

// C.UTF-8's character tables, opened once; nullptr where the C library has
// none (then only ASCII letters change case).
locale_t Utf8Locale() {
  static const locale_t kLocale =
      newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return kLocale;
}

uint32_t Upper(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  const locale_t l = Utf8Locale();
  return l != nullptr ? static_cast<uint32_t>(towupper_l(static_cast<wint_t>(c), l)) : c;
}
uint32_t Lower(uint32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  const locale_t l = Utf8Locale();
  return l != nullptr ? static_cast<uint32_t>(towlower_l(static_cast<wint_t>(c), l)) : c;
}
bool IsLetter(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  const locale_t l = Utf8Locale();
  return l != nullptr && iswalpha_l(static_cast<wint_t>(c), l) != 0;
}
bool IsSpace(uint32_t c) {
  if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r');
  const locale_t l = Utf8Locale();
  return c == 0xA0 || (l != nullptr && iswspace_l(static_cast<wint_t>(c), l) != 0);
}

constexpr uint32_t kSharpS = 0xDF;

std::string MapCase(std::string_view s, Fn fn) {
  std::string out;
  out.reserve(s.size());
  bool after_letter = false;
  for (size_t i = 0; i < s.size();) {
    const uint32_t c = Decode(s, &i);
    switch (fn) {
      case Fn::kToUpper:
        if (c == kSharpS) {
          out.append("SS");
        } else {
          Encode(Upper(c), &out);
        }
        break;
      case Fn::kToLower: Encode(Lower(c), &out); break;
      case Fn::kToCaseFold:
        if (c == kSharpS) {
          out.append("ss");
        } else {
          Encode(Lower(Upper(c)), &out);
        }
        break;
      default: {  // kToTitle: a letter after a non-letter is upper case, the rest lower
        const bool letter = IsLetter(c);
        Encode(letter && !after_letter ? Upper(c) : Lower(c), &out);
        after_letter = letter;
      }
    }
  }
  return out;
}

std::string EscapeUri(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool IsZero(std::string_view number) {
  for (char c : number) {
    if (c == 'e' || c == 'E') break;
    if (c >= '1' && c <= '9') return false;
  }
  return true;
}

std::string Count(size_t n) {
  return fmt::format("{}", n);
}

// The expected type, said the same way everywhere.
const Value* WrongType(std::string* error, std::string_view expected, const Value& arg) {
  *error = fmt::format("expected {}, not {}", expected, KindName(arg.kind));
  return nullptr;
}

const Value* Concat(const Value& arg, Arena& arena, size_t* work, std::string* error) {
  if (arg.kind != Kind::kArray) return WrongType(error, "an array", arg);
  const Kind kind = arg.count == 0 ? Kind::kArray : arg.items[0]->kind;
  for (uint32_t i = 0; i < arg.count; ++i) {
    if (arg.items[i]->kind != kind ||
        (kind != Kind::kArray && kind != Kind::kString && kind != Kind::kObject)) {
      *error = "expected an array of arrays, of strings or of objects";
      return nullptr;
    }
  }
  if (kind == Kind::kString) {
    std::string s;
    for (uint32_t i = 0; i < arg.count; ++i) s.append(arg.items[i]->text);
    *work += s.size() / 64;
    return MakeString(arena, s);
  }
  if (kind == Kind::kArray) {
    std::vector<const Value*> items;
    for (uint32_t i = 0; i < arg.count; ++i) {
      const Value& a = *arg.items[i];
      items.insert(items.end(), a.items, a.items + a.count);
    }
    *work += items.size();
    return MakeArray(arena, items);
  }
  // Objects: merged; a key in a later object wins, in its first place.
  std::vector<Member> members;
  std::unordered_map<std::string_view, size_t> at;
  for (uint32_t i = 0; i < arg.count; ++i) {
    const Value& o = *arg.items[i];
    for (uint32_t k = 0; k < o.count; ++k) {
      const auto [it, fresh] = at.try_emplace(o.members[k].key, members.size());
      if (fresh) {
        members.push_back(o.members[k]);
      } else {
        members[it->second].value = o.members[k].value;
      }
    }
    *work += o.count;
  }
  return MakeObject(arena, members);
}

const Value* FromPairs(const Value& arg, Arena& arena, size_t* work, std::string* error) {
  if (arg.kind != Kind::kArray) return WrongType(error, "an array of [key, value] pairs", arg);
  std::vector<Member> members;
  std::unordered_map<std::string_view, size_t> at;
  for (uint32_t i = 0; i < arg.count; ++i) {
    const Value& p = *arg.items[i];
    if (p.kind != Kind::kArray || p.count != 2 || p.items[0]->kind != Kind::kString) {
      *error = fmt::format(
          "expected an array of [key, value] pairs with string keys; item {} is not one", i);
      return nullptr;
    }
    const auto [it, fresh] = at.try_emplace(p.items[0]->text, members.size());
    if (fresh) {
      members.push_back({p.items[0]->text, p.items[1]});
    } else {
      members[it->second].value = p.items[1];
    }
  }
  *work += arg.count;
  return MakeObject(arena, members);
}

const Value* ToPairs(const Value& arg, Arena& arena, size_t* work, std::string* error) {
  if (arg.kind != Kind::kObject) return WrongType(error, "an object", arg);
  std::vector<const Value*> pairs;
  pairs.reserve(arg.count);
  for (uint32_t i = 0; i < arg.count; ++i) {
    Value* key = arena.NewValue();
    key->kind = Kind::kString;
    key->text = arg.members[i].key;
    pairs.push_back(MakeArray(arena, {key, arg.members[i].value}));
  }
  *work += arg.count;
  return MakeArray(arena, pairs);
}

const Value* Inverse(const Value& arg, Arena& arena, size_t* work, std::string* error) {
  switch (arg.kind) {
    case Kind::kNull:
    case Kind::kObject: return &arg;
    case Kind::kBool: return &BoolValue(!arg.boolean);
    case Kind::kArray: {
      std::vector<const Value*> items(arg.items, arg.items + arg.count);
      std::reverse(items.begin(), items.end());
      *work += arg.count;
      return MakeArray(arena, items);
    }
    case Kind::kString: {
      std::vector<std::string_view> chars;
      for (size_t i = 0; i < arg.text.size();) {
        const size_t s = i;
        Decode(arg.text, &i);
        chars.push_back(arg.text.substr(s, i - s));
      }
      std::string out;
      out.reserve(arg.text.size());
      for (size_t k = chars.size(); k-- > 0;) out.append(chars[k]);
      *work += chars.size() / 64;
      return MakeString(arena, out);
    }
    case Kind::kNumber: {
      // 1/x: the one place a number passes through a double.
      const double x = std::strtod(std::string(arg.text).c_str(), nullptr);
      const double y = 1.0 / x;
      if (x == 0 || !std::isfinite(y)) {
        *error = fmt::format("1/{} is not a finite number", arg.text);
        return nullptr;
      }
      return MakeNumber(arena, fmt::format("{}", y));
    }
  }
  return &arg;
}

}  // namespace

bool FindFunction(std::string_view name, Fn* fn) {
  for (const Named& f : kFunctions) {
    if (f.name == name) {
      *fn = f.fn;
      return true;
    }
  }
  return false;
}

std::string_view FunctionName(Fn fn) {
  for (const Named& f : kFunctions) {
    if (f.fn == fn) return f.name;
  }
  return "?";
}

const Value* Apply(Fn fn, const Value& arg, Arena& arena, size_t* work, std::string* error) {
  switch (fn) {
    case Fn::kEscapeUri:
      if (arg.kind != Kind::kString) return WrongType(error, "a string", arg);
      *work += arg.text.size() / 64;
      return MakeString(arena, EscapeUri(arg.text));
    case Fn::kToLower:
    case Fn::kToUpper:
    case Fn::kToTitle:
    case Fn::kToCaseFold:
      if (arg.kind != Kind::kString) return WrongType(error, "a string", arg);
      *work += arg.text.size() / 16;
      return MakeString(arena, MapCase(arg.text, fn));
    case Fn::kNot:
      if (arg.kind != Kind::kBool) return WrongType(error, "a boolean", arg);
      return &BoolValue(!arg.boolean);
    case Fn::kEmpty:
      switch (arg.kind) {
        case Kind::kNull: return &BoolValue(true);
        case Kind::kBool: *error = "a boolean is neither empty nor not"; return nullptr;
        case Kind::kNumber: return &BoolValue(IsZero(arg.text));
        case Kind::kString: {
          *work += arg.text.size() / 64;
          for (size_t i = 0; i < arg.text.size();) {
            if (!IsSpace(Decode(arg.text, &i))) return &BoolValue(false);
          }
          return &BoolValue(true);
        }
        default: return &BoolValue(arg.count == 0);
      }
    case Fn::kSize:
      switch (arg.kind) {
        case Kind::kNull: return MakeNumber(arena, "0");
        case Kind::kBool: return MakeNumber(arena, arg.boolean ? "1" : "0");
        case Kind::kNumber: return &arg;
        case Kind::kString:
          *work += arg.text.size() / 64;
          return MakeNumber(arena, Count(CountChars(arg.text)));
        default: return MakeNumber(arena, Count(arg.count));
      }
    case Fn::kHead:
      if (arg.kind == Kind::kArray) {
        if (arg.count == 0) {
          *error = "an empty array has no head";
          return nullptr;
        }
        return arg.items[0];
      }
      if (arg.kind == Kind::kString) {
        if (arg.text.empty()) {
          *error = "an empty string has no head";
          return nullptr;
        }
        size_t i = 0;
        Decode(arg.text, &i);
        return MakeString(arena, arg.text.substr(0, i));
      }
      return WrongType(error, "an array or a string", arg);
    case Fn::kTail:
      if (arg.kind == Kind::kArray) {
        Value* v = arena.NewValue();
        *v = arg;
        if (v->count > 0) {
          ++v->items;
          --v->count;
        }
        return v;
      }
      if (arg.kind == Kind::kString) {
        size_t i = 0;
        if (!arg.text.empty()) Decode(arg.text, &i);
        Value* v = arena.NewValue();
        *v = arg;
        v->text = arg.text.substr(i);
        return v;
      }
      return WrongType(error, "an array or a string", arg);
    case Fn::kConcat: return Concat(arg, arena, work, error);
    case Fn::kInverse: return Inverse(arg, arena, work, error);
    case Fn::kToPairs: return ToPairs(arg, arena, work, error);
    case Fn::kFromPairs: return FromPairs(arg, arena, work, error);
    case Fn::kRemoveNulls: {
      if (arg.kind != Kind::kArray) return WrongType(error, "an array", arg);
      std::vector<const Value*> items;
      for (uint32_t i = 0; i < arg.count; ++i) {
        if (arg.items[i]->kind != Kind::kNull) items.push_back(arg.items[i]);
      }
      *work += arg.count;
      return MakeArray(arena, items);
    }
  }
  *error = "unknown function";
  return nullptr;
}

}  // namespace walhook::kriti::internal
