#include "walhook/event_batch.h"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

namespace walhook {
namespace {

// Reads a one-dimensional Postgres array literal back as array_in would, for
// the quoting this module produces: quoted elements with \" and \\, and bare
// elements (NULL is SQL null, reported as nullopt).
std::vector<std::optional<std::string>> ParseLiteral(std::string_view lit) {
  std::vector<std::optional<std::string>> out;
  REQUIRE(lit.size() >= 2);
  REQUIRE(lit.front() == '{');
  REQUIRE(lit.back() == '}');
  size_t i = 1;
  const size_t end = lit.size() - 1;
  if (i == end) return out;
  while (true) {
    REQUIRE(i < end);
    if (lit[i] == '"') {
      std::string value;
      ++i;
      while (true) {
        REQUIRE(i < end);
        if (lit[i] == '\\') {
          ++i;
          REQUIRE(i < end);
          value.push_back(lit[i++]);
        } else if (lit[i] == '"') {
          ++i;
          break;
        } else {
          value.push_back(lit[i++]);
        }
      }
      out.emplace_back(std::move(value));
    } else {
      const size_t start = i;
      while (i < end && lit[i] != ',') {
        // A bare element must not need quoting.
        REQUIRE(lit[i] != '"');
        REQUIRE(lit[i] != '{');
        REQUIRE(lit[i] != '}');
        REQUIRE(lit[i] != '\\');
        ++i;
      }
      const std::string bare(lit.substr(start, i - start));
      if (bare == "NULL") {
        out.emplace_back(std::nullopt);
      } else {
        out.emplace_back(bare);
      }
    }
    if (i == end) break;
    REQUIRE(lit[i] == ',');
    ++i;
  }
  return out;
}

// Reads a COPY text row back as COPY FROM would, for the escapes
// AppendCopyField produces (\\, \n, \r, \t) and \N (SQL null, nullopt).
std::vector<std::optional<std::string>> ParseCopyRow(std::string_view row) {
  std::vector<std::optional<std::string>> out;
  std::string field;
  bool null = false;
  for (size_t i = 0; i <= row.size(); ++i) {
    if (i == row.size() || row[i] == '\t') {
      out.push_back(null ? std::nullopt : std::optional<std::string>(field));
      field.clear();
      null = false;
      continue;
    }
    REQUIRE(row[i] != '\n');
    REQUIRE(row[i] != '\r');
    if (row[i] != '\\') {
      field.push_back(row[i]);
      continue;
    }
    REQUIRE(i + 1 < row.size());
    const char c = row[++i];
    if (c == 'N') {
      REQUIRE(field.empty());
      null = true;
    } else if (c == 'n') {
      field.push_back('\n');
    } else if (c == 'r') {
      field.push_back('\r');
    } else if (c == 't') {
      field.push_back('\t');
    } else {
      REQUIRE(c == '\\');
      field.push_back('\\');
    }
  }
  return out;
}

TEST_CASE("EventBatch: empty") {
  EventBatch b;
  CHECK(b.empty());
  CHECK(b.size() == 0);
  for (const std::string& lit : {b.triggers(), b.types(), b.statuses(), b.payloads(),
                                 b.timestamps(), b.lsns(), b.seqs(), b.remarks()}) {
    CHECK(lit == "{}");
  }
}

TEST_CASE("EventBatch: one event") {
  EventBatch b;
  b.Add("orders_ins", "DB_INSERT", R"({"db":"d","doc":{"id":1}})", "2026-11-28 04:06:36.9+00",
        *Lsn::Parse("0/1546F70"), 1);
  CHECK_FALSE(b.empty());
  CHECK(b.size() == 1);
  CHECK(b.triggers() == R"({"orders_ins"})");
  CHECK(b.types() == R"({"DB_INSERT"})");
  CHECK(b.statuses() == R"({"staged"})");
  CHECK(b.payloads() == R"({"{\"db\":\"d\",\"doc\":{\"id\":1}}"})");
  CHECK(b.timestamps() == R"({"2026-11-28 04:06:36.9+00"})");
  CHECK(b.lsns() == "{0/1546F70}");
  CHECK(b.seqs() == "{1}");
  CHECK(b.remarks() == "{NULL}");
  CHECK(b.bytes() == b.payloads().size() - 1);  // the open literal, without "}"
}

TEST_CASE("EventBatch: several events line up") {
  EventBatch b;
  b.Add("a", "DB_INSERT", "{}", "ts1", Lsn(0x10), 1);
  b.Add("b", "DB_UPDATE", "[]", "ts2", Lsn((uint64_t{2} << 32) | 0xAB), 2);
  b.Add("c", "CUSTOM", "null", "ts3", Lsn(0), -3);
  CHECK(b.size() == 3);
  CHECK(b.triggers() == R"({"a","b","c"})");
  CHECK(b.types() == R"({"DB_INSERT","DB_UPDATE","CUSTOM"})");
  CHECK(b.statuses() == R"({"staged","staged","staged"})");
  CHECK(b.payloads() == R"({"{}","[]","null"})");
  CHECK(b.timestamps() == R"({"ts1","ts2","ts3"})");
  CHECK(b.lsns() == "{0/10,2/AB,0/0}");
  CHECK(b.seqs() == "{1,2,-3}");
  CHECK(b.remarks() == "{NULL,NULL,NULL}");
  // Every column has one element per event.
  for (const std::string& lit : {b.triggers(), b.types(), b.statuses(), b.payloads(),
                                 b.timestamps(), b.lsns(), b.seqs(), b.remarks()}) {
    CAPTURE(lit);
    CHECK(ParseLiteral(lit).size() == 3);
  }
}

TEST_CASE("AppendArrayElement escapes what array_in would misread") {
  const std::vector<std::string> values = {
      "plain",
      "with \"quotes\"",
      "back\\slash",
      "trailing backslash \\",
      "a,b",
      "{braces}",
      "}",
      "{",
      "line\nbreak\r\n",
      "tab\there",
      " leading and trailing spaces ",
      "",
      "NULL",
      "null",
      "\"",
      "\\\"",
      "caf\xC3\xA9 \xF0\x9F\x98\x80",
      R"({"k":"v \"q\" \\ ,{}"})",
  };
  std::string lit = "{";
  for (const std::string& v : values) AppendArrayElement(&lit, v);
  lit.push_back('}');
  const auto back = ParseLiteral(lit);
  REQUIRE(back.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    CAPTURE(values[i]);
    REQUIRE(back[i].has_value());  // quoted "NULL" is the string, not SQL null
    CHECK(*back[i] == values[i]);
  }
  SUBCASE("the exact text") {
    std::string one = "{";
    AppendArrayElement(&one, "a\"b\\c,d{e}\nf");
    CHECK(one == "{\"a\\\"b\\\\c,d{e}\nf\"");
    AppendArrayElement(&one, "");
    CHECK(one == "{\"a\\\"b\\\\c,d{e}\nf\",\"\"");
  }
}

