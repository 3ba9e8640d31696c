#pragma once
// Internal to the condition module: the parsed tree that Condition::Impl
// holds, shared by the parser (condition_parser.cpp) and the evaluator
// (condition.cpp). Not part of any contract outside src/triggers.
// Thread-safety: plain values.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "walhook/condition.h"
#include "walhook/like.h"
#include "walhook/result.h"

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

namespace condition_internal {

// Parses `text` into *tree (empty); the error is one line a user can act on.
Status ParseTree(std::string_view text, Tree* tree);

// Appends the subtree at `index` as an S-expression (Condition::DebugString).
void PrintTree(const Tree& tree, uint32_t index, std::string* out);

}  // namespace condition_internal
}  // namespace walhook
