// The REST API: the route table, admin-token check, request parsing, error mapping, request
// logs and metrics. Synchronous: called on a worker thread, never on a network thread.
#pragma once

#include <string>
#include <vector>

#include "api_error.hpp"
#include "audit_log.hpp"
#include "http_types.hpp"
#include "keys.hpp"
#include "metrics.hpp"
#include "mirror.hpp"
#include "redis_client.hpp"
#include "usage_report.hpp"

namespace tronch::cp {

class Api {
public:
    Api(KeyService& keys, PgPool& pg, RedisClient& redis, Mirror& mirror, Metrics& metrics, std::string admin_token)
        : keys_(keys), usage_(pg), audit_(pg), pg_(pg), redis_(redis), mirror_(mirror), metrics_(metrics),
          admin_token_(std::move(admin_token)) {}

    HttpResponse handle(const HttpRequest& req) noexcept;
    // For requests the server refuses before they are complete (body too large, bad HTTP).
    HttpResponse protocol_error(const HttpRequest& partial, int status, ErrorCode code,
                                const std::string& message) noexcept;

    // What a handler gets: the request, its parsed query, who asks, and the {id} of the path
    // (lower case, a valid UUID) if the route has one.
    struct Call {
        const HttpRequest& req;
        const Query& query;
        const RequestContext& ctx;
        std::string id;
    };
    using Handler = HttpResponse (Api::*)(const Call&);
    // One served route. `path` is a template; "{id}" stands for a key id. 404 (no template
    // matches), 405 and its Allow header (the methods of the template, in table order) all come
    // from this one table. Public routes need no admin token and take no query parameters.
    struct Route {
        const char* method;
        const char* path;
        Handler handler;
        bool is_public = false;
    };
    static const std::vector<Route>& routes();

private:
    HttpResponse dispatch(const HttpRequest& req, const std::string& request_id, std::string& route);
    void check_token(const HttpRequest& req) const;
    void finish(const HttpRequest& req, HttpResponse& res, const std::string& request_id, const std::string& route,
                double seconds, const std::string& error_code) noexcept;

    // Handlers (api_handlers.cpp), one per route.
    HttpResponse health(const Call&);
    HttpResponse metrics(const Call&);
    HttpResponse openapi(const Call&);
    HttpResponse records_key(const Call&);
    HttpResponse audit(const Call&);
    HttpResponse list_keys(const Call&);
    HttpResponse create_key(const Call&);
    HttpResponse get_key(const Call&);
    HttpResponse patch_key(const Call&);
    HttpResponse revoke_key(const Call&);
    HttpResponse rotate_key(const Call&);
    HttpResponse key_usage(const Call&);

    KeyService& keys_;
    UsageReport usage_;
    AuditLog audit_;
    PgPool& pg_;
    RedisClient& redis_;
    Mirror& mirror_;
    Metrics& metrics_;
    std::string admin_token_;
};

HttpResponse json_error(int status, ErrorCode code, const std::string& message, const std::string& request_id);

}  // namespace tronch::cp
