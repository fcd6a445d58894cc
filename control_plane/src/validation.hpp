// Request validation: strict JSON bodies (unknown field -> 400 unknown_field, wrong type ->
// 400 invalid_field), query parameters, RFC 3339 times. Pure: no I/O, unit tested.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tronch/key_format.hpp"
#include "tronch/key_record.hpp"

namespace tronch::cp {

inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;
inline constexpr std::size_t kMaxNameLength = 200;
inline constexpr std::size_t kMaxOwnerLength = 200;
inline constexpr std::size_t kMaxMetadataBytes = 8 * 1024;
// Metadata bounds (Stripe-like, so every client's JSON parser copes): nesting, members per
// object, key and string lengths.
inline constexpr int kMaxMetadataDepth = 5;  // the metadata object itself is depth 1
inline constexpr std::size_t kMaxMetadataKeys = 50;
inline constexpr std::size_t kMaxMetadataKeyLength = 40;
inline constexpr std::size_t kMaxMetadataStringLength = 500;
// A request body nested deeper than this is refused while parsing (before any tree is built).
inline constexpr int kMaxJsonDepth = 16;
// Integers beyond +-2^53 are refused: a JSON client holding numbers as doubles would round them.
inline constexpr std::int64_t kMaxExactInteger = 9007199254740992LL;
// Times are refused from 10000-01-01T00:00:00Z on: RFC 3339 has four-digit years.
inline constexpr std::int64_t kTimeLimitUs = 253402300800LL * 1000000;
inline constexpr std::int64_t kDefaultGraceSeconds = 86400;
inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 200;

// Parses a body; throws ApiError(400, invalid_json) if it is not a JSON object, has a duplicate
// member name or is nested deeper than kMaxJsonDepth, and 400 invalid_field for a number that a
// double cannot hold exactly (an integer beyond 2^53, an integer literal that overflowed).
nlohmann::json parse_json_object(std::string_view body);

struct CreateKeyRequest {
    std::string name;
    std::string owner;
    Environment environment = Environment::live;
    std::vector<std::string> scopes;
    std::optional<RateLimit> limit;
    std::optional<std::int64_t> expires_at_us;
    std::vector<std::string> allowed_cidrs;  // canonical form (Cidr::to_string)
    nlohmann::json metadata = nlohmann::json::object();
};
// now_us: for "expires_at must be in the future".
CreateKeyRequest parse_create_request(const nlohmann::json& body, std::int64_t now_us);

struct PatchKeyRequest {
    std::optional<std::string> name;
    std::optional<std::vector<std::string>> scopes;
    bool limit_set = false;
    std::optional<RateLimit> limit;  // with limit_set: null clears the limit
    std::optional<std::vector<std::string>> allowed_cidrs;
    std::optional<nlohmann::json> metadata;
};
PatchKeyRequest parse_patch_request(const nlohmann::json& body);

// {"grace_period_seconds": n} (0..max_grace); an empty body means the default.
std::int64_t parse_rotate_request(const nlohmann::json& body, std::int64_t max_grace_seconds);

// True if `text` (valid UTF-8) holds a C0/C1 control or a bidi override/isolate:
// U+0000-U+001F, U+007F-U+009F, U+202A-U+202E, U+2066-U+2069.
bool has_forbidden_chars(std::string_view text) noexcept;
// True if `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view text) noexcept;

// RFC 3339 ("2030-01-02T03:04:05Z", fractional seconds and offsets allowed) -> unix us; only
// 1970-01-01T00:00:00Z <= t < 10000-01-01T00:00:00Z (so every time we echo is valid RFC 3339).
std::optional<std::int64_t> parse_rfc3339(std::string_view text) noexcept;
// unix us -> "2030-01-02T03:04:05.123456Z" (microseconds shown only when non-zero).
std::string format_rfc3339(std::int64_t unix_us);

// "3600", "90s", "15m", "12h", "7d" -> seconds (> 0).
std::optional<std::int64_t> parse_duration_seconds(std::string_view text) noexcept;

// Query strings: percent-decoded; a repeated parameter, a bad %-escape, invalid UTF-8 or a
// control character (%00 included) in a name or value is an error (400 invalid_parameter).
std::map<std::string, std::string> parse_query(std::string_view query);
std::string percent_decode(std::string_view text, bool plus_is_space);

// Throws 400 unknown_parameter for any parameter not in `allowed`.
void check_parameters(const std::map<std::string, std::string>& query, std::initializer_list<std::string_view> allowed);
int parse_page_size(const std::map<std::string, std::string>& query);

// If-Match: true if the header (absent = true, "*", or a list of ETags) matches `version`.
bool if_match_allows(const std::optional<std::string>& header, std::int64_t version);
std::string etag_for(std::int64_t version);

// X-Request-Id values we echo back: [A-Za-z0-9._:-]{1,128}.
bool sane_request_id(std::string_view id) noexcept;

}  // namespace tronch::cp
