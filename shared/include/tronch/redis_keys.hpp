// Every Redis name Tronch uses, and the event format on the event channel: defined once,
// here, for the module and tronchd alike.
//
// Hash tags ({...}) keep each logical item in one Redis Cluster slot. No command touches
// more than one of these keys at once, so no two items need to share a slot.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tronch::redis_keys {

// tronch:key:{<sha256hex>} -> key record JSON (key_record.hpp). Revoked keys stay (so the
// gateway can say "revoked" rather than "unknown"); replaced keys expire at their grace end.
inline constexpr std::string_view kKeyRecordPrefix = "tronch:key:{";
std::string key_record(std::string_view key_hash_hex);

// Set by tronchd once every live key has been mirrored. Without it, a Redis miss does not
// prove a key unknown and the gateway must not cache the miss.
inline constexpr std::string_view kMirrorEpoch = "tronch:mirror:epoch";

// Pub/sub channel carrying key change events (event_json below).
inline constexpr std::string_view kEventsChannel = "tronch:events";

// GCRA state (TAT, microseconds) per key id (tronch_limit_policy redis). A client address's
// failure budget is node-local (the module's tronch_zone), never in Redis.
std::string rate_limit_key(std::string_view key_id);

// Usage the gateways have counted and tronchd has not yet rolled up: one hash, fields
// usage_field(...) -> count. tronchd RENAMEs it to a draining name, then reads and deletes.
inline constexpr std::string_view kUsagePending = "tronch:usage:pending";
inline constexpr std::string_view kUsageDrainingPrefix = "tronch:usage:draining:";
inline constexpr std::int64_t kUsageBucketSeconds = 60;

// A gateway's flush adds many counts in one command: EVAL kUsageAddLuaScript 1 kUsagePending
// field1 delta1 field2 delta2 ... (HINCRBY each); last-used times go in one multi-field HSET.
inline constexpr std::string_view kUsageAddLuaScript =
    "for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end return #ARGV / 2";

enum class UsageCounter : char { requests = 'r', errors = 'e', last_used = 'l' };
// "<key id>|<bucket start, unix seconds>|r" ; for last_used the bucket is 0 and the value
// is the latest unix second seen (written with HSET, not HINCRBY).
std::string usage_field(std::string_view key_id, std::int64_t bucket_start, UsageCounter counter);
struct UsageField {
    std::string key_id;
    std::int64_t bucket_start = 0;
    UsageCounter counter = UsageCounter::requests;
};
bool parse_usage_field(std::string_view field, UsageField& out) noexcept;

// Events published on kEventsChannel after a change has been committed to Postgres:
//   {"v":1,"type":"key.changed","key_hash":"<sha256hex>","id":"<uuid>"}
//   {"v":1,"type":"mirror.rebuilt"}
// A gateway drops its cached entry for key_hash on "key.changed" (the record in Redis is
// already the new one), and everything it caches negatively on "mirror.rebuilt".
enum class EventType : unsigned char { key_changed, mirror_rebuilt };
struct Event {
    EventType type = EventType::key_changed;
    std::string key_hash;
    std::string id;
};
std::string event_json(const Event& event);
bool parse_event(std::string_view json_text, Event& out) noexcept;

}  // namespace tronch::redis_keys
