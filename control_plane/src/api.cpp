#include "api.hpp"

#include <chrono>
#include <random>

#include "api_error.hpp"
#include "db.hpp"
#include "embedded.hpp"
#include "log.hpp"
#include "tronch/key_hash.hpp"
#include "tronch/key_record.hpp"
#include "tronch/redis_keys.hpp"
#include "validation.hpp"

namespace tronch::cp {
namespace {

std::string new_request_id() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[40];
    std::uint64_t a = rng(), b = rng();
    std::snprintf(buf, sizeof buf, "req_%016llx%016llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
    return buf;
}

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        if (path[i] == '/') {
            ++i;
            continue;
        }
        auto j = path.find('/', i);
        out.push_back(path.substr(i, j == std::string::npos ? std::string::npos : j - i));
        i = j == std::string::npos ? path.size() : j;
    }
    return out;
}

[[noreturn]] void method_not_allowed(const std::string& allow) {
    throw ApiError(405, codes::method_not_allowed, "method not allowed; allowed: " + allow);
}

bool is_json_content_type(const std::optional<std::string>& ct) {
    if (!ct) return false;
    std::string v;
    for (char c : *ct) v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto semi = v.find(';');
    std::string media = v.substr(0, semi);
    while (!media.empty() && media.back() == ' ') media.pop_back();
    return media == "application/json";
}

// The JSON body of a POST/PATCH. `optional_body`: an empty body means {}.
nlohmann::json read_body(const HttpRequest& req, bool optional_body) {
    if (req.body.size() > kMaxBodyBytes)
        throw ApiError(413, codes::body_too_large, "the body is larger than " + std::to_string(kMaxBodyBytes) + " bytes");
    if (req.body.empty() && optional_body) return nlohmann::json::object();
    if (!is_json_content_type(req.header("content-type")))
        throw ApiError(415, codes::unsupported_media_type, "Content-Type must be application/json");
    if (req.body.empty()) throw ApiError(400, codes::invalid_json, "a JSON body is required");
    return parse_json_object(req.body);
}

HttpResponse from_result(const ServiceResult& r) {
    HttpResponse res;
    res.status = r.status;
    if (r.status == 204) {
        res.content_type.clear();
    } else {
        res.body = r.replayed ? r.raw_body : r.body.dump();
    }
    if (r.version) res.headers.emplace_back("ETag", etag_for(*r.version));
    if (!r.location.empty()) res.headers.emplace_back("Location", r.location);
    if (r.replayed) res.headers.emplace_back("Idempotent-Replayed", "true");
    return res;
}

}  // namespace

