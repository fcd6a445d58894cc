#include "api.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <random>

#include "db.hpp"
#include "log.hpp"
#include "query.hpp"
#include "text_checks.hpp"
#include "tronch/key_hash.hpp"
#include "tronch/key_record.hpp"

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

// Whether a path's segments fit a route template; `id` gets the segment under "{id}".
bool fits(const std::vector<std::string>& seg, const char* templ, std::string& id) {
    auto parts = split_path(templ);
    if (parts.size() != seg.size()) return false;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (parts[i] == "{id}") id = seg[i];
        else if (parts[i] != seg[i]) return false;
    }
    return true;
}

// The outcome of looking a request up in the route table.
struct Match {
    const char* path = nullptr;           // the template that fits; null: 404
    const Api::Route* route = nullptr;    // the route for the method; null: 405
    std::string allow;                    // the template's methods, for 405
    std::string id;                       // the raw {id} segment
    bool is_public = false;
};

Match match_route(const std::vector<std::string>& seg, const std::string& method) {
    Match m;
    for (const auto& r : Api::routes()) {
        std::string id;
        if (m.path ? std::string_view(m.path) != r.path : !fits(seg, r.path, id)) continue;
        if (!m.path) m.path = r.path, m.id = id, m.is_public = r.is_public;
        m.allow += (m.allow.empty() ? "" : ", ") + std::string(r.method);
        if (r.method == method) m.route = &r;
    }
    return m;
}

// Ids are accepted in either case and normalised to the lower-case form stored everywhere.
std::string key_id_of(const std::string& segment) {
    std::string id = segment;
    for (char& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!valid_uuid(id)) throw ApiError(400, ErrorCode::invalid_id, "'" + segment.substr(0, 64) + "' is not a key id (UUID)");
    return id;
}

RequestContext context_of(const HttpRequest& req, const std::string& request_id) {
    RequestContext ctx;
    ctx.request_id = request_id;
    if (auto a = req.header("x-tronch-actor"); a && sane_request_id(*a)) ctx.actor = "admin:" + *a;
    ctx.idempotency_key = req.header("idempotency-key");
    ctx.if_match = req.header("if-match");
    return ctx;
}

}  // namespace

HttpResponse json_error(int status, ErrorCode code, const std::string& message, const std::string& request_id) {
    HttpResponse res;
    res.status = status;
    nlohmann::json err = {{"code", std::string(to_string(code))}, {"message", message}};
    if (!request_id.empty()) err["request_id"] = request_id;
    res.body = nlohmann::json{{"error", err}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return res;
}

const std::vector<Api::Route>& Api::routes() {
    static const std::vector<Route> r = {
        {"GET", "/api/v1/health", &Api::health, true},
        {"GET", "/api/v1/metrics", &Api::metrics},
        {"GET", "/api/v1/openapi.json", &Api::openapi},
        {"GET", "/api/v1/records-key", &Api::records_key},
        {"GET", "/api/v1/audit", &Api::audit},
        {"GET", "/api/v1/keys", &Api::list_keys},
        {"POST", "/api/v1/keys", &Api::create_key},
        {"GET", "/api/v1/keys/{id}", &Api::get_key},
        {"PATCH", "/api/v1/keys/{id}", &Api::patch_key},
        {"DELETE", "/api/v1/keys/{id}", &Api::revoke_key},
        {"POST", "/api/v1/keys/{id}/rotate", &Api::rotate_key},
        {"GET", "/api/v1/keys/{id}/usage", &Api::key_usage},
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
        if (!e.allow.empty()) res.headers.emplace_back("Allow", e.allow);
        if (e.status == 401) res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tronchd\"");
        error_code = to_string(e.code);
    } catch (const DbUnavailable& e) {
        res = json_error(503, ErrorCode::database_unavailable, "the database is unavailable; retry later", request_id);
        res.headers.emplace_back("Retry-After", "1");
        error_code = to_string(ErrorCode::database_unavailable);
        log::error("database unavailable", {{"request_id", request_id}, {"error", e.what()}});
    } catch (const std::exception& e) {
        res = json_error(500, ErrorCode::internal_error, "internal error", request_id);
        error_code = to_string(ErrorCode::internal_error);
        log::error("internal error", {{"request_id", request_id}, {"error", e.what()}});
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    finish(req, res, request_id, route, secs, error_code);
    return res;
}

HttpResponse Api::protocol_error(const HttpRequest& partial, int status, ErrorCode code,
                                 const std::string& message) noexcept {
    std::string request_id = new_request_id();
    HttpResponse res = json_error(status, code, message, request_id);
    finish(partial, res, request_id, "unmatched", 0, std::string(to_string(code)));
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

void Api::check_token(const HttpRequest& req) const {
    auto auth = req.header("authorization");
    static const std::string bearer = "Bearer ";
    if (!auth || auth->size() <= bearer.size() || !std::equal(bearer.begin(), bearer.end(), auth->begin(),
                                                              [](char a, char b) { return std::tolower(a) == std::tolower(b); }) ||
        !constant_time_equal(std::string_view(*auth).substr(bearer.size()), admin_token_)) {
        throw ApiError(401, ErrorCode::unauthorized, "missing or wrong admin token (Authorization: Bearer <token>)");
    }
}

// The order of the checks is part of the API: a public route answers before any token check;
// otherwise the token (401), then the query string (400), then the path (404), the method
// (405, before the id is looked at) and the id (400 invalid_id).
HttpResponse Api::dispatch(const HttpRequest& req, const std::string& request_id, std::string& route) {
    std::string path = req.target.substr(0, req.target.find('?'));
    std::string query_text = req.target.size() > path.size() ? req.target.substr(path.size() + 1) : "";
    Match m = match_route(split_path(path), req.method);
    Query q;
    if (!m.is_public) {
        check_token(req);
        q = parse_query(query_text);
    }
    RequestContext ctx = context_of(req, request_id);
    if (!m.path) throw ApiError(404, ErrorCode::not_found, "no such route: " + path);
    route = m.path;
    if (!m.route) throw ApiError(405, ErrorCode::method_not_allowed, "method not allowed; allowed: " + m.allow, m.allow);
    Call call{req, q, ctx, m.id.empty() ? std::string() : key_id_of(m.id)};
    return (this->*(m.route->handler))(call);
}

}  // namespace tronch::cp
