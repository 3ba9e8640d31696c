// Kriti's evaluator and the public entry points of kriti.h. Evaluation
// recurses on the tree, whose depth the parser capped at kMaxNesting; values
// are built in an arena per Render; steps, built bytes and the output are
// bounded by Limits.
#include <unordered_map>

#include <fmt/format.h>

#include "kriti_internal.h"
#include "walhook/utf8.h"

namespace walhook::kriti {
namespace internal {
namespace {

class Evaluator {
 public:
  Evaluator(const Tree& tree, const InputValues& in, const Limits& limits)
      : tree_(tree), limits_(limits), slots_(tree.slots, &NullValue()) {
    slots_[kSlotDollar] = in.body;
    slots_[kSlotBody] = in.body;
    if (in.base_url != nullptr) slots_[kSlotBaseUrl] = in.base_url;
    // What a render may build besides its output: intermediate strings,
    // arrays and objects. A path's value is never copied, so this is small.
    budget_ = 4 * limits.max_output_bytes + 64 * 1024;
  }

  Result<std::string> Run() {
    const Value* v = Eval(tree_.root);
    if (v == nullptr) return Status::Error(std::move(error_));
    std::string out;
    const Node& root = tree_.nodes[tree_.root];
    if (tree_.mode == Mode::kString) {
      // The root is a string template (or a literal string): its text.
      if (v->text.size() > limits_.max_output_bytes) return TooLong(root);
      out.assign(v->text);
      return out;
    }
    if (!WriteJson(*v, &out, limits_.max_output_bytes)) return TooLong(root);
    return out;
  }

 private:
  Status TooLong(const Node& n) {
    return Status::Error(fmt::format("{}: the result is longer than {} bytes",
                                     Position(tree_.text, n.offset), limits_.max_output_bytes));
  }

  const Value* Fail(const Node& n, std::string message) {
    return FailAt(n.offset, std::move(message));
  }
  const Value* FailAt(size_t offset, std::string message) {
    if (error_.empty()) error_ = fmt::format("{}: {}", Position(tree_.text, offset), message);
    return nullptr;
  }

  // Counts `work` steps against the limit, and the arena against its budget.
  bool Charge(const Node& n, size_t work) {
    steps_ += work;
    if (steps_ > limits_.max_steps) {
      Fail(n, fmt::format("the template takes more than {} steps", limits_.max_steps));
      return false;
    }
    if (arena_.used() > budget_) {
      Fail(n, fmt::format("the template builds more than {} bytes", budget_));
      return false;
    }
    return true;
  }

  const Value* Kid(const Node& n, uint32_t i) { return Eval(tree_.kids[n.first + i]); }

  const Value* Eval(uint32_t index) {
    const Node& n = tree_.nodes[index];
    if (!Charge(n, 1)) return nullptr;
    switch (n.op) {
      case Op::kLiteral: return n.literal;
      case Op::kVar: return slots_[n.slot];
      case Op::kTemplate: return Interpolate(n);
      case Op::kArray: {
        std::vector<const Value*> items(n.count);
        for (uint32_t i = 0; i < n.count; ++i) {
          if ((items[i] = Kid(n, i)) == nullptr) return nullptr;
        }
        return MakeArray(arena_, items);
      }
      case Op::kObject: return Object(n);
      case Op::kField: return Field(n);
      case Op::kIf: return If(n);
      case Op::kRange: return Range(n);
      case Op::kCall: {
        const Value* arg = Kid(n, 0);
        if (arg == nullptr) return nullptr;
        size_t work = 0;
        std::string error;
        const Value* v = Apply(n.fn, *arg, arena_, &work, &error);
        if (v == nullptr) return Fail(n, fmt::format("{}: {}", FunctionName(n.fn), error));
        return Charge(n, work) ? v : nullptr;
      }
      case Op::kBinary: return Binary(n);
    }
    return Fail(n, "unknown node");
  }

  const Value* Interpolate(const Node& n) {
    std::string text;
    for (uint32_t i = 0; i < n.count; ++i) {
      const Value* v = Kid(n, i);
      if (v == nullptr) return nullptr;
      switch (v->kind) {
        case Kind::kString:
        case Kind::kNumber: text.append(v->text); break;
        case Kind::kBool: text.append(v->boolean ? "true" : "false"); break;
        default: {
          const Node& part = tree_.nodes[tree_.kids[n.first + i]];
          return FailAt(part.start,
                        fmt::format("cannot interpolate {} into a string", KindName(v->kind)));
        }
      }
      if (text.size() > budget_)
        return Fail(n, fmt::format("the template builds more than {} bytes", budget_));
    }
    const Value* v = MakeString(arena_, text);
    return Charge(n, text.size() / 64) ? v : nullptr;
  }

