#include "walhook/webhook_request.h"
#include "walhook/utf8.h"

#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <jwt/jwt.hpp>

namespace walhook {
namespace {

TEST_CASE("webhook: the CloudEvents body") {
  const std::string body =
      BuildCloudEvent(42, "DB_UPDATE", "node-1", 1795860000123, R"({"doc":{"n":12.50}})");
  CHECK(body == R"({"specversion":"1.0","id":"42","type":"DB_UPDATE","source":"node-1",)"
                R"("time":"2026-11-28T10:00:00.123Z","data":{"doc":{"n":12.50}}})");
  rapidjson::Document d;
  d.Parse(body.c_str());
  CHECK_FALSE(d.HasParseError());
  CHECK(FormatRfc3339Millis(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339Millis(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(BuildCloudEvent(1, "t\"x", "s", 0, "null").find(R"("type":"t\"x")") != std::string::npos);
}

TEST_CASE("webhook: Standard Webhooks signature matches the specification's example") {
  // The example published with the Standard Webhooks libraries.
  const auto sig =
      SignStandardWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                          1614265330, R"({"test": 2432232314})");
  REQUIRE(sig.ok());
  CHECK(*sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // The prefix is optional; another body, id or time changes the signature.
  CHECK(*SignStandardWebhook("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                             1614265330, R"({"test": 2432232314})") == *sig);
  CHECK(*SignStandardWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                             "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331,
                             R"({"test": 2432232314})") != *sig);
  CHECK_FALSE(SignStandardWebhook("whsec_", "id", 1, "{}").ok());
  CHECK_FALSE(SignStandardWebhook("whsec_not base64!", "id", 1, "{}").ok());
}

TEST_CASE("webhook: one signer signs each message as a fresh one would") {
  auto signer = WebhookSigner::Make("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  REQUIRE(signer.ok());
  // Nothing of one message stays for the next: the example again after
  // others, long and empty bodies among them.
  const std::string example = R"({"test": 2432232314})";
  const std::string long_body(100000, 'x');
  for (int round = 0; round < 3; ++round) {
    CHECK(*signer->Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, example) ==
          "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    CHECK(*signer->Sign("42", 7, long_body) ==
          *SignStandardWebhook("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "42", 7, long_body));
    CHECK(*signer->Sign("", 0, "") ==
          *SignStandardWebhook("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "", 0, ""));
  }
  CHECK(WebhookSigner::Make("whsec_").error() == "the signing secret is not base64 after whsec_");
}

TEST_CASE("webhook: X-SC-Token is signed once and verifies with the project secret only") {
  TokenSigner signer("project-secret", "node-7");
  const std::string first = signer.Header(1000000);
  REQUIRE(first.rfind("Bearer ", 0) == 0);
  const std::string token = first.substr(7);
  // Reused while far from expiry, renewed near it.
  CHECK(&signer.Header(1000000 + 60) == &signer.Header(1000000 + 61));
  CHECK(signer.Header(1000000 + 60) == first);
  CHECK(signer.Header(1000000 + TokenSigner::kLifetimeS - TokenSigner::kRenewBeforeS) != first);

  std::error_code ec;
  auto decoded = jwt::decode(jwt::string_view(token), jwt::params::algorithms({"HS256"}), ec,
                             jwt::params::secret("project-secret"), jwt::params::verify(false));
  REQUIRE_FALSE(ec);
  const auto& claims = decoded.payload();
  CHECK(claims.get_claim_value<std::string>("id") == "node-7");
  CHECK(claims.get_claim_value<std::string>("role") == "SpaceCloud");
  CHECK(claims.get_claim_value<int64_t>("iat") == 1000000);
  CHECK(claims.get_claim_value<int64_t>("exp") == 1000000 + 1800);

  TokenSigner fresh("project-secret", "node-7");
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  const std::string live = fresh.Header(now).substr(7);
  CHECK(VerifyToken(live, "project-secret", now).ok());
  CHECK_FALSE(VerifyToken(live, "another-secret", now).ok());
  CHECK_FALSE(VerifyToken(live, "project-secret", now + 1801).ok());
  CHECK_FALSE(VerifyToken("", "project-secret", now).ok());
  CHECK_FALSE(VerifyToken("not.a.jwt", "project-secret", now).ok());
  const Status st = VerifyToken(live + "x", "project-secret", now);
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find(live) == std::string::npos);
}

TEST_CASE("webhook: the verdict on a response (Space Cloud's rules)") {
  CHECK(JudgeResponse(200, "", "").outcome == Outcome::kSuccess);
  CHECK(JudgeResponse(204, "", "").outcome == Outcome::kSuccess);
  CHECK(JudgeResponse(200, "not json", "").outcome == Outcome::kSuccess);
  CHECK(JudgeResponse(200, R"({"ok":true})", "").outcome == Outcome::kSuccess);
  CHECK(JudgeResponse(200, R"({"error":null})", "").outcome == Outcome::kSuccess);
  CHECK(JudgeResponse(200, R"({"error":""})", "").outcome == Outcome::kSuccess);
  const Verdict e = JudgeResponse(200, R"({"error":"quota exceeded"})", "");
  CHECK(e.outcome == Outcome::kRetry);
  CHECK(e.reason.find("quota exceeded") != std::string::npos);
  CHECK(JudgeResponse(200, R"({"error":{"code":7}})", "").outcome == Outcome::kRetry);
  CHECK(JudgeResponse(200, R"({"error":false})", "").outcome == Outcome::kRetry);
  CHECK(JudgeResponse(500, "", "").outcome == Outcome::kRetry);
  CHECK(JudgeResponse(404, "", "").outcome == Outcome::kRetry);
  CHECK(JudgeResponse(302, "", "").reason.find("redirect") != std::string::npos);
  CHECK(JudgeResponse(302, "", "").outcome == Outcome::kRetry);
  CHECK(JudgeResponse(410, "", "").outcome == Outcome::kFailNow);
  const Verdict none = JudgeResponse(0, "", "Connection refused");
  CHECK(none.outcome == Outcome::kRetry);
  CHECK(none.reason.find("Connection refused") != std::string::npos);
}

TEST_CASE("webhook: a response body is judged whole, up to 1 MiB, and read safely (SPEC §9)") {
  // An "error" past the first 64 KiB is honoured (it used to be cut off).
  const std::string big = R"({"pad": ")" + std::string(200 << 10, 'x') + R"(", "error": "late"})";
  const Verdict late = JudgeResponse(200, big, "");
  CHECK(late.outcome == Outcome::kRetry);
  CHECK(late.reason.find("late") != std::string::npos);
  // Near the limit too.
  const std::string near =
      R"({"pad": ")" + std::string(kMaxResponseBody - 64, 'x') + R"(", "error": "e"})";
  REQUIRE(near.size() <= kMaxResponseBody);
  CHECK(JudgeResponse(200, near, "").outcome == Outcome::kRetry);
  // A body that went on past 1 MiB: a success (the webhook took the event)
  // that says it was not read.
  const Verdict cut = JudgeResponse(200, near, "", /*body_cut=*/true);
  CHECK(cut.outcome == Outcome::kSuccess);
  CHECK(cut.unread.find("over 1024 KiB") != std::string::npos);
  CHECK(JudgeResponse(500, near, "", true).outcome == Outcome::kRetry);
  // Invalid UTF-8 and nesting too deep: read no further, said.
  const Verdict utf8 = JudgeResponse(200, "{\"error\": \"\xff\"}", "");
  CHECK(utf8.outcome == Outcome::kSuccess);
  CHECK(utf8.unread.find("invalid UTF-8") != std::string::npos);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const Verdict nested = JudgeResponse(200, deep, "");
  CHECK(nested.outcome == Outcome::kSuccess);
  CHECK(nested.unread.find("nested deeper") != std::string::npos);
  // Text that is not JSON at all: a plain success, nothing to say.
  CHECK(JudgeResponse(200, "caf\xe9 ok", "").unread.empty());
  CHECK(JudgeResponse(200, "<html>ok</html>", "").unread.empty());
  // The error text is cut on a character boundary.
  std::string long_error = R"({"error": ")";
  for (int i = 0; i < 400; ++i) long_error += "\xc3\xa9";  // é
  long_error += R"("})";
  const Verdict e = JudgeResponse(200, long_error, "");
  CHECK(e.outcome == Outcome::kRetry);
  CHECK(IsValidUtf8(e.reason));
  // The parsed body is handed back for the events it asks for.
  rapidjson::Document doc;
  JudgeResponse(200, R"({"event": {"type": "A"}})", "", false, &doc);
  CHECK(doc.IsObject());
  JudgeResponse(200, "\xff", "", false, &doc);
  CHECK(doc.IsNull());
}

}  // namespace
}  // namespace walhook

namespace walhook {
namespace {

TEST_CASE("webhook: the receiving side verifies signatures and tokens") {
  const std::string key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::string body = R"({"test": 2432232314})";
  const std::string good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  const std::string id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
  CHECK(VerifyStandardWebhook(key, id, "1614265330", body, good).ok());
  CHECK(VerifyStandardWebhook(key, id, "1614265330", body, "v1,bad= " + good).ok());
  CHECK_FALSE(VerifyStandardWebhook(key, id, "1614265330", body + " ", good).ok());
  CHECK_FALSE(VerifyStandardWebhook(key, id, "1614265331", body, good).ok());
  CHECK_FALSE(VerifyStandardWebhook(key, id, "soon", body, good).ok());
  CHECK_FALSE(VerifyStandardWebhook(key, id, "1614265330", body, "").ok());

  // cpp-jwt also checks exp against the wall clock: use it.
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  TokenSigner signer("project", "node");
  const std::string event = R"({"specversion":"1.0","id":"42","type":"DB_INSERT","source":"node",)"
                            R"("time":"t","data":{"db":"d","schema":"public","col":"signups"}})";
  ReceivedRequest r;
  const std::string header = signer.Header(now);
  r.token_header = header;
  r.body = event;
  const std::string line = DescribeDelivery(r, "project", "", now);
  CHECK(line.find("DB_INSERT id=42 public.signups token=ok signature=unchecked") == 0);
  CHECK(DescribeDelivery(r, "other", "", now).find("token=BAD") != std::string::npos);
  CHECK(DescribeDelivery(r, "", "", now).find("token=unchecked") != std::string::npos);
  const auto sig = SignStandardWebhook(key, "42", now, event);
  r.webhook_id = "42";
  const std::string ts = std::to_string(now);
  r.webhook_timestamp = ts;
  r.webhook_signature = *sig;
  CHECK(DescribeDelivery(r, "project", key, now).find("signature=ok") != std::string::npos);
  r.body = "not json";
  CHECK(DescribeDelivery(r, "project", key, now).find("signature=BAD") != std::string::npos);
  CHECK(DescribeDelivery(r, "project", key, now).find("? id=?") == 0);

  // walhook token's JWT verifies with the project secret.
  CHECK(VerifyToken(SignProjectToken("project", now, 3600), "project", now).ok());
  CHECK_FALSE(VerifyToken(SignProjectToken("project", now, 3600), "project", now + 3600).ok());
}

}  // namespace
}  // namespace walhook
