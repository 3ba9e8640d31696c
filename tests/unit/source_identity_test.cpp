#include "walhook/source_identity.h"

#include <doctest/doctest.h>

namespace walhook {
namespace {

using Action = SourceDecision::Action;

SourceFacts Fresh() {
  SourceFacts f;
  f.slot = "walhook";
  f.current = {"7400000000000000001", 1};
  return f;
}

SourceFacts Streaming() {
  SourceFacts f = Fresh();
  f.recorded = RecordedSource{{"7400000000000000001", 1}, 0, Lsn(0x1600000)};
  f.slot_exists = true;
  f.max_event_epoch = 0;
  f.last_captured = Lsn(0x15F0000);
  return f;
}

TEST_CASE("source identity: a first start records the source, epoch 0") {
  SourceFacts f = Fresh();
  SourceDecision d = DecideSource(f);
  CHECK(d.action == Action::kRecord);
  CHECK(d.epoch == 0);
  // The slot made by a first init, before anything streamed: still fine.
  f.recorded = RecordedSource{f.current, 0, Lsn()};
  CHECK(DecideSource(f).action == Action::kGoOn);
}

TEST_CASE("source identity: the recorded source and its slot go on") {
  SourceDecision d = DecideSource(Streaming());
  CHECK(d.action == Action::kGoOn);
  CHECK(d.epoch == 0);
  SourceFacts later = Streaming();
  later.recorded->epoch = 3;
  CHECK(DecideSource(later).epoch == 3);
}

TEST_CASE("source identity: an upgrade from before identities were recorded") {
  SourceFacts f = Streaming();
  f.recorded.reset();
  SourceDecision d = DecideSource(f);
  CHECK(d.action == Action::kRecord);
  CHECK(d.epoch == 0);    // the events already stored are epoch 0: a replay dedups
  f.slot_exists = false;  // ... but without the slot there is a gap
  d = DecideSource(f);
  CHECK(d.action == Action::kRefuse);
  CHECK(d.message.find("slot is missing") != std::string::npos);
}

TEST_CASE("source identity: what changed is refused with one line saying what and how on") {
  SUBCASE("the slot dropped by hand") {
    SourceFacts f = Streaming();
    f.slot_exists = false;
    SourceDecision d = DecideSource(f);
    REQUIRE(d.action == Action::kRefuse);
    CHECK(d.message.find("slot is missing") != std::string::npos);
    CHECK(d.message.find("0/1600000") != std::string::npos);  // the last LSN
    CHECK(d.message.find("may be missing") != std::string::npos);
    CHECK(d.message.find("--accept-gap") != std::string::npos);
    CHECK(d.message.find('\n') == std::string::npos);
  }
  SUBCASE("another server") {
    SourceFacts f = Streaming();
    f.current.system_identifier = "7400000000000000002";
    SourceDecision d = DecideSource(f);
    REQUIRE(d.action == Action::kRefuse);
    CHECK(d.message.find("another server") != std::string::npos);
    CHECK(d.message.find("7400000000000000002") != std::string::npos);
  }
  SUBCASE("another timeline") {
    SourceFacts f = Streaming();
    f.current.timeline = 2;
    SourceDecision d = DecideSource(f);
    REQUIRE(d.action == Action::kRefuse);
    CHECK(d.message.find("timeline is 2") != std::string::npos);
  }
  SUBCASE("a lost slot") {
    SourceFacts f = Streaming();
    f.slot_lost = true;
    CHECK(DecideSource(f).action == Action::kRefuse);
  }
}

TEST_CASE("source identity: --accept-gap starts an epoch no stored event has") {
  SourceFacts f = Streaming();
  f.current.system_identifier = "7400000000000000002";
  f.accept_gap = true;
  SourceDecision d = DecideSource(f);
  CHECK(d.action == Action::kNewEpoch);
  CHECK(d.epoch == 1);
  f.recorded->epoch = 1;
  f.max_event_epoch = 4;  // events of a later epoch, whatever the record says
  CHECK(DecideSource(f).epoch == 5);
  // Nothing to accept: nothing changes.
  SourceFacts same = Streaming();
  same.accept_gap = true;
  d = DecideSource(same);
  CHECK(d.action == Action::kGoOn);
  CHECK(d.epoch == 0);
  // A gap with nothing recorded (events from before identities, no slot).
  SourceFacts old = Streaming();
  old.recorded.reset();
  old.slot_exists = false;
  old.accept_gap = true;
  d = DecideSource(old);
  CHECK(d.action == Action::kNewEpoch);
  CHECK(d.epoch == 1);
}

}  // namespace
}  // namespace walhook