TEST_CASE("EventBatch: payload and names with special characters round-trip") {
  EventBatch b;
  const std::string payload = R"({"doc":{"s":"a,b {c} \"d\" \\e","n":null},"nl":"x)"
                              "\n"
                              R"("})";
  b.Add("trig\"name", "TYPE,WITH{}", payload, "2026-11-28 04:06:36+00", Lsn(1), 1);
  b.Add("t2", "DB_DELETE", "\\", "ts", Lsn(2), 2);
  const auto triggers = ParseLiteral(b.triggers());
  const auto types = ParseLiteral(b.types());
  const auto payloads = ParseLiteral(b.payloads());
  REQUIRE(triggers.size() == 2);
  REQUIRE(payloads.size() == 2);
  CHECK(*triggers[0] == "trig\"name");
  CHECK(*types[0] == "TYPE,WITH{}");
  CHECK(*payloads[0] == payload);
  CHECK(*payloads[1] == "\\");
}

TEST_CASE("EventBatch: a payload over kMaxEventBytes is stored failed") {
  EventBatch b;
  b.Add("small", "DB_INSERT", "{}", "ts", Lsn(1), 1);
  const std::string big(kMaxEventBytes + 1, 'x');
  b.Add("big", "DB_INSERT", big, "ts", Lsn(1), 2);
  CHECK(b.size() == 2);
  CHECK(b.statuses() == R"({"staged","failed"})");
  CHECK(b.payloads() == R"({"{}","null"})");
  CHECK(b.bytes() < 100);  // the big payload is not kept
  const auto remarks = ParseLiteral(b.remarks());
  REQUIRE(remarks.size() == 2);
  CHECK_FALSE(remarks[0].has_value());
  REQUIRE(remarks[1].has_value());
  CHECK(remarks[1]->find(std::to_string(kMaxEventBytes + 1)) != std::string::npos);
  CHECK(remarks[1]->find("8 MiB") != std::string::npos);
  // The other columns still line up.
  CHECK(ParseLiteral(b.triggers()).size() == 2);
  CHECK(b.seqs() == "{1,2}");
  CHECK(b.lsns() == "{0/1,0/1}");

  SUBCASE("exactly kMaxEventBytes is still sent") {
    EventBatch edge;
    const std::string limit(kMaxEventBytes, 'y');
    edge.Add("edge", "DB_INSERT", limit, "ts", Lsn(1), 1);
    CHECK(edge.statuses() == R"({"staged"})");
    CHECK(edge.remarks() == "{NULL}");
    CHECK(edge.bytes() == kMaxEventBytes + 3);  // "{" and the two quotes
  }
}

