// A synchronous hiredis connection for tronchd's worker threads (tronchd is not nginx, so
// blocking with a short timeout is fine there). Every call has connect and command
// timeouts; a failed connection is dropped and re-made on the next call.
#pragma once

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>

namespace tronch::cp {

class Metrics;

struct RedisUnavailable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using RedisReply = std::unique_ptr<redisReply, void (*)(void*)>;

class RedisClient {
public:
    // addr: "host:port" or "unix:/path/to/socket"
    RedisClient(std::string addr, int timeout_ms, Metrics* metrics = nullptr);
    ~RedisClient();

    // One command. Throws RedisUnavailable on connection problems and on error replies.
    RedisReply command(const std::vector<std::string>& argv);
    // Several commands in one round trip (pipelined); all replies, in order.
    std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>>& commands);
    bool up() const { return up_; }

private:
    void ensure_connected();  // with mu_ held
    void fail(const std::string& what);
    std::string addr_;
    int timeout_ms_;
    Metrics* metrics_;
    std::mutex mu_;
    redisContext* ctx_ = nullptr;
    bool up_ = false;
};

}  // namespace tronch::cp
