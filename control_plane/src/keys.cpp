#include "keys.hpp"

#include <chrono>
#include <set>

#include <openssl/crypto.h>

#include "api_error.hpp"
#include "cursor.hpp"
#include "idempotency.hpp"
#include "key_row.hpp"
#include "key_filters.hpp"
#include "log.hpp"
#include "tronch/key_format.hpp"
#include "tronch/key_hash.hpp"
#include "validation.hpp"

namespace tronch::cp {
namespace {

constexpr std::int64_t kIdempotencyTtlHours = 24;

std::int64_t now_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

Param opt_num(const std::optional<std::int64_t>& v) { return v ? Param(std::to_string(*v)) : std::nullopt; }

std::string insert_sql() {
    return std::string(
               "INSERT INTO api_keys (key_prefix, key_hash, environment, name, owner, scopes, rate_limit, "
               "rate_period_seconds, rate_burst, allowed_cidrs, metadata, expires_at, rotated_from) "
               "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10::jsonb, $11::jsonb, "
               "CASE WHEN $12::bigint IS NULL THEN NULL ELSE ") +
           ts_param(12) + " END, $13::uuid) RETURNING " + kKeyColumns;
}

KeyRow lock_key(PgConn& c, const std::string& id) {
    auto r = c.exec(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1::uuid FOR UPDATE", {id});
    if (r.rows() == 0) throw ApiError(404, codes::key_not_found, "no key with id " + id);
    return read_key_row(r, 0);
}

void check_if_match(const RequestContext& ctx, const KeyRow& k) {
    if (!if_match_allows(ctx.if_match, k.version))
        throw ApiError(412, codes::precondition_failed,
                       "If-Match does not match the key's current ETag " + etag_for(k.version));
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
        throw ApiError(400, codes::invalid_header, "Idempotency-Key must be 1..255 printable ASCII characters");
    Idem i;
    i.key = *ctx.idempotency_key;
    i.lookup = idempotency::lookup_hash(secrets_.current(), i.key);
    if (!secrets_.previous().empty()) i.previous_lookup = idempotency::lookup_hash(secrets_.previous(), i.key);
    i.endpoint = endpoint;
    i.request_hash = idempotency::request_hash(endpoint + "\n" + body.dump());
    i.aad = i.lookup + "|" + endpoint;
    return i;
}

std::optional<ServiceResult> KeyService::idem_replay(PgConn& c, const Idem& i) {
    // Serialises concurrent requests with the same Idempotency-Key until commit (sent with the
    // SELECT below; the server runs them in order, so the SELECT waits for the lock).
    c.defer("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", {i.lookup});
    // Under the current secret, or (after a rotation) the previous one: the current one first.
    auto r = c.exec(
        "SELECT endpoint, request_hash, status, response, id_hash FROM idempotency_keys "
        "WHERE id_hash IN ($1, $3) AND created_at > now() - $2::bigint * interval '1 hour' "
        "ORDER BY id_hash = $1 DESC LIMIT 1",
        {i.lookup, std::to_string(kIdempotencyTtlHours), i.previous_lookup.empty() ? Param() : Param(i.previous_lookup)});
    if (r.rows() == 0) {
        secrets_.refuse_if_foreign();  // a record we cannot find may exist under another secret
        return std::nullopt;
    }
    if (r.str(0, 0) != i.endpoint || r.str(0, 1) != i.request_hash)
        throw ApiError(422, codes::idempotency_key_reused,
                       "this Idempotency-Key was used with a different request; use a new key");
    const bool current = r.str(0, 4) == i.lookup;
    std::string aad = r.str(0, 4) + "|" + r.str(0, 0);
    auto plain = idempotency::open(current ? secrets_.current() : secrets_.previous(), i.key, aad, r.bytea(0, 3));
    if (!plain)  // never fall through to a second creation: the first one happened
        throw ApiError(409, codes::idempotency_unreadable,
                       "this Idempotency-Key's request was already carried out, but its stored response cannot be "
                       "read (damaged, or sealed under another server secret); nothing new was created");
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
    std::string sealed = idempotency::seal(secrets_.current(), i.key, i.aad, r.body.dump());
    c.defer(
        "INSERT INTO idempotency_keys (id_hash, endpoint, request_hash, status, response, secret_kid) "
        "VALUES ($1, $2, $3, $4, $5::bytea, $6) ON CONFLICT (id_hash) DO UPDATE SET endpoint = excluded.endpoint, "
        "request_hash = excluded.request_hash, status = excluded.status, response = excluded.response, "
        "secret_kid = excluded.secret_kid, created_at = now()",
        {i.lookup, i.endpoint, i.request_hash, std::to_string(r.status), c.escape_bytea(sealed), secrets_.current_kid()});
}

void KeyService::audit_row(PgConn& c, const RequestContext& ctx, const char* action, const std::string& key_id,
                           const nlohmann::json& before, const nlohmann::json& after) {
    c.defer(  // sent with the next statement or the COMMIT
        "INSERT INTO audit_log (actor, action, key_id, request_id, before, after) "
        "VALUES ($1, $2, $3::uuid, $4, $5::jsonb, $6::jsonb)",
        {ctx.actor, std::string(action), key_id, ctx.request_id.empty() ? Param() : Param(ctx.request_id),
         before.is_null() ? Param() : Param(before.dump()), after.is_null() ? Param() : Param(after.dump())});
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
        std::optional<std::int64_t> rate, period, burst;
        if (req.limit) rate = req.limit->rate, period = req.limit->period_seconds, burst = req.limit->burst;
        auto r = c.exec(insert_sql(), {prefix, hash, std::string(to_string(req.environment)), req.name, req.owner,
                                       nlohmann::json(req.scopes).dump(), opt_num(rate), opt_num(period), opt_num(burst),
                                       nlohmann::json(req.allowed_cidrs).dump(), req.metadata.dump(),
                                       opt_num(req.expires_at_us), std::nullopt});
        KeyRow k = read_key_row(r, 0);
        held = mirror_.hold(k.id);
        created = k;
        nlohmann::json view = key_api_json(k);
        audit_row(c, ctx, "create", k.id, nullptr, view);
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
    if (r.rows() == 0) throw ApiError(404, codes::key_not_found, "no key with id " + id);
    KeyRow k = read_key_row(r, 0);
    ServiceResult out;
    out.body = key_api_json(k);
    out.version = k.version;
    return out;
}

ServiceResult KeyService::list(const Query& q) {
    check_parameters(q, {"limit", "cursor", "status", "environment", "owner", "expiring_within", "prefix"});
    int limit = parse_page_size(q);
    Param status, env, owner, within, cursor_us, cursor_id;
    std::optional<PrefixRange> prefix;
    if (auto it = q.find("prefix"); it != q.end()) prefix = parse_prefix_filter(it->second);
    if (auto it = q.find("status"); it != q.end()) {
        KeyStatus s;
        if (!parse_status(it->second, s))
            throw ApiError(400, codes::invalid_parameter, "'status' must be active, rotating, revoked or expired");
        status = it->second;
    }
    if (auto it = q.find("environment"); it != q.end()) {
        Environment e;
        if (!parse_environment(it->second, e)) throw ApiError(400, codes::invalid_parameter, "'environment' must be live or test");
        env = it->second;
    }
    if (auto it = q.find("owner"); it != q.end()) owner = it->second;
    if (auto it = q.find("expiring_within"); it != q.end()) {
        auto d = parse_duration_seconds(it->second);
        if (!d) throw ApiError(400, codes::invalid_parameter, "'expiring_within' must be a duration such as 3600, 90m, 12h or 7d");
        within = std::to_string(*d);
    }
    if (auto it = q.find("cursor"); it != q.end()) {
        auto c = decode_key_cursor(it->second);
        if (!c) throw ApiError(400, codes::invalid_cursor, "'cursor' is not a cursor this server issued");
        cursor_us = std::to_string(c->created_us);
        cursor_id = c->id;
    }
    std::string sql = std::string("SELECT ") + kKeyColumns +
                      " FROM api_keys WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR environment = $2)"
                      " AND ($3::text IS NULL OR owner = $3)"
                      " AND ($4::bigint IS NULL OR (status IN ('active', 'rotating') AND expires_at > now()"
                      "      AND expires_at <= now() + $4::bigint * interval '1 second'))"
                      " AND ($5::bigint IS NULL OR (created_at, id) < (" + ts_param(5) + ", $6::uuid))" +
                      // its own statement text, so even a generic plan uses the api_keys_prefix index
                      (prefix ? " AND key_prefix COLLATE \"C\" >= $8 AND key_prefix COLLATE \"C\" < $9" : "") +
                      " ORDER BY created_at DESC, id DESC LIMIT $7";
    std::vector<Param> params{status, env, owner, within, cursor_us, cursor_id, std::to_string(limit + 1)};
    if (prefix) params.insert(params.end(), {prefix->from, prefix->to});
    auto r = pg_.with_conn([&](PgConn& c) { return c.exec(sql, params); });
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
        if (k.status != "active" && k.status != "rotating")
            throw ApiError(409, codes::key_not_active, "key is " + k.status + "; only active or rotating keys can be changed");
        KeyRow n = k;
        if (req.name) n.name = *req.name;
        if (req.scopes) n.scopes = *req.scopes;
        if (req.limit_set) n.limit = req.limit;
        if (req.allowed_cidrs) n.allowed_cidrs = *req.allowed_cidrs;
        if (req.metadata) n.metadata = *req.metadata;
        std::optional<std::int64_t> rate, period, burst;
        if (n.limit) rate = n.limit->rate, period = n.limit->period_seconds, burst = n.limit->burst;
        auto r = c.exec(std::string("UPDATE api_keys SET name = $2, scopes = $3::jsonb, rate_limit = $4, "
                                    "rate_period_seconds = $5, rate_burst = $6, allowed_cidrs = $7::jsonb, "
                                    "metadata = $8::jsonb, updated_at = now(), version = version + 1 "
                                    "WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                        {id, n.name, n.scopes.dump(), opt_num(rate), opt_num(period), opt_num(burst),
                         n.allowed_cidrs.dump(), n.metadata.dump()});
        KeyRow after = read_key_row(r, 0);
        audit_row(c, ctx, "update", id, key_api_json(k), key_api_json(after));
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
        if (old.status != "active")
            throw ApiError(409, codes::key_not_active, "key is " + old.status + "; only an active key can be rotated");
        Environment env = old.environment == "test" ? Environment::test : Environment::live;
        std::string plaintext = generate_key(env);
        std::string hash = key_hash_hex(plaintext);
        std::optional<std::int64_t> rate, period, burst;
        if (old.limit) rate = old.limit->rate, period = old.limit->period_seconds, burst = old.limit->burst;
        auto r = c.exec(insert_sql(), {std::string(display_prefix(plaintext)), hash, old.environment, old.name, old.owner,
                                       old.scopes.dump(), opt_num(rate), opt_num(period), opt_num(burst),
                                       old.allowed_cidrs.dump(), old.metadata.dump(), opt_num(old.expires_us), old.id});
        KeyRow fresh = read_key_row(r, 0);
        auto u = grace == 0
                     ? c.exec(std::string("UPDATE api_keys SET status = 'revoked', revoked_at = now(), updated_at = now(), "
                                          "version = version + 1 WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                              {id})
                     : c.exec(std::string("UPDATE api_keys SET status = 'rotating', expires_at = least(coalesce(expires_at, "
                                          "'infinity'), to_timestamp(ceil(extract(epoch from now())) + $2::bigint)), updated_at = now(), "
                                          "version = version + 1 WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                              {id, std::to_string(grace)});
        KeyRow old_after = read_key_row(u, 0);
        held = mirror_.hold(fresh.id, old_after.id);
        fresh_row = fresh;
        old_row = old_after;
        nlohmann::json old_view = key_api_json(old_after);
        nlohmann::json fresh_view = key_api_json(fresh);
        audit_row(c, ctx, "rotate", id, key_api_json(old), old_view);
        audit_row(c, ctx, "create", fresh.id, nullptr, fresh_view);
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
        if (k.status == "revoked") return false;  // idempotent
        check_if_match(ctx, k);
        auto r = c.exec(std::string("UPDATE api_keys SET status = 'revoked', revoked_at = now(), updated_at = now(), "
                                    "version = version + 1 WHERE id = $1::uuid RETURNING ") + kKeyColumns,
                        {id});
        audit_row(c, ctx, "revoke", id, key_api_json(k), key_api_json(read_key_row(r, 0)));
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

// ---- usage / audit ---------------------------------------------------------------

ServiceResult KeyService::usage(const std::string& id, const Query& q) {
    check_parameters(q, {"since", "until"});
    std::int64_t until = now_us() + 60'000'000, since = now_us() - 24LL * 3600 * 1'000'000;
    for (auto [name, target] : {std::pair{"since", &since}, std::pair{"until", &until}}) {
        if (auto it = q.find(name); it != q.end()) {
            auto t = parse_rfc3339(it->second);
            if (!t) throw ApiError(400, codes::invalid_parameter, std::string("'") + name + "' must be an RFC 3339 time");
            *target = *t;
        }
    }
    if (since >= until) throw ApiError(400, codes::invalid_parameter, "'since' must be before 'until'");
    return pg_.with_conn([&](PgConn& c) {
        auto k = c.exec(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1::uuid", {id});
        if (k.rows() == 0) throw ApiError(404, codes::key_not_found, "no key with id " + id);
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

ServiceResult KeyService::audit(const Query& q) {
    check_parameters(q, {"limit", "cursor", "key_id", "action"});
    int limit = parse_page_size(q);
    Param key_id, action, before_id;
    if (auto it = q.find("key_id"); it != q.end()) {
        std::string id = it->second;
        for (char& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!valid_uuid(id)) throw ApiError(400, codes::invalid_parameter, "'key_id' must be a UUID");
        key_id = id;
    }
    if (auto it = q.find("action"); it != q.end()) {
        static const std::set<std::string> actions = {"create", "update", "rotate", "revoke", "expire"};
        if (!actions.count(it->second))
            throw ApiError(400, codes::invalid_parameter, "'action' must be create, update, rotate, revoke or expire");
        action = it->second;
    }
    if (auto it = q.find("cursor"); it != q.end()) {
        auto c = decode_id_cursor(it->second);
        if (!c) throw ApiError(400, codes::invalid_cursor, "'cursor' is not a cursor this server issued");
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
            audit_row(c, ctx, "expire", before.id, key_api_json(before), key_api_json(read_key_row(u, 0)));
            out.push_back(before.id);
        }
        return out;
    });
    for (auto& id : ids) log::info("key expired", {{"key_id", id}});
    mirror_.sync_keys(ids);
    return static_cast<int>(ids.size());
}

void KeyService::scan_idempotency_secrets() {
    pg_.with_conn([&](PgConn& c) { secrets_.scan(c); });
}

int KeyService::purge_idempotency() {
    auto r = pg_.with_conn([&](PgConn& c) {
        return c.exec("DELETE FROM idempotency_keys WHERE created_at < now() - $1::bigint * interval '1 hour'",
                      {std::to_string(kIdempotencyTtlHours)});
    });
    (void)r;
    return 0;
}

}  // namespace tronch::cp
