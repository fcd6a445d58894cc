#include "key_row.hpp"

#include "tronch/cidr.hpp"
#include "validation.hpp"

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
    k.environment = r.str(i, 3);
    k.status = r.str(i, 4);
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

nlohmann::json key_api_json(const KeyRow& k) {
    auto ts = [](const std::optional<std::int64_t>& us) -> nlohmann::json {
        return us ? nlohmann::json(format_rfc3339(*us)) : nlohmann::json(nullptr);
    };
    nlohmann::json j = {
        {"id", k.id},
        {"name", k.name},
        {"owner", k.owner},
        {"prefix", k.key_prefix},
        {"environment", k.environment},
        {"status", k.status},
        {"scopes", k.scopes},
        {"allowed_cidrs", k.allowed_cidrs},
        {"metadata", k.metadata},
        {"created_at", format_rfc3339(k.created_us)},
        {"updated_at", format_rfc3339(k.updated_us)},
        {"expires_at", ts(k.expires_us)},
        {"last_used_at", ts(k.last_used_us)},
        {"revoked_at", ts(k.revoked_us)},
        {"rotated_from", k.rotated_from ? nlohmann::json(*k.rotated_from) : nlohmann::json(nullptr)},
        {"version", k.version},
    };
    j["limits"] = k.limit ? nlohmann::json{{"rate", k.limit->rate},
                                           {"period_seconds", k.limit->period_seconds},
                                           {"burst", k.limit->burst}}
                          : nlohmann::json(nullptr);
    return j;
}

KeyRecord key_record_of(const KeyRow& k) {
    KeyRecord r;
    r.id = k.id;
    r.prefix = k.key_prefix;
    parse_environment(k.environment, r.environment);
    parse_status(k.status, r.status);
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
