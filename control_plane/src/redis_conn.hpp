// One blocking connection to one Redis server (or sentinel): TCP, TLS or a Unix socket, over
// Boost.Asio, with hiredis used only for the protocol (redisFormatCommandArgv to encode,
// redisReader to parse). Debian's hiredis 0.14 has no TLS, hence Asio's ssl::stream (OpenSSL 3).
//
// Blocking is right here: tronchd calls Redis from its blocking worker pool and maintenance
// threads. Every step (name resolution, connect, TLS handshake, each round trip) runs on a private
// io_context for at most the timeout; on expiry the socket is closed and RedisUnavailable thrown,
// so nothing ever hangs. Host names are resolved on every connect (a fail-over may move them).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>

#include "redis_target.hpp"

namespace tronch::cp {

struct RedisUnavailable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using RedisReply = std::unique_ptr<redisReply, void (*)(void*)>;

class RedisConn {
public:
    // tls: nullptr or disabled for plain TCP. The messages this throws name `where` (no secrets).
    RedisConn(const RedisTls* tls, int timeout_ms);
    ~RedisConn();
    RedisConn(const RedisConn&) = delete;
    RedisConn& operator=(const RedisConn&) = delete;

    void connect_tcp(const RedisEndpoint& ep);  // throws RedisUnavailable
    void connect_unix(const std::string& path);

    // Sends the commands back to back and reads one reply each (error replies included).
    std::vector<RedisReply> roundtrip(const std::vector<std::vector<std::string>>& commands);
    // AUTH [user] password; throws RedisUnavailable with the server's reason (never the password).
    void auth(const std::string& user, const std::string& password);

    const std::string& where() const { return where_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string where_;
};

// A reply's text (status, error or string), empty for other types.
std::string reply_text(const redisReply* r);

}  // namespace tronch::cp
