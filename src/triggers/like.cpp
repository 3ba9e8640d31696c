#include "walhook/like.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace walhook {
namespace {

using Segment = LikePattern::Segment;

constexpr size_t kMaxWords = (kMaxLikeSegmentChars + 63) / 64;

char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool IsAsciiLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// A character's key: a single byte is itself (folded), a sequence its bytes
// packed big-endian. Sequences start with a byte >= 0xC0, so they never
// collide with a single byte, nor reach Segment::kAny (0xFF leads nothing).
uint32_t Key(std::string_view s, size_t i, size_t len, bool fold) {
  if (len == 1) {
    const char c = fold ? LowerAscii(s[i]) : s[i];
    return static_cast<unsigned char>(c);
  }
  uint32_t key = 0;
  for (size_t k = 0; k < 4; ++k) {
    key = (key << 8) | (k < len ? static_cast<unsigned char>(s[i + k]) : 0u);
  }
  return key;
}

bool BytesEqual(const char* a, const char* b, size_t n, bool fold) {
  if (!fold) return std::memcmp(a, b, n) == 0;
  for (size_t i = 0; i < n; ++i) {
    if (LowerAscii(a[i]) != b[i]) return false;  // b is folded already
  }
  return true;
}

// Builds a piece from its items (a byte, or -1 for _).
Segment MakeSegment(const std::vector<int>& items, bool fold, bool middle, bool* too_long) {
  Segment s;
  std::string run;
  auto flush_run = [&] {
    for (size_t i = 0; i < run.size();) {
      const size_t len = LikeCharLength(run, i);
      if (len == 1 && static_cast<unsigned char>(run[i]) >= 0x80) s.literal = false;
      s.chars.push_back(Key(run, i, len, fold));
      i += len;
    }
    s.bytes += run;
    run.clear();
  };
  for (const int item : items) {
    if (item < 0) {
      flush_run();
      s.chars.push_back(Segment::kAny);
      s.literal = false;
    } else {
      run.push_back(fold ? LowerAscii(static_cast<char>(item)) : static_cast<char>(item));
    }
  }
  flush_run();
  if (s.literal) {
    s.kmp = fold && std::any_of(s.bytes.begin(), s.bytes.end(), IsAsciiLetter);
    if (s.kmp) {
      // fail[i]: the longest proper border of bytes[0..i].
      s.fail.assign(s.bytes.size(), 0);
      uint32_t k = 0;
      for (size_t i = 1; i < s.bytes.size(); ++i) {
        while (k > 0 && s.bytes[i] != s.bytes[k]) k = s.fail[k - 1];
        if (s.bytes[i] == s.bytes[k]) ++k;
        s.fail[i] = k;
      }
    }
    return s;
  }
  if (!middle) return s;  // matched in place, character by character
  if (s.chars.size() > kMaxLikeSegmentChars) {
    *too_long = true;
    return s;
  }
  // Shift-And masks: bit j of a character's mask is set when the piece's
  // character j is that character or _.
  const size_t m = s.chars.size();
  s.words = (m + 63) / 64;
  std::vector<uint32_t> keys;
  for (const uint32_t k : s.chars) {
    if (k != Segment::kAny) keys.push_back(k);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if ((keys.size() + 1) * s.words > kMaxLikeMaskWords) {
    *too_long = true;
    return s;
  }
  s.masks.assign((keys.size() + 1) * s.words, 0);
  s.ascii.assign(128, -1);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] < 128) {
      s.ascii[keys[i]] = static_cast<int32_t>(i);
    } else {
      s.other.emplace_back(keys[i], static_cast<uint32_t>(i));
    }
  }
  for (size_t j = 0; j < m; ++j) {
    const uint64_t bit = uint64_t{1} << (j % 64);
    if (s.chars[j] == Segment::kAny) {
      for (size_t i = 0; i <= keys.size(); ++i) s.masks[i * s.words + j / 64] |= bit;
    } else {
      const size_t i = static_cast<size_t>(std::lower_bound(keys.begin(), keys.end(), s.chars[j]) -
                                           keys.begin());
      s.masks[i * s.words + j / 64] |= bit;
    }
  }
  return s;
}

const uint64_t* MaskFor(const Segment& s, uint32_t key) {
  size_t index = s.masks.size() / s.words - 1;  // _ alone
  if (key < 128) {
    if (s.ascii[key] >= 0) index = static_cast<size_t>(s.ascii[key]);
  } else {
    const auto it = std::lower_bound(
        s.other.begin(), s.other.end(), key,
        [](const std::pair<uint32_t, uint32_t>& e, uint32_t k) { return e.first < k; });
    if (it != s.other.end() && it->first == key) index = it->second;
  }
  return &s.masks[index * s.words];
}

}  // namespace

size_t LikeCharLength(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
  }
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}

bool PatternEndsWithEscape(std::string_view pattern) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 == pattern.size()) return true;
      ++i;
    }
  }
  return false;
}

std::optional<LikePattern> LikePattern::Compile(std::string_view pattern, bool fold_ascii_case) {
  if (PatternEndsWithEscape(pattern)) return std::nullopt;
  std::vector<std::vector<int>> pieces(1);
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '%') {
      pieces.emplace_back();
    } else if (c == '_') {
      pieces.back().push_back(-1);
    } else {
      if (c == '\\') ++i;  // exists: checked above
      pieces.back().push_back(static_cast<unsigned char>(pattern[i]));
    }
  }
  LikePattern p;
  p.fold_ = fold_ascii_case;
  p.segments_.reserve(pieces.size());
  bool too_long = false;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const bool middle = i > 0 && i + 1 < pieces.size();
    p.segments_.push_back(MakeSegment(pieces[i], fold_ascii_case, middle, &too_long));
  }
  if (too_long) return std::nullopt;
  return p;
}