  const Value* Object(const Node& n) {
    std::vector<Member> members;
    members.reserve(n.count / 2);
    std::unordered_map<std::string_view, size_t> at;
    for (uint32_t i = 0; i + 1 < n.count; i += 2) {
      const Value* key = Kid(n, i);
      if (key == nullptr) return nullptr;
      if (key->kind != Kind::kString) {
        return Fail(tree_.nodes[tree_.kids[n.first + i]], "an object key must be a string");
      }
      const Value* value = Kid(n, i + 1);
      if (value == nullptr) return nullptr;
      // A repeated key: the last one wins, in the first one's place. A
      // small object is scanned, a large one indexed.
      size_t found = members.size();
      if (n.count <= 32) {
        for (size_t k = 0; k < members.size(); ++k) {
          if (members[k].key == key->text) found = k;
        }
      } else {
        found = at.try_emplace(key->text, members.size()).first->second;
      }
      if (found == members.size()) {
        members.push_back({key->text, value});
      } else {
        members[found].value = value;
      }
    }
    return MakeObject(arena_, members);
  }

  const Value* Field(const Node& n) {
    const Value* base = Kid(n, 0);
    if (base == nullptr) return nullptr;
    const Value* key = Kid(n, 1);
    if (key == nullptr) return nullptr;
    // A missing path is null: so is a lookup in null, a missing key and an
    // index past the end. The optional forms (?. ?[) are null on a wrong type too.
    if (base->kind == Kind::kNull) return &NullValue();
    if (base->kind == Kind::kObject) {
      if (key->kind == Kind::kString) {
        const Value* v = FindMember(*base, key->text);
        return v != nullptr ? v : &NullValue();
      }
      if (n.optional) return &NullValue();
      return Fail(n, fmt::format("an object's key must be a string, not {}", KindName(key->kind)));
    }
    if (base->kind == Kind::kArray) {
      if (key->kind == Kind::kNumber) {
        uint64_t i = 0;
        if (ArrayIndex(key->text, &i)) return i < base->count ? base->items[i] : &NullValue();
        if (key->text.find_first_of(".eE") == std::string_view::npos)
          return &NullValue();  // negative or huge
      }
      if (n.optional) return &NullValue();
      return Fail(n, fmt::format("an array's index must be a whole number, not {}",
                                 key->kind == Kind::kNumber ? std::string(key->text)
                                                            : std::string(KindName(key->kind))));
    }
    if (n.optional) return &NullValue();
    return Fail(
        n, fmt::format("cannot look up {} in {}", key->kind == Kind::kString ? "a key" : "an index",
                       KindName(base->kind)));
  }

  static bool ArrayIndex(std::string_view text, uint64_t* out) {
    if (text.empty() || text.size() > 18) return false;
    uint64_t v = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    *out = v;
    return true;
  }

  const Value* If(const Node& n) {
    uint32_t i = 0;
    for (; i + 1 < n.count; i += 2) {
      const Value* cond = Kid(n, i);
      if (cond == nullptr) return nullptr;
      if (cond->kind != Kind::kBool) {
        return FailAt(tree_.nodes[tree_.kids[n.first + i]].start,
                      fmt::format("if needs a boolean, not {}", KindName(cond->kind)));
      }
      if (cond->boolean) return Kid(n, i + 1);
    }
    return n.has_else ? Kid(n, i) : &NullValue();
  }

  const Value* Range(const Node& n) {
    const Value* source = Kid(n, 0);
    if (source == nullptr) return nullptr;
    if (source->kind != Kind::kArray) {
      return Fail(n, fmt::format("range needs an array, not {}", KindName(source->kind)));
    }
    std::vector<const Value*> items(source->count);
    for (uint32_t i = 0; i < source->count; ++i) {
      if (n.index_slot != kNoSlot) {
        char digits[16];
        const auto r = fmt::format_to_n(digits, sizeof(digits), "{}", i);
        slots_[n.index_slot] = MakeNumber(arena_, std::string_view(digits, r.size));
      }
      slots_[n.slot] = source->items[i];
      if ((items[i] = Kid(n, 1)) == nullptr) return nullptr;
    }
    return MakeArray(arena_, items);
  }

