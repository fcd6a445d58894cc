// GCRA, as documented in gcra.hpp. With T the emission interval and C the capacity:
//
//   tat      = max(stored, now)        an idle key's TAT has fallen behind the clock
//   new_tat  = tat + cost * T
//   allow_at = new_tat - C * T         the earliest moment this request fits
//   now <  allow_at: refused, retry after allow_at - now; the stored TAT is not touched
//   now >= allow_at: allowed, store new_tat
//
// Bounds. valid() requires C * T <= kMaxSpanUs = 2^52 us (about 142 years). The TAT never runs
// more than C * T ahead of the clock, so with a unix-microsecond clock (about 2^50.6 today,
// 2^52 in 2112) every value the Redis Lua script handles stays below 2^53 and is exact as a
// double, and nothing here comes near int64 overflow. Operator limits (key_record.hpp:
// rate <= 10^6, burst <= 10^6, period <= 1 day) only exceed this for absurd shapes such as
// one request per day with a burst of 52,000; valid_rate_limit refuses those too.
// The arithmetic below still saturates rather than overflows, because the stored TAT comes
// from outside (Redis) and may be garbage.
#include "tronch/gcra.hpp"

#include <algorithm>
#include <limits>

namespace tronch {
namespace {

constexpr std::int64_t kMaxSpanUs = std::int64_t{1} << 52;
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();

std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t sum = 0;
    if (!__builtin_add_overflow(a, b, &sum)) return sum;
    return b > 0 ? kInt64Max : kInt64Min;
}

std::int64_t saturating_sub(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t difference = 0;
    if (!__builtin_sub_overflow(a, b, &difference)) return difference;
    return b < 0 ? kInt64Max : kInt64Min;
}

// Only called with non-negative operands.
std::int64_t saturating_mul(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t product = 0;
    if (!__builtin_mul_overflow(a, b, &product)) return product;
    return kInt64Max;
}

// A refusal that spends nothing: used for a bad limit or a negative cost, so a
// misconfiguration fails closed instead of admitting unlimited traffic.
GcraDecision refuse_unusable(std::int64_t stored_tat_us) noexcept {
    GcraDecision decision;
    decision.new_tat_us = stored_tat_us;
    return decision;
}

}  // namespace

std::int64_t GcraLimit::emission_interval_us() const noexcept {
    if (rate < 1 || period_us < 1) return 0;
    // ceil(period / rate) without the overflow of (period + rate - 1).
    return period_us / rate + (period_us % rate != 0 ? 1 : 0);
}

bool GcraLimit::valid() const noexcept {
    if (rate < 1 || period_us < 1 || burst < 0) return false;
    const std::int64_t interval = emission_interval_us();
    if (interval < 1) return false;
    std::int64_t capacity_requests = 0;
    std::int64_t span = 0;
    if (__builtin_add_overflow(rate, burst, &capacity_requests)) return false;
    if (__builtin_mul_overflow(capacity_requests, interval, &span)) return false;
    return span <= kMaxSpanUs;
}

GcraDecision gcra_check(std::int64_t stored_tat_us, std::int64_t now_us, const GcraLimit& limit,
                        std::int64_t cost) noexcept {
    if (!limit.valid() || cost < 0) return refuse_unusable(stored_tat_us);

    const std::int64_t interval = limit.emission_interval_us();
    const std::int64_t span = limit.capacity() * interval;  // C * T, bounded by valid()
    const std::int64_t tat = std::max(stored_tat_us, now_us);
    const std::int64_t new_tat = saturating_add(tat, saturating_mul(cost, interval));
    const std::int64_t allow_at = saturating_sub(new_tat, span);

    GcraDecision decision;
    if (now_us < allow_at) {
        decision.allowed = false;
        decision.remaining = 0;
        decision.retry_after_us = saturating_sub(allow_at, now_us);  // > 0: allow_at > now
        decision.reset_after_us = saturating_sub(tat, now_us);
        decision.new_tat_us = stored_tat_us;
        return decision;
    }
    // Here new_tat - now <= C * T, so both differences below are small and non-negative.
    const std::int64_t ahead = new_tat - now_us;
    decision.allowed = true;
    decision.remaining = std::max<std::int64_t>(0, (span - ahead) / interval);
    decision.retry_after_us = 0;
    decision.reset_after_us = ahead;
    decision.new_tat_us = new_tat;
    return decision;
}

}  // namespace tronch
