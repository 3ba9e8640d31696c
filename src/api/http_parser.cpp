#include "walhook/http_parser.h"

#include <algorithm>

#include <fmt/format.h>

#include "walhook/json.h"
#include "walhook/utf8.h"

namespace walhook {
namespace {

// A chunk-size line ("1a2b;name=value") or a trailer line.
constexpr size_t kMaxChunkLine = 4096;

char Lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

// RFC 9110 §5.6.2 tchar.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the comma-separated list `value` holds `token` (case-insensitive).
bool ListHas(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (EqualsNoCase(Trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsNoCase(k, name)) return v;
  }
  return {};
}

size_t HttpRequest::HeaderCount(std::string_view name) const {
  size_t n = 0;
  for (const auto& [k, v] : headers) n += EqualsNoCase(k, name) ? 1 : 0;
  return n;
}

std::string HttpErrorJson(std::string_view message) {
  std::string text;
  ReplaceInvalidUtf8(message, &text);
  JsonBuffer b;
  JsonWriter w(b);
  w.StartObject();
  w.Key("error");
  w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  w.EndObject();
  return std::string(b.GetString(), b.GetSize());
}

HttpResponse HttpError(int status, std::string_view message) {
  return {status, HttpErrorJson(message), "application/json"};
}

HttpRequestParser::HttpRequestParser(HttpLimits limits) : limits_(limits) {}

void HttpRequestParser::Reset() {
  state_ = State::kHead;
  request_ = HttpRequest();
  head_.clear();
  head_.shrink_to_fit();
  scanned_ = 0;
  started_ = false;
  body_mode_ = BodyMode::kNone;
  content_length_ = 0;
  expects_continue_ = false;
  chunk_state_ = ChunkState::kSize;
  chunk_left_ = 0;
  line_.clear();
  trailer_bytes_ = 0;
  error_status_ = 0;
  error_message_.clear();
}

void HttpRequestParser::Fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_message_ = std::move(message);
}

size_t HttpRequestParser::Feed(std::string_view data) {
  switch (state_) {
    case State::kHead: return FeedHead(data);
    case State::kBody: return FeedBody(data);
    default: return 0;
  }
}

size_t HttpRequestParser::FeedHead(std::string_view data) {
  size_t i = 0;
  // Empty lines before a request line are ignored (RFC 9112 §2.2).
  if (head_.empty()) {
    while (i < data.size() && (data[i] == '\r' || data[i] == '\n')) ++i;
  }
  if (i < data.size()) started_ = true;
  for (; i < data.size(); ++i) {
    if (head_.size() >= limits_.max_head_bytes) {
      Fail(431,
           fmt::format("the request line and headers are over {} bytes", limits_.max_head_bytes));
      return i;
    }
    const char c = data[i];
    head_.push_back(c);
    if (c != '\n') continue;
    // The end of the head: an empty line ("\n\n" or "\n\r\n").
    const size_t n = head_.size();
    if ((n >= 2 && head_[n - 2] == '\n') ||
        (n >= 3 && head_[n - 2] == '\r' && head_[n - 3] == '\n')) {
      ParseHead();
      return i + 1;
    }
  }
  return data.size();
}

void HttpRequestParser::ParseHead() {
  std::vector<std::string_view> lines;
  std::string_view rest = head_;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return Fail(400, "no request line");
  if (lines.size() - 1 > limits_.max_headers) {
    return Fail(431, fmt::format("more than {} headers", limits_.max_headers));
  }

  // METHOD SP target SP HTTP/1.x
  const std::string_view line = lines[0];
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(400, "the request line is not METHOD TARGET HTTP/1.x");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Fail(400, "the method is not a token");
  if (target.empty()) return Fail(400, "no request target");
  for (const char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return Fail(400, "the request target holds a control character");
    }
  }
  if (version == "HTTP/1.1") {
    request_.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    request_.minor_version = 0;
  } else {
    return Fail(400, "not HTTP/1.0 or HTTP/1.1");
  }
  request_.method = method;
  request_.target = target;
  request_.path = target.substr(0, target.find('?'));

