#pragma once
// SQL LIKE and ILIKE (SPEC §3.1) at a bounded cost (SPEC §9): a pattern is
// matched without backtracking, so a 16 KiB pattern against a 1 MB value
// takes milliseconds, not minutes. Pure.
//
//   std::optional<LikePattern> p = LikePattern::Compile("%.png", /*fold_ascii_case=*/false);
//   if (p && p->Matches(path)) { ... }
//
// Semantics: the text and the pattern are sequences of characters, a
// character being a UTF-8 sequence (a byte that starts no well-formed
// sequence is a character of its own). In the pattern, % matches any run of
// characters (none too), _ exactly one character, and \ makes the next byte
// literal. Other characters match themselves, byte for byte; with
// fold_ascii_case (ILIKE) ASCII letters match either case, and nothing else
// is folded. The whole text must match.
//
// How: the pattern is split at each %. The first piece must match at the
// start of the text, the last at its end, and each piece between is found
// leftmost-first after the previous one (for LIKE the leftmost match is
// always a right choice, so nothing is ever tried twice). A piece without _
// is searched as bytes (memmem, linear time; KMP when ASCII case is folded);
// a piece with _ by a bit-parallel Shift-And over characters, whose cost is
// text characters × ceil(piece characters / 64) words at most.
// Thread-safety: a compiled pattern is immutable; Matches may run on
// several threads at once.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace walhook {

// The most characters a piece with _ between two % may have (its
// Shift-And state lives on the stack). A condition's literal patterns are
// shorter than that by kMaxConditionBytes; a pattern taken from a value may
// not be, and such a pattern matches nothing (LikeMatch gives nullopt).
inline constexpr size_t kMaxLikeSegmentChars = 16 * 1024;
// The most 64-bit words the Shift-And masks of one piece may take (8 MiB):
// (distinct characters + 1) × ceil(characters / 64). A literal of at most
// kMaxConditionBytes needs at most 3.7 MiB (5,461 distinct 3-byte characters).
inline constexpr size_t kMaxLikeMaskWords = size_t{1} << 20;

class LikePattern {
 public:
  // nullopt when `pattern` ends with an unescaped \, or when a piece with _
  // between two % is longer than kMaxLikeSegmentChars characters or its
  // masks would take more than kMaxLikeMaskWords.
  static std::optional<LikePattern> Compile(std::string_view pattern, bool fold_ascii_case);

  // Whether `text` matches. Allocates nothing.
  bool Matches(std::string_view text) const;

  // One piece of the pattern between two % (or an end). Public for the
  // implementation's helpers; not part of the contract.
  struct Segment {
    static constexpr uint32_t kAny = 0xFFFFFFFF;  // a _ in `chars`
    std::string bytes;                            // a literal piece: its bytes, unescaped (folded)
    bool literal = true;                          // no _ and no stray byte: searched as bytes
    bool kmp = false;                             // literal, folded, with letters: searched by KMP
    std::vector<uint32_t> chars;                  // the characters' keys (kAny for _)
    std::vector<uint32_t> fail;                   // KMP failure function over `bytes`
    // Shift-And, for a piece with _ between two %: `words` words per mask,
    // one mask per distinct character, then the mask of _ alone (last).
    size_t words = 0;
    std::vector<uint64_t> masks;
    std::vector<int32_t> ascii;                        // mask index per ASCII key, -1: none
    std::vector<std::pair<uint32_t, uint32_t>> other;  // sorted (key, mask index)
  };

 private:
  LikePattern() = default;
  bool MatchAt(const Segment& s, std::string_view text, size_t pos, size_t* end) const;
  bool Find(const Segment& s, std::string_view text, size_t pos, size_t* end) const;
  bool MatchEnd(const Segment& s, std::string_view text, size_t pos) const;

  std::vector<Segment> segments_;  // split at %: one more than there are %
  bool fold_ = false;
};

// Compiles and matches once: nullopt when Compile refuses the pattern.
// Allocates; a condition compiles its literal patterns once instead.
std::optional<bool> LikeMatch(std::string_view text, std::string_view pattern,
                              bool fold_ascii_case);

// The length of the UTF-8 character at s[i] (REQUIRES: i < s.size()): that
// of a lead byte followed by enough continuation bytes, else 1.
size_t LikeCharLength(std::string_view s, size_t i);

// True when `pattern` ends with an unescaped \ (a pattern LIKE refuses).
bool PatternEndsWithEscape(std::string_view pattern);

}  // namespace walhook
