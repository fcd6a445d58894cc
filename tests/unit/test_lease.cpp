#define BOOST_TEST_MODULE lease
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cstdint>
#include <random>
#include <tuple>
#include <vector>

#include "tronch/gcra.hpp"
#include "tronch/lease.hpp"

namespace {

using namespace tronch;

constexpr std::int64_t kSecond = 1'000'000;
constexpr std::int64_t kNow = 1'700'000'000 * kSecond;

GcraLimit make_limit(std::int64_t rate, std::int64_t period_us, std::int64_t burst) {
    GcraLimit limit;
    limit.rate = rate;
    limit.period_us = period_us;
    limit.burst = burst;
    return limit;
}

}  // namespace

BOOST_AUTO_TEST_CASE(lease_of_one_is_gcra_check) {
    // want = 1 answers exactly as gcra_check, at every step of a busy sequence
    const GcraLimit limit = make_limit(5, kSecond, 2);
    std::int64_t tat_a = 0, tat_b = 0;
    for (std::int64_t t : {0, 0, 0, 0, 0, 0, 0, 1, 199'999, 200'000, 200'001, 350'000, 1'000'000, 5'000'000}) {
        GcraDecision d = gcra_check(tat_a, kNow + t, limit);
        LeaseGrant g = gcra_lease(tat_b, kNow + t, limit, 1);
        BOOST_TEST(g.granted == (d.allowed ? 1 : 0));
        BOOST_TEST(g.remaining == d.remaining);
        BOOST_TEST(g.retry_after_us == d.retry_after_us);
        BOOST_TEST(g.reset_after_us == d.reset_after_us);
        BOOST_TEST(g.new_tat_us == d.new_tat_us);
        tat_a = d.new_tat_us;
        tat_b = g.new_tat_us;
    }
}

