#include "keys.hpp"

#include <algorithm>

#include <openssl/crypto.h>

#include "api_error.hpp"
#include "audit_log.hpp"
#include "cursor.hpp"
#include "etag.hpp"
#include "idempotency.hpp"
#include "key_fields.hpp"
#include "key_row.hpp"
#include "log.hpp"
#include "query.hpp"
#include "times.hpp"
#include "tronch/key_format.hpp"
#include "tronch/key_hash.hpp"

namespace tronch::cp {
namespace {

constexpr std::int64_t kIdempotencyTtlHours = 24;

KeyRow lock_key(PgConn& c, const std::string& id) {
    auto r = c.exec(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1::uuid FOR UPDATE", {id});
    if (r.rows() == 0) throw ApiError(404, ErrorCode::key_not_found, "no key with id " + id);
    return read_key_row(r, 0);
}

void check_if_match(const RequestContext& ctx, const KeyRow& k) {
    if (!if_match_allows(ctx.if_match, k.version))
        throw ApiError(412, ErrorCode::precondition_failed,
                       "If-Match does not match the key's current ETag " + etag_for(k.version));
}

// A new key's fields from a create request (what insert_key() takes).
KeyRow new_key_of(const CreateKeyRequest& req, const std::string& prefix, const std::string& hash) {
    KeyRow k;
    k.key_prefix = prefix;
    k.key_hash = hash;
    k.environment = req.environment;
    k.name = req.name;
    k.owner = req.owner;
    k.scopes = req.scopes;
    k.limit = req.limit;
    k.allowed_cidrs = req.allowed_cidrs;
    k.metadata = req.metadata;
    k.expires_us = req.expires_at_us;
    return k;
}

// The API view plus the plaintext, shown this once. Takes the view already built for the audit
// row: building it twice was a fifth of tronchd's instructions per create (callgrind, bench/RESULTS.md).
nlohmann::json with_plaintext(nlohmann::json view, const std::string& plaintext) {
    view["key"] = plaintext;
    return view;
}

}  // namespace

// ---- idempotency ------------------------------------------------------------------

std::optional<KeyService::Idem> KeyService::idem_for(const RequestContext& ctx, const std::string& endpoint,
                                                     const nlohmann::json& body) {
    if (!ctx.idempotency_key) return std::nullopt;
    if (!idempotency::valid_key(*ctx.idempotency_key))
        throw ApiError(400, ErrorCode::invalid_header, "Idempotency-Key must be 1..255 printable ASCII characters");
    Idem i;
    i.key = *ctx.idempotency_key;
    i.lookup = idempotency::lookup_hash(secret_, i.key);
    i.endpoint = endpoint;
    i.request_hash = idempotency::request_hash(endpoint + "\n" + body.dump());
    i.aad = i.lookup + "|" + endpoint;
    return i;
}

std::optional<ServiceResult> KeyService::idem_replay(PgConn& c, const Idem& i) {
    // Serialises concurrent requests with the same Idempotency-Key until commit (sent with the
    // SELECT below; the server runs them in order, so the SELECT waits for the lock).
    c.defer("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", {i.lookup});
    auto r = c.exec(
        "SELECT endpoint, request_hash, status, response FROM idempotency_keys "
        "WHERE id_hash = $1 AND created_at > now() - $2::bigint * interval '1 hour'",
        {i.lookup, std::to_string(kIdempotencyTtlHours)});
    if (r.rows() == 0) return std::nullopt;
    if (r.str(0, 0) != i.endpoint || r.str(0, 1) != i.request_hash)
        throw ApiError(422, ErrorCode::idempotency_key_reused,
                       "this Idempotency-Key was used with a different request; use a new key");
    std::string aad = i.lookup + "|" + r.str(0, 0);
    auto plain = idempotency::open(secret_, i.key, aad, r.bytea(0, 3));
    if (!plain)
        throw ApiError(422, ErrorCode::idempotency_key_reused, "the stored response for this Idempotency-Key cannot be replayed");
    ServiceResult out;
    out.status = static_cast<int>(r.i64(0, 2));
    out.replayed = true;
    out.raw_body = *plain;
    out.body = nlohmann::json::parse(*plain, nullptr, false);
    if (out.body.is_object() && out.body.contains("version")) out.version = out.body["version"].get<std::int64_t>();
    if (out.body.is_object() && out.body.contains("id")) out.location = "/api/v1/keys/" + out.body["id"].get<std::string>();
    return out;
}

void KeyService::idem_store(PgConn& c, const Idem& i, const ServiceResult& r) {
    std::string sealed = idempotency::seal(secret_, i.key, i.aad, r.body.dump());
    c.defer(
        "INSERT INTO idempotency_keys (id_hash, endpoint, request_hash, status, response) "
        "VALUES ($1, $2, $3, $4, $5::bytea) ON CONFLICT (id_hash) DO UPDATE SET endpoint = excluded.endpoint, "
        "request_hash = excluded.request_hash, status = excluded.status, response = excluded.response, created_at = now()",
        {i.lookup, i.endpoint, i.request_hash, std::to_string(r.status), c.escape_bytea(sealed)});
}

// ---- create / read ---------------------------------------------------------------

ServiceResult KeyService::create(const nlohmann::json& body, const RequestContext& ctx) {
    CreateKeyRequest req = parse_create_request(body, now_us());
    auto idem = idem_for(ctx, "POST /api/v1/keys", body);
    std::string plaintext = generate_key(req.environment);
    std::string hash = key_hash_hex(plaintext);
    std::string prefix(display_prefix(plaintext));

    std::optional<KeyRow> created;
    Mirror::Hold held;  // from the INSERT until Redis has the row: see mirror.hpp
    ServiceResult res = pg_.transaction([&](PgConn& c) -> ServiceResult {
        held = {};  // a retried transaction must not hold the first attempt's locks
        created.reset();
        if (idem) {
            if (auto replay = idem_replay(c, *idem)) return *replay;
        }
        KeyRow k = insert_key(c, new_key_of(req, prefix, hash));
        held = mirror_.hold(k.id);
        created = k;
        nlohmann::json view = key_api_json(k);
        write_audit_row(c, ctx, "create", k.id, nullptr, view);
        ServiceResult out;
        out.status = 201;
        out.body = with_plaintext(std::move(view), plaintext);
        out.version = k.version;
        out.location = "/api/v1/keys/" + k.id;
        if (idem) idem_store(c, *idem, out);
        return out;
    });
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    if (created && !res.replayed) {
        mirror_.write(*created, held);
        held = {};
        log::info("key created", {{"request_id", ctx.request_id}, {"key_id", res.body["id"]}, {"prefix", prefix}});
    }
    return res;
}

ServiceResult KeyService::get(const std::string& id) {
    auto r = pg_.with_conn([&](PgConn& c) {
        return c.exec(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1::uuid", {id});
    });
    if (r.rows() == 0) throw ApiError(404, ErrorCode::key_not_found, "no key with id " + id);
    KeyRow k = read_key_row(r, 0);
    ServiceResult out;
    out.body = key_api_json(k);
    out.version = k.version;
    return out;
}

ServiceResult KeyService::list(const Query& q) {
    check_parameters(q, {"limit", "cursor", "status", "environment", "owner", "expiring_within"});
    int limit = parse_page_size(q);
    Param status, env, owner, within, cursor_us, cursor_id;
    if (auto it = q.find("status"); it != q.end()) {
        KeyStatus s;
        if (!parse_status(it->second, s))
            throw ApiError(400, ErrorCode::invalid_parameter, "'status' must be active, rotating, revoked or expired");
        status = it->second;
    }
    if (auto it = q.find("environment"); it != q.end()) {
        Environment e;
        if (!parse_environment(it->second, e)) throw ApiError(400, ErrorCode::invalid_parameter, "'environment' must be live or test");
        env = it->second;
    }
    if (auto it = q.find("owner"); it != q.end()) owner = it->second;
    if (auto it = q.find("expiring_within"); it != q.end()) {
        auto d = parse_duration_seconds(it->second);
        if (!d) throw ApiError(400, ErrorCode::invalid_parameter, "'expiring_within' must be a duration such as 3600, 90m, 12h or 7d");
        within = std::to_string(*d);
    }
    if (auto it = q.find("cursor"); it != q.end()) {
        auto c = decode_key_cursor(it->second);
        if (!c) throw ApiError(400, ErrorCode::invalid_cursor, "'cursor' is not a cursor this server issued");
        cursor_us = std::to_string(c->created_us);
        cursor_id = c->id;
    }
    std::string sql = std::string("SELECT ") + kKeyColumns +
                      " FROM api_keys WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR environment = $2)"
                      " AND ($3::text IS NULL OR owner = $3)"
                      " AND ($4::bigint IS NULL OR (status IN ('active', 'rotating') AND expires_at > now()"
                      "      AND expires_at <= now() + $4::bigint * interval '1 second'))"
                      " AND ($5::bigint IS NULL OR (created_at, id) < (" + ts_param(5) + ", $6::uuid))"
                      " ORDER BY created_at DESC, id DESC LIMIT $7";
    auto r = pg_.with_conn([&](PgConn& c) {
        return c.exec(sql, {status, env, owner, within, cursor_us, cursor_id, std::to_string(limit + 1)});
    });
    nlohmann::json data = nlohmann::json::array();
    KeyRow last;
    int n = std::min(r.rows(), limit);
    for (int i = 0; i < n; ++i) {
        last = read_key_row(r, i);
        data.push_back(key_api_json(last));
    }
    ServiceResult out;
    out.body = {{"data", data},
                {"next_cursor", r.rows() > limit ? nlohmann::json(encode_key_cursor({last.created_us, last.id}))
                                                 : nlohmann::json(nullptr)}};
    return out;
}

// ---- changes ---------------------------------------------------------------------

ServiceResult KeyService::patch(const std::string& id, const nlohmann::json& body, const RequestContext& ctx) {
    PatchKeyRequest req = parse_patch_request(body);
    ServiceResult res = pg_.transaction([&](PgConn& c) {
        KeyRow k = lock_key(c, id);
        check_if_match(ctx, k);
        if (k.status != KeyStatus::active && k.status != KeyStatus::rotating)
            throw ApiError(409, ErrorCode::key_not_active,
                           "key is " + std::string(to_string(k.status)) + "; only active or rotating keys can be changed");
        KeyRow n = k;
        if (req.name) n.name = *req.name;
        if (req.scopes) n.scopes = *req.scopes;
        if (req.limit_set) n.limit = req.limit;
        if (req.allowed_cidrs) n.allowed_cidrs = *req.allowed_cidrs;
        if (req.metadata) n.metadata = *req.metadata;
        LimitParams l = limit_params(n.limit);
        auto r = c.exec(std::string("UPDATE api_keys SET name = $2, scopes = $3::jsonb, rate_limit = $4, "
                                    "rate_period_seconds = $5, rate_burst = $6, allowed_cidrs = $7::jsonb, "
                                    "metadata = $8::jsonb, updated_at = now(), version = version + 1 "
                                    "WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                        {id, n.name, n.scopes.dump(), l.rate, l.period_seconds, l.burst,
                         n.allowed_cidrs.dump(), n.metadata.dump()});
        KeyRow after = read_key_row(r, 0);
        write_audit_row(c, ctx, "update", id, key_api_json(k), key_api_json(after));
        ServiceResult out;
        out.body = key_api_json(after);
        out.version = after.version;
        return out;
    });
    mirror_.sync_key(id);
    log::info("key updated", {{"request_id", ctx.request_id}, {"key_id", id}});
    return res;
}

ServiceResult KeyService::rotate(const std::string& id, const nlohmann::json& body, const RequestContext& ctx) {
    std::int64_t grace = parse_rotate_request(body, max_grace_);
    auto idem = idem_for(ctx, "POST /api/v1/keys/" + id + "/rotate", body);
    std::optional<KeyRow> fresh_row, old_row;
    Mirror::Hold held;  // both keys, from while their rows are locked until Redis has them
    ServiceResult res = pg_.transaction([&](PgConn& c) -> ServiceResult {
        held = {};  // a retried transaction must not hold the first attempt's locks
        fresh_row.reset();
        old_row.reset();
        if (idem) {
            if (auto replay = idem_replay(c, *idem)) return *replay;
        }
        KeyRow old = lock_key(c, id);
        check_if_match(ctx, old);
        if (old.status != KeyStatus::active)
            throw ApiError(409, ErrorCode::key_not_active,
                           "key is " + std::string(to_string(old.status)) + "; only an active key can be rotated");
        std::string plaintext = generate_key(old.environment);
        KeyRow successor = old;  // same fields, new secret, and a link back
        successor.key_prefix = display_prefix(plaintext);
        successor.key_hash = key_hash_hex(plaintext);
        successor.rotated_from = old.id;
        KeyRow fresh = insert_key(c, successor);
        auto u = grace == 0
                     ? c.exec(std::string("UPDATE api_keys SET status = 'revoked', revoked_at = now(), updated_at = now(), "
                                          "version = version + 1 WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                              {id})
                     : c.exec(std::string("UPDATE api_keys SET status = 'rotating', expires_at = least(coalesce(expires_at, "
                                          "'infinity'), now() + $2::bigint * interval '1 second'), updated_at = now(), "
                                          "version = version + 1 WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                              {id, std::to_string(grace)});
        KeyRow old_after = read_key_row(u, 0);
        held = mirror_.hold(fresh.id, old_after.id);
        fresh_row = fresh;
        old_row = old_after;
        nlohmann::json old_view = key_api_json(old_after);
        nlohmann::json fresh_view = key_api_json(fresh);
        write_audit_row(c, ctx, "rotate", id, key_api_json(old), old_view);
        write_audit_row(c, ctx, "create", fresh.id, nullptr, fresh_view);
        ServiceResult out;
        out.status = 201;
        out.body = with_plaintext(std::move(fresh_view), plaintext);
        out.body["previous"] = std::move(old_view);
        out.version = fresh.version;
        out.location = "/api/v1/keys/" + fresh.id;
        OPENSSL_cleanse(plaintext.data(), plaintext.size());
        if (idem) idem_store(c, *idem, out);
        return out;
    });
    if (fresh_row && !res.replayed) {
        mirror_.write(*fresh_row, held);
        mirror_.write(*old_row, held);
        held = {};
        log::info("key rotated",
                  {{"request_id", ctx.request_id}, {"key_id", id}, {"new_key_id", fresh_row->id}, {"grace_seconds", grace}});
    }
    return res;
}

ServiceResult KeyService::revoke(const std::string& id, const RequestContext& ctx) {
    bool changed = pg_.transaction([&](PgConn& c) {
        KeyRow k = lock_key(c, id);
        if (k.status == KeyStatus::revoked) return false;  // idempotent
        check_if_match(ctx, k);
        auto r = c.exec(std::string("UPDATE api_keys SET status = 'revoked', revoked_at = now(), updated_at = now(), "
                                    "version = version + 1 WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                        {id});
        write_audit_row(c, ctx, "revoke", id, key_api_json(k), key_api_json(read_key_row(r, 0)));
        return true;
    });
    if (changed) {
        mirror_.sync_key(id);
        log::info("key revoked", {{"request_id", ctx.request_id}, {"key_id", id}});
    }
    ServiceResult out;
    out.status = 204;
    out.body = nullptr;
    return out;
}

// ---- background ------------------------------------------------------------------

int KeyService::sweep_expired() {
    RequestContext ctx;
    ctx.actor = "system";
    std::vector<std::string> ids = pg_.transaction([&](PgConn& c) {
        auto r = c.exec(std::string("SELECT ") + kKeyColumns +
                        " FROM api_keys WHERE status IN ('active', 'rotating') AND expires_at <= now() "
                        "ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED");
        std::vector<std::string> out;
        for (int i = 0; i < r.rows(); ++i) {
            KeyRow before = read_key_row(r, i);
            auto u = c.exec(std::string("UPDATE api_keys SET status = 'expired', updated_at = now(), version = version + 1 "
                                        "WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                            {before.id});
            write_audit_row(c, ctx, "expire", before.id, key_api_json(before), key_api_json(read_key_row(u, 0)));
            out.push_back(before.id);
        }
        return out;
    });
    for (auto& id : ids) log::info("key expired", {{"key_id", id}});
    mirror_.sync_keys(ids);
    return static_cast<int>(ids.size());
}

void KeyService::purge_idempotency() {
    pg_.with_conn([&](PgConn& c) {
        return c.exec("DELETE FROM idempotency_keys WHERE created_at < now() - $1::bigint * interval '1 hour'",
                      {std::to_string(kIdempotencyTtlHours)});
    });
}

}  // namespace tronch::cp
