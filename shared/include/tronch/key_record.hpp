// A key as the gateway needs to know it: the record tronchd mirrors into Redis under
// redis_keys::key_record(hash) and the module decodes on a cache miss.
//
// The JSON is versioned ("v": 1) and decoded strictly: an unknown field, a wrong type
// or an out-of-range value is an error, never a guess.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tronch/cidr.hpp"
#include "tronch/key_format.hpp"

namespace tronch {

inline constexpr int kKeyRecordVersion = 1;

enum class KeyStatus : unsigned char {
    active = 0,
    rotating = 1,  // replaced by a rotation; valid until expires_at (the grace end)
    revoked = 2,
    expired = 3,
};

std::string_view to_string(KeyStatus) noexcept;
bool parse_status(std::string_view text, KeyStatus& out) noexcept;

struct RateLimit {
    std::int64_t rate = 0;            // requests per period, >= 1
    std::int64_t period_seconds = 0;  // >= 1
    std::int64_t burst = 0;           // >= 0
    bool operator==(const RateLimit&) const = default;
};

// Limits accepted from operators; shared so the API and the gateway agree.
inline constexpr std::int64_t kMaxRate = 1'000'000;
inline constexpr std::int64_t kMaxPeriodSeconds = 86'400;
inline constexpr std::int64_t kMaxBurst = 1'000'000;
inline constexpr std::size_t kMaxCidrs = 16;
inline constexpr std::size_t kMaxScopes = 32;
inline constexpr std::size_t kMaxScopeLength = 64;
bool valid_rate_limit(const RateLimit&) noexcept;
bool valid_scope(std::string_view scope) noexcept;  // [a-z0-9_.:-]{1,64}

struct KeyRecord {
    std::string id;      // UUID, lower case
    std::string prefix;  // display_prefix() of the key
    Environment environment = Environment::live;
    KeyStatus status = KeyStatus::active;
    std::string name;
    std::string owner;
    std::optional<std::int64_t> expires_at;  // unix seconds; for a rotating key, the grace end
    std::optional<RateLimit> limit;          // none: the gateway's default applies
    std::vector<Cidr> allowed_cidrs;         // empty: any address
    std::vector<std::string> scopes;
    nlohmann::json metadata = nlohmann::json::object();

    // Whether the key may be used at `now` (unix seconds), status and expiry together.
    bool usable_at(std::int64_t now_seconds) const noexcept;
};

std::string encode_key_record(const KeyRecord& record);

struct DecodeResult {
    bool ok = false;
    std::string error;  // says what was wrong, for logs
};
// Never throws.
DecodeResult decode_key_record(std::string_view json_text, KeyRecord& out) noexcept;

bool valid_uuid(std::string_view text) noexcept;  // canonical 8-4-4-4-12 hex form

}  // namespace tronch
