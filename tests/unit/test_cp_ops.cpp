// Unit tests of issue 21's pure pieces: terminal-safe CLI text, the prefix filter, the failure
// log throttle, secret fingerprints.
#define BOOST_TEST_MODULE tronchd_ops
#include <boost/test/unit_test.hpp>

#include "api_error.hpp"
#include "cli_text.hpp"
#include "idempotency_secrets.hpp"
#include "key_filters.hpp"
#include "log_throttle.hpp"

using namespace tronch::cp;

BOOST_AUTO_TEST_CASE(terminal_safe_escapes_controls_bidi_and_bad_utf8) {
    BOOST_TEST(terminal_safe("plain name, ünïcode ✓") == "plain name, ünïcode ✓");
    BOOST_TEST(terminal_safe("a\x1b[31mred") == "a\\x1b[31mred");
    BOOST_TEST(terminal_safe("tab\there\nnl") == "tab\\x09here\\x0anl");
    BOOST_TEST(terminal_safe("evil\u202Egnp.exe") == "evil\\u{202e}gnp.exe");
    BOOST_TEST(terminal_safe("\u2066x\u2069\u200F\u061C") == "\\u{2066}x\\u{2069}\\u{200f}\\u{061c}");
    BOOST_TEST(terminal_safe("c1\xC2\x85") == "c1\\x85");         // U+0085 (NEL)
    BOOST_TEST(terminal_safe("bad\xFFutf8") == "bad\\xffutf8");
    BOOST_TEST(terminal_safe("\xC0\xAF") == "\\xc0\\xaf");        // overlong '/'
    BOOST_TEST(terminal_safe("cut\xE2\x80") == "cut\\xe2\\x80");  // truncated sequence
    BOOST_TEST(terminal_safe("del\x7f") == "del\\x7f");
}

BOOST_AUTO_TEST_CASE(prefix_filter_is_a_byte_range) {
    auto r = parse_prefix_filter("tronch_sk_live_AbC");
    BOOST_TEST(r.from == "tronch_sk_live_AbC");
    BOOST_TEST(r.to == "tronch_sk_live_AbD");
    BOOST_TEST(parse_prefix_filter("z").to == "{");
    for (const char* bad : {"", "tronch%", "a b", "tronch_sk_live_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"}) {
        BOOST_CHECK_EXCEPTION(parse_prefix_filter(bad), ApiError,
                              [](const ApiError& e) { return e.status == 400 && e.code == ErrorCode::invalid_parameter; });
    }
}

BOOST_AUTO_TEST_CASE(failure_log_counts_and_throttles) {
    FailureLog log("thing", std::chrono::seconds(60));
    auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    for (int i = 0; i < 100; ++i) log.failed("down", t + std::chrono::seconds(i));
    BOOST_TEST(log.failures() == 100);
    log.succeeded();
    BOOST_TEST(log.failures() == 0);
}

BOOST_AUTO_TEST_CASE(secret_kid_names_a_secret_without_revealing_it) {
    std::string a(32, 'a'), b(32, 'b');
    BOOST_TEST(IdempotencySecrets::kid(a).size() == 16u);
    BOOST_TEST(IdempotencySecrets::kid(a) == IdempotencySecrets::kid(a));
    BOOST_TEST(IdempotencySecrets::kid(a) != IdempotencySecrets::kid(b));
    BOOST_TEST(IdempotencySecrets::kid(a).find("61616161") == std::string::npos);
    IdempotencySecrets s(a, "");
    BOOST_CHECK_NO_THROW(s.refuse_if_foreign());   // nothing scanned: nothing foreign
}
