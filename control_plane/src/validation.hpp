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
inline constexpr std::int64_t kDefaultGraceSeconds = 86400;
inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 200;

// Parses a body; throws ApiError(400, invalid_json) if it is not a JSON object.
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

// RFC 3339 ("2030-01-02T03:04:05Z", fractional seconds and offsets allowed) -> unix us.
std::optional<std::int64_t> parse_rfc3339(std::string_view text) noexcept;
// unix us -> "2030-01-02T03:04:05.123456Z" (microseconds shown only when non-zero).
std::string format_rfc3339(std::int64_t unix_us);

// "3600", "90s", "15m", "12h", "7d" -> seconds (> 0).
std::optional<std::int64_t> parse_duration_seconds(std::string_view text) noexcept;

// Query strings: percent-decoded; a repeated parameter is an error (400 invalid_parameter).
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
