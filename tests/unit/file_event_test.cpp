#include "walhook/file_event.h"

#include <string>

#include <doctest/doctest.h>

namespace walhook {
namespace {

std::string Payload(const FileEvent& e, std::string_view root = "/srv/in") {
  std::string out = "prefix:";
  AppendFilePayload(root, e, &out);
  return out;
}

}  // namespace

TEST_CASE("file events: the data object") {
  FileEvent e;
  e.kind = EventKind::kFileCreate;
  e.path = "/a/b \"c\".txt";
  e.meta = FileMeta{.size = 1234567890123, .mtime_ms = 1795860000123};
  CHECK(Payload(e) == R"(prefix:{"root":"/srv/in","path":"/a/b \"c\".txt","type":"file",)"
                      R"("meta":{"size":1234567890123,"mtime":"2026-11-28T10:00:00.123Z"}})");
  SUBCASE("a directory") {
    e.dir = true;
    e.path = "/a";
    e.meta = FileMeta{.size = 4096, .mtime_ms = 0};
    CHECK(Payload(e, "/") == R"(prefix:{"root":"/","path":"/a","type":"dir",)"
                             R"("meta":{"size":4096,"mtime":"1970-01-01T00:00:00.000Z"}})");
  }
  SUBCASE("names that are not UTF-8 (Linux names are bytes)") {
    e.path = "/caf\xe9/\xff.txt";
    e.meta.reset();
    CHECK(Payload(e, "/srv/\xc3") ==
          "prefix:{\"root\":\"/srv/\xEF\xBF\xBD\",\"path\":\"/caf\xEF\xBF\xBD/\xEF\xBF\xBD.txt\","
          "\"type\":\"file\",\"meta\":{}}");
  }
  SUBCASE("FILE_DELETE, or nothing to stat: meta is {}") {
    e.kind = EventKind::kFileDelete;
    e.meta.reset();
    CHECK(Payload(e) ==
          R"(prefix:{"root":"/srv/in","path":"/a/b \"c\".txt","type":"file","meta":{}})");
  }
}

TEST_CASE("file events: path_prefix is normalized") {
  struct Row {
    const char* in;
    const char* out;
  };
  for (const Row& r :
       {Row{"/", ""}, Row{"/up", "/up"}, Row{"/up/", "/up"}, Row{"//up//a/", "/up/a"},
        Row{"/a.b/..c/...", "/a.b/..c/..."}, Row{"/ü ber", "/ü ber"}}) {
    CAPTURE(r.in);
    const Result<std::string> n = NormalizePathPrefix(r.in);
    REQUIRE(n.ok());
    CHECK(*n == r.out);
  }
  for (const char* bad : {"", "up", "./up", "/up/../etc", "/./up", "/up/."}) {
    CAPTURE(bad);
    const Result<std::string> n = NormalizePathPrefix(bad);
    REQUIRE_FALSE(n.ok());
    CHECK(n.error().find("path_prefix") != std::string::npos);
  }
  CHECK(NormalizePathPrefix("up").error().find("must start with /") != std::string::npos);
  CHECK(NormalizePathPrefix("/a/../b").error().find("\"..\"") != std::string::npos);
}

TEST_CASE("file events: path_prefix matches whole components") {
  CHECK(PathUnderPrefix("/up", "/up"));
  CHECK(PathUnderPrefix("/up/a", "/up"));
  CHECK(PathUnderPrefix("/up/a/b", "/up/a"));
  CHECK_FALSE(PathUnderPrefix("/uploads/a", "/up"));
  CHECK_FALSE(PathUnderPrefix("/u", "/up"));
  CHECK_FALSE(PathUnderPrefix("/up2", "/up"));
  CHECK_FALSE(PathUnderPrefix("/a/up", "/up"));
  CHECK(PathUnderPrefix("/anything", ""));  // "/" normalized
}

TEST_CASE("file events: CheckPayloadTrigger for FILE_* triggers") {
  Trigger t;
  t.name = "uploads";
  t.type = "FILE_CREATE";
  t.kind = EventKind::kFileCreate;
  t.path_prefix = "/uploads/";
  t.condition = "payload.meta.size > 0 AND payload.path LIKE '%.png'";
  CHECK(CheckPayloadTrigger(&t) == "");
  CHECK(*t.path_prefix == "/uploads");
  CHECK(t.parsed_condition != nullptr);

  t.path_prefix = "uploads";
  CHECK(CheckPayloadTrigger(&t).find("must start with /") != std::string::npos);
  CHECK(t.parsed_condition == nullptr);

  t.path_prefix = std::nullopt;
  t.condition = "new.size > 0";
  CHECK(CheckPayloadTrigger(&t).find("payload.path") != std::string::npos);
  t.condition = "payload.size >";
  CHECK_FALSE(CheckPayloadTrigger(&t).empty());
}

}  // namespace walhook
