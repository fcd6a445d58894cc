// HTTP request/response as the API sees them: plain structs, so only http_server.cpp and
// cli.cpp include Boost.Beast.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tronch::cp {

struct HttpRequest {
    std::string method;   // "GET", ...
    std::string target;   // path + query as received
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    std::string remote;   // peer address, for logs
    std::optional<std::string> header(const std::string& lower_name) const {
        auto it = headers.find(lower_name);
        return it == headers.end() ? std::nullopt : std::optional(it->second);
    }
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

}  // namespace tronch::cp
