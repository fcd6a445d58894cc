// GCRA (generic cell rate algorithm): a leaky bucket without a drip process.
//
// A limit is "rate requests per period, plus burst". The state is one number, the
// theoretical arrival time (TAT). A key that has been idle may send rate + burst
// requests at once; after that it is held to the steady rate. Integer microseconds
// throughout, so the same maths runs in the Redis Lua script (doubles are exact to 2^53).
//
// The clock is injected: gcra_check is a pure function.
#pragma once

#include <cstdint>

namespace tronch {

struct GcraLimit {
    std::int64_t rate = 0;       // requests per period, >= 1
    std::int64_t period_us = 0;  // >= 1
    std::int64_t burst = 0;      // extra requests allowed at once, >= 0

    bool valid() const noexcept;
    // Time one request "costs": ceil(period / rate), so rounding never over-admits.
    std::int64_t emission_interval_us() const noexcept;
    // How many requests an idle key may send at once.
    std::int64_t capacity() const noexcept { return rate + burst; }
};

struct GcraDecision {
    bool allowed = false;
    std::int64_t remaining = 0;       // requests still allowed right now after this one
    std::int64_t retry_after_us = 0;  // 0 when allowed; else wait this long
    std::int64_t reset_after_us = 0;  // until the bucket is fully idle again
    std::int64_t new_tat_us = 0;      // store this (unchanged when refused)
};

// stored_tat_us: the TAT from the store, or 0 for a key never seen.
// cost: requests this check accounts for (normally 1; 0 peeks without spending).
GcraDecision gcra_check(std::int64_t stored_tat_us, std::int64_t now_us, const GcraLimit& limit,
                        std::int64_t cost = 1) noexcept;

}  // namespace tronch
