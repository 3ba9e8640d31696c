// What of $body a template reads (kriti.h, BodyPaths): found in its parsed
// tree once, when a transform is parsed.
#include <algorithm>

#include "kriti_internal.h"

namespace walhook::kriti {
namespace {

using internal::Op;
using internal::Tree;

bool IsBody(const internal::Node& n) {
  return n.op == Op::kVar && (n.slot == internal::kSlotDollar || n.slot == internal::kSlotBody);
}

// The key of a lookup written with a constant name (.x, ?.x, ['x']), or null.
const internal::Value* ConstantKey(const Tree& t, const internal::Node& field) {
  const internal::Node& key = t.nodes[t.kids[field.first + 1]];
  if (key.op != Op::kLiteral || key.literal == nullptr) return nullptr;
  return key.literal->kind == internal::Kind::kString ? key.literal : nullptr;
}

// Whether node `i` is $body followed by lookups of constant names; *keys
// gets them, outermost first.
bool BodyPath(const Tree& t, uint32_t i, std::vector<std::string_view>* keys) {
  keys->clear();
  for (;;) {
    const internal::Node& n = t.nodes[i];
    if (IsBody(n)) break;
    if (n.op != Op::kField) return false;
    const internal::Value* key = ConstantKey(t, n);
    if (key == nullptr) return false;
    keys->push_back(key->text);
    i = t.kids[n.first];
  }
  std::reverse(keys->begin(), keys->end());
  return true;
}

}  // namespace

void BodyPaths::Add(const Template& tmpl) {
  const Tree& t = tmpl.tree;
  std::vector<std::string_view> keys;
  // A path's value is read whole unless its only use is as the base of a
  // lookup by a constant name, which the longer path covers.
  auto use = [&](uint32_t i) {
    if (!BodyPath(t, i, &keys)) return;
    int32_t node = 0;
    for (std::string_view key : keys) {
      if (nodes_[node].all) return;
      auto& kids = nodes_[node].kids;
      auto it =
          std::find_if(kids.begin(), kids.end(), [&](const auto& k) { return k.first == key; });
      if (it != kids.end()) {
        node = it->second;
        continue;
      }
      const auto next = static_cast<int32_t>(nodes_.size());
      kids.emplace_back(std::string(key), next);
      nodes_.emplace_back();  // `kids` is not used past here
      node = next;
    }
    nodes_[node].all = true;
  };
  use(t.root);
  for (const internal::Node& parent : t.nodes) {
    for (uint32_t k = 0; k < parent.count; ++k) {
      if (k == 0 && parent.op == Op::kField && ConstantKey(t, parent) != nullptr) continue;
      use(t.kids[parent.first + k]);
    }
  }
}

int32_t BodyPaths::Root() const {
  return nodes_[0].all ? kAll : 0;
}

int32_t BodyPaths::Find(int32_t node, std::string_view key) const {
  if (node == kAll) return kAll;
  for (const auto& [name, kid] : nodes_[node].kids) {
    if (name == key) return nodes_[kid].all ? kAll : kid;
  }
  return kNone;
}

}  // namespace walhook::kriti