TEST_CASE("EventBatch: Clear resets everything") {
  EventBatch b;
  for (int i = 0; i < 10; ++i) {
    b.Add("t", "DB_INSERT", "{\"i\":" + std::to_string(i) + "}", "ts", Lsn(i + 1), i);
  }
  b.Add("big", "DB_INSERT", std::string(kMaxEventBytes + 1, 'z'), "ts", Lsn(99), 99);
  CHECK(b.size() == 11);
  b.Clear();
  CHECK(b.empty());
  CHECK(b.size() == 0);
  CHECK(b.bytes() == 1);
  for (const std::string& lit : {b.triggers(), b.types(), b.statuses(), b.payloads(),
                                 b.timestamps(), b.lsns(), b.seqs(), b.remarks()}) {
    CHECK(lit == "{}");
  }
  SUBCASE("and it is usable again, without a stray separator") {
    b.Add("again", "DB_DELETE", "{}", "ts", Lsn(5), 1);
    CHECK(b.triggers() == R"({"again"})");
    CHECK(b.lsns() == "{0/5}");
    CHECK(b.seqs() == "{1}");
    CHECK(b.remarks() == "{NULL}");
  }
  SUBCASE("the literals can be read many times") {
    b.Add("x", "DB_DELETE", "{}", "ts", Lsn(5), 1);
    CHECK(b.triggers() == b.triggers());
    CHECK(b.size() == 1);
  }
}

TEST_CASE("EventBatch: owned events are kept for the handoff and ordered ones flagged") {
  EventBatch b;
  b.Add("mine", "DB_INSERT", R"({"a":1})", "ts", Lsn(10), 1, Handoff::kOwned);
  b.Add("keyed", "DB_UPDATE", R"({"b":2})", "ts", Lsn(10), 2, Handoff::kOrdered);
  b.Add("later", "DB_DELETE", R"({"c":3})", "ts", Lsn(10), 3);
  // Too large to send: stored failed, so never handed over in memory.
  b.Add("mine", "DB_INSERT", std::string(kMaxEventBytes + 1, 'z'), "ts", Lsn(11), 1,
        Handoff::kOwned);
  CHECK(b.owned_flags() == "{t,f,f,f}");
  CHECK(b.ordered_flags() == "{f,t,f,f}");
  CHECK(b.has_ordered());
  REQUIRE(b.owned().size() == 1);
  CHECK(b.owned()[0].trigger == "mine");
  CHECK(b.owned()[0].type == "DB_INSERT");
  CHECK(b.owned()[0].payload == R"({"a":1})");
  CHECK(b.owned()[0].lsn == Lsn(10));
  CHECK(b.owned()[0].seq == 1);
  b.Clear();
  CHECK(b.owned().empty());
  CHECK_FALSE(b.has_ordered());
  CHECK(b.owned_flags() == "{}");
  CHECK(b.ordered_flags() == "{}");
}

