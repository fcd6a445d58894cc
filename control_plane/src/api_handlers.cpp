// One handler per route of Api::routes(): each takes what it needs from the call and hands
// the work to a service (keys, usage, audit) or answers itself (health, metrics, documents).
#include <chrono>

#include "api.hpp"
#include "embedded.hpp"
#include "etag.hpp"
#include "json_body.hpp"
#include "log.hpp"

namespace tronch::cp {
namespace {

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
        throw ApiError(413, ErrorCode::body_too_large, "the body is larger than " + std::to_string(kMaxBodyBytes) + " bytes");
    if (req.body.empty() && optional_body) return nlohmann::json::object();
    if (!is_json_content_type(req.header("content-type")))
        throw ApiError(415, ErrorCode::unsupported_media_type, "Content-Type must be application/json");
    if (req.body.empty()) throw ApiError(400, ErrorCode::invalid_json, "a JSON body is required");
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

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

HttpResponse Api::health(const Call&) {
    nlohmann::json checks;
    bool ok = true;
    auto t0 = std::chrono::steady_clock::now();
    try {
        pg_.with_conn([](PgConn& c) { return c.exec("SELECT 1"); });
        checks["postgres"] = {{"status", "ok"}, {"latency_ms", ms_since(t0)}};
    } catch (const std::exception& e) {
        // The driver's text (host, port, user, server messages) goes to the log, not to an
        // endpoint that needs no token.
        ok = false;
        checks["postgres"] = {{"status", "error"},
                              {"code", std::string(to_string(ErrorCode::database_unavailable))},
                              {"message", "PostgreSQL is unreachable"}};
        log::warn("health: postgres check failed", {{"error", e.what()}});
    }
    auto t1 = std::chrono::steady_clock::now();
    try {
        redis_.command({"PING"});
        checks["redis"] = {{"status", "ok"}, {"latency_ms", ms_since(t1)}, {"mirror_complete", !mirror_.dirty()}};
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

HttpResponse Api::metrics(const Call& call) {
    check_parameters(call.query, {});
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

HttpResponse Api::openapi(const Call&) {
    HttpResponse res;
    res.body = std::string(embedded_openapi());
    return res;
}

HttpResponse Api::records_key(const Call& call) {
    check_parameters(call.query, {});
    const RecordSigner& s = mirror_.signer();
    HttpResponse res;
    res.body = nlohmann::json{{"algorithm", "Ed25519"}, {"kid", s.kid()}, {"public_key_pem", s.public_pem()},
                              {"public_key_path", s.public_path()}, {"validity_seconds", s.validity_seconds()}}
                   .dump();
    return res;
}

HttpResponse Api::audit(const Call& call) { return from_result(audit_.list(call.query)); }

HttpResponse Api::list_keys(const Call& call) { return from_result(keys_.list(call.query)); }

HttpResponse Api::create_key(const Call& call) {
    check_parameters(call.query, {});
    return from_result(keys_.create(read_body(call.req, false), call.ctx));
}

HttpResponse Api::get_key(const Call& call) {
    check_parameters(call.query, {});
    return from_result(keys_.get(call.id));
}

HttpResponse Api::patch_key(const Call& call) {
    check_parameters(call.query, {});
    return from_result(keys_.patch(call.id, read_body(call.req, false), call.ctx));
}

HttpResponse Api::revoke_key(const Call& call) {
    check_parameters(call.query, {});
    return from_result(keys_.revoke(call.id, call.ctx));
}

HttpResponse Api::rotate_key(const Call& call) {
    check_parameters(call.query, {});
    return from_result(keys_.rotate(call.id, read_body(call.req, true), call.ctx));
}

HttpResponse Api::key_usage(const Call& call) { return from_result(usage_.of_key(call.id, call.query)); }

}  // namespace tronch::cp
