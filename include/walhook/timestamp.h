#pragma once
// Reading times written as text: RFC 3339 (what users send) and Postgres's
// ISO output (what the walsender writes). Pure. Thread-safety: functions.

#include <cstdint>
#include <optional>
#include <string_view>

namespace walhook {

// Parses an RFC 3339 time ("2026-11-28T10:00:00.123Z", "…+02:00") to ms
// since the epoch (digits past the ms dropped); nullopt when it is not one.
std::optional<int64_t> ParseRfc3339Ms(std::string_view text);

// What Postgres's (extract(epoch FROM t) * 1000)::int8 gives for a
// timestamptz text in the ISO style a TimeZone=UTC, DateStyle=ISO session
// writes ("2026-11-28 04:06:36.900285+00"; any offset): the ms since the epoch,
// rounded half away from zero. nullopt for anything else (BC, five-digit years).
std::optional<int64_t> PgTimestampMs(std::string_view text);

}  // namespace walhook