// The piece at text[pos…], which is a character boundary: *end is where it
// ends. A literal piece matches its bytes: it starts with a byte that starts
// a character and ends with whole characters, so the text's characters there
// are the piece's.
bool LikePattern::MatchAt(const Segment& s, std::string_view text, size_t pos, size_t* end) const {
  if (s.literal) {
    if (text.size() - pos < s.bytes.size()) return false;
    if (!BytesEqual(text.data() + pos, s.bytes.data(), s.bytes.size(), fold_)) return false;
    *end = pos + s.bytes.size();
    return true;
  }
  for (const uint32_t key : s.chars) {
    if (pos >= text.size()) return false;
    const size_t len = LikeCharLength(text, pos);
    if (key != Segment::kAny && Key(text, pos, len, fold_) != key) return false;
    pos += len;
  }
  *end = pos;
  return true;
}

// The leftmost match of the piece at or after `pos` (a boundary).
bool LikePattern::Find(const Segment& s, std::string_view text, size_t pos, size_t* end) const {
  const size_t n = text.size();
  if (s.literal && !s.kmp) {
    if (s.bytes.empty()) {
      *end = pos;
      return true;
    }
    // glibc's memmem is the two-way algorithm: linear in the worst case.
    const void* hit = ::memmem(text.data() + pos, n - pos, s.bytes.data(), s.bytes.size());
    if (hit == nullptr) return false;
    *end = static_cast<size_t>(static_cast<const char*>(hit) - text.data()) + s.bytes.size();
    return true;
  }
  if (s.kmp) {
    const size_t m = s.bytes.size();
    size_t j = 0;
    for (size_t i = pos; i < n; ++i) {
      const char c = LowerAscii(text[i]);
      while (j > 0 && c != s.bytes[j]) j = s.fail[j - 1];
      if (c == s.bytes[j]) ++j;
      if (j == m) {
        *end = i + 1;
        return true;
      }
    }
    return false;
  }
  // Shift-And over characters: bit j of the state is set when the piece's
  // first j+1 characters end at the character just read. Two buffers, each
  // word computed from the previous state only, so the loop has no chain
  // from word to word (the compiler may vectorize it); element 0 is a
  // sentinel whose top bit carries the 1 that starts a match anywhere. Only
  // the words up to the highest set bit (and the next, which a carry
  // reaches) are computed.
  const size_t m = s.chars.size();
  const size_t words = s.words;
  const uint64_t last_bit = uint64_t{1} << ((m - 1) % 64);
  constexpr uint64_t kStart = uint64_t{1} << 63;
  std::array<uint64_t, kMaxWords + 1> a;
  std::array<uint64_t, kMaxWords + 1> b;
  uint64_t* cur = a.data();
  uint64_t* next = b.data();
  std::fill_n(cur, words + 1, 0);
  std::fill_n(next, words + 1, 0);
  cur[0] = next[0] = kStart;
  size_t active = 0;       // cur[active + 1…] are zero
  size_t cur_written = 0;  // the highest word of each buffer that may be nonzero
  size_t next_written = 0;
  for (size_t t = pos; t < n;) {
    const size_t len = LikeCharLength(text, t);
    const uint64_t* mask = MaskFor(s, Key(text, t, len, fold_)) - 1;  // mask[1…words]
    const size_t limit = std::min(active + 1, words);
    for (size_t w = 1; w <= limit; ++w) {
      next[w] = ((cur[w] << 1) | (cur[w - 1] >> 63)) & mask[w];
    }
    // Past the limit the state is zero: clear what next held there before.
    for (size_t w = limit + 1; w <= next_written; ++w) next[w] = 0;
    next_written = limit;
    std::swap(cur, next);
    std::swap(cur_written, next_written);
    active = limit;
    while (active > 0 && cur[active] == 0) --active;
    t += len;
    if (active == words && (cur[words] & last_bit) != 0) {
      *end = t;
      return true;
    }
  }
  return false;
}

// The piece ending exactly at the end of the text, starting at or after pos.
bool LikePattern::MatchEnd(const Segment& s, std::string_view text, size_t pos) const {
  const size_t n = text.size();
  size_t start = 0;
  if (s.literal) {
    if (n - pos < s.bytes.size()) return false;
    start = n - s.bytes.size();  // a boundary when it matches (see MatchAt)
  } else {
    // The piece has a fixed number of characters: count the text's.
    size_t total = 0;
    for (size_t t = pos; t < n; t += LikeCharLength(text, t)) ++total;
    if (total < s.chars.size()) return false;
    start = pos;
    for (size_t skip = total - s.chars.size(); skip > 0; --skip) {
      start += LikeCharLength(text, start);
    }
  }
  size_t end = 0;
  return MatchAt(s, text, start, &end) && end == n;
}

bool LikePattern::Matches(std::string_view text) const {
  size_t pos = 0;
  if (segments_.size() == 1) return MatchAt(segments_[0], text, 0, &pos) && pos == text.size();
  if (!MatchAt(segments_.front(), text, 0, &pos)) return false;
  for (size_t i = 1; i + 1 < segments_.size(); ++i) {
    if (!Find(segments_[i], text, pos, &pos)) return false;
  }
  return MatchEnd(segments_.back(), text, pos);
}

std::optional<bool> LikeMatch(std::string_view text, std::string_view pattern,
                              bool fold_ascii_case) {
  const std::optional<LikePattern> p = LikePattern::Compile(pattern, fold_ascii_case);
  if (!p) return std::nullopt;
  return p->Matches(text);
}

}  // namespace walhook
