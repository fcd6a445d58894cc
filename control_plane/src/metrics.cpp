#include "metrics.hpp"

#include <sstream>

namespace tronch::cp {

void Metrics::observe_request(const std::string& route, const std::string& method, int status, double seconds) {
    std::lock_guard lock(mu_);
    ++requests_[{route, method, status}];
    auto& h = latency_[route];
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        if (seconds <= kBuckets[i]) ++h.counts[i];
    }
    ++h.count;
    h.sum += seconds;
}

std::string Metrics::render(const Gauges& g) const {
    std::ostringstream o;
    {
        std::lock_guard lock(mu_);
        o << "# HELP tronchd_http_requests_total HTTP requests by route, method and status.\n"
             "# TYPE tronchd_http_requests_total counter\n";
        for (auto& [k, v] : requests_) {
            o << "tronchd_http_requests_total{route=\"" << std::get<0>(k) << "\",method=\"" << std::get<1>(k)
              << "\",status=\"" << std::get<2>(k) << "\"} " << v << "\n";
        }
        o << "# HELP tronchd_http_request_duration_seconds Request latency by route.\n"
             "# TYPE tronchd_http_request_duration_seconds histogram\n";
        for (auto& [route, h] : latency_) {
            for (std::size_t i = 0; i < kBuckets.size(); ++i) {
                o << "tronchd_http_request_duration_seconds_bucket{route=\"" << route << "\",le=\"" << kBuckets[i]
                  << "\"} " << h.counts[i] << "\n";
            }
            o << "tronchd_http_request_duration_seconds_bucket{route=\"" << route << "\",le=\"+Inf\"} " << h.count << "\n";
            o << "tronchd_http_request_duration_seconds_sum{route=\"" << route << "\"} " << h.sum << "\n";
            o << "tronchd_http_request_duration_seconds_count{route=\"" << route << "\"} " << h.count << "\n";
        }
    }
    o << "# HELP tronchd_pg_pool_connections PostgreSQL pool connections by state.\n"
         "# TYPE tronchd_pg_pool_connections gauge\n"
      << "tronchd_pg_pool_connections{state=\"in_use\"} " << g.pg_pool_in_use << "\n"
      << "tronchd_pg_pool_connections{state=\"idle\"} " << g.pg_pool_idle << "\n"
      << "# HELP tronchd_pg_pool_size Maximum PostgreSQL pool connections.\n"
         "# TYPE tronchd_pg_pool_size gauge\n"
      << "tronchd_pg_pool_size " << g.pg_pool_size << "\n"
      << "# HELP tronchd_redis_errors_total Redis commands that failed (connection, timeout, error reply).\n"
         "# TYPE tronchd_redis_errors_total counter\n"
      << "tronchd_redis_errors_total " << redis_errors_.load() << "\n"
      << "# HELP tronchd_redis_up Whether the last Redis command succeeded.\n"
         "# TYPE tronchd_redis_up gauge\n"
      << "tronchd_redis_up " << (g.redis_up ? 1 : 0) << "\n"
      << "# HELP tronchd_mirror_rebuilds_total Full re-mirrors of all keys into Redis.\n"
         "# TYPE tronchd_mirror_rebuilds_total counter\n"
      << "tronchd_mirror_rebuilds_total " << mirror_rebuilds_.load() << "\n"
      << "# HELP tronchd_usage_fields_rolled_up_total Usage counters moved from Redis into Postgres.\n"
         "# TYPE tronchd_usage_fields_rolled_up_total counter\n"
      << "tronchd_usage_fields_rolled_up_total " << usage_fields_.load() << "\n";
    o << "# HELP tronchd_keys Keys by status (from Postgres).\n# TYPE tronchd_keys gauge\n";
    for (const char* s : {"active", "rotating", "revoked", "expired"}) {
        auto it = g.keys_by_status.find(s);
        if (!g.keys_by_status.empty()) {
            o << "tronchd_keys{status=\"" << s << "\"} " << (it == g.keys_by_status.end() ? 0 : it->second) << "\n";
        }
    }
    return o.str();
}

}  // namespace tronch::cp
