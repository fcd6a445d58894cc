// Leased GCRA (tronch_limit_policy leased): a node reserves a batch of a key's requests from the
// key's GCRA state in Redis with one atomic script, keeps them in its shared zone, and spends
// them locally, so that a busy key rarely waits on Redis.
//
// Two parts, both pure (the clock is injected):
//   - gcra_lease: what the Redis script does (kGcraLeaseLuaScript in rate_limit.hpp runs the same
//     steps): grant up to `want` requests, exactly as many as GCRA would admit one after another
//     at this instant, never more; the TAT never runs more than capacity * interval ahead.
//   - LeaseState + lease_take / lease_granted: one node's bookkeeping for one key: the tokens it
//     holds, when they lapse, until when Redis said "not enough", the renewal in flight, and the
//     key's observed rate on this node, which sizes the next lease.
//
// Why it is never over the limit: every request a node admits was granted by Redis's GCRA first
// (at the moment of the grant), so all nodes together are admitted at most what GCRA allows when
// every request is dated at its grant. A token spent later than granted moves at most the tokens
// held at one moment (the cap, below) into a later window: held tokens also lapse after
// kLeaseTtlUs, so a key that goes quiet does not keep them.
#pragma once

#include <cstdint>

#include "tronch/gcra.hpp"

namespace tronch {

// The Redis script's answer (and gcra_lease's).
struct LeaseGrant {
    std::int64_t granted = 0;         // 0..want
    std::int64_t remaining = 0;       // requests still free in Redis after this grant
    std::int64_t retry_after_us = 0;  // granted == 0: until one request fits; else 0
    std::int64_t reset_after_us = 0;  // until the bucket is full again
    std::int64_t wait_us = 0;         // granted < want: until `want` more would fit; else 0
    std::int64_t new_tat_us = 0;      // store this (unchanged when nothing is granted)
    std::int64_t interval_us = 0;     // the limit's emission interval (the caller's, not Redis's)
};

// stored_tat_us: from the store, 0 for a key never seen. want >= 1 (less is treated as 1).
LeaseGrant gcra_lease(std::int64_t stored_tat_us, std::int64_t now_us, const GcraLimit& limit,
                      std::int64_t want) noexcept;

// Sizing. The rate is observed in windows of kLeaseWindowUs (the larger of the last and the
// current window's count); a lease covers kLeaseHorizonWindows windows of the node's traffic,
// at most lease_cap. A key seen at most once in a window leases 1: today's exact check.
constexpr std::int64_t kLeaseWindowUs = 100'000;
constexpr std::int64_t kLeaseHorizonWindows = 5;
// Unspent tokens lapse this long after the last grant (the shortfall is counted): longer than
// the horizon, so a steady key spends its lease first.
constexpr std::int64_t kLeaseTtlUs = 1'000'000;
// A renewal that got no answer in this long is given up (a new one may start).
constexpr std::int64_t kLeaseRenewTimeoutUs = 1'000'000;

// The most one node may hold of a key: share_percent of the burst split among `nodes`, at
// least 1 (a key without burst, or with a small one, is checked request by request).
std::int64_t lease_cap(const GcraLimit& limit, std::int64_t nodes, std::int64_t share_percent) noexcept;

// One node's state for one key: plain data (it lives in shared memory).
struct LeaseState {
    std::int64_t tokens = 0;             // granted by Redis, not spent yet
    std::int64_t expires_us = 0;         // the tokens lapse at this moment
    std::int64_t closed_until_us = 0;    // Redis said "not enough" until then: refuse locally
    std::int64_t inflight_until_us = 0;  // a lease command is in flight (until its timeout)
    std::int64_t starved_until_us = 0;   // Redis's last answer was short: the key is at its limit
    std::int64_t asking = 0;             // tokens asked for and not answered yet
    std::int64_t window_start_us = 0;    // rate observation
    std::int64_t window_count = 0;
    std::int64_t last_window_count = 0;
    std::int64_t remaining = 0;          // Redis's remaining at the last answer (headers)
    std::int64_t reset_at_us = 0;        // and its reset, as a moment
    std::int64_t lapsed = 0;             // tokens that lapsed unspent (taken out by the caller)
};

enum class LeaseAction {
    Admit,   // a held token was spent; renew > 0: ask Redis for that many in the background
    Refuse,  // Redis said not enough until closed_until, or the key is at its limit and a lease
             // is already being asked for: retry_after_us
    Ask      // nothing held: ask Redis for `ask` now; the request waits and spends one of them
};

struct LeaseTake {
    LeaseAction action = LeaseAction::Ask;
    std::int64_t ask = 1;             // Ask: how many to ask for
    std::int64_t renew = 0;           // Admit: how many to renew in the background (0: none)
    std::int64_t remaining = 0;       // for the headers: held + Redis's remaining
    std::int64_t retry_after_us = 0;  // Refuse
    std::int64_t reset_after_us = 0;
};

// The size of the next lease for this state (before the request is counted).
std::int64_t lease_size(const LeaseState& s, std::int64_t now_us, std::int64_t cap) noexcept;

// One request at now: counts it for the rate, drops lapsed tokens, decides.
LeaseTake lease_take(LeaseState& s, std::int64_t now_us, std::int64_t cap) noexcept;

// Redis answered a lease of `asked` at now. for_request: the request that asked waits and spends
// one granted token (so it is admitted iff g.granted > 0); else it was a background renewal.
// nodes: how many nodes share the key (tronch_nodes). A key at its limit (a short answer, or a
// full one that emptied the bucket) paces this node: it asks again when its share
// of the refill (1 / nodes) would cover the batch, so the nodes of a key at its limit take turns
// instead of each asking every few requests. Pacing never admits too much; what a paced node
// leaves stays in Redis (at most a batch per node) for whoever asks next, and as soon as Redis
// has a batch for every node left (the other nodes are quiet) the pacing stops.
void lease_granted(LeaseState& s, std::int64_t now_us, std::int64_t asked, bool for_request,
                   const LeaseGrant& g, std::int64_t nodes = 1) noexcept;

// A lease command of `asked` failed (no answer, an error): another may start at once.
void lease_renew_failed(LeaseState& s, std::int64_t asked) noexcept;

}  // namespace tronch
