#include "key_row.hpp"

#include <stdexcept>

#include "tronch/cidr.hpp"
#include "times.hpp"

namespace tronch::cp {

const char* const kKeyColumns =
    "id::text, key_prefix, key_hash, environment, status, name, owner, scopes::text, allowed_cidrs::text, "
    "metadata::text, rate_limit, rate_period_seconds, rate_burst, "
    "(extract(epoch from created_at) * 1000000)::bigint, (extract(epoch from updated_at) * 1000000)::bigint, "
    "(extract(epoch from last_used_at) * 1000000)::bigint, (extract(epoch from expires_at) * 1000000)::bigint, "
    "(extract(epoch from revoked_at) * 1000000)::bigint, rotated_from::text, version";

std::string ts_param(int n) {
    return "(timestamptz 'epoch' + $" + std::to_string(n) + "::bigint * interval '1 microsecond')";
}

KeyRow read_key_row(const PgResult& r, int i) {
    KeyRow k;
    k.id = r.str(i, 0);
    k.key_prefix = r.str(i, 1);
    k.key_hash = r.str(i, 2);
    // The table's CHECK constraints allow only the names the core parses.
    if (!parse_environment(r.str(i, 3), k.environment) || !parse_status(r.str(i, 4), k.status))
        throw std::runtime_error("api_keys row " + k.id + " has an unknown environment or status");
    k.name = r.str(i, 5);
    k.owner = r.str(i, 6);
    k.scopes = nlohmann::json::parse(r.str(i, 7));
    k.allowed_cidrs = nlohmann::json::parse(r.str(i, 8));
    k.metadata = nlohmann::json::parse(r.str(i, 9));
    if (!r.null(i, 10)) k.limit = RateLimit{r.i64(i, 10), r.i64(i, 11), r.i64(i, 12)};
    k.created_us = r.i64(i, 13);
    k.updated_us = r.i64(i, 14);
    k.last_used_us = r.opt_i64(i, 15);
    k.expires_us = r.opt_i64(i, 16);
    k.revoked_us = r.opt_i64(i, 17);
    k.rotated_from = r.opt(i, 18);
    k.version = r.i64(i, 19);
    return k;
}

LimitParams limit_params(const std::optional<RateLimit>& limit) {
    if (!limit) return {};
    return {std::to_string(limit->rate), std::to_string(limit->period_seconds), std::to_string(limit->burst)};
}

KeyRow insert_key(PgConn& c, const KeyRow& k) {
    static const std::string sql =
        std::string(
            "INSERT INTO api_keys (key_prefix, key_hash, environment, name, owner, scopes, rate_limit, "
            "rate_period_seconds, rate_burst, allowed_cidrs, metadata, expires_at, rotated_from) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10::jsonb, $11::jsonb, "
            "CASE WHEN $12::bigint IS NULL THEN NULL ELSE ") +
        ts_param(12) + " END, $13::uuid) RETURNING " + kKeyColumns;
    LimitParams l = limit_params(k.limit);
    Param expires = k.expires_us ? Param(std::to_string(*k.expires_us)) : std::nullopt;
    auto r = c.exec(sql, {k.key_prefix, k.key_hash, std::string(to_string(k.environment)), k.name, k.owner,
                          k.scopes.dump(), l.rate, l.period_seconds, l.burst, k.allowed_cidrs.dump(), k.metadata.dump(),
                          expires, k.rotated_from});
    return read_key_row(r, 0);
}

// Member by member, not from an initializer list: see encode_key_record (the same cost).
nlohmann::json key_api_json(const KeyRow& k) {
    using nlohmann::json;
    auto ts = [](const std::optional<std::int64_t>& us) { return us ? json(format_rfc3339(*us)) : json(nullptr); };
    json j(json::value_t::object);
    auto& m = j.get_ref<json::object_t&>();
    m.emplace("id", k.id);
    m.emplace("name", k.name);
    m.emplace("owner", k.owner);
    m.emplace("prefix", k.key_prefix);
    m.emplace("environment", std::string(to_string(k.environment)));
    m.emplace("status", std::string(to_string(k.status)));
    m.emplace("scopes", k.scopes);
    m.emplace("allowed_cidrs", k.allowed_cidrs);
    m.emplace("metadata", k.metadata);
    m.emplace("created_at", format_rfc3339(k.created_us));
    m.emplace("updated_at", format_rfc3339(k.updated_us));
    m.emplace("expires_at", ts(k.expires_us));
    m.emplace("last_used_at", ts(k.last_used_us));
    m.emplace("revoked_at", ts(k.revoked_us));
    m.emplace("rotated_from", k.rotated_from ? json(*k.rotated_from) : json(nullptr));
    m.emplace("version", k.version);
    json limits(nullptr);
    if (k.limit) {
        limits = json(json::value_t::object);
        auto& l = limits.get_ref<json::object_t&>();
        l.emplace("rate", k.limit->rate);
        l.emplace("period_seconds", k.limit->period_seconds);
        l.emplace("burst", k.limit->burst);
    }
    m.emplace("limits", std::move(limits));
    return j;
}

KeyRecord key_record_of(const KeyRow& k) {
    KeyRecord r;
    r.id = k.id;
    r.prefix = k.key_prefix;
    r.environment = k.environment;
    r.status = k.status;
    r.name = k.name;
    r.owner = k.owner;
    if (k.expires_us) {
        std::int64_t s = *k.expires_us / 1000000;
        if (*k.expires_us < 0 && *k.expires_us % 1000000) --s;
        r.expires_at = s;
    }
    r.limit = k.limit;
    for (auto& c : k.allowed_cidrs) {
        Cidr cidr;
        if (Cidr::parse(c.get<std::string>(), cidr)) r.allowed_cidrs.push_back(cidr);
    }
    for (auto& s : k.scopes) r.scopes.push_back(s.get<std::string>());
    r.metadata = k.metadata;
    return r;
}

}  // namespace tronch::cp
