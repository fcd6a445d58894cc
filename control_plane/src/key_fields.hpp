// The bodies of the key endpoints (create, patch, rotate): strict, an unknown field is
// 400 unknown_field and a wrong type or value 400 invalid_field. Pure: no I/O, unit tested.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tronch/key_format.hpp"
#include "tronch/key_record.hpp"

namespace tronch::cp {

inline constexpr std::size_t kMaxNameLength = 200;
inline constexpr std::size_t kMaxOwnerLength = 200;
inline constexpr std::int64_t kDefaultGraceSeconds = 86400;

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

}  // namespace tronch::cp
