// See rate_limit.hpp.
#include "tronch/rate_limit.hpp"

#include <charconv>
#include <cstring>

namespace tronch {
namespace {

bool parse_int(std::string_view s, std::int64_t& v) noexcept {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
}

// Appends text to out at pos; false if it does not fit.
bool put(char* out, std::size_t len, std::size_t& pos, std::string_view text) noexcept {
    if (len - pos < text.size()) return false;
    std::memcpy(out + pos, text.data(), text.size());
    pos += text.size();
    return true;
}

bool put_int(char* out, std::size_t len, std::size_t& pos, std::int64_t v) noexcept {
    auto [p, ec] = std::to_chars(out + pos, out + len, v);
    if (ec != std::errc()) return false;
    pos = static_cast<std::size_t>(p - out);
    return true;
}

}  // namespace

bool parse_limit_spec(std::string_view text, GcraLimit& out, std::string& error) {
    GcraLimit limit;
    bool have_rate = false, have_burst = false;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        if (i >= text.size()) break;
        std::size_t j = i;
        while (j < text.size() && text[j] != ' ' && text[j] != '\t') ++j;
        std::string_view word = text.substr(i, j - i);
        i = j;
        if (word.starts_with("rate=")) {
            if (have_rate) {
                error = "rate is given twice";
                return false;
            }
            std::string_view v = word.substr(5);
            // "rate=100 r/s" (the unit as its own word) reads as "rate=100r/s".
            std::string joined;
            std::size_t k = i;
            while (k < text.size() && (text[k] == ' ' || text[k] == '\t')) ++k;
            std::size_t e = k;
            while (e < text.size() && text[e] != ' ' && text[e] != '\t') ++e;
            std::string_view next = text.substr(k, e - k);
            if (next == "r/s" || next == "r/m" || next == "r/h") {
                joined = std::string(v) + std::string(next);
                v = joined;
                i = e;
            }
            std::int64_t period_s = 0;
            if (v.ends_with("r/s"))
                period_s = 1;
            else if (v.ends_with("r/m"))
                period_s = 60;
            else if (v.ends_with("r/h"))
                period_s = 3600;
            else {
                error = "invalid rate \"" + std::string(v) + "\": expected e.g. 100r/s, 10r/m or 5r/h";
                return false;
            }
            if (!parse_int(v.substr(0, v.size() - 3), limit.rate) || limit.rate < 1) {
                error = "invalid rate \"" + std::string(v) + "\": the number must be a whole number >= 1";
                return false;
            }
            limit.period_us = period_s * 1'000'000;
            have_rate = true;
        } else if (word.starts_with("burst=")) {
            if (have_burst) {
                error = "burst is given twice";
                return false;
            }
            if (!parse_int(word.substr(6), limit.burst) || limit.burst < 0) {
                error = "invalid burst \"" + std::string(word.substr(6)) + "\": a whole number >= 0";
                return false;
            }
            have_burst = true;
        } else {
            error =
                "unknown parameter \"" + std::string(word) + "\": expected rate=Nr/s|Nr/m|Nr/h and burst=N";
            return false;
        }
    }
    if (!have_rate) {
        error = "rate=... is required (e.g. rate=100r/s burst=20)";
        return false;
    }
    if (!limit.valid()) {
        error = "the limit is out of range: rate >= 1, burst >= 0, and an empty bucket must refill "
                "((rate + burst) requests at rate per period) within 2^52 us, about 142 years";
        return false;
    }
    out = limit;
    return true;
}

// Same steps as gcra_check (gcra.cpp); every value stays below 2^53 (see there), so Lua's
// doubles are exact. Stored as an integer string; "%d" is a 64-bit long on LP64 builds.
const std::string_view kGcraLuaScript = R"lua(
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local span = capacity * interval
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local tat = stored
if now > tat then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - span
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local ahead = new_tat - now
if ahead > 0 then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor(ahead / 1000) + 1000)
end
return {1, math.floor((span - ahead) / interval), 0, ahead}
)lua";

// Leases (lease.hpp, gcra_lease): the same steps for a batch of `want` requests. Request i of
// the batch fits iff now >= tat + i*T - C*T, so floor((now + C*T - tat) / T) of them fit now;
// the TAT advances by the granted ones only, so it never runs past now + C*T (the burst).
const std::string_view kGcraLeaseLuaScript = R"lua(
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
if want < 1 then want = 1 end
if want > capacity then want = capacity end
local span = capacity * interval
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local tat = stored
if now > tat then tat = now end
local room = now - tat + span
local free = 0
if room > 0 then free = math.floor(room / interval) end
local granted = want
if free < granted then granted = free end
local new_tat = tat + granted * interval
local ahead = new_tat - now
if granted > 0 and ahead > 0 then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor(ahead / 1000) + 1000)
end
local remaining = 0
if ahead <= span then remaining = math.floor((span - ahead) / interval) end
local retry = 0
if granted == 0 then retry = math.max(0, tat + interval - span - now) end
local wait = 0
if granted < want then wait = math.max(0, new_tat + want * interval - span - now) end
return {granted, remaining, retry, ahead, wait}
)lua";

std::int64_t ceil_seconds(std::int64_t us) noexcept {
    if (us <= 0) return 0;
    return us / 1'000'000 + (us % 1'000'000 != 0 ? 1 : 0);
}

std::int64_t retry_after_seconds(const GcraDecision& d) noexcept {
    std::int64_t s = ceil_seconds(d.retry_after_us);
    return s < 1 ? 1 : s;
}

std::int64_t policy_window_seconds(const GcraLimit& limit) noexcept {
    std::int64_t s = ceil_seconds(limit.capacity() * limit.emission_interval_us());
    return s < 1 ? 1 : s;
}

std::size_t format_ratelimit_policy(const GcraLimit& limit, char* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    if (!put(out, len, pos, "\"default\";q=") || !put_int(out, len, pos, limit.capacity()) ||
        !put(out, len, pos, ";w=") || !put_int(out, len, pos, policy_window_seconds(limit)))
        return 0;
    return pos;
}

std::size_t format_ratelimit(const GcraDecision& d, char* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    if (!put(out, len, pos, "\"default\";r=") || !put_int(out, len, pos, d.remaining) ||
        !put(out, len, pos, ";t=") || !put_int(out, len, pos, ceil_seconds(d.reset_after_us)))
        return 0;
    return pos;
}

std::size_t format_integer(std::int64_t v, char* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    return put_int(out, len, pos, v) ? pos : 0;
}

}  // namespace tronch
