#define BOOST_TEST_MODULE gcra
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "tronch/gcra.hpp"

namespace {

using tronch::gcra_check;
using tronch::GcraDecision;
using tronch::GcraLimit;

constexpr std::int64_t kSecond = 1'000'000;
constexpr std::int64_t kNow = 1'700'000'000 * kSecond;  // a realistic unix-microsecond clock

GcraLimit make_limit(std::int64_t rate, std::int64_t period_us, std::int64_t burst) {
    GcraLimit limit;
    limit.rate = rate;
    limit.period_us = period_us;
    limit.burst = burst;
    return limit;
}

// The limits the property tests run over: exact and inexact emission intervals, no burst,
// large burst, slow and fast.
const std::vector<GcraLimit>& sample_limits() {
    static const std::vector<GcraLimit> limits = {
        make_limit(10, kSecond, 5),     make_limit(3, kSecond, 0),      make_limit(7, 60 * kSecond, 20),
        make_limit(1000, kSecond, 100), make_limit(2, kSecond, 1),      make_limit(100, 3600 * kSecond, 0),
        make_limit(1, kSecond, 3),      make_limit(250, kSecond, 1000),
    };
    return limits;
}

// A store of one TAT and a clock, as the module and the Lua script keep them.
struct Bucket {
    GcraLimit limit;
    std::int64_t tat = 0;

    GcraDecision check(std::int64_t now, std::int64_t cost = 1) {
        const GcraDecision decision = gcra_check(tat, now, limit, cost);
        tat = decision.new_tat_us;
        return decision;
    }
};

// Largest number of admitted timestamps in any half-open window [t, t + width).
// Only windows starting at an admission matter: sliding a window's start forward to the
// first admission inside it loses none.
std::size_t max_in_window(const std::vector<std::int64_t>& admitted, std::int64_t width) {
    std::size_t best = 0;
    std::size_t end = 0;
    for (std::size_t start = 0; start < admitted.size(); ++start) {
        if (end < start) end = start;
        while (end < admitted.size() && admitted[end] < admitted[start] + width) ++end;
        best = std::max(best, end - start);
    }
    return best;
}

}  // namespace

