#pragma once
// Real wal2json format-version 2 output (include-lsn, include-xids, include-pk,
// include-timestamp) for t(id bigint primary key, n numeric, j jsonb, a text[],
// b boolean[], f bool, big text) and np(x int) without a key. Shared by the
// decoder and payload tests.

#include <array>
#include <string_view>

namespace walhook::samples {

inline constexpr std::string_view kBegin =
    R"({"action":"B","xid":726,"timestamp":"2026-11-28 04:06:36.900285+00","lsn":"0/1546F70","nextlsn":"0/1546FA0"})";
inline constexpr std::string_view kInsert =
    R"({"action":"I","xid":726,"timestamp":"2026-11-28 04:06:36.900285+00","lsn":"0/1546E10","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":9007199254740993},{"name":"n","type":"numeric","value":12.50},{"name":"j","type":"jsonb","value":"{\"a\": [1, 2.0]}"},{"name":"a","type":"text[]","value":"{a,\"b c\",NULL}"},{"name":"b","type":"boolean[]","value":"{t,f}"},{"name":"f","type":"boolean","value":true},{"name":"big","type":"text","value":"x"}],"pk":[{"name":"id","type":"bigint"}]})";
inline constexpr std::string_view kCommit =
    R"({"action":"C","xid":726,"timestamp":"2026-11-28 04:06:36.900285+00","lsn":"0/1546F70","nextlsn":"0/1546FA0"})";
inline constexpr std::string_view kUpdate =
    R"({"action":"U","xid":727,"timestamp":"2026-11-28 04:06:36.982254+00","lsn":"0/1546FA0","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":9007199254740993},{"name":"n","type":"numeric","value":12.50},{"name":"j","type":"jsonb","value":"{\"a\": [1, 2.0]}"},{"name":"a","type":"text[]","value":"{a,\"b c\",NULL}"},{"name":"b","type":"boolean[]","value":"{t,f}"},{"name":"f","type":"boolean","value":false},{"name":"big","type":"text","value":"x"}],"identity":[{"name":"id","type":"bigint","value":9007199254740993}],"pk":[{"name":"id","type":"bigint"}]})";
inline constexpr std::string_view kMessage =
    R"({"action":"M","xid":727,"timestamp":"2026-11-28 04:06:36.982254+00","lsn":"0/15470B8","transactional":true,"prefix":"walhook.eventing","content":"{\"x\":1}"})";
inline constexpr std::string_view kDelete =
    R"({"action":"D","xid":727,"timestamp":"2026-11-28 04:06:36.982254+00","lsn":"0/15470B8","schema":"public","table":"t","identity":[{"name":"id","type":"bigint","value":9007199254740993}],"pk":[{"name":"id","type":"bigint"}]})";
inline constexpr std::string_view kInsertNoPk =
    R"({"action":"I","xid":727,"timestamp":"2026-11-28 04:06:36.982254+00","lsn":"0/1547100","schema":"public","table":"np","columns":[{"name":"x","type":"integer","value":1}],"pk":[]})";
inline constexpr std::string_view kTruncate =
    R"({"action":"T","xid":727,"timestamp":"2026-11-28 04:06:36.982254+00","lsn":"0/15473F8","schema":"public","table":"np"})";
inline constexpr std::string_view kHeartbeat =
    R"({"action":"M","xid":null,"timestamp":null,"lsn":"0/15474D8","transactional":false,"prefix":"hb","content":""})";

inline constexpr std::array<std::string_view, 9> kAll = {
    kBegin, kInsert, kCommit, kUpdate, kMessage, kDelete, kInsertNoPk, kTruncate, kHeartbeat,
};

}  // namespace walhook::samples
