// The REST API: routing, admin-token check, request parsing, error mapping, request logs
// and metrics. Synchronous: called on a worker thread, never on a network thread.
#pragma once

#include <string>

#include "http_types.hpp"
#include "keys.hpp"
#include "metrics.hpp"
#include "mirror.hpp"
#include "redis_client.hpp"

namespace tronch::cp {

class Api {
public:
    Api(KeyService& keys, PgPool& pg, RedisClient& redis, Mirror& mirror, Metrics& metrics, std::string admin_token)
        : keys_(keys), pg_(pg), redis_(redis), mirror_(mirror), metrics_(metrics), admin_token_(std::move(admin_token)) {}

    HttpResponse handle(const HttpRequest& req) noexcept;
    // For requests the server refuses before they are complete (body too large, bad HTTP).
    HttpResponse protocol_error(const HttpRequest& partial, int status, const std::string& code,
                                const std::string& message) noexcept;

    // Every route the server serves (method, path template): the OpenAPI test checks them.
    static const std::vector<std::pair<std::string, std::string>>& routes();

private:
    HttpResponse dispatch(const HttpRequest& req, const std::string& request_id, std::string& route);
    HttpResponse health();
    HttpResponse metrics();
    void finish(const HttpRequest& req, HttpResponse& res, const std::string& request_id, const std::string& route,
                double seconds, const std::string& error_code) noexcept;

    KeyService& keys_;
    PgPool& pg_;
    RedisClient& redis_;
    Mirror& mirror_;
    Metrics& metrics_;
    std::string admin_token_;
};

HttpResponse json_error(int status, const std::string& code, const std::string& message, const std::string& request_id);

}  // namespace tronch::cp
