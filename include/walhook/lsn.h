#pragma once
// Lsn: a WAL position, printed and parsed as Postgres does ("16/B374D848").
// Thread-safety: plain value.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace walhook {

class Lsn {
 public:
  constexpr Lsn() = default;
  constexpr explicit Lsn(uint64_t value) : value_(value) {}

  // Parses "X/Y" (hex halves). Returns nullopt for anything else.
  static std::optional<Lsn> Parse(std::string_view text);

  constexpr uint64_t value() const { return value_; }
  constexpr bool valid() const { return value_ != 0; }
  std::string ToString() const;

  friend constexpr auto operator<=>(Lsn, Lsn) = default;

 private:
  uint64_t value_ = 0;
};

}  // namespace walhook

template <>
struct fmt::formatter<walhook::Lsn> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(walhook::Lsn lsn, FormatContext& ctx) const {
    return fmt::format_to(ctx.out(), "{:X}/{:X}", lsn.value() >> 32, lsn.value() & 0xffffffffu);
  }
};
