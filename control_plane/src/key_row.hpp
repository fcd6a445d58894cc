// A row of api_keys as tronchd reads it, and its two faces: the API JSON (never key_hash)
// and the core library's KeyRecord (what Redis holds).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "db.hpp"
#include "tronch/key_record.hpp"

namespace tronch::cp {

struct KeyRow {
    std::string id, key_prefix, key_hash, environment, status, name, owner;
    nlohmann::json scopes = nlohmann::json::array();
    nlohmann::json allowed_cidrs = nlohmann::json::array();
    nlohmann::json metadata = nlohmann::json::object();
    std::optional<RateLimit> limit;
    std::int64_t created_us = 0, updated_us = 0;
    std::optional<std::int64_t> last_used_us, expires_us, revoked_us;
    std::optional<std::string> rotated_from;
    std::int64_t version = 0;
};

// The SELECT list read_key_row() expects (for SELECT ... and RETURNING ...).
extern const char* const kKeyColumns;
KeyRow read_key_row(const PgResult& r, int row);

nlohmann::json key_api_json(const KeyRow& k);
KeyRecord key_record_of(const KeyRow& k);

// SQL for "unix microseconds parameter $n as timestamptz".
std::string ts_param(int n);

}  // namespace tronch::cp
