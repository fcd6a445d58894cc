#define BOOST_TEST_MODULE rate_limit
#include <boost/test/unit_test.hpp>
#include <string>

#include "tronch/rate_limit.hpp"

using tronch::GcraLimit;

namespace {
GcraLimit parse_ok(std::string_view text) {
    GcraLimit l;
    std::string err;
    BOOST_TEST_REQUIRE(tronch::parse_limit_spec(text, l, err), text << ": " << err);
    return l;
}
std::string parse_err(std::string_view text) {
    GcraLimit l;
    std::string err;
    BOOST_TEST_REQUIRE(!tronch::parse_limit_spec(text, l, err), text);
    BOOST_TEST(!err.empty());
    return err;
}
std::string str(std::size_t n, const char* b) { return std::string(b, n); }
}  // namespace

BOOST_AUTO_TEST_CASE(parses_units_and_burst) {
    GcraLimit l = parse_ok("rate=100r/s burst=20");
    BOOST_TEST(l.rate == 100);
    BOOST_TEST(l.period_us == 1'000'000);
    BOOST_TEST(l.burst == 20);
    l = parse_ok("rate=10r/m");
    BOOST_TEST(l.rate == 10);
    BOOST_TEST(l.period_us == 60'000'000);
    BOOST_TEST(l.burst == 0);
    l = parse_ok("  burst=0   rate=5r/h ");
    BOOST_TEST(l.period_us == 3600'000'000LL);
    l = parse_ok("rate=600r/m");
    BOOST_TEST(l.rate == 600);
    BOOST_TEST(l.period_us == 60'000'000);
}

BOOST_AUTO_TEST_CASE(unit_as_its_own_word) {
    GcraLimit l = parse_ok("rate=100 r/s burst=5");
    BOOST_TEST(l.rate == 100);
    BOOST_TEST(l.period_us == 1'000'000);
    BOOST_TEST(l.burst == 5);
    l = parse_ok("rate=10 r/m");
    BOOST_TEST(l.period_us == 60'000'000);
    BOOST_TEST(parse_err("rate=10 r/d").find("r/s") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(out_of_range_names_the_range) {
    std::string err = parse_err("rate=1r/h burst=9000000000");
    BOOST_TEST(err.find("out of range") != std::string::npos, err);
    BOOST_TEST(err.find("142 years") != std::string::npos, err);
}

BOOST_AUTO_TEST_CASE(refuses_bad_values) {
    BOOST_TEST(parse_err("burst=3").find("rate") != std::string::npos);
    BOOST_TEST(parse_err("rate=0r/s").find("rate") != std::string::npos);
    BOOST_TEST(parse_err("rate=10r/d").find("r/s") != std::string::npos);
    BOOST_TEST(parse_err("rate=x r/s").size() > 0);
    BOOST_TEST(parse_err("rate=10r/s burst=-1").find("burst") != std::string::npos);
    BOOST_TEST(parse_err("rate=10r/s foo=1").find("foo") != std::string::npos);
    BOOST_TEST(parse_err("rate=10r/s rate=5r/s").find("twice") != std::string::npos);
    BOOST_TEST(parse_err("").size() > 0);
}

BOOST_AUTO_TEST_CASE(headers_from_decisions) {
    GcraLimit l = parse_ok("rate=10r/s burst=5");  // T = 100 ms, capacity 15
    char buf[64];
    BOOST_TEST(str(tronch::format_ratelimit_policy(l, buf, sizeof buf), buf) == "\"default\";q=15;w=2");
    tronch::GcraDecision d = tronch::gcra_check(0, 1'000'000'000, l);
    BOOST_TEST(d.allowed);
    BOOST_TEST(d.remaining == 14);
    BOOST_TEST(str(tronch::format_ratelimit(d, buf, sizeof buf), buf) == "\"default\";r=14;t=1");
    std::int64_t tat = 0;
    for (int i = 0; i < 15; ++i) {
        d = tronch::gcra_check(tat, 1'000'000'000, l);
        BOOST_TEST_REQUIRE(d.allowed);
        tat = d.new_tat_us;
    }
    d = tronch::gcra_check(tat, 1'000'000'000, l);
    BOOST_TEST(!d.allowed);
    BOOST_TEST(d.retry_after_us == 100'000);
    BOOST_TEST(tronch::retry_after_seconds(d) == 1);
    BOOST_TEST(str(tronch::format_ratelimit(d, buf, sizeof buf), buf) == "\"default\";r=0;t=2");
    BOOST_TEST(tronch::format_ratelimit(d, buf, 5) == 0u);  // too small: nothing
    BOOST_TEST(str(tronch::format_integer(-42, buf, sizeof buf), buf) == "-42");
    BOOST_TEST(tronch::policy_window_seconds(parse_ok("rate=100r/m")) == 60);
}

BOOST_AUTO_TEST_CASE(script_mentions_time_and_expiry) {
    BOOST_TEST(tronch::kGcraLuaScript.find("TIME") != std::string_view::npos);
    BOOST_TEST(tronch::kGcraLuaScript.find("PX") != std::string_view::npos);
}