TEST_CASE("EventBatch: parked events are leased at insert but not kept in memory") {
  EventBatch b;
  b.Add("mine", "DB_INSERT", R"({"a":1})", "ts", Lsn(10), 1, Handoff::kOwned);
  b.Add("mine", "DB_INSERT", R"({"a":2})", "ts", Lsn(10), 2, Handoff::kParked);
  b.Add("mine", "DB_INSERT", R"({"a":3})", "ts", Lsn(10), 3);
  CHECK(b.owned_flags() == "{t,t,f}");
  CHECK(b.owned().size() == 1);
  CHECK(b.parked() == 1);
  // Too large to send: stored failed and not leased, but the reservation
  // made for it is still counted, so it is given back.
  b.Add("mine", "DB_INSERT", std::string(kMaxEventBytes + 1, 'z'), "ts", Lsn(11), 1,
        Handoff::kParked);
  CHECK(b.owned_flags() == "{t,t,f,f}");
  CHECK(b.parked() == 2);
  b.Clear();
  CHECK(b.parked() == 0);
}

TEST_CASE("AppendCopyField escapes what COPY's text format would misread") {
  const std::vector<std::string> values = {
      "plain",
      "tab\there",
      "line\nbreak\r\n",
      "back\\slash",
      "trailing \\",
      "\\N",
      "\\.",
      "",
      "NULL",
      "caf\xC3\xA9 \xF0\x9F\x98\x80",
      R"({"k":"v \"q\" \\ ,{}"})",
  };
  std::string row;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) row.push_back('\t');
    AppendCopyField(&row, values[i]);
  }
  const auto back = ParseCopyRow(row);
  REQUIRE(back.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    CAPTURE(values[i]);
    REQUIRE(back[i].has_value());  // the text "\N" is the text, not SQL null
    CHECK(*back[i] == values[i]);
  }
  std::string exact;
  AppendCopyField(&exact, "a\tb\\c\nd\re");
  CHECK(exact == "a\\tb\\\\c\\nd\\re");
}

