#pragma once
// An incremental HTTP/1.1 request parser for walhook's API server (SPEC §9
// "HTTP clients"): bytes in, one request out, every read bounded before
// anything is trusted. Pure (no sockets, no clock): the server feeds it what
// a read gave, in pieces of any size, and asks what it has.
// Thread-safety: one parser per connection, used by one thread at a time.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace walhook {

struct HttpLimits {
  size_t max_head_bytes = 64 * 1024;  // request line and headers, CRLFs included
  size_t max_headers = 100;
  size_t max_body_bytes = 1024 * 1024;  // decoded, whatever the transfer encoding
};

struct HttpRequest {
  std::string method;                                        // as sent ("GET", "POST", …)
  std::string target;                                        // as sent, query string included
  std::string path;                                          // the target up to '?'
  int minor_version = 1;                                     // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;  // in order, values trimmed
  std::string body;                                          // decoded
  bool keep_alive = true;  // HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive

  // The first value of header `name` (case-insensitive); "" when absent.
  std::string_view Header(std::string_view name) const;
  // How many times header `name` was sent.
  size_t HeaderCount(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// {"error": "<message>"}, the message escaped (invalid UTF-8 replaced).
std::string HttpErrorJson(std::string_view message);

// An error answer: `status` with HttpErrorJson(message).
HttpResponse HttpError(int status, std::string_view message);

class HttpRequestParser {
 public:
  enum class State {
    kHead,      // reading the request line and headers
    kHeadDone,  // the head is whole: request() has all but the body; call ReadBody()
    kBody,      // reading the body
    kDone,      // a whole request: take it with TakeRequest()
    kError,     // refused: error_status() and error_message() say why
  };

  explicit HttpRequestParser(HttpLimits limits = {});

  // Consumes bytes of `data` and returns how many. Stops at kHeadDone, kDone
  // and kError (the bytes after a request are the next one's: keep them and
  // feed them after Reset()). In kHeadDone, kDone and kError it consumes
  // nothing.
  size_t Feed(std::string_view data);

  State state() const { return state_; }

  // REQUIRES: state() is kHeadDone. Goes on to the body (or straight to
  // kDone when there is none). The caller may refuse the request instead,
  // having seen its head, without the body ever being read.
  void ReadBody();

  // The request so far (complete in kDone; without the body in kHeadDone).
  const HttpRequest& request() const { return request_; }
  // REQUIRES: state() is kDone. Hands over the request and resets.
  HttpRequest TakeRequest();

  // Whether the client waits for "100 Continue" before it sends the body
  // (Expect: 100-continue, a body to come). Valid from kHeadDone.
  bool expects_continue() const { return expects_continue_; }

  // The body length announced by Content-Length (0 when chunked or none).
  // Valid from kHeadDone.
  uint64_t content_length() const { return content_length_; }

  // For kError: the status to answer (400, 413, 431, 501) and why, one line.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

  // Whether any byte of a request has been consumed since the last reset.
  bool started() const { return started_; }

  // Ready for the next request on the same connection.
  void Reset();

 private:
  enum class BodyMode { kNone, kLength, kChunked };
  enum class ChunkState { kSize, kData, kDataEnd, kTrailer };

  size_t FeedHead(std::string_view data);
  size_t FeedBody(std::string_view data);
  void ParseHead();
  // Acts on one whole line of a chunked body's framing.
  void ChunkLine(std::string_view line);
  void Fail(int status, std::string message);
  // One line of a chunked body's framing, at most kMaxChunkLine bytes;
  // returns false while it is incomplete (then everything was consumed).
  bool TakeLine(std::string_view data, size_t* used, std::string* line);

  HttpLimits limits_;
  State state_ = State::kHead;
  HttpRequest request_;
  std::string head_;    // the head's bytes so far
  size_t scanned_ = 0;  // head_ before this holds no end of head
  bool started_ = false;
  BodyMode body_mode_ = BodyMode::kNone;
  uint64_t content_length_ = 0;
  bool expects_continue_ = false;
  ChunkState chunk_state_ = ChunkState::kSize;
  uint64_t chunk_left_ = 0;
  std::string line_;          // a chunk-size or trailer line being read
  size_t trailer_bytes_ = 0;  // counted against max_head_bytes
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace walhook
