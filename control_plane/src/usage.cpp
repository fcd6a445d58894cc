#include "usage.hpp"

#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "log.hpp"
#include "metrics.hpp"
#include "tronch/redis_keys.hpp"

namespace tronch::cp {
namespace {
std::string random_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return buf;
}
}  // namespace

bool UsageRollup::pending_exists() {
    auto exists = redis_.command({"EXISTS", std::string(redis_keys::kUsagePending)});
    return !(exists->type == REDIS_REPLY_INTEGER && exists->integer == 0);
}

std::size_t UsageRollup::run_once() {
    std::size_t total = 0;
    // Leftovers of an earlier round first.
    std::string cursor = "0";
    std::vector<std::string> leftovers;
    do {
        auto r = redis_.command({"SCAN", cursor, "MATCH", std::string(redis_keys::kUsageDrainingPrefix) + "*", "COUNT", "1000"});
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) break;
        cursor = std::string(r->element[0]->str, r->element[0]->len);
        for (std::size_t i = 0; i < r->element[1]->elements; ++i)
            leftovers.emplace_back(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
    } while (cursor != "0");
    for (auto& name : leftovers) total += drain(name);

    if (!pending_exists()) return total;  // nothing counted
    std::string draining = std::string(redis_keys::kUsageDrainingPrefix) + random_suffix();
    try {
        redis_.command({"RENAME", std::string(redis_keys::kUsagePending), draining});
    } catch (const RedisUnavailable&) {
        // Asked, not read from the error's text: gone means another tronchd took the hash since
        // EXISTS (or this RENAME ran before the connection broke; then the draining hash is a
        // leftover for the next round). Still there: a real failure.
        if (!pending_exists()) return total;
        throw;
    }
    total += drain(draining);
    return total;
}

std::size_t UsageRollup::drain(const std::string& name) {
    auto r = redis_.command({"HGETALL", name});
    if (r->type != REDIS_REPLY_ARRAY) return 0;
    struct Counts { std::int64_t requests = 0, errors = 0; };
    std::map<std::pair<std::string, std::int64_t>, Counts> buckets;
    std::map<std::string, std::int64_t> last_used;
    std::size_t fields = 0, bad = 0;
    for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
        std::string field(r->element[i]->str, r->element[i]->len);
        std::string value(r->element[i + 1]->str, r->element[i + 1]->len);
        redis_keys::UsageField f;
        std::int64_t v = 0;
        try {
            v = std::stoll(value);
        } catch (...) {
            ++bad;
            continue;
        }
        if (!redis_keys::parse_usage_field(field, f) || v < 0) {
            ++bad;
            continue;
        }
        ++fields;
        switch (f.counter) {
            case redis_keys::UsageCounter::requests: buckets[{f.key_id, f.bucket_start}].requests += v; break;
            case redis_keys::UsageCounter::errors: buckets[{f.key_id, f.bucket_start}].errors += v; break;
            case redis_keys::UsageCounter::last_used: {
                auto& l = last_used[f.key_id];
                l = std::max(l, v);
                break;
            }
        }
    }
    nlohmann::json rows = nlohmann::json::array(), seen = nlohmann::json::array();
    for (auto& [k, c] : buckets) rows.push_back({{"id", k.first}, {"b", k.second}, {"r", c.requests}, {"e", c.errors}});
    for (auto& [id, t] : last_used) seen.push_back({{"id", id}, {"l", t}});
    std::int64_t skipped = 0;
    if (!rows.empty() || !seen.empty()) {
        skipped = pg_.transaction([&](PgConn& c) {
            auto ins = c.exec(
                "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, b bigint, r bigint, e bigint)) "
                "INSERT INTO key_usage (key_id, bucket_start, requests, errors) "
                "SELECT x.id, to_timestamp(x.b), x.r, x.e FROM x JOIN api_keys k ON k.id = x.id "
                "ON CONFLICT (key_id, bucket_start) DO UPDATE SET requests = key_usage.requests + excluded.requests, "
                "errors = key_usage.errors + excluded.errors RETURNING 1",
                {rows.dump()});
            c.exec(
                "UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, to_timestamp(x.l)) "
                "FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, l bigint) WHERE k.id = x.id",
                {seen.dump()});
            return static_cast<std::int64_t>(rows.size()) - ins.rows();
        });
    }
    redis_.command({"DEL", name});
    if (bad || skipped)
        log::warn("usage roll-up skipped fields", {{"malformed", bad}, {"unknown_key_buckets", skipped}});
    if (fields) {
        metrics_.usage_rolled_up(fields);
        log::info("usage rolled up", {{"fields", fields}, {"buckets", rows.size()}});
    }
    return fields;
}

}  // namespace tronch::cp
