#include "usage_report.hpp"

#include "api_error.hpp"
#include "key_row.hpp"
#include "times.hpp"

namespace tronch::cp {

ServiceResult UsageReport::of_key(const std::string& id, const Query& q) {
    check_parameters(q, {"since", "until"});
    std::int64_t until = now_us() + 60'000'000, since = now_us() - 24LL * 3600 * 1'000'000;
    for (auto [name, target] : {std::pair{"since", &since}, std::pair{"until", &until}}) {
        if (auto it = q.find(name); it != q.end()) {
            auto t = parse_rfc3339(it->second);
            if (!t) throw ApiError(400, ErrorCode::invalid_parameter, std::string("'") + name + "' must be an RFC 3339 time");
            *target = *t;
        }
    }
    if (since >= until) throw ApiError(400, ErrorCode::invalid_parameter, "'since' must be before 'until'");
    return pg_.with_conn([&](PgConn& c) {
        auto k = c.exec(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1::uuid", {id});
        if (k.rows() == 0) throw ApiError(404, ErrorCode::key_not_found, "no key with id " + id);
        KeyRow key = read_key_row(k, 0);
        auto r = c.exec("SELECT (extract(epoch from bucket_start) * 1000000)::bigint, requests, errors FROM key_usage "
                        "WHERE key_id = $1::uuid AND bucket_start >= " + ts_param(2) + " AND bucket_start < " + ts_param(3) +
                            " ORDER BY bucket_start LIMIT 10000",
                        {id, std::to_string(since), std::to_string(until)});
        nlohmann::json data = nlohmann::json::array();
        std::int64_t total_r = 0, total_e = 0;
        for (int i = 0; i < r.rows(); ++i) {
            data.push_back({{"bucket_start", format_rfc3339(r.i64(i, 0))}, {"requests", r.i64(i, 1)}, {"errors", r.i64(i, 2)}});
            total_r += r.i64(i, 1);
            total_e += r.i64(i, 2);
        }
        ServiceResult out;
        out.body = {{"key_id", id},
                    {"since", format_rfc3339(since)},
                    {"until", format_rfc3339(until)},
                    {"bucket_seconds", 60},
                    {"last_used_at", key.last_used_us ? nlohmann::json(format_rfc3339(*key.last_used_us)) : nlohmann::json(nullptr)},
                    {"totals", {{"requests", total_r}, {"errors", total_e}}},
                    {"data", data}};
        return out;
    });
}

}  // namespace tronch::cp
