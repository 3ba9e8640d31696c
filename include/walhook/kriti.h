#pragma once
// Kriti, Hasura's template language (SPEC §11): JSON with {{ }} expressions,
// as request transforms and token claims use it. Parsed once per trigger
// version, evaluated per event; evaluation is bounded and safe on any input.
// Pure: no database, no network.
// Thread-safety: a parsed Template is immutable and may be shared between
// threads; Render keeps all its state on its own stack.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "walhook/result.h"

namespace walhook::kriti {

// What a template makes.
enum class Mode {
  // A whole Kriti template: JSON with {{ }} expressions (`body`,
  // `token_claims`, `walhook render`). Renders to a JSON value's text.
  kJson,
  // Text with {{ }} interpolated, as Hasura reads `url`, `query_params` and
  // `headers` values. Renders to a string (the text itself, not JSON).
  kString,
};

class Template;  // a parsed template; defined in src/transform/

// A template parsed, or why not: the error's message is one line that starts
// with the position, "line L, column C: …" (1-based; columns count
// characters).
Result<std::shared_ptr<const Template>> Parse(std::string_view text, Mode mode);

// What a template is evaluated against. body_json is read through json.h's
// CheckJson (nested at most 512 levels, valid UTF-8): other text is an
// "input: …" error, not undefined behaviour. `$session_variables` is always
// null (walhook has no sessions); any other unknown name is a parse error.
struct Bindings {
  std::string_view body_json;  // bound to `$body`, and to `$` as well
  std::string_view base_url;   // bound to `$base_url` (a string); empty: unbound
};

struct Limits {
  size_t max_output_bytes = 1u << 20;  // the rendered text
  size_t max_steps = 1u << 20;         // evaluation steps (range iterations included)
};

namespace internal {
struct InputValues;
}

// What of `$body` some templates read: the paths they look up by constant
// names (`$body.data.doc.id`, `$body['type']`), as a tree of keys, each
// path ending where a template uses the value as a whole (copies it,
// indexes it, ranges over it, passes it to a function). Input::Bind given
// one builds only those parts of the body (checking all of it as ever): the
// templates it was made from render to the same text over it, for less work
// than reading a body mostly made of parts no template looks at.
// Thread-safety: immutable once built; may be shared between threads.
class BodyPaths {
 public:
  static constexpr int32_t kAll = -1;  // a node below which everything is read

  // Adds what `t` reads.
  void Add(const Template& t);

  // For the reader: the root (kAll when a template reads the body whole),
  // and the node of `key` under `node` (kAll: all of its value; kNone: no
  // template reads it).
  static constexpr int32_t kNone = -2;
  int32_t Root() const;
  int32_t Find(int32_t node, std::string_view key) const;

 private:
  struct Node {
    bool all = false;
    std::vector<std::pair<std::string, int32_t>> kids;
  };
  std::vector<Node> nodes_{Node{}};  // [0]: $body
};

// The bindings read once, for the several templates of one event (url,
// headers, query parameters, body, claims).
// Thread-safety: immutable once bound; may be shared between threads.
class Input {
 public:
  // Reads `in`: all of $body, or only what `paths` (when given) says some
  // templates read, the rest checked and left out. Rendered over the latter,
  // a template `paths` was not made from may find null where the body has a
  // value, or an object with fewer members. The error ("input: $body: not JSON (…) at byte N") is
  // not a template's: it has no position.
  static Result<Input> Bind(const Bindings& in, const BodyPaths* paths = nullptr);

  Input(Input&&) noexcept;
  Input& operator=(Input&&) noexcept;
  ~Input();

 private:
  Input();
  friend Result<std::string> Render(const Template&, const Input&, const Limits&);
  std::unique_ptr<internal::InputValues> values_;
};

// Evaluates `t`. Mode kJson: the value's JSON text, where a value copied by
// path keeps its JSON text exactly (12.50 stays 12.50). Mode kString: the
// text. A missing path is null, not an error (a missing member, an index
// past the end, a lookup in null); a type error, an exceeded limit and the
// like are errors "line L, column C: …". docs/transforms.md has the language.
// Reads `in` (Input::Bind: its errors start with "input: ") and renders.
Result<std::string> Render(const Template& t, const Bindings& in, const Limits& limits = {});

// The same over inputs bound once: the way to render several templates for
// one event without reading its body again.
Result<std::string> Render(const Template& t, const Input& in, const Limits& limits = {});

}  // namespace walhook::kriti
