#include "redis_client.hpp"

#include <sys/time.h>

#include "metrics.hpp"

namespace tronch::cp {

RedisClient::RedisClient(std::string addr, int timeout_ms, Metrics* metrics)
    : addr_(std::move(addr)), timeout_ms_(timeout_ms), metrics_(metrics) {}

RedisClient::~RedisClient() {
    if (ctx_) redisFree(ctx_);
}

void RedisClient::fail(const std::string& what) {
    up_ = false;
    if (ctx_) {
        redisFree(ctx_);
        ctx_ = nullptr;
    }
    if (metrics_) metrics_->redis_error();
    throw RedisUnavailable(what);
}

void RedisClient::ensure_connected() {
    if (ctx_) return;
    timeval tv{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
    redisContext* c = nullptr;
    if (addr_.rfind("unix:", 0) == 0) {
        c = redisConnectUnixWithTimeout(addr_.substr(5).c_str(), tv);
    } else {
        auto colon = addr_.rfind(':');
        std::string host = colon == std::string::npos ? addr_ : addr_.substr(0, colon);
        int port = colon == std::string::npos ? 6379 : std::atoi(addr_.c_str() + colon + 1);
        c = redisConnectWithTimeout(host.c_str(), port, tv);
    }
    if (!c || c->err) {
        std::string msg = c ? c->errstr : "out of memory";
        if (c) redisFree(c);
        up_ = false;
        if (metrics_) metrics_->redis_error();
        throw RedisUnavailable("cannot connect to Redis at " + addr_ + ": " + msg);
    }
    redisSetTimeout(c, tv);
    ctx_ = c;
}

RedisReply RedisClient::command(const std::vector<std::string>& argv) {
    auto replies = pipeline({argv});
    return std::move(replies.front());
}

std::vector<RedisReply> RedisClient::pipeline(const std::vector<std::vector<std::string>>& commands) {
    std::lock_guard lock(mu_);
    ensure_connected();
    for (const auto& argv : commands) {
        std::vector<const char*> a;
        std::vector<size_t> l;
        for (const auto& s : argv) {
            a.push_back(s.data());
            l.push_back(s.size());
        }
        if (redisAppendCommandArgv(ctx_, static_cast<int>(a.size()), a.data(), l.data()) != REDIS_OK)
            fail(std::string("redis append failed: ") + ctx_->errstr);
    }
    std::vector<RedisReply> out;
    std::string error;
    for (std::size_t i = 0; i < commands.size(); ++i) {
        void* r = nullptr;
        if (redisGetReply(ctx_, &r) != REDIS_OK || !r) fail(std::string("redis: ") + (ctx_ ? ctx_->errstr : "io error"));
        RedisReply reply(static_cast<redisReply*>(r), freeReplyObject);
        if (reply->type == REDIS_REPLY_ERROR && error.empty()) error = std::string(reply->str, reply->len);
        out.push_back(std::move(reply));
    }
    up_ = true;
    if (!error.empty()) {
        if (metrics_) metrics_->redis_error();
        throw RedisUnavailable("redis error reply: " + error);
    }
    return out;
}

}  // namespace tronch::cp
