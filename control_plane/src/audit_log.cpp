#include "audit_log.hpp"

#include <algorithm>
#include <set>

#include "api_error.hpp"
#include "cursor.hpp"
#include "times.hpp"
#include "tronch/key_record.hpp"

namespace tronch::cp {

void write_audit_row(PgConn& c, const RequestContext& ctx, const char* action, const std::string& key_id,
                     const nlohmann::json& before, const nlohmann::json& after) {
    c.defer(  // sent with the next statement or the COMMIT
        "INSERT INTO audit_log (actor, action, key_id, request_id, before, after) "
        "VALUES ($1, $2, $3::uuid, $4, $5::jsonb, $6::jsonb)",
        {ctx.actor, std::string(action), key_id, ctx.request_id.empty() ? Param() : Param(ctx.request_id),
         before.is_null() ? Param() : Param(before.dump()), after.is_null() ? Param() : Param(after.dump())});
}

ServiceResult AuditLog::list(const Query& q) {
    check_parameters(q, {"limit", "cursor", "key_id", "action"});
    int limit = parse_page_size(q);
    Param key_id, action, before_id;
    if (auto it = q.find("key_id"); it != q.end()) {
        std::string id = it->second;
        for (char& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!valid_uuid(id)) throw ApiError(400, ErrorCode::invalid_parameter, "'key_id' must be a UUID");
        key_id = id;
    }
    if (auto it = q.find("action"); it != q.end()) {
        static const std::set<std::string> actions = {"create", "update", "rotate", "revoke", "expire"};
        if (!actions.count(it->second))
            throw ApiError(400, ErrorCode::invalid_parameter, "'action' must be create, update, rotate, revoke or expire");
        action = it->second;
    }
    if (auto it = q.find("cursor"); it != q.end()) {
        auto c = decode_id_cursor(it->second);
        if (!c) throw ApiError(400, ErrorCode::invalid_cursor, "'cursor' is not a cursor this server issued");
        before_id = std::to_string(*c);
    }
    auto r = pg_.with_conn([&](PgConn& c) {
        return c.exec(
            "SELECT id, (extract(epoch from at) * 1000000)::bigint, actor, action, key_id::text, request_id, "
            "before::text, after::text FROM audit_log WHERE ($1::uuid IS NULL OR key_id = $1::uuid) "
            "AND ($2::text IS NULL OR action = $2) AND ($3::bigint IS NULL OR id < $3::bigint) "
            "ORDER BY id DESC LIMIT $4",
            {key_id, action, before_id, std::to_string(limit + 1)});
    });
    nlohmann::json data = nlohmann::json::array();
    std::int64_t last = 0;
    int n = std::min(r.rows(), limit);
    for (int i = 0; i < n; ++i) {
        last = r.i64(i, 0);
        auto js = [&](int col) { return r.null(i, col) ? nlohmann::json(nullptr) : nlohmann::json::parse(r.str(i, col)); };
        data.push_back({{"id", last},
                        {"at", format_rfc3339(r.i64(i, 1))},
                        {"actor", r.str(i, 2)},
                        {"action", r.str(i, 3)},
                        {"key_id", r.null(i, 4) ? nlohmann::json(nullptr) : nlohmann::json(r.str(i, 4))},
                        {"request_id", r.null(i, 5) ? nlohmann::json(nullptr) : nlohmann::json(r.str(i, 5))},
                        {"before", js(6)},
                        {"after", js(7)}});
    }
    ServiceResult out;
    out.body = {{"data", data},
                {"next_cursor", r.rows() > limit ? nlohmann::json(encode_id_cursor(last)) : nlohmann::json(nullptr)}};
    return out;
}

}  // namespace tronch::cp