  const Value* Binary(const Node& n) {
    const Value* a = Kid(n, 0);
    if (a == nullptr) return nullptr;
    if (n.binop == BinOp::kDefault) return a->kind == Kind::kNull ? Kid(n, 1) : a;
    const Value* b = Kid(n, 1);
    if (b == nullptr) return nullptr;
    size_t work = 0;
    const auto compare = [&]() { return Compare(*a, *b, &work); };
    const auto result = [&](bool r) { return Charge(n, work) ? &BoolValue(r) : nullptr; };
    switch (n.binop) {
      case BinOp::kEq: return result(compare() == 0);
      case BinOp::kNe: return result(compare() != 0);
      case BinOp::kLt: return result(compare() < 0);
      case BinOp::kLe: return result(compare() <= 0);
      case BinOp::kGt: return result(compare() > 0);
      case BinOp::kGe: return result(compare() >= 0);
      case BinOp::kAnd:
      case BinOp::kOr: {
        const bool is_and = n.binop == BinOp::kAnd;
        for (const Value* v : {a, b}) {
          if (v->kind != Kind::kBool) {
            return Fail(n, fmt::format("{} needs booleans, not {}", is_and ? "&&" : "||",
                                       KindName(v->kind)));
          }
        }
        return &BoolValue(is_and ? (a->boolean && b->boolean) : (a->boolean || b->boolean));
      }
      case BinOp::kIn: return In(n, *a, *b);
      case BinOp::kDefault: break;
    }
    return Fail(n, "unknown operator");
  }

  const Value* In(const Node& n, const Value& a, const Value& b) {
    if (b.kind == Kind::kObject) {
      if (a.kind != Kind::kString) {
        return Fail(n, fmt::format("in an object, in needs a string on its left, not {}",
                                   KindName(a.kind)));
      }
      return &BoolValue(FindMember(b, a.text) != nullptr);
    }
    if (b.kind == Kind::kArray) {
      size_t work = 0;
      bool found = false;
      for (uint32_t i = 0; i < b.count && !found; ++i) found = Compare(a, *b.items[i], &work) == 0;
      return Charge(n, work) ? &BoolValue(found) : nullptr;
    }
    return Fail(
        n, fmt::format("in needs an object or an array on its right, not {}", KindName(b.kind)));
  }

  const Tree& tree_;
  const Limits& limits_;
  Arena arena_;
  std::vector<const Value*> slots_;
  size_t steps_ = 0;
  size_t budget_ = 0;
  std::string error_;
};

}  // namespace
}  // namespace internal

// ---------------------------------------------------------------------------
// kriti.h

Result<std::shared_ptr<const Template>> Parse(std::string_view text, Mode mode) {
  auto t = std::make_shared<Template>();
  if (Status st = internal::ParseTree(text, mode, &t->tree); !st.ok()) return st;
  return std::shared_ptr<const Template>(std::move(t));
}

Input::Input() = default;
Input::Input(Input&&) noexcept = default;
Input& Input::operator=(Input&&) noexcept = default;
Input::~Input() = default;

Result<Input> Input::Bind(const Bindings& in, const BodyPaths* paths) {
  Input out;
  out.values_ = std::make_unique<internal::InputValues>();
  Result<const internal::Value*> body = internal::ReadJson(in.body_json, out.values_->arena, paths);
  if (!body.ok()) return Status::Error("input: $body: " + body.error());
  out.values_->body = *body;
  if (!in.base_url.empty()) {
    if (!IsValidUtf8(in.base_url)) return Status::Error("input: $base_url: invalid UTF-8");
    out.values_->base_url = internal::MakeString(out.values_->arena, in.base_url);
  }
  return out;
}

Result<std::string> Render(const Template& t, const Input& in, const Limits& limits) {
  return internal::Evaluator(t.tree, *in.values_, limits).Run();
}

Result<std::string> Render(const Template& t, const Bindings& in, const Limits& limits) {
  Result<Input> input = Input::Bind(in);
  if (!input.ok()) return Status::Error(input.error());
  return Render(t, *input, limits);
}

}  // namespace walhook::kriti