TEST_CASE("EventBatch: COPY rows hold the same events as the literals") {
  EventBatch b;
  const std::string odd = "{\"s\":\"tab\\there\\nand \\\\ back\"}\t\n";
  b.Add("mine", "DB_INSERT", R"({"a":1})", "2026-11-28 04:06:36.900285+00", Lsn(0x10), 1,
        Handoff::kOwned);
  b.Add("odd\tname", "DB_UPDATE", odd, "2026-11-28 04:06:36.900285+00", Lsn(0x10), 2);
  b.Add("mine", "DB_DELETE", "{}", "2026-11-28 04:06:37.0005+00", Lsn((uint64_t{2} << 32) | 0xAB),
        1, Handoff::kParked);
  b.Add("big", "DB_INSERT", std::string(kMaxEventBytes + 1, 'z'), "2026-11-28 04:06:37+00",
        Lsn(0x20), 1, Handoff::kOwned);
  REQUIRE(b.copyable());
  const std::vector<std::vector<std::optional<std::string>>> want = {
      {"mine", "DB_INSERT", "staged", R"({"a":1})", "2026-11-28 04:06:36.900285+00",
       "2026-11-28 04:06:36.900285+00", "0/10", "1", std::nullopt},
      {"odd\tname", "DB_UPDATE", "staged", odd, "2026-11-28 04:06:36.900285+00",
       "2026-11-28 04:06:36.900285+00", "0/10", "2", std::nullopt},
      {"mine", "DB_DELETE", "staged", "{}", "2026-11-28 04:06:37.0005+00",
       "2026-11-28 04:06:37.0005+00", "2/AB", "1", std::nullopt},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    const auto row = ParseCopyRow(b.copy_row(i));
    REQUIRE(row.size() == std::size(kCopyColumns));
    CHECK(row == want[i]);
  }
  // The payload too large to send: failed, with the literals' remark.
  const auto big = ParseCopyRow(b.copy_row(3));
  REQUIRE(big.size() == std::size(kCopyColumns));
  CHECK(big[2] == "failed");
  CHECK(big[3] == "null");
  CHECK(big[8] == ParseLiteral(b.remarks())[3]);
  CHECK(b.bytes() < 200);
  // The leased ones (owned and parked), with their due times.
  REQUIRE(b.leased().size() == 2);
  CHECK(b.leased()[0].row == 0);
  CHECK(b.leased()[0].stored.trigger == "mine");
  CHECK(b.leased()[0].stored.lsn == Lsn(0x10));
  CHECK(b.leased()[0].stored.seq == 1);
  CHECK(b.leased()[0].stored.ts_ms == 1795838796900);
  CHECK(b.leased()[1].row == 2);
  CHECK(b.leased()[1].stored.lsn == Lsn((uint64_t{2} << 32) | 0xAB));
  CHECK(b.leased()[1].stored.ts_ms == 1795838797001);
  b.Clear();
  CHECK(b.copyable());
  CHECK(b.leased().empty());
  b.Add("again", "DB_INSERT", "{}", "2026-11-28 04:06:36+00", Lsn(5), 1);
  CHECK(ParseCopyRow(b.copy_row(0))[0] == "again");
}

TEST_CASE("EventBatch: what COPY cannot write makes the batch an INSERT's") {
  const std::string ts = "2026-11-28 04:06:36+00";
  SUBCASE("an event for an ordered trigger (its order key is computed in SQL)") {
    EventBatch b;
    b.Add("a", "DB_INSERT", "{}", ts, Lsn(1), 1, Handoff::kOwned);
    b.Add("keyed", "DB_INSERT", R"({"find":{"id":1}})", ts, Lsn(1), 2, Handoff::kOrdered);
    CHECK_FALSE(b.copyable());
    CHECK(b.leased().empty());
    b.Add("a", "DB_INSERT", "{}", ts, Lsn(2), 1);
    CHECK_FALSE(b.copyable());
  }
  SUBCASE("an event due later than its commit") {
    EventBatch b;
    Schedule later;
    later.delay_ms = 1000;
    b.Add("a", "CUSTOM", "{}", ts, Lsn(1), 1, Handoff::kSweep, later);
    CHECK_FALSE(b.copyable());
  }
  SUBCASE("a leased event whose commit time does not read") {
    EventBatch b;
    b.Add("a", "DB_INSERT", "{}", "ts", Lsn(1), 1);  // not leased: not read
    CHECK(b.copyable());
    b.Add("a", "DB_INSERT", "{}", "ts", Lsn(1), 2, Handoff::kParked);
    CHECK_FALSE(b.copyable());
  }
  SUBCASE("a batch moved from and cleared reads commit times afresh") {
    EventBatch b;
    b.Add("a", "DB_INSERT", "{}", ts, Lsn(1), 1, Handoff::kOwned);
    EventBatch taken = std::move(b);
    b.Clear();
    b.Add("a", "DB_INSERT", "{}", "", Lsn(2), 1, Handoff::kOwned);
    CHECK_FALSE(b.copyable());
    CHECK(taken.leased().size() == 1);
  }
  SUBCASE("Clear makes it copyable again") {
    EventBatch b;
    b.Add("keyed", "DB_INSERT", "{}", ts, Lsn(1), 1, Handoff::kOrdered);
    b.Clear();
    CHECK(b.copyable());
  }
}

}  // namespace
}  // namespace walhook

