// Conditions: exact decimals, comparisons, and evaluation of the parsed tree
// (the parser is condition_parser.cpp, LIKE like.cpp, the value sources
// value_sources.cpp).
#include "walhook/condition.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "condition_tree.h"
#include "walhook/like.h"

namespace walhook {
namespace {

constexpr int64_t kMaxExponent = 1'000'000'000'000'000'000;  // 10^18

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
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
  condition_internal::PrintTree(impl_->tree, impl_->tree.root, &out);
  return out;
}

Result<Condition> ParseCondition(std::string_view text) {
  auto impl = std::make_unique<Condition::Impl>();
  Status status = condition_internal::ParseTree(text, &impl->tree);
  if (!status.ok()) return status;
  impl->text.assign(text);
  return Condition(std::move(impl));
}

}  // namespace walhook
