#include "key_fields.hpp"

#include <algorithm>
#include <set>

#include "api_error.hpp"
#include "metadata.hpp"
#include "text_checks.hpp"
#include "times.hpp"
#include "tronch/cidr.hpp"

namespace tronch::cp {
namespace {

void only_fields(const nlohmann::json& body, std::initializer_list<std::string_view> allowed) {
    for (auto& [k, v] : body.items()) {
        (void)v;
        if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            bad_input(ErrorCode::unknown_field, "unknown field '" + k + "'");
    }
}

std::string get_string(const nlohmann::json& v, const char* field, std::size_t max_len, bool allow_empty) {
    if (!v.is_string()) bad_input(ErrorCode::invalid_field, std::string("'") + field + "' must be a string");
    std::string s = v.get<std::string>();
    if (s.size() > max_len) bad_input(ErrorCode::invalid_field, std::string("'") + field + "' is too long");
    if (!allow_empty && s.empty()) bad_input(ErrorCode::invalid_field, std::string("'") + field + "' must not be empty");
    if (has_forbidden_chars(s))
        bad_input(ErrorCode::invalid_field, std::string("'") + field + "' has control or bidi-override characters");
    return s;
}

std::int64_t get_int(const nlohmann::json& v, const std::string& field) {
    if (!v.is_number_integer()) bad_input(ErrorCode::invalid_field, "'" + field + "' must be an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        bad_input(ErrorCode::invalid_field, "'" + field + "' is out of range");
    return v.get<std::int64_t>();
}

std::vector<std::string> get_scopes(const nlohmann::json& v) {
    if (!v.is_array()) bad_input(ErrorCode::invalid_field, "'scopes' must be an array of strings");
    if (v.size() > kMaxScopes) bad_input(ErrorCode::invalid_field, "'scopes' has more than " + std::to_string(kMaxScopes) + " entries");
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (auto& s : v) {
        if (!s.is_string() || !valid_scope(s.get<std::string>()))
            bad_input(ErrorCode::invalid_field, "'scopes' entries must match [a-z0-9_.:-]{1,64}");
        if (seen.insert(s.get<std::string>()).second) out.push_back(s.get<std::string>());
    }
    return out;
}

std::optional<RateLimit> get_limit(const nlohmann::json& v) {
    if (v.is_null()) return std::nullopt;
    if (!v.is_object()) bad_input(ErrorCode::invalid_field, "'limits' must be an object or null");
    only_fields(v, {"rate", "period_seconds", "burst"});
    RateLimit l;
    if (!v.contains("rate")) bad_input(ErrorCode::missing_field, "'limits.rate' is required");
    if (!v.contains("period_seconds")) bad_input(ErrorCode::missing_field, "'limits.period_seconds' is required");
    l.rate = get_int(v["rate"], "limits.rate");
    l.period_seconds = get_int(v["period_seconds"], "limits.period_seconds");
    l.burst = v.contains("burst") ? get_int(v["burst"], "limits.burst") : 0;
    if (!valid_rate_limit(l))
        bad_input(ErrorCode::invalid_field, "'limits' out of range: rate 1.." + std::to_string(kMaxRate) + ", period_seconds 1.." +
                                      std::to_string(kMaxPeriodSeconds) + ", burst 0.." + std::to_string(kMaxBurst));
    return l;
}

std::vector<std::string> get_cidrs(const nlohmann::json& v) {
    if (!v.is_array()) bad_input(ErrorCode::invalid_field, "'allowed_cidrs' must be an array of strings");
    if (v.size() > kMaxCidrs) bad_input(ErrorCode::invalid_field, "'allowed_cidrs' has more than " + std::to_string(kMaxCidrs) + " entries");
    std::vector<std::string> out;
    for (auto& c : v) {
        Cidr cidr;
        if (!c.is_string() || !Cidr::parse(c.get<std::string>(), cidr))
            bad_input(ErrorCode::invalid_field, "'allowed_cidrs' entries must be CIDR ranges such as 10.0.0.0/8");
        std::string canon = cidr.to_string();
        if (std::find(out.begin(), out.end(), canon) == out.end()) out.push_back(canon);
    }
    return out;
}

}  // namespace

CreateKeyRequest parse_create_request(const nlohmann::json& body, std::int64_t now_us) {
    only_fields(body, {"name", "owner", "environment", "scopes", "limits", "expires_at", "allowed_cidrs", "metadata"});
    CreateKeyRequest r;
    if (body.contains("name")) r.name = get_string(body["name"], "name", kMaxNameLength, true);
    if (body.contains("owner")) r.owner = get_string(body["owner"], "owner", kMaxOwnerLength, true);
    if (!body.contains("environment")) bad_input(ErrorCode::missing_field, "'environment' is required (live or test)");
    if (!body["environment"].is_string() || !parse_environment(body["environment"].get<std::string>(), r.environment))
        bad_input(ErrorCode::invalid_field, "'environment' must be \"live\" or \"test\"");
    if (body.contains("scopes")) r.scopes = get_scopes(body["scopes"]);
    if (body.contains("limits")) r.limit = get_limit(body["limits"]);
    if (body.contains("expires_at") && !body["expires_at"].is_null()) {
        auto& e = body["expires_at"];
        std::optional<std::int64_t> t;
        if (e.is_string()) t = parse_rfc3339(e.get<std::string>());
        if (!t) bad_input(ErrorCode::invalid_field, "'expires_at' must be an RFC 3339 time such as 2030-01-01T00:00:00Z");
        if (*t <= now_us) bad_input(ErrorCode::invalid_field, "'expires_at' must be in the future");
        r.expires_at_us = t;
    }
    if (body.contains("allowed_cidrs")) r.allowed_cidrs = get_cidrs(body["allowed_cidrs"]);
    if (body.contains("metadata")) r.metadata = check_metadata(body["metadata"]);
    return r;
}

PatchKeyRequest parse_patch_request(const nlohmann::json& body) {
    only_fields(body, {"name", "scopes", "limits", "allowed_cidrs", "metadata"});
    if (body.empty()) bad_input(ErrorCode::missing_field, "nothing to update: give at least one of name, scopes, limits, allowed_cidrs, metadata");
    PatchKeyRequest r;
    if (body.contains("name")) r.name = get_string(body["name"], "name", kMaxNameLength, true);
    if (body.contains("scopes")) r.scopes = get_scopes(body["scopes"]);
    if (body.contains("limits")) {
        r.limit_set = true;
        r.limit = get_limit(body["limits"]);
    }
    if (body.contains("allowed_cidrs")) r.allowed_cidrs = get_cidrs(body["allowed_cidrs"]);
    if (body.contains("metadata")) r.metadata = check_metadata(body["metadata"]);
    return r;
}

std::int64_t parse_rotate_request(const nlohmann::json& body, std::int64_t max_grace_seconds) {
    only_fields(body, {"grace_period_seconds"});
    if (!body.contains("grace_period_seconds")) return std::min(kDefaultGraceSeconds, max_grace_seconds);
    std::int64_t g = get_int(body["grace_period_seconds"], "grace_period_seconds");
    if (g < 0 || g > max_grace_seconds)
        bad_input(ErrorCode::invalid_field, "'grace_period_seconds' must be 0.." + std::to_string(max_grace_seconds));
    return g;
}

}  // namespace tronch::cp
