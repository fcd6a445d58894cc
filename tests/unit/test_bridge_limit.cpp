// The bridge's limiter calls (tronch_bridge_limit.cpp): headers by family, and the lease state
// carried through the plain C struct unchanged.
#define BOOST_TEST_MODULE bridge_limit
#include <boost/test/unit_test.hpp>
#include <string>

#include "tronch_bridge.h"

namespace {

tronch_limit_t limit_of(int64_t rate, int64_t burst) {
    tronch_limit_t l{};
    l.rate = rate;
    l.period_us = 1'000'000;
    l.burst = burst;
    return l;
}

std::string text(const char* p, size_t n) { return std::string(p, n); }

}  // namespace

BOOST_AUTO_TEST_CASE(headers_by_family) {
    const tronch_limit_t l = limit_of(10, 5);
    tronch_decision_t d{};
    d.allowed = 1;
    d.remaining = 7;
    d.reset_after_us = 1'500'000;
    tronch_limit_headers_t all{}, draft{}, legacy{}, none{};
    tronch_bridge_limit_headers_of(&l, &d, TRONCH_HEADERS_DRAFT | TRONCH_HEADERS_LEGACY, &all);
    tronch_bridge_limit_headers_of(&l, &d, TRONCH_HEADERS_DRAFT, &draft);
    tronch_bridge_limit_headers_of(&l, &d, TRONCH_HEADERS_LEGACY, &legacy);
    tronch_bridge_limit_headers_of(&l, &d, 0, &none);
    // the same values as the all-in-one call
    tronch_limit_headers_t old{};
    tronch_bridge_limit_headers(&l, &d, &old);
    BOOST_TEST(text(all.policy, all.policy_len) == text(old.policy, old.policy_len));
    BOOST_TEST(text(all.ratelimit, all.ratelimit_len) == text(old.ratelimit, old.ratelimit_len));
    BOOST_TEST(text(all.remaining, all.remaining_len) == "7");
    BOOST_TEST(text(all.reset, all.reset_len) == "2");
    BOOST_TEST(text(all.limit, all.limit_len) == "15");
    BOOST_TEST(all.retry_after_len == 0u);   // allowed: nothing formatted for Retry-After
    BOOST_TEST(draft.policy_len > 0u);
    BOOST_TEST(draft.limit_len + draft.remaining_len + draft.reset_len == 0u);
    BOOST_TEST(legacy.policy_len + legacy.ratelimit_len == 0u);
    BOOST_TEST(legacy.limit_len > 0u);
    BOOST_TEST(none.policy_len + none.ratelimit_len + none.limit_len + none.remaining_len + none.reset_len == 0u);
    // a refusal gets Retry-After whatever the families
    d.allowed = 0;
    d.remaining = 0;
    d.retry_after_us = 2'100'000;
    tronch_bridge_limit_headers_of(&l, &d, 0, &none);
    BOOST_TEST(text(none.retry_after, none.retry_after_len) == "3");
}

BOOST_AUTO_TEST_CASE(lease_state_goes_through_the_c_struct) {
    tronch_lease_t s{};
    tronch_lease_take_t t{};
    const int64_t now = 1'700'000'000'000'000;
    tronch_bridge_lease_take(&s, now, 10, &t);
    BOOST_TEST(t.action == TRONCH_LEASE_ASK);
    BOOST_TEST(t.ask == 1);
    BOOST_TEST(s.asking == 1);
    tronch_lease_grant_t g{};
    g.granted = 1;
    g.remaining = 4;
    g.reset_after_us = 100;
    g.interval_us = 100;
    tronch_bridge_lease_granted(&s, now + 10, 1, 1, &g, 2);
    BOOST_TEST(s.asking == 0);
    BOOST_TEST(s.tokens == 0);
    BOOST_TEST(s.remaining == 4);
    g.granted = 3;
    tronch_bridge_lease_granted(&s, now + 20, 3, 0, &g, 2);
    BOOST_TEST(s.tokens == 3);
    tronch_bridge_lease_take(&s, now + 30, 10, &t);
    BOOST_TEST(t.action == TRONCH_LEASE_ADMIT);
    BOOST_TEST(s.tokens == 2);
    const tronch_limit_t fast = limit_of(1000, 100);
    BOOST_TEST(tronch_bridge_lease_cap(&fast, 4, 50) == 12);
    char sha[41];
    BOOST_TEST(tronch_bridge_lease_script_sha1(sha) == 0);
    BOOST_TEST(std::string(sha).size() == 40u);
    size_t len = 0;
    BOOST_TEST(std::string(tronch_bridge_lease_script(&len)).find("granted") != std::string::npos);
}
