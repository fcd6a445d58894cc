#include "redis_client.hpp"

#include <cstdlib>

#include "log.hpp"
#include "metrics.hpp"

namespace tronch::cp {

RedisClient::RedisClient(const std::string& spec, int timeout_ms, Metrics* metrics)
    : RedisClient(parse_redis_target(spec), timeout_ms, metrics) {}

RedisClient::RedisClient(RedisTarget target, int timeout_ms, Metrics* metrics)
    : target_(std::move(target)), timeout_ms_(timeout_ms), metrics_(metrics) {}

RedisClient::~RedisClient() = default;

void RedisClient::note_failure() {
    conn_.reset();
    up_ = false;
    if (metrics_) metrics_->redis_error();
}

std::unique_ptr<RedisConn> RedisClient::open(const RedisEndpoint& ep, bool to_sentinel) {
    auto c = std::make_unique<RedisConn>(&target_.tls, timeout_ms_);
    c->connect_tcp(ep);
    if (to_sentinel) c->auth(target_.sentinel_user, target_.sentinel_password);
    else c->auth(target_.user, target_.password);
    return c;
}

// The first sentinel that names the master wins; the errors of the others make the message.
RedisEndpoint RedisClient::ask_sentinels() {
    std::string errors;
    for (const auto& s : target_.hosts) {
        try {
            auto c = open(s, true);
            auto r = c->roundtrip({{"SENTINEL", "get-master-addr-by-name", target_.master_name}});
            const redisReply* a = r.front().get();
            if (a->type == REDIS_REPLY_ARRAY && a->elements == 2) {
                RedisEndpoint ep{reply_text(a->element[0]), std::atoi(reply_text(a->element[1]).c_str())};
                if (!ep.host.empty() && ep.port > 0) return ep;
            }
            std::string why = a->type == REDIS_REPLY_ERROR ? reply_text(a) : "does not know the master";
            errors += (errors.empty() ? "" : "; ") + c->where() + ": " + why;
        } catch (const RedisUnavailable& e) {
            errors += (errors.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    throw RedisUnavailable("no sentinel named the master '" + target_.master_name + "': " + errors);
}

void RedisClient::ensure_connected() {
    if (conn_) return;
    std::unique_ptr<RedisConn> c;
    if (!target_.unix_path.empty()) {
        c = std::make_unique<RedisConn>(nullptr, timeout_ms_);
        c->connect_unix(target_.unix_path);
        c->auth(target_.user, target_.password);
    } else {
        c = open(target_.sentinel() ? ask_sentinels() : target_.hosts.front(), false);
    }
    if (target_.db != 0) {
        auto r = c->roundtrip({{"SELECT", std::to_string(target_.db)}});
        if (r.front()->type == REDIS_REPLY_ERROR)
            throw RedisUnavailable(c->where() + ": SELECT " + std::to_string(target_.db) + ": " + reply_text(r.front().get()));
    }
    if (target_.sentinel()) {
        // The sentinels' answer can lag a fail-over: only a server that says so is the master.
        auto r = c->roundtrip({{"ROLE"}});
        const redisReply* role = r.front().get();
        std::string what = role->type == REDIS_REPLY_ARRAY && role->elements > 0 ? reply_text(role->element[0])
                                                                                  : reply_text(role);
        if (what != "master")
            throw RedisUnavailable(c->where() + " is not the master (ROLE: " + what + "); asking the sentinels again");
        if (c->where() != last_master_) {
            if (!last_master_.empty()) log::warn("redis master changed", {{"from", last_master_}, {"to", c->where()}});
            last_master_ = c->where();
            ++master_changes_;
        }
    }
    conn_ = std::move(c);
}

RedisReply RedisClient::command(const std::vector<std::string>& argv) {
    auto replies = pipeline({argv});
    return std::move(replies.front());
}

std::vector<RedisReply> RedisClient::pipeline(const std::vector<std::vector<std::string>>& commands) {
    std::lock_guard lock(mu_);
    for (int attempt = 0;; ++attempt) {
        const bool reused = conn_ != nullptr;
        std::vector<RedisReply> out;
        try {
            ensure_connected();
            out = conn_->roundtrip(commands);
        } catch (const RedisUnavailable&) {
            note_failure();
            if (reused && attempt == 0) continue;  // a stale connection (server restarted, fail-over)
            throw;
        }
        std::string error;
        for (auto& r : out) {
            if (r->type == REDIS_REPLY_ERROR) {
                error = reply_text(r.get());
                break;
            }
        }
        if (error.rfind("READONLY", 0) == 0) {  // the master was demoted: find the new one
            note_failure();
            if (attempt == 0) continue;
            throw RedisUnavailable("redis error reply: " + error);
        }
        up_ = true;
        if (!error.empty()) {
            if (metrics_) metrics_->redis_error();
            throw RedisUnavailable("redis error reply: " + error);
        }
        return out;
    }
}

}  // namespace tronch::cp