BOOST_AUTO_TEST_CASE(emission_interval_rounds_up) {
    BOOST_TEST(make_limit(10, kSecond, 0).emission_interval_us() == 100'000);
    BOOST_TEST(make_limit(3, kSecond, 0).emission_interval_us() == 333'334);
    BOOST_TEST(make_limit(7, 60 * kSecond, 0).emission_interval_us() == 8'571'429);
    BOOST_TEST(make_limit(1'000'000, kSecond, 0).emission_interval_us() == 1);
    BOOST_TEST(make_limit(5, 1, 0).emission_interval_us() == 1);  // never 0
    BOOST_TEST(make_limit(1, 1, 0).emission_interval_us() == 1);
    BOOST_TEST(make_limit(10, kSecond, 4).capacity() == 14);
}

BOOST_AUTO_TEST_CASE(validity) {
    BOOST_TEST(make_limit(1, 1, 0).valid());
    BOOST_TEST(make_limit(10, kSecond, 5).valid());
    BOOST_TEST(make_limit(1'000'000, 86'400 * kSecond, 1'000'000).valid());
    BOOST_TEST(!make_limit(0, kSecond, 0).valid());
    BOOST_TEST(!make_limit(-1, kSecond, 0).valid());
    BOOST_TEST(!make_limit(1, 0, 0).valid());
    BOOST_TEST(!make_limit(1, -kSecond, 0).valid());
    BOOST_TEST(!make_limit(1, kSecond, -1).valid());
    BOOST_TEST(!GcraLimit{}.valid());
    // The bound: C * T <= 2^52 us (see gcra.cpp).
    constexpr std::int64_t kSpan = std::int64_t{1} << 52;
    BOOST_TEST(make_limit(1, kSpan, 0).valid());
    BOOST_TEST(!make_limit(1, kSpan + 1, 0).valid());
    BOOST_TEST(make_limit(1, kSpan / 4, 3).valid());
    BOOST_TEST(!make_limit(1, kSpan / 4, 4).valid());
    // One per day with a burst of a million: far past the bound.
    BOOST_TEST(!make_limit(1, 86'400 * kSecond, 1'000'000).valid());
    // Overflowing values are refused, not wrapped (UBSan checks the "not UB" part).
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
    BOOST_TEST(!make_limit(kMax, kMax, kMax).valid());
    BOOST_TEST(!make_limit(1, kMax, 0).valid());
    BOOST_TEST(!make_limit(kMax, 1, 1).valid());
}

BOOST_AUTO_TEST_CASE(fresh_key_admits_exactly_capacity_then_waits_one_interval) {
    for (const GcraLimit& limit : sample_limits()) {
        const std::int64_t interval = limit.emission_interval_us();
        const std::int64_t capacity = limit.capacity();
        Bucket bucket{limit};
        for (std::int64_t i = 1; i <= capacity; ++i) {
            const GcraDecision decision = bucket.check(kNow);
            BOOST_REQUIRE(decision.allowed);
            BOOST_TEST(decision.remaining == capacity - i);
            BOOST_TEST(decision.retry_after_us == 0);
            BOOST_TEST(decision.reset_after_us == i * interval);
            BOOST_TEST(decision.new_tat_us == kNow + i * interval);
        }
        const std::int64_t full_tat = bucket.tat;
        const GcraDecision refused = bucket.check(kNow);
        BOOST_TEST(!refused.allowed);
        BOOST_TEST(refused.remaining == 0);
        BOOST_TEST(refused.retry_after_us == interval);
        BOOST_TEST(refused.reset_after_us == capacity * interval);
        BOOST_TEST(refused.new_tat_us == full_tat);  // a refusal spends nothing

        // One microsecond early is still too early; on time admits exactly one.
        BOOST_TEST(!bucket.check(kNow + interval - 1).allowed);
        const GcraDecision next = bucket.check(kNow + interval);
        BOOST_TEST(next.allowed);
        BOOST_TEST(next.remaining == 0);
        BOOST_TEST(!bucket.check(kNow + interval).allowed);
    }
}

BOOST_AUTO_TEST_CASE(never_seen_key_uses_zero_tat) {
    const GcraLimit limit = make_limit(10, kSecond, 0);
    const GcraDecision decision = gcra_check(0, kNow, limit);
    BOOST_TEST(decision.allowed);
    BOOST_TEST(decision.remaining == 9);
    BOOST_TEST(decision.new_tat_us == kNow + 100'000);
}

BOOST_AUTO_TEST_CASE(refused_request_keeps_a_stored_tat_that_is_behind_the_clock) {
    // A refusal must store exactly what was there, even when that is an old TAT.
    const GcraLimit limit = make_limit(1, kSecond, 0);
    const GcraDecision decision = gcra_check(kNow - 5 * kSecond, kNow, limit, /*cost=*/2);
    BOOST_TEST(!decision.allowed);
    BOOST_TEST(decision.new_tat_us == kNow - 5 * kSecond);
    BOOST_TEST(decision.retry_after_us == kSecond);  // new_tat = now + 2T, allow_at = now + T
    BOOST_TEST(decision.reset_after_us == 0);        // tat = now: already idle
}

BOOST_AUTO_TEST_CASE(idle_for_reset_after_restores_full_capacity) {
    for (const GcraLimit& limit : sample_limits()) {
        Bucket bucket{limit};
        GcraDecision last;
        for (int i = 0; i < 3; ++i) last = bucket.check(kNow);
        const std::int64_t idle_at = kNow + last.reset_after_us;
        const GcraDecision peek = gcra_check(bucket.tat, idle_at, limit, 0);
        BOOST_TEST(peek.allowed);
        BOOST_TEST(peek.remaining == limit.capacity());
        BOOST_TEST(peek.reset_after_us == 0);
        const GcraDecision early = gcra_check(bucket.tat, idle_at - 1, limit, 0);
        BOOST_TEST(early.remaining == limit.capacity() - 1);
    }
}

BOOST_AUTO_TEST_CASE(cost_zero_peeks_without_spending) {
    const GcraLimit limit = make_limit(10, kSecond, 5);
    Bucket bucket{limit};
    const GcraDecision fresh = gcra_check(bucket.tat, kNow, limit, 0);
    BOOST_TEST(fresh.allowed);
    BOOST_TEST(fresh.remaining == 15);
    BOOST_TEST(fresh.reset_after_us == 0);
    for (int i = 0; i < 4; ++i) bucket.check(kNow);
    const std::int64_t tat = bucket.tat;
    for (int i = 0; i < 10; ++i) {
        const GcraDecision peek = gcra_check(tat, kNow, limit, 0);
        BOOST_TEST(peek.allowed);
        BOOST_TEST(peek.remaining == 11);
        BOOST_TEST(peek.reset_after_us == 4 * 100'000);
        BOOST_TEST(peek.new_tat_us == tat);  // storing it changes nothing
    }
    // Peeking at an exhausted bucket reports nothing left (a zero-cost request still "fits").
    for (int i = 0; i < 11; ++i) BOOST_REQUIRE(bucket.check(kNow).allowed);
    const GcraDecision empty = gcra_check(bucket.tat, kNow, limit, 0);
    BOOST_TEST(empty.remaining == 0);
    BOOST_TEST(empty.new_tat_us == bucket.tat);
    BOOST_TEST(!bucket.check(kNow).allowed);
}

BOOST_AUTO_TEST_CASE(cost_greater_than_one) {
    const GcraLimit limit = make_limit(10, kSecond, 0);
    const GcraDecision all = gcra_check(0, kNow, limit, 10);
    BOOST_TEST(all.allowed);
    BOOST_TEST(all.remaining == 0);
    BOOST_TEST(all.new_tat_us == kNow + kSecond);
    const GcraDecision too_much = gcra_check(0, kNow, limit, 11);
    BOOST_TEST(!too_much.allowed);
    BOOST_TEST(too_much.new_tat_us == 0);
    const GcraDecision some = gcra_check(0, kNow, limit, 4);
    BOOST_TEST(some.allowed);
    BOOST_TEST(some.remaining == 6);
}

BOOST_AUTO_TEST_CASE(bad_input_fails_closed_without_overflow) {
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
    constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
    const GcraLimit limit = make_limit(10, kSecond, 5);

    // An invalid limit or a negative cost refuses and leaves the state alone.
    for (const GcraLimit& bad : {GcraLimit{}, make_limit(0, kSecond, 0), make_limit(1, kMax, 0)}) {
        const GcraDecision decision = gcra_check(1234, kNow, bad);
        BOOST_TEST(!decision.allowed);
        BOOST_TEST(decision.new_tat_us == 1234);
    }
    const GcraDecision negative = gcra_check(1234, kNow, limit, -1);
    BOOST_TEST(!negative.allowed);
    BOOST_TEST(negative.new_tat_us == 1234);

    // Garbage from the store: a TAT at the end of time refuses, one at the start admits.
    const GcraDecision far_future = gcra_check(kMax, kNow, limit);
    BOOST_TEST(!far_future.allowed);
    BOOST_TEST(far_future.new_tat_us == kMax);
    BOOST_TEST(far_future.retry_after_us > 0);
    BOOST_TEST(gcra_check(kMin, kNow, limit).allowed);
    // Extreme clocks and costs: no UB (UBSan), sane signs.
    const GcraDecision huge_cost = gcra_check(0, kNow, limit, kMax);
    BOOST_TEST(!huge_cost.allowed);
    BOOST_TEST(huge_cost.retry_after_us > 0);
    const GcraDecision early_clock = gcra_check(kMax, kMin, limit);
    BOOST_TEST(!early_clock.allowed);
    BOOST_TEST(early_clock.retry_after_us > 0);
    BOOST_TEST(early_clock.reset_after_us > 0);
    BOOST_TEST(gcra_check(0, kMax, limit).allowed);
}

// The central property: whatever the arrival pattern, no window [t, t + W) admits more
// than C + floor(W / T). Arrival patterns mix simultaneous bursts, dense traffic and idles.
BOOST_AUTO_TEST_CASE(no_window_ever_admits_more_than_the_bound) {
    std::mt19937_64 random(20240601);
    for (const GcraLimit& limit : sample_limits()) {
        const std::int64_t interval = limit.emission_interval_us();
        const std::int64_t capacity = limit.capacity();
        for (int run = 0; run < 4; ++run) {
            Bucket bucket{limit};
            std::vector<std::int64_t> admitted;
            std::int64_t now = kNow;
            std::uniform_int_distribution<int> pattern(0, 9);
            std::uniform_int_distribution<std::int64_t> dense_gap(0, interval / 3 + 1);
            std::uniform_int_distribution<std::int64_t> idle_gap(interval, interval * (capacity + 5));
            std::uniform_int_distribution<int> burst_size(1, static_cast<int>(2 * capacity + 2));
            for (int step = 0; step < 6000; ++step) {
                const int kind = pattern(random);
                int arrivals = 1;
                if (kind == 0) {
                    now += idle_gap(random);
                } else if (kind == 1) {
                    arrivals = burst_size(random);  // many requests at the same microsecond
                } else {
                    now += dense_gap(random);
                }
                for (int i = 0; i < arrivals; ++i) {
                    const std::int64_t stored = bucket.tat;
                    const GcraDecision decision = bucket.check(now);
                    if (decision.allowed) {
                        admitted.push_back(now);
                        BOOST_REQUIRE_GE(decision.remaining, 0);
                        BOOST_REQUIRE_LT(decision.remaining, capacity);
                        BOOST_REQUIRE_EQUAL(decision.retry_after_us, 0);
                        BOOST_REQUIRE_LE(decision.reset_after_us, capacity * interval);
                    } else {
                        BOOST_REQUIRE_EQUAL(decision.new_tat_us, stored);
                        BOOST_REQUIRE_EQUAL(decision.remaining, 0);
                        BOOST_REQUIRE_GT(decision.retry_after_us, 0);
                        // retry_after is exact: a microsecond earlier fails, then it passes.
                        BOOST_REQUIRE(!gcra_check(stored, now + decision.retry_after_us - 1, limit).allowed);
                        BOOST_REQUIRE(gcra_check(stored, now + decision.retry_after_us, limit).allowed);
                    }
                }
            }
            BOOST_REQUIRE_GT(admitted.size(), static_cast<std::size_t>(capacity));
            const std::int64_t widths[] = {1,
                                           interval / 2 + 1,
                                           interval,
                                           interval + 1,
                                           3 * interval,
                                           capacity * interval,
                                           limit.period_us,
                                           10 * limit.period_us + 12345};
            for (std::int64_t width : widths) {
                const auto bound = static_cast<std::size_t>(capacity + width / interval);
                BOOST_TEST(max_in_window(admitted, width) <= bound,
                           "rate " << limit.rate << " burst " << limit.burst << " width " << width);
            }
        }
    }
}

// remaining is a promise: exactly that many more requests fit right now.
BOOST_AUTO_TEST_CASE(remaining_is_exact) {
    std::mt19937_64 random(7);
    for (const GcraLimit& limit : sample_limits()) {
        Bucket bucket{limit};
        std::int64_t now = kNow;
        std::uniform_int_distribution<std::int64_t> gap(0, 2 * limit.emission_interval_us());
        for (int step = 0; step < 300; ++step) {
            now += gap(random);
            const GcraDecision decision = bucket.check(now);
            if (!decision.allowed) continue;
            Bucket copy = bucket;
            for (std::int64_t i = 0; i < decision.remaining; ++i) BOOST_REQUIRE(copy.check(now).allowed);
            BOOST_REQUIRE(!copy.check(now).allowed);
        }
    }
}

// Under saturation the long-run admitted rate is the configured rate (within one request),
// after the initial burst. Gaps are bounded below one interval so a bucket with C >= 2
// never drains and the schedule is exactly one admission per T.
BOOST_AUTO_TEST_CASE(long_run_rate_under_saturation_is_the_configured_rate) {
    std::mt19937_64 random(99);
    for (const GcraLimit& limit : sample_limits()) {
        const std::int64_t interval = limit.emission_interval_us();
        std::uniform_int_distribution<std::int64_t> gap(1, std::max<std::int64_t>(1, interval / 4));
        Bucket bucket{limit};
        std::int64_t now = kNow;
        // Spend the initial burst (bounded, so a broken limiter fails instead of hanging).
        std::int64_t burst_admitted = 0;
        while (bucket.check(now).allowed && burst_admitted <= limit.capacity()) ++burst_admitted;
        BOOST_REQUIRE_EQUAL(burst_admitted, limit.capacity());
        constexpr std::int64_t kPeriods = 50;
        const std::int64_t start = now;
        const std::int64_t end = start + kPeriods * limit.period_us;
        std::int64_t admitted = 0;
        while (now < end) {
            now += gap(random);
            if (now >= end) break;
            if (bucket.check(now).allowed) ++admitted;
        }
        const std::int64_t expected = kPeriods * limit.rate;
        BOOST_TEST(admitted >= expected - 1, "rate " << limit.rate << ": " << admitted << " vs " << expected);
        BOOST_TEST(admitted <= expected + 1, "rate " << limit.rate << ": " << admitted << " vs " << expected);
    }
}

BOOST_AUTO_TEST_CASE(rounding_never_over_admits) {
    // T is the smallest interval with rate * T >= period: rounding down would let a
    // saturated key through slightly faster than configured.
    for (std::int64_t period : {std::int64_t{1}, std::int64_t{7}, kSecond, 60 * kSecond, 86'400 * kSecond}) {
        for (std::int64_t rate = 1; rate <= 2000; ++rate) {
            const std::int64_t interval = make_limit(rate, period, 0).emission_interval_us();
            BOOST_REQUIRE_GE(rate * interval, period);
            if (interval > 1) BOOST_REQUIRE_LT(rate * (interval - 1), period);
        }
    }
}
