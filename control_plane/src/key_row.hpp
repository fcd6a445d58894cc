// A row of api_keys as tronchd reads it, and its two faces: the API JSON (never key_hash)
// and the core library's KeyRecord (what Redis holds).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "db.hpp"
#include "tronch/key_format.hpp"
#include "tronch/key_record.hpp"

namespace tronch::cp {

struct KeyRow {
    std::string id, key_prefix, key_hash;
    Environment environment = Environment::live;  // text in SQL and JSON, typed here
    KeyStatus status = KeyStatus::active;
    std::string name, owner;
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

// The limit as the three SQL parameters rate_limit, rate_period_seconds, rate_burst (all NULL
// for none): the one place a RateLimit is taken apart.
struct LimitParams {
    Param rate, period_seconds, burst;
};
LimitParams limit_params(const std::optional<RateLimit>& limit);

// INSERTs a new key with k's prefix, hash, environment, name, owner, scopes, limit,
// allowed_cidrs, metadata, expires_us and rotated_from; returns the row as stored (id,
// status, times and version are the database's).
KeyRow insert_key(PgConn& c, const KeyRow& k);

nlohmann::json key_api_json(const KeyRow& k);
KeyRecord key_record_of(const KeyRow& k);

// SQL for "unix microseconds parameter $n as timestamptz".
std::string ts_param(int n);

}  // namespace tronch::cp
