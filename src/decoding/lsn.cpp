#include "walhook/lsn.h"

#include <charconv>

namespace walhook {

std::optional<Lsn> Lsn::Parse(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size() || slash > 8 ||
      text.size() - slash - 1 > 8) {
    return std::nullopt;
  }
  uint32_t hi = 0;
  uint32_t lo = 0;
  const char* hi_end = text.data() + slash;
  auto r1 = std::from_chars(text.data(), hi_end, hi, 16);
  if (r1.ec != std::errc() || r1.ptr != hi_end) return std::nullopt;
  const char* end = text.data() + text.size();
  auto r2 = std::from_chars(hi_end + 1, end, lo, 16);
  if (r2.ec != std::errc() || r2.ptr != end) return std::nullopt;
  return Lsn((uint64_t{hi} << 32) | lo);
}

std::string Lsn::ToString() const {
  return fmt::format("{}", *this);
}

}  // namespace walhook
