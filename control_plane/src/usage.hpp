// Usage roll-up: the gateways HINCRBY per-key counters into redis_keys::kUsagePending.
// Each round RENAMEs it to a draining name (so new counts go to a fresh hash), reads it,
// adds the counts into key_usage and api_keys.last_used_at in one transaction, then
// deletes the draining hash. Leftover draining hashes (a crash mid-round) are finished
// first. Delivery is at-least-once: a crash between COMMIT and DEL counts a round twice.
#pragma once

#include <cstdint>
#include <string>

#include "db.hpp"
#include "redis_client.hpp"

namespace tronch::cp {

class Metrics;

class UsageRollup {
public:
    UsageRollup(RedisClient& redis, PgPool& pg, Metrics& metrics) : redis_(redis), pg_(pg), metrics_(metrics) {}
    // One round. Returns the number of fields rolled up. Throws on Redis/Postgres errors
    // (the draining hash stays and is retried next round).
    std::size_t run_once();

private:
    std::size_t drain(const std::string& name);
    bool pending_exists();
    RedisClient& redis_;
    PgPool& pg_;
    Metrics& metrics_;
};

}  // namespace tronch::cp
