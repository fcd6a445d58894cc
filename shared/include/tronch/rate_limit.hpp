// Rate limiting around the GCRA maths (gcra.hpp), shared by the module and its tests:
//   - the directive value parser: "rate=100r/s burst=20" (r/s, r/m, r/h as limit_req);
//   - the Redis GCRA Lua script (the same maths as gcra_check, the clock from Redis TIME);
//   - the response headers, formatted into caller buffers without allocating.
//
// Headers (draft-ietf-httpapi-ratelimit-headers-09, the structured-field form):
//   RateLimit-Policy: "default";q=<capacity>;w=<window s>
//   RateLimit: "default";r=<remaining>;t=<seconds until the bucket is full again, ceil>
//   X-RateLimit-Limit: <capacity>   X-RateLimit-Remaining: <remaining>
//   X-RateLimit-Reset: <seconds until the bucket is full again, ceil> (a delta, not an epoch)
//   Retry-After: <ceil seconds, >= 1> (refusals only)
// GCRA lets an idle client send capacity = rate + burst requests at once, and the bucket
// refills completely in capacity * emission interval: that is the policy's quota and window.
// With burst 0 it is exactly "rate per period".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tronch/gcra.hpp"

namespace tronch {

// Parses the words of a directive, e.g. {"rate=100r/s", "burst=20"} (also one string with
// spaces). rate is required, burst optional (default 0). On failure returns false and a
// one-line message in error.
bool parse_limit_spec(std::string_view text, GcraLimit& out, std::string& error);

// The GCRA script for Redis (EVAL/EVALSHA).
//   KEYS[1] = the state key (redis_keys::rate_limit_key)
//   ARGV[1] = emission interval (us), ARGV[2] = capacity (rate + burst), ARGV[3] = cost,
//   ARGV[4] = optional "now" in us (tests compare the script with gcra_check; the module
//             never sends it, so the clock is Redis TIME)
// Returns {allowed 0|1, remaining, retry_after_us, reset_after_us}; the clock is Redis TIME,
// so every node shares it; the state key gets a PEXPIRE so an idle key's state disappears.
extern const std::string_view kGcraLuaScript;

// The lease script (tronch_limit_policy leased; lease.hpp, gcra_lease does the same maths).
//   KEYS[1] = the state key (the same as kGcraLuaScript's: the two policies share a key's state)
//   ARGV[1] = emission interval (us), ARGV[2] = capacity, ARGV[3] = want (>= 1),
//   ARGV[4] = optional "now" in us (tests only)
// Returns {granted 0..want, remaining, retry_after_us, reset_after_us, wait_us}.
extern const std::string_view kGcraLeaseLuaScript;

// The policy's window in seconds (ceil(capacity * interval)), at least 1.
std::int64_t policy_window_seconds(const GcraLimit& limit) noexcept;
// Microseconds to whole seconds, rounded up.
std::int64_t ceil_seconds(std::int64_t us) noexcept;
// Retry-After: ceil seconds, at least 1.
std::int64_t retry_after_seconds(const GcraDecision& d) noexcept;

// Header values into out (not NUL terminated). Each returns the length, 0 if out is too small.
std::size_t format_ratelimit_policy(const GcraLimit& limit, char* out, std::size_t len) noexcept;
std::size_t format_ratelimit(const GcraDecision& d, char* out, std::size_t len) noexcept;
std::size_t format_integer(std::int64_t v, char* out, std::size_t len) noexcept;

}  // namespace tronch