namespace walhook {
namespace {

TEST_CASE("EventBatch: every slice is the batch of those events, and Event names each") {
  using Adder = std::function<void(EventBatch&)>;
  const std::vector<Adder> adders = {
      [](EventBatch& b) {
        b.Add("a", "DB_INSERT", R"({"a":"x,\"y\"}\\"})", "ts 1", Lsn(10), 1, Handoff::kOwned);
      },
      [](EventBatch& b) { b.Add("b", "DB_UPDATE", "[]", "ts2", Lsn(11), 2, Handoff::kOrdered); },
      [](EventBatch& b) { b.Add("c\"q\\", "CUSTOM", "null", "ts3", Lsn(12), 3, Handoff::kParked); },
      [](EventBatch& b) {
        b.Add("d", "CUSTOM", "{}", "ts4", Lsn(13), 4, Handoff::kSweep, Schedule{5, 99});
      },
      [](EventBatch& b) { b.AddFailed("e", "DB_DELETE", "ts5", Lsn(14), -5, "why, \"so\" {}"); },
      [](EventBatch& b) {
        b.Add("f", "DB_INSERT", "{\"n\":6}", "ts6", Lsn(15), 6, Handoff::kOwned);
      },
  };
  EventBatch all;
  for (const Adder& add : adders) add(all);
  CHECK(all.statuses() == R"({"staged","staged","staged","staged","failed","staged"})");
  CHECK(all.remarks() == R"({NULL,NULL,NULL,NULL,"why, \"so\" {}",NULL})");
  const EventBatch::EventRef c = all.Event(2);
  CHECK(c.trigger == "c\"q\\");
  CHECK(c.type == "CUSTOM");
  CHECK(c.commit_ts == "ts3");
  CHECK(c.lsn == Lsn(12));
  CHECK(c.seq == 3);
  CHECK(all.Event(4).seq == -5);
  for (size_t begin = 0; begin < adders.size(); ++begin) {
    for (size_t end = begin + 1; end <= adders.size(); ++end) {
      CAPTURE(begin);
      CAPTURE(end);
      EventBatch want;
      for (size_t k = begin; k < end; ++k) adders[k](want);
      const EventBatch got = all.Slice(begin, end);
      CHECK(got.size() == want.size());
      CHECK(got.first_lsn() == want.first_lsn());
      CHECK_FALSE(got.copyable());
      for (auto literal : {&EventBatch::triggers, &EventBatch::types, &EventBatch::statuses,
                           &EventBatch::payloads, &EventBatch::timestamps, &EventBatch::lsns,
                           &EventBatch::seqs, &EventBatch::remarks, &EventBatch::owned_flags,
                           &EventBatch::ordered_flags, &EventBatch::delays, &EventBatch::ats}) {
        CHECK((got.*literal)() == (want.*literal)());
      }
      CHECK(got.owned().size() == want.owned().size());
      for (size_t i = 0; i < got.owned().size() && i < want.owned().size(); ++i) {
        CHECK(got.owned()[i].payload == want.owned()[i].payload);
        CHECK(got.owned()[i].seq == want.owned()[i].seq);
      }
      CHECK(got.parked() == want.parked());
      CHECK(got.has_ordered() == want.has_ordered());
      CHECK(got.has_scheduled() == want.has_scheduled());
      // A slice of a slice too (the bisection halves again).
      if (end - begin >= 2) {
        const size_t mid = (end - begin) / 2;
        EventBatch half;
        for (size_t k = begin + mid; k < end; ++k) adders[k](half);
        CHECK(got.Slice(mid, end - begin).payloads() == half.payloads());
        CHECK(got.Slice(mid, end - begin).triggers() == half.triggers());
        CHECK(got.Slice(0, mid).Event(0).trigger == all.Event(begin).trigger);
      }
    }
  }
}

}  // namespace
}  // namespace walhook
