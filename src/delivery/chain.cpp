#include "walhook/chain.h"

#include <cstdio>
#include <limits>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "walhook/json.h"
#include "walhook/queued_event.h"
#include "walhook/timestamp.h"
#include "walhook/webhook_request.h"

namespace walhook {
namespace {

std::string ToJson(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return std::string(b.GetString(), b.GetSize());
}

// The text of the first member `key` (written without escapes) of an object.
std::optional<std::string_view> RawMember(std::string_view obj, std::string_view key) {
  for (const RawJsonEntry& m : RawJsonMembers(obj)) {
    if (m.key.substr(1, m.key.size() - 2) == key) return m.value;
  }
  return std::nullopt;
}

// One entry of "event"/"events" (`raw`: its text, when found); an error
// says what is wrong with it.
std::optional<std::string> ParseEntry(const rapidjson::Value& v,
                                      std::optional<std::string_view> raw, ChainedEvent* out) {
  if (!v.IsObject()) return "not an object";
  const auto type = v.FindMember("type");
  if (type == v.MemberEnd() || !type->value.IsString()) return "no \"type\"";
  out->type.assign(type->value.GetString(), type->value.GetStringLength());
  if (!IsCustomEventType(out->type)) {
    return fmt::format("type \"{}\" is not a custom event type", out->type.substr(0, 64));
  }
  const auto payload = v.FindMember("payload");
  if (payload == v.MemberEnd()) {
    out->payload = "null";
  } else if (const auto text = raw ? RawMember(*raw, "payload") : std::nullopt) {
    out->payload.assign(*text);
  } else {
    out->payload = ToJson(payload->value);  // a key written with escapes
  }
  const auto delay = v.FindMember("delay");
  if (delay != v.MemberEnd() && !delay->value.IsNull()) {
    if (!delay->value.IsNumber()) return "\"delay\" is not a number of milliseconds";
    const double d = delay->value.GetDouble();
    if (d < 0) return "\"delay\" is negative";
    if (!(d <= static_cast<double>(kMaxDelayMs))) {
      return fmt::format("\"delay\" is over {} ms (100 years)", kMaxDelayMs);
    }
    out->delay_ms = static_cast<int64_t>(d);
  }
  const auto ts = v.FindMember("timestamp");
  if (ts != v.MemberEnd() && !ts->value.IsNull()) {
    if (ts->value.IsString()) {
      out->at_ms =
          ParseRfc3339Ms(std::string_view(ts->value.GetString(), ts->value.GetStringLength()));
      if (!out->at_ms) return "\"timestamp\" is not an RFC 3339 time (or not a real date)";
      if (*out->at_ms < kMinTimestampMs || *out->at_ms > kMaxTimestampMs) {
        return "\"timestamp\" is out of range (years 0001 to 9999)";
      }
    } else if (ts->value.IsNumber()) {
      const double t = ts->value.GetDouble();
      if (!(t >= 0 && t <= static_cast<double>(kMaxTimestampMs))) {
        return fmt::format("\"timestamp\" is out of range (epoch ms from 0 to {})",
                           kMaxTimestampMs);
      }
      out->at_ms = static_cast<int64_t>(t);
    } else {
      return "\"timestamp\" is neither an RFC 3339 time nor epoch milliseconds";
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string_view> RawJsonMember(std::string_view object, std::string_view key) {
  // Checked, not parsed: RawMember only scans text known to be valid JSON.
  if (!CheckJson(object).ok()) return std::nullopt;
  return RawMember(object, key);
}

Result<QueueRequest> ParseQueueRequest(std::string_view body) {
  rapidjson::Document doc;
  if (Status st = ParseJson(body, &doc); !st.ok()) {
    return Status::Error(fmt::format("the body is {}", st.message()));
  }
  if (!doc.IsObject()) return Status::Error("the body is not a JSON object");
  QueueRequest out;
  if (const auto error = ParseEntry(doc, body, &out.event)) return Status::Error(*error);
  const auto options = doc.FindMember("options");
  if (options != doc.MemberEnd() && !options->value.IsNull() && !options->value.IsObject()) {
    return Status::Error("\"options\" is not an object");
  }
  const auto sync = doc.FindMember("isSynchronous");
  if (sync != doc.MemberEnd() && !sync->value.IsNull()) {
    if (!sync->value.IsBool()) return Status::Error("\"isSynchronous\" is not a boolean");
    out.synchronous = sync->value.GetBool();
  }
  return out;
}

ResponseEvents ParseResponseEvents(std::string_view body) {
  rapidjson::Document doc;
  if (const Status st = ParseJson(body, &doc); !st.ok()) {
    ResponseEvents out;
    // Text that is not JSON asks for nothing; JSON walhook will not read
    // (invalid UTF-8, nested too deep) says so.
    if (st.message().rfind("not JSON", 0) != 0) {
      out.refused = fmt::format("the response was not read for events: {}", st.message());
    }
    return out;
  }
  return ResponseEventsOf(doc, body);
}

ResponseEvents ResponseEventsOf(const rapidjson::Value& doc, std::string_view body) {
  ResponseEvents out;
  if (!doc.IsObject()) return out;
  std::vector<const rapidjson::Value*> entries;
  std::vector<std::optional<std::string_view>> raws;
  const auto one = doc.FindMember("event");
  if (one != doc.MemberEnd() && !one->value.IsNull()) {
    entries.push_back(&one->value);
    raws.push_back(RawMember(body, "event"));
  }
  const auto many = doc.FindMember("events");
  if (many != doc.MemberEnd() && !many->value.IsNull()) {
    if (!many->value.IsArray()) {
      out.refused = "\"events\" in the response is not an array";
    } else {
      const auto raw = RawMember(body, "events");
      std::vector<std::string_view> elements;
      if (raw) elements = RawJsonElements(*raw);
      const bool aligned = elements.size() == many->value.Size();
      for (rapidjson::SizeType i = 0; i < many->value.Size(); ++i) {
        entries.push_back(&many->value[i]);
        raws.push_back(aligned ? std::optional<std::string_view>(elements[i]) : std::nullopt);
      }
    }
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    ChainedEvent e;
    if (const auto error = ParseEntry(*entries[i], raws[i], &e)) {
      if (!out.refused.empty()) out.refused += "; ";
      out.refused += fmt::format("response event {} refused: {}", i + 1, *error);
      continue;
    }
    out.events.push_back(std::move(e));
  }
  return out;
}

std::string DlqPayload(int64_t event_id, std::string_view type, std::string_view data,
                       int64_t ts_ms, std::string_view trigger) {
  // A stored payload, however deep: checked without a DOM (and without
  // recursion), embedded as it is.
  const bool valid = !data.empty() && CheckJson(data, std::numeric_limits<int>::max()).ok();
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  w.StartObject();
  w.Key("event_id");
  const std::string id = std::to_string(event_id);
  w.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
  w.Key("event_type");
  w.String(type.data(), static_cast<rapidjson::SizeType>(type.size()));
  w.Key("event_payload");
  if (valid) {
    // The stored text as it is: every digit kept.
    w.RawValue(data.data(), data.size(), rapidjson::kObjectType);
  } else {
    w.Null();
  }
  w.Key("event_timestamp");
  const std::string ts = FormatRfc3339Millis(ts_ms);
  w.String(ts.data(), static_cast<rapidjson::SizeType>(ts.size()));
  w.Key("event_name");
  w.String(trigger.data(), static_cast<rapidjson::SizeType>(trigger.size()));
  w.EndObject();
  return std::string(b.GetString(), b.GetSize());
}

}  // namespace walhook
