// What every service (keys, usage, audit) takes from a request and gives back to the API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace tronch::cp {

struct RequestContext {
    std::string request_id;
    std::string actor = "admin";
    std::optional<std::string> idempotency_key;
    std::optional<std::string> if_match;
};

struct ServiceResult {
    int status = 200;
    nlohmann::json body;                 // null for 204
    std::optional<std::int64_t> version; // -> ETag
    std::string location;
    bool replayed = false;
    std::string raw_body;                // set for idempotent replays (the stored bytes)
};

}  // namespace tronch::cp