BOOST_AUTO_TEST_CASE(grant_partial_refusal) {
    const GcraLimit limit = make_limit(1000, kSecond, 100);  // T = 1 ms, C = 1100
    LeaseGrant g = gcra_lease(0, kNow, limit, 50);
    BOOST_TEST(g.granted == 50);
    BOOST_TEST(g.remaining == 1050);
    BOOST_TEST(g.wait_us == 0);
    BOOST_TEST(g.new_tat_us == kNow + 50'000);
    // 1,050 left: ask 2,000 (clamped to the capacity, 1,100), get 1,050
    g = gcra_lease(g.new_tat_us, kNow, limit, 2000);
    BOOST_TEST(g.granted == 1050);
    BOOST_TEST(g.remaining == 0);
    BOOST_TEST(g.new_tat_us == kNow + 1'100'000);
    BOOST_TEST(g.wait_us == 1'100'000);  // until 1,100 fit again: the whole bucket
    // empty: refused, one fits after one interval
    const std::int64_t full = g.new_tat_us;
    g = gcra_lease(full, kNow, limit, 10);
    BOOST_TEST(g.granted == 0);
    BOOST_TEST(g.new_tat_us == full);
    BOOST_TEST(g.retry_after_us == 1000);
    BOOST_TEST(g.wait_us == 10'000);
    // 2.5 intervals later: two fit
    g = gcra_lease(full, kNow + 2500, limit, 10);
    BOOST_TEST(g.granted == 2);
    BOOST_TEST(g.wait_us == 10'000 - 500);
}

BOOST_AUTO_TEST_CASE(burst_never_exceeded_by_random_callers) {
    // Many callers asking random amounts at random moments: the total granted up to any moment
    // never exceeds what GCRA allows (capacity + rate * elapsed), and the TAT never runs more
    // than C * T ahead.
    std::mt19937_64 rng(14);
    for (const GcraLimit& limit : {make_limit(1000, kSecond, 100), make_limit(7, kSecond, 0),
                                   make_limit(60, 60 * kSecond, 5)}) {
        const std::int64_t interval = limit.emission_interval_us();
        const std::int64_t span = limit.capacity() * interval;
        std::int64_t tat = 0, now = kNow, total = 0;
        for (int i = 0; i < 20'000; ++i) {
            now += static_cast<std::int64_t>(rng() % (3 * interval));
            LeaseGrant g = gcra_lease(tat, now, limit, 1 + static_cast<std::int64_t>(rng() % 40));
            tat = g.new_tat_us;
            total += g.granted;
            BOOST_TEST(tat - now <= span);
            BOOST_TEST(g.granted >= 0);
            // allowed from kNow to now: C + (now - kNow) / T requests
            BOOST_TEST(total <= limit.capacity() + (now - kNow) / interval);
        }
        // and the callers got nearly all of it (asking more than the rate)
        BOOST_TEST(total >= limit.capacity() + (now - kNow) / interval - 41);
    }
}

BOOST_AUTO_TEST_CASE(unusable_limit_grants_nothing) {
    LeaseGrant g = gcra_lease(5, kNow, make_limit(0, kSecond, 0), 3);
    BOOST_TEST(g.granted == 0);
    BOOST_TEST(g.new_tat_us == 5);
    // a garbage TAT far ahead refuses
    g = gcra_lease(kNow * 4, kNow, make_limit(10, kSecond, 0), 3);
    BOOST_TEST(g.granted == 0);
}

BOOST_AUTO_TEST_CASE(cap_is_a_share_of_the_burst) {
    const GcraLimit limit = make_limit(1000, kSecond, 100);
    BOOST_TEST(lease_cap(limit, 1, 25) == 25);
    BOOST_TEST(lease_cap(limit, 2, 25) == 12);
    BOOST_TEST(lease_cap(limit, 4, 25) == 6);
    BOOST_TEST(lease_cap(limit, 100, 25) == 1);
    BOOST_TEST(lease_cap(make_limit(1000, kSecond, 0), 1, 25) == 1);  // no burst: exact
    BOOST_TEST(lease_cap(limit, 0, 25) == 1);
}

BOOST_AUTO_TEST_CASE(quiet_key_leases_one_and_holds_nothing) {
    // one request a second: every request asks Redis for exactly 1 (today's exact behaviour)
    LeaseState s;
    for (int i = 0; i < 10; ++i) {
        const std::int64_t now = kNow + i * kSecond;
        LeaseTake t = lease_take(s, now, 25);
        BOOST_TEST((t.action == LeaseAction::Ask));
        BOOST_TEST(t.ask == 1);
        LeaseGrant g;
        g.granted = 1;
        lease_granted(s, now, t.ask, true, g);
        BOOST_TEST(s.tokens == 0);
    }
}

BOOST_AUTO_TEST_CASE(busy_key_grows_to_the_cap_and_renews_early) {
    LeaseState s;
    const std::int64_t cap = 12;
    std::int64_t now = kNow, asks = 0, renewals = 0, admitted = 0, max_held = 0;
    // 1,000 requests a second for 2 s, Redis always grants what is asked, answers at once
    for (int i = 0; i < 2000; ++i, now += 1000) {
        LeaseTake t = lease_take(s, now, cap);
        BOOST_TEST((t.action != LeaseAction::Refuse));
        if (t.action == LeaseAction::Ask) {
            ++asks;
            LeaseGrant g;
            g.granted = t.ask;
            lease_granted(s, now, t.ask, true, g);
        } else if (t.renew > 0) {
            ++renewals;
            BOOST_TEST(t.renew <= cap);
            // a second renewal is not started while this one is in flight
            LeaseState copy = s;
            BOOST_TEST(lease_take(copy, now, cap).renew == 0);
            LeaseGrant g;
            g.granted = t.renew;
            lease_granted(s, now, t.renew, false, g);
        }
        ++admitted;
        max_held = std::max(max_held, s.tokens);
    }
    BOOST_TEST(admitted == 2000);
    BOOST_TEST(max_held <= cap);
    // after the first window the node renews in the background: it asks on the request path
    // only while it learns the rate
    BOOST_TEST(asks <= 110);
    BOOST_TEST(asks + renewals <= 2000 / (cap / 2) + 110);
}

BOOST_AUTO_TEST_CASE(refusal_closes_until_enough_fit) {
    LeaseState s;
    LeaseTake t = lease_take(s, kNow, 10);
    BOOST_TEST((t.action == LeaseAction::Ask));
    LeaseGrant g;
    g.granted = 0;
    g.retry_after_us = 1000;
    g.wait_us = 5000;
    lease_granted(s, kNow, t.ask, true, g);
    t = lease_take(s, kNow + 4999, 10);
    BOOST_TEST((t.action == LeaseAction::Refuse));
    BOOST_TEST(t.retry_after_us == 1);
    t = lease_take(s, kNow + 5000, 10);
    BOOST_TEST((t.action == LeaseAction::Ask));
}

BOOST_AUTO_TEST_CASE(unused_lease_lapses_and_is_counted) {
    LeaseState s;
    LeaseGrant g;
    g.granted = 8;
    lease_granted(s, kNow, 8, false, g);
    BOOST_TEST(s.tokens == 8);
    LeaseTake t = lease_take(s, kNow + kLeaseTtlUs - 1, 10);
    BOOST_TEST((t.action == LeaseAction::Admit));
    BOOST_TEST(s.tokens == 7);
    t = lease_take(s, kNow + kLeaseTtlUs, 10);
    BOOST_TEST((t.action == LeaseAction::Ask));
    BOOST_TEST(s.tokens == 0);
    BOOST_TEST(s.lapsed == 7);
}

BOOST_AUTO_TEST_CASE(failed_renewal_may_start_again) {
    LeaseState s;
    LeaseGrant g;
    g.granted = 3;
    // learn a rate of 10 per window first
    for (int i = 0; i < 10; ++i) (void) lease_take(s, kNow + i, 10);
    s.asking = 0;  // (those asks were answered with nothing)
    s.inflight_until_us = 0;
    s.window_start_us = kNow - kLeaseWindowUs;  // a window later
    lease_granted(s, kNow, 3, false, g);
    LeaseTake t = lease_take(s, kNow + 1, 10);
    BOOST_TEST(t.renew > 0);
    BOOST_TEST(lease_take(s, kNow + 2, 10).renew == 0);  // in flight
    lease_renew_failed(s, t.renew);
    BOOST_TEST(lease_take(s, kNow + 3, 10).renew > 0);
}

BOOST_AUTO_TEST_CASE(at_the_limit_one_ask_at_a_time) {
    LeaseState s;
    // a short answer: the key is at its limit
    LeaseTake t = lease_take(s, kNow, 10);
    BOOST_TEST((t.action == LeaseAction::Ask));
    LeaseGrant g;
    g.granted = 0;
    g.retry_after_us = 1000;
    lease_granted(s, kNow, t.ask, true, g);
    // after the wait, the first request asks; the next ones, before its answer, are refused
    t = lease_take(s, kNow + 1000, 10);
    BOOST_TEST((t.action == LeaseAction::Ask));
    t = lease_take(s, kNow + 1001, 10);
    BOOST_TEST((t.action == LeaseAction::Refuse));
    g.granted = 1;
    g.retry_after_us = 0;
    lease_granted(s, kNow + 1100, 1, true, g);
    // once the key has not been short for a while, concurrent requests ask side by side
    const std::int64_t later = kNow + 1000 + kLeaseWindowUs + 1;
    BOOST_TEST((lease_take(s, later, 10).action == LeaseAction::Ask));
    BOOST_TEST((lease_take(s, later + 1, 10).action == LeaseAction::Ask));
}

BOOST_AUTO_TEST_CASE(quiet_key_concurrent_requests_all_ask) {
    // requests at once on a key far from its limit: none is refused by the node, and together
    // they ask for one lease (each at least for itself)
    LeaseState s;
    s.last_window_count = 2;   // x 5 windows: a lease of 10
    s.window_start_us = kNow;
    LeaseTake a = lease_take(s, kNow, 10);
    LeaseTake b = lease_take(s, kNow + 1, 10);
    LeaseTake c = lease_take(s, kNow + 2, 10);
    BOOST_TEST((a.action == LeaseAction::Ask && b.action == LeaseAction::Ask && c.action == LeaseAction::Ask));
    BOOST_TEST(a.ask == 10);
    BOOST_TEST(b.ask == 1);
    BOOST_TEST(c.ask == 1);
    BOOST_TEST(s.asking == 12);
}

BOOST_AUTO_TEST_CASE(short_batch_waits_for_the_nodes_share) {
    LeaseState s;
    LeaseGrant g;
    g.granted = 2;
    g.wait_us = 6000;   // until 6 more fit
    lease_granted(s, kNow, 6, false, g, 4);
    BOOST_TEST(s.closed_until_us == kNow + 24'000);
    // a single request's short answer waits exactly (the exact policy's answer)
    LeaseState q;
    g.granted = 0;
    g.retry_after_us = 700;
    g.wait_us = 700;
    lease_granted(q, kNow, 1, true, g, 4);
    BOOST_TEST(q.closed_until_us == kNow + 700);
}

namespace {

struct SimResult {
    std::int64_t admitted = 0, asks = 0, max_window_excess = 0;
};

// `active` of `nodes` nodes each get a request every 200 us (5x the limit for 1 node) for 10 s;
// Redis answers after 300 us. The model behind bench/RESULTS.md's "scale on paper".
SimResult simulate(int nodes, int active) {
    const GcraLimit lim = make_limit(1000, kSecond, 100);
    const std::int64_t cap = lease_cap(lim, nodes, 50);  // the module's default share
    std::vector<LeaseState> st(static_cast<std::size_t>(nodes));
    struct Pending {
        std::int64_t at;
        int node;
        std::int64_t want;
        bool request;
    };
    std::vector<Pending> pending;
    SimResult r;
    std::int64_t tat = 0;
    const std::int64_t rtt = 300, step = 200;
    for (std::int64_t now = kNow; now < kNow + 10 * kSecond; now += step) {
        for (std::size_t i = 0; i < pending.size();) {
            if (pending[i].at > now) {
                ++i;
                continue;
            }
            LeaseGrant g = gcra_lease(tat, pending[i].at - rtt / 2, lim, pending[i].want);
            tat = g.new_tat_us;
            if (pending[i].request && g.granted > 0) ++r.admitted;
            lease_granted(st[static_cast<std::size_t>(pending[i].node)], now, pending[i].want, pending[i].request, g,
                          nodes);
            pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
        }
        for (int n = 0; n < active; ++n) {
            LeaseTake t = lease_take(st[static_cast<std::size_t>(n)], now + n * 37, cap);
            if (t.action == LeaseAction::Admit) {
                ++r.admitted;
                if (t.renew > 0) {
                    ++r.asks;
                    pending.push_back({now + rtt, n, t.renew, false});
                }
            } else if (t.action == LeaseAction::Ask) {
                ++r.asks;
                pending.push_back({now + rtt, n, t.ask, true});
            }
        }
    }
    return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(saturated_nodes_get_the_limit_with_few_asks) {
    const std::int64_t allowed = 1100 + 10 * 1000;  // capacity + 10 s at the rate
    for (auto [nodes, active, max_per_1000] : {std::tuple{1, 1, 100}, std::tuple{2, 2, 100},
                                               std::tuple{4, 4, 200}, std::tuple{4, 1, 150}}) {
        SimResult r = simulate(nodes, active);
        BOOST_TEST_MESSAGE(nodes << " nodes, " << active << " active: admitted " << r.admitted << ", asks "
                                 << r.asks << " (" << 1000 * r.asks / r.admitted << " per 1,000)");
        BOOST_TEST(r.admitted <= allowed);
        BOOST_TEST(r.admitted >= allowed * 99 / 100);
        BOOST_TEST(1000 * r.asks / r.admitted < max_per_1000);
    }
}