  for (size_t k = 1; k < lines.size(); ++k) {
    const std::string_view h = lines[k];
    if (h.front() == ' ' || h.front() == '\t') return Fail(400, "a folded header line");
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos || !IsToken(h.substr(0, colon))) {
      return Fail(400, "a header line is not NAME: VALUE");
    }
    const std::string_view value = Trim(h.substr(colon + 1));
    for (const char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        return Fail(400, "a header value holds a control character");
      }
    }
    request_.headers.emplace_back(h.substr(0, colon), value);
  }

  const std::string_view connection = request_.Header("Connection");
  request_.keep_alive = request_.minor_version == 1 ? !ListHas(connection, "close")
                                                    : ListHas(connection, "keep-alive");

  const bool chunked = request_.HeaderCount("Transfer-Encoding") > 0;
  const size_t lengths = request_.HeaderCount("Content-Length");
  if (chunked && lengths > 0) {
    return Fail(400, "both Transfer-Encoding and Content-Length");
  }
  if (chunked) {
    if (request_.HeaderCount("Transfer-Encoding") != 1 ||
        !EqualsNoCase(request_.Header("Transfer-Encoding"), "chunked")) {
      return Fail(400, "Transfer-Encoding other than chunked is not supported");
    }
    if (request_.minor_version == 0) return Fail(400, "Transfer-Encoding in HTTP/1.0");
    body_mode_ = BodyMode::kChunked;
  } else if (lengths > 0) {
    std::string_view first;
    for (const auto& [k, v] : request_.headers) {
      if (!EqualsNoCase(k, "Content-Length")) continue;
      if (first.empty()) first = v;
      if (v != first) return Fail(400, "Content-Length given twice with different values");
    }
    if (first.empty() || first.size() > 18) return Fail(400, "Content-Length is not a number");
    uint64_t n = 0;
    for (const char c : first) {
      if (c < '0' || c > '9') return Fail(400, "Content-Length is not a number");
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (n > limits_.max_body_bytes) {
      return Fail(413, fmt::format("the body is over {} bytes", limits_.max_body_bytes));
    }
    content_length_ = n;
    body_mode_ = n > 0 ? BodyMode::kLength : BodyMode::kNone;
  }
  expects_continue_ = request_.minor_version == 1 && body_mode_ != BodyMode::kNone &&
                      EqualsNoCase(request_.Header("Expect"), "100-continue");
  state_ = State::kHeadDone;
}

void HttpRequestParser::ReadBody() {
  if (state_ != State::kHeadDone) return;
  if (body_mode_ == BodyMode::kNone) {
    state_ = State::kDone;
    return;
  }
  if (body_mode_ == BodyMode::kLength) request_.body.reserve(content_length_);
  state_ = State::kBody;
}

bool HttpRequestParser::TakeLine(std::string_view data, size_t* used, std::string* line) {
  const size_t nl = data.find('\n');
  const size_t take = nl == std::string_view::npos ? data.size() : nl + 1;
  if (line_.size() + take > kMaxChunkLine) {
    *used = take;
    Fail(400, "a chunked body's line is too long");
    return false;
  }
  line_.append(data.substr(0, take));
  *used = take;
  if (nl == std::string_view::npos) return false;
  line_.pop_back();  // '\n'
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  *line = std::move(line_);
  line_.clear();
  return true;
}

size_t HttpRequestParser::FeedBody(std::string_view data) {
  size_t i = 0;
  if (body_mode_ == BodyMode::kLength) {
    const size_t take = static_cast<size_t>(
        std::min<uint64_t>(content_length_ - request_.body.size(), data.size()));
    request_.body.append(data.substr(0, take));
    if (request_.body.size() == content_length_) state_ = State::kDone;
    return take;
  }
  while (i < data.size() && state_ == State::kBody) {
    const std::string_view rest = data.substr(i);
    if (chunk_state_ == ChunkState::kData) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_left_, rest.size()));
      request_.body.append(rest.substr(0, take));
      chunk_left_ -= take;
      i += take;
      if (chunk_left_ == 0) chunk_state_ = ChunkState::kDataEnd;
      continue;
    }
    size_t used = 0;
    std::string line;
    const bool whole = TakeLine(rest, &used, &line);
    i += used;
    if (!whole) continue;  // more to come, or failed
    ChunkLine(line);
  }
  return i;
}

void HttpRequestParser::ChunkLine(std::string_view line) {
  switch (chunk_state_) {
    case ChunkState::kSize: {
      const std::string_view size = Trim(line.substr(0, line.find(';')));
      if (size.empty()) return Fail(400, "a chunk size is not hexadecimal");
      uint64_t n = 0;
      for (const char c : size) {
        int d;
        if (c >= '0' && c <= '9') {
          d = c - '0';
        } else if (Lower(c) >= 'a' && Lower(c) <= 'f') {
          d = Lower(c) - 'a' + 10;
        } else {
          return Fail(400, "a chunk size is not hexadecimal");
        }
        // Past the limit already: no need to read more digits (or overflow).
        if (n > limits_.max_body_bytes) break;
        n = n * 16 + static_cast<uint64_t>(d);
      }
      if (n == 0) {
        chunk_state_ = ChunkState::kTrailer;
      } else if (n > limits_.max_body_bytes - request_.body.size()) {
        Fail(413, fmt::format("the body is over {} bytes", limits_.max_body_bytes));
      } else {
        chunk_left_ = n;
        chunk_state_ = ChunkState::kData;
      }
      return;
    }
    case ChunkState::kDataEnd:
      if (!line.empty()) return Fail(400, "a chunk is longer than its size");
      chunk_state_ = ChunkState::kSize;
      return;
    case ChunkState::kTrailer:
      if (line.empty()) {
        state_ = State::kDone;
        return;
      }
      trailer_bytes_ += line.size() + 2;
      if (head_.size() + trailer_bytes_ > limits_.max_head_bytes) {
        Fail(431, fmt::format("the request line, headers and trailers are over {} bytes",
                              limits_.max_head_bytes));
      }
      return;
    case ChunkState::kData: return;  // data is not read by lines
  }
}

HttpRequest HttpRequestParser::TakeRequest() {
  HttpRequest out = std::move(request_);
  Reset();
  return out;
}

}  // namespace walhook
