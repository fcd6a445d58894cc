// See lease.hpp. The grant uses gcra.cpp's steps for a batch: request i of the batch (1-based)
// fits iff now >= tat + i * T - C * T, so the number that fits is floor((now + C*T - tat) / T);
// with want = 1 this is gcra_check exactly. Bounds as in gcra.cpp (valid() keeps C * T <= 2^52).
#include "tronch/lease.hpp"

#include <algorithm>

namespace tronch {

LeaseGrant gcra_lease(std::int64_t stored_tat_us, std::int64_t now_us, const GcraLimit& limit,
                      std::int64_t want) noexcept {
    LeaseGrant g;
    g.new_tat_us = stored_tat_us;
    if (!limit.valid() || now_us < 0) return g;  // fails closed, as gcra_check
    want = std::max<std::int64_t>(want, 1);
    want = std::min(want, limit.capacity());

    const std::int64_t interval = limit.emission_interval_us();
    const std::int64_t span = limit.capacity() * interval;
    // A garbage stored TAT far in the future refuses (as gcra_check does); one far in the past
    // is the clock.
    const std::int64_t tat = std::max(stored_tat_us, now_us);
    const std::int64_t room = now_us - tat + span;  // <= span; may be very negative
    const std::int64_t free = room > 0 ? room / interval : 0;

    g.interval_us = interval;
    g.granted = std::min(want, free);
    const std::int64_t new_tat = tat + g.granted * interval;  // <= now + span
    const std::int64_t ahead = new_tat - now_us;
    if (g.granted > 0) g.new_tat_us = new_tat;
    g.remaining = ahead <= span ? (span - ahead) / interval : 0;
    g.reset_after_us = ahead;
    if (g.granted == 0) g.retry_after_us = tat + interval - span - now_us;
    if (g.granted < want) g.wait_us = new_tat + want * interval - span - now_us;
    if (g.retry_after_us < 0) g.retry_after_us = 0;
    if (g.wait_us < 0) g.wait_us = 0;
    return g;
}

std::int64_t lease_cap(const GcraLimit& limit, std::int64_t nodes, std::int64_t share_percent) noexcept {
    if (!limit.valid() || nodes < 1 || share_percent < 0) return 1;
    const std::int64_t share = std::min<std::int64_t>(share_percent, 100);
    return std::max<std::int64_t>(1, limit.burst * share / 100 / nodes);
}

namespace {

// Rolls the rate window forward to now.
void observe_window(LeaseState& s, std::int64_t now_us) noexcept {
    const std::int64_t elapsed = now_us - s.window_start_us;
    if (elapsed >= 0 && elapsed < kLeaseWindowUs) return;
    // one window later: the current one becomes the last; later than that (or the clock went
    // back): nothing was seen in the last window
    s.last_window_count = (elapsed >= kLeaseWindowUs && elapsed < 2 * kLeaseWindowUs) ? s.window_count : 0;
    s.window_count = 0;
    s.window_start_us = now_us;
}

void lapse(LeaseState& s, std::int64_t now_us) noexcept {
    if (s.tokens > 0 && now_us >= s.expires_us) {
        s.lapsed += s.tokens;
        s.tokens = 0;
    }
}

}  // namespace

std::int64_t lease_size(const LeaseState& s, std::int64_t now_us, std::int64_t cap) noexcept {
    std::int64_t seen = 0;
    const std::int64_t elapsed = now_us - s.window_start_us;
    if (elapsed >= 0 && elapsed < kLeaseWindowUs)
        seen = std::max(s.window_count, s.last_window_count);
    else if (elapsed >= kLeaseWindowUs && elapsed < 2 * kLeaseWindowUs)
        seen = s.window_count;
    if (seen >= 2) seen *= kLeaseHorizonWindows;
    return std::clamp<std::int64_t>(seen, 1, std::max<std::int64_t>(cap, 1));
}

LeaseTake lease_take(LeaseState& s, std::int64_t now_us, std::int64_t cap) noexcept {
    LeaseTake t;
    observe_window(s, now_us);
    lapse(s, now_us);
    if (now_us >= s.inflight_until_us) s.asking = 0;  // answers that never came
    const std::int64_t size = lease_size(s, now_us, cap);
    s.window_count++;
    t.reset_after_us = std::max<std::int64_t>(0, s.reset_at_us - now_us);

    if (s.tokens > 0) {
        s.tokens--;
        t.action = LeaseAction::Admit;
        t.remaining = s.tokens + s.remaining;
        // renew before the lease runs out: at a quarter of the next lease's size, topping up to
        // it; not while a lease is in flight, nor while the key is at its limit (Redis has
        // nothing to give ahead of need: the next ask, when these are spent, takes what came)
        if (size >= 2 && s.tokens <= size / 4 && now_us >= s.inflight_until_us && now_us >= s.starved_until_us) {
            t.renew = size - s.tokens;
            s.asking += t.renew;
            s.inflight_until_us = now_us + kLeaseRenewTimeoutUs;
        }
        return t;
    }
    if (now_us < s.closed_until_us) {
        t.action = LeaseAction::Refuse;
        t.retry_after_us = s.closed_until_us - now_us;
        return t;
    }
    if (now_us < s.inflight_until_us && now_us < s.starved_until_us) {
        // At its limit, and this node is asking already: one ask at a time (not one per
        // request that arrives before the answer). A key that is not at its limit never gets
        // here, so concurrent requests of a quiet key are not refused.
        t.action = LeaseAction::Refuse;
        t.retry_after_us = std::max<std::int64_t>(1, s.inflight_until_us - now_us);
        return t;
    }
    // Concurrent asks (requests that arrive before the first answer) together ask for one
    // lease's size, each at least for itself: what the node holds stays about one lease.
    t.action = LeaseAction::Ask;
    t.ask = std::clamp<std::int64_t>(size - s.asking, 1, size);
    s.asking += t.ask;
    s.inflight_until_us = now_us + kLeaseRenewTimeoutUs;
    return t;
}

void lease_granted(LeaseState& s, std::int64_t now_us, std::int64_t asked, bool for_request,
                   const LeaseGrant& g, std::int64_t nodes) noexcept {
    lapse(s, now_us);
    std::int64_t keep = g.granted;
    if (for_request && keep > 0) keep--;
    if (keep > 0) {
        s.tokens += keep;
        s.expires_us = now_us + kLeaseTtlUs;
    }
    s.asking = std::max<std::int64_t>(0, s.asking - asked);
    if (s.asking == 0) s.inflight_until_us = 0;
    // Not all that was asked: hold off until that many fit again, times the nodes that compete
    // for them (for a batch; a single request waits for exactly one, so a quiet key stays exact).
    // Waiting longer than needed never admits too much; and what one node leaves accumulates in
    // Redis for its next ask (a batch is at most the share of the burst), so little is lost.
    const bool batch = asked > 1 && nodes > 1;
    if (g.granted < asked) {
        std::int64_t wait = std::max(g.wait_us, g.retry_after_us);
        if (batch) wait *= nodes;
        s.closed_until_us = now_us + wait;
        s.starved_until_us = s.closed_until_us + kLeaseWindowUs;
    } else if (g.remaining == 0 && batch && g.interval_us > 0) {
        // all of it, and the bucket is empty now: pace as above (an exact check would refuse
        // now too; what refills meanwhile stays in Redis)
        s.closed_until_us = now_us + asked * g.interval_us * nodes;
        s.starved_until_us = s.closed_until_us + kLeaseWindowUs;
    } else if (g.remaining >= asked * std::max<std::int64_t>(nodes, 1)) {
        s.starved_until_us = 0;   // plenty left for every node: not at the limit
    }
    s.remaining = g.remaining;
    s.reset_at_us = now_us + g.reset_after_us;
}

void lease_renew_failed(LeaseState& s, std::int64_t asked) noexcept {
    s.asking = std::max<std::int64_t>(0, s.asking - asked);
    if (s.asking == 0) s.inflight_until_us = 0;
}

}  // namespace tronch