HttpResponse json_error(int status, const std::string& code, const std::string& message, const std::string& request_id) {
    HttpResponse res;
    res.status = status;
    nlohmann::json err = {{"code", code}, {"message", message}};
    if (!request_id.empty()) err["request_id"] = request_id;
    res.body = nlohmann::json{{"error", err}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return res;
}

const std::vector<std::pair<std::string, std::string>>& Api::routes() {
    static const std::vector<std::pair<std::string, std::string>> r = {
        {"GET", "/api/v1/health"},           {"GET", "/api/v1/metrics"},
        {"GET", "/api/v1/openapi.json"},     {"POST", "/api/v1/keys"},
        {"GET", "/api/v1/keys"},             {"GET", "/api/v1/keys/{id}"},
        {"PATCH", "/api/v1/keys/{id}"},      {"DELETE", "/api/v1/keys/{id}"},
        {"POST", "/api/v1/keys/{id}/rotate"}, {"GET", "/api/v1/keys/{id}/usage"},
        {"GET", "/api/v1/audit"},            {"GET", "/api/v1/records-key"},
    };
    return r;
}

HttpResponse Api::handle(const HttpRequest& req) noexcept {
    auto start = std::chrono::steady_clock::now();
    std::string request_id;
    if (auto rid = req.header("x-request-id"); rid && sane_request_id(*rid)) request_id = *rid;
    else request_id = new_request_id();
    std::string route = "unmatched";
    HttpResponse res;
    std::string error_code;
    try {
        res = dispatch(req, request_id, route);
    } catch (const ApiError& e) {
        res = json_error(e.status, e.code, e.what(), request_id);
        if (e.status == 405) {
            std::string m = e.what();
            res.headers.emplace_back("Allow", m.substr(m.find(": ") + 2));
        }
        if (e.status == 401) res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tronchd\"");
        error_code = e.code;
    } catch (const DbUnavailable& e) {
        res = json_error(503, codes::database_unavailable, "the database is unavailable; retry later", request_id);
        res.headers.emplace_back("Retry-After", "1");
        error_code = codes::database_unavailable;
        log::error("database unavailable", {{"request_id", request_id}, {"error", e.what()}});
    } catch (const std::exception& e) {
        res = json_error(500, codes::internal_error, "internal error", request_id);
        error_code = codes::internal_error;
        log::error("internal error", {{"request_id", request_id}, {"error", e.what()}});
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    finish(req, res, request_id, route, secs, error_code);
    return res;
}

HttpResponse Api::protocol_error(const HttpRequest& partial, int status, const std::string& code,
                                 const std::string& message) noexcept {
    std::string request_id = new_request_id();
    HttpResponse res = json_error(status, code, message, request_id);
    finish(partial, res, request_id, "unmatched", 0, code);
    return res;
}

void Api::finish(const HttpRequest& req, HttpResponse& res, const std::string& request_id, const std::string& route,
                 double seconds, const std::string& error_code) noexcept {
    try {
        res.headers.emplace_back("X-Request-Id", request_id);
        // no-store: create, rotate and their idempotent replays carry a plaintext key, and no
        // admin answer is worth a cache. nosniff: browsers must take the JSON as JSON.
        res.headers.emplace_back("Cache-Control", "no-store");
        res.headers.emplace_back("X-Content-Type-Options", "nosniff");
        metrics_.observe_request(route, req.method, res.status, seconds);
        std::string path = req.target.substr(0, req.target.find('?'));
        nlohmann::json f = {{"request_id", request_id}, {"method", req.method}, {"path", path}, {"route", route},
                            {"status", res.status}, {"duration_ms", seconds * 1000.0}, {"remote", req.remote}};
        if (!error_code.empty()) f["error_code"] = error_code;
        log::write(res.status >= 500 ? "error" : "info", "request", std::move(f));
    } catch (...) {
    }
}

HttpResponse Api::dispatch(const HttpRequest& req, const std::string& request_id, std::string& route) {
    std::string path = req.target.substr(0, req.target.find('?'));
    std::string query_text = req.target.size() > path.size() ? req.target.substr(path.size() + 1) : "";
    auto seg = split_path(path);
    const std::string& m = req.method;

    if (seg.size() == 3 && seg[0] == "api" && seg[1] == "v1" && seg[2] == "health") {
        route = "/api/v1/health";
        if (m != "GET") method_not_allowed("GET");
        return health();
    }
    // Everything else needs the admin token.
    auto auth = req.header("authorization");
    static const std::string bearer = "Bearer ";
    if (!auth || auth->size() <= bearer.size() || !std::equal(bearer.begin(), bearer.end(), auth->begin(),
                                                              [](char a, char b) { return std::tolower(a) == std::tolower(b); }) ||
        !constant_time_equal(std::string_view(*auth).substr(bearer.size()), admin_token_)) {
        throw ApiError(401, codes::unauthorized, "missing or wrong admin token (Authorization: Bearer <token>)");
    }

    Query q = parse_query(query_text);
    RequestContext ctx;
    ctx.request_id = request_id;
    if (auto a = req.header("x-tronch-actor"); a && sane_request_id(*a)) ctx.actor = "admin:" + *a;
    ctx.idempotency_key = req.header("idempotency-key");
    ctx.if_match = req.header("if-match");

    if (seg.size() < 3 || seg[0] != "api" || seg[1] != "v1") throw ApiError(404, codes::not_found, "no such route: " + path);
    const std::string& top = seg[2];
    if (seg.size() == 3 && top == "metrics") {
        route = "/api/v1/metrics";
        if (m != "GET") method_not_allowed("GET");
        check_parameters(q, {});
        return metrics();
    }
    if (seg.size() == 3 && top == "openapi.json") {
        route = "/api/v1/openapi.json";
        if (m != "GET") method_not_allowed("GET");
        HttpResponse res;
        res.body = std::string(embedded_openapi());
        return res;
    }
    if (seg.size() == 3 && top == "records-key") {
        route = "/api/v1/records-key";
        if (m != "GET") method_not_allowed("GET");
        check_parameters(q, {});
        const RecordSigner& s = mirror_.signer();
        HttpResponse res;
        res.body = nlohmann::json{{"algorithm", "Ed25519"}, {"kid", s.kid()}, {"public_key_pem", s.public_pem()},
                                  {"public_key_path", s.public_path()}, {"validity_seconds", s.validity_seconds()}}
                       .dump();
        return res;
    }
    if (seg.size() == 3 && top == "audit") {
        route = "/api/v1/audit";
        if (m != "GET") method_not_allowed("GET");
        return from_result(keys_.audit(q));
    }
    if (top != "keys" || seg.size() > 5) throw ApiError(404, codes::not_found, "no such route: " + path);
    if (seg.size() == 3) {
        route = "/api/v1/keys";
        if (m == "GET") return from_result(keys_.list(q));
        if (m == "POST") {
            check_parameters(q, {});
            return from_result(keys_.create(read_body(req, false), ctx));
        }
        method_not_allowed("GET, POST");
    }
    std::string id = seg[3];
    std::string sub = seg.size() == 5 ? seg[4] : "";
    if (seg.size() == 5 && sub != "rotate" && sub != "usage") throw ApiError(404, codes::not_found, "no such route: " + path);
    route = sub.empty() ? "/api/v1/keys/{id}" : "/api/v1/keys/{id}/" + sub;
    // Method first (405 does not depend on the id), then the id.
    if (sub.empty() && m != "GET" && m != "PATCH" && m != "DELETE") method_not_allowed("GET, PATCH, DELETE");
    if (sub == "rotate" && m != "POST") method_not_allowed("POST");
    if (sub == "usage" && m != "GET") method_not_allowed("GET");
    // Ids are accepted in either case and normalised to the lower-case form stored everywhere.
    for (char& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!valid_uuid(id)) throw ApiError(400, codes::invalid_id, "'" + seg[3].substr(0, 64) + "' is not a key id (UUID)");
    if (sub == "usage") return from_result(keys_.usage(id, q));
    check_parameters(q, {});
    if (sub == "rotate") return from_result(keys_.rotate(id, read_body(req, true), ctx));
    if (m == "GET") return from_result(keys_.get(id));
    if (m == "PATCH") return from_result(keys_.patch(id, read_body(req, false), ctx));
    return from_result(keys_.revoke(id, ctx));
}

HttpResponse Api::health() {
    nlohmann::json checks;
    bool ok = true;
    auto t0 = std::chrono::steady_clock::now();
    try {
        pg_.with_conn([](PgConn& c) { return c.exec("SELECT 1"); });
        checks["postgres"] = {{"status", "ok"},
                              {"latency_ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()}};
    } catch (const std::exception& e) {
        // The driver's text (host, port, user, server messages) goes to the log, not to an
        // endpoint that needs no token.
        ok = false;
        checks["postgres"] = {{"status", "error"}, {"code", codes::database_unavailable}, {"message", "PostgreSQL is unreachable"}};
        log::warn("health: postgres check failed", {{"error", e.what()}});
    }
    auto t1 = std::chrono::steady_clock::now();
    try {
        // Ready means the gateway can find every key: Redis answers AND holds the complete mirror
        // (the epoch mark, and no failed write since the last rebuild). Until the rebuild after
        // an outage or a flush has finished, 503 with mirror_complete false.
        auto mark = redis_.command({"EXISTS", std::string(redis_keys::kMirrorEpoch)});
        bool complete = mark->type == REDIS_REPLY_INTEGER && mark->integer == 1 && !mirror_.dirty();
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
        if (complete) {
            checks["redis"] = {{"status", "ok"}, {"latency_ms", ms}, {"mirror_complete", true}};
        } else {
            ok = false;
            checks["redis"] = {{"status", "error"}, {"code", "mirror_incomplete"}, {"latency_ms", ms},
                               {"message", "Redis answers; the key mirror is being rebuilt"}, {"mirror_complete", false}};
        }
    } catch (const std::exception& e) {
        ok = false;
        checks["redis"] = {{"status", "error"}, {"code", "redis_unavailable"}, {"message", "Redis is unreachable"}};
        log::warn("health: redis check failed", {{"error", e.what()}});
    }
    HttpResponse res;
    res.status = ok ? 200 : 503;
    res.body = nlohmann::json{{"status", ok ? "ok" : "unavailable"}, {"checks", checks}}.dump();
    return res;
}

HttpResponse Api::metrics() {
    Metrics::Gauges g;
    auto s = pg_.stats();
    g.pg_pool_size = s.size;
    g.pg_pool_in_use = s.in_use;
    g.pg_pool_idle = s.idle;
    g.redis_up = redis_.up();
    try {
        auto r = pg_.with_conn([](PgConn& c) { return c.exec("SELECT status, count(*) FROM api_keys GROUP BY status"); });
        for (int i = 0; i < r.rows(); ++i) g.keys_by_status[r.str(i, 0)] = r.i64(i, 1);
        if (g.keys_by_status.empty()) g.keys_by_status["active"] = 0;
    } catch (const std::exception&) {
        // Postgres down: the key gauges are left out; the rest still renders.
    }
    HttpResponse res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = metrics_.render(g);
    return res;
}

}  // namespace tronch::cp
