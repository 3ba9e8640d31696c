#include "walhook/kriti.h"

// A placeholder until the engine lands (issue #21): every template is refused.

namespace walhook::kriti {

class Template {};

Result<std::shared_ptr<const Template>> Parse(std::string_view, Mode) {
  return Status::Error("line 1, column 1: Kriti templates are not supported yet");
}

Result<std::string> Render(const Template&, const Bindings&, const Limits&) {
  return Status::Error("line 1, column 1: Kriti templates are not supported yet");
}

}  // namespace walhook::kriti
