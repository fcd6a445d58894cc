// tronchd's Redis client for its worker and maintenance threads (tronchd is not nginx, so
// blocking with a short timeout is fine there). One connection (RedisConn: TCP, TLS or Unix
// socket, connect and command timeouts), made on first use and re-made after any failure:
// host names are resolved again, AUTH (ACL user + password) and SELECT are sent on every connect.
//
// Sentinel mode: the sentinels are asked for the master in turn (SENTINEL
// get-master-addr-by-name), and the server found must say ROLE master. A connection error or a
// -READONLY reply (the master was demoted) drops the connection, so the next call asks the
// sentinels again; a call that failed on a connection made by an earlier call is retried once at
// once on a new one (every command tronchd sends is safe to repeat).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "redis_conn.hpp"
#include "redis_target.hpp"

namespace tronch::cp {

class Metrics;

class RedisClient {
public:
    // spec: any form parse_redis_target() accepts (throws std::runtime_error if malformed)
    RedisClient(const std::string& spec, int timeout_ms, Metrics* metrics = nullptr);
    RedisClient(RedisTarget target, int timeout_ms, Metrics* metrics = nullptr);
    ~RedisClient();

    // One command. Throws RedisUnavailable on connection problems and on error replies.
    RedisReply command(const std::vector<std::string>& argv);
    // Several commands in one round trip (pipelined); all replies, in order.
    std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>>& commands);
    bool up() const { return up_; }
    // Counts the connections made to a master at another address than the one before (Sentinel
    // fail-overs; the first connection counts too). The mirror re-mirrors when it changes: an
    // asynchronous replica may have missed the last writes.
    std::uint64_t master_changes() const { return master_changes_; }
    const RedisTarget& target() const { return target_; }

private:
    void ensure_connected();  // with mu_ held
    std::unique_ptr<RedisConn> open(const RedisEndpoint& ep, bool to_sentinel);
    RedisEndpoint ask_sentinels();
    void note_failure();
    RedisTarget target_;
    int timeout_ms_;
    Metrics* metrics_;
    std::mutex mu_;
    std::unique_ptr<RedisConn> conn_;
    std::atomic<bool> up_{false};
    std::atomic<std::uint64_t> master_changes_{0};
    std::string last_master_;
};

}  // namespace tronch::cp
