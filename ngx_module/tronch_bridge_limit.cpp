// The bridge's limiter calls kept apart from tronch_bridge.cpp: the lease calls (tronch_bridge.h,
// "Leased GCRA") over tronch/lease.hpp, each copying the plain C state into the core's struct and
// back so that shared memory holds only plain data; and the rate-limit headers by family.
#include "tronch_bridge.h"
#include "tronch_bridge_internal.hpp"

#include "tronch/gcra.hpp"
#include "tronch/lease.hpp"
#include "tronch/rate_limit.hpp"

namespace {

tronch::LeaseState from_c(const tronch_lease_t* s) noexcept {
    tronch::LeaseState l;
    l.tokens = s->tokens;
    l.expires_us = s->expires_us;
    l.closed_until_us = s->closed_until_us;
    l.inflight_until_us = s->inflight_until_us;
    l.starved_until_us = s->starved_until_us;
    l.asking = s->asking;
    l.window_start_us = s->window_start_us;
    l.window_count = s->window_count;
    l.last_window_count = s->last_window_count;
    l.remaining = s->remaining;
    l.reset_at_us = s->reset_at_us;
    l.lapsed = s->lapsed;
    return l;
}

void to_c(const tronch::LeaseState& l, tronch_lease_t* s) noexcept {
    s->tokens = l.tokens;
    s->expires_us = l.expires_us;
    s->closed_until_us = l.closed_until_us;
    s->inflight_until_us = l.inflight_until_us;
    s->starved_until_us = l.starved_until_us;
    s->asking = l.asking;
    s->window_start_us = l.window_start_us;
    s->window_count = l.window_count;
    s->last_window_count = l.last_window_count;
    s->remaining = l.remaining;
    s->reset_at_us = l.reset_at_us;
    s->lapsed = l.lapsed;
}

using tronch_bridge_detail::to_gcra;

}  // namespace

extern "C" {

int64_t tronch_bridge_lease_cap(const tronch_limit_t* limit, int64_t nodes, int64_t share_percent) noexcept {
    return tronch::lease_cap(to_gcra(limit), nodes, share_percent);
}

void tronch_bridge_limit_headers_of(const tronch_limit_t* limit, const tronch_decision_t* d, unsigned families,
                                    tronch_limit_headers_t* out) noexcept {
    const tronch::GcraLimit g = to_gcra(limit);
    tronch::GcraDecision dd;
    dd.allowed = d->allowed != 0;
    dd.remaining = d->remaining;
    dd.retry_after_us = d->retry_after_us;
    dd.reset_after_us = d->reset_after_us;
    out->policy_len = out->ratelimit_len = out->limit_len = out->remaining_len = out->reset_len = 0;
    out->retry_after_len = 0;
    if (families & TRONCH_HEADERS_DRAFT) {
        out->policy_len = tronch::format_ratelimit_policy(g, out->policy, sizeof(out->policy));
        out->ratelimit_len = tronch::format_ratelimit(dd, out->ratelimit, sizeof(out->ratelimit));
    }
    if (families & TRONCH_HEADERS_LEGACY) {
        out->limit_len = tronch::format_integer(g.capacity(), out->limit, sizeof(out->limit));
        out->remaining_len = tronch::format_integer(dd.remaining, out->remaining, sizeof(out->remaining));
        out->reset_len =
            tronch::format_integer(tronch::ceil_seconds(dd.reset_after_us), out->reset, sizeof(out->reset));
    }
    if (!dd.allowed)   // Retry-After goes on every refusal, whatever the families
        out->retry_after_len =
            tronch::format_integer(tronch::retry_after_seconds(dd), out->retry_after, sizeof(out->retry_after));
}

void tronch_bridge_lease_take(tronch_lease_t* s, int64_t now_us, int64_t cap, tronch_lease_take_t* out) noexcept {
    tronch::LeaseState l = from_c(s);
    tronch::LeaseTake t = tronch::lease_take(l, now_us, cap);
    to_c(l, s);
    out->action = t.action == tronch::LeaseAction::Admit    ? TRONCH_LEASE_ADMIT
                  : t.action == tronch::LeaseAction::Refuse ? TRONCH_LEASE_REFUSE
                                                            : TRONCH_LEASE_ASK;
    out->ask = t.ask;
    out->renew = t.renew;
    out->remaining = t.remaining;
    out->retry_after_us = t.retry_after_us;
    out->reset_after_us = t.reset_after_us;
}

void tronch_bridge_lease_granted(tronch_lease_t* s, int64_t now_us, int64_t asked, int for_request,
                                 const tronch_lease_grant_t* g, int64_t nodes) noexcept {
    tronch::LeaseState l = from_c(s);
    tronch::LeaseGrant grant;
    grant.granted = g->granted;
    grant.remaining = g->remaining;
    grant.retry_after_us = g->retry_after_us;
    grant.reset_after_us = g->reset_after_us;
    grant.wait_us = g->wait_us;
    grant.interval_us = g->interval_us;
    tronch::lease_granted(l, now_us, asked, for_request != 0, grant, nodes);
    to_c(l, s);
}

void tronch_bridge_lease_renew_failed(tronch_lease_t* s, int64_t asked) noexcept {
    tronch::LeaseState l = from_c(s);
    tronch::lease_renew_failed(l, asked);
    to_c(l, s);
}

int tronch_bridge_lease_script_sha1(char out[41]) noexcept {
    return tronch_bridge_detail::script_sha1(tronch::kGcraLeaseLuaScript, out);
}

const char* tronch_bridge_lease_script(std::size_t* len) noexcept {
    *len = tronch::kGcraLeaseLuaScript.size();
    return tronch::kGcraLeaseLuaScript.data();
}

}  // extern "C"
