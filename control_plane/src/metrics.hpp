// Prometheus metrics, rendered as text exposition format 0.0.4.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace tronch::cp {

class Metrics {
public:
    void observe_request(const std::string& route, const std::string& method, int status, double seconds);
    void redis_error() { redis_errors_.fetch_add(1, std::memory_order_relaxed); }
    void mirror_rebuild() { mirror_rebuilds_.fetch_add(1, std::memory_order_relaxed); }
    void usage_rolled_up(std::uint64_t fields) { usage_fields_.fetch_add(fields, std::memory_order_relaxed); }

    struct Gauges {
        std::size_t pg_pool_size = 0, pg_pool_in_use = 0, pg_pool_idle = 0;
        bool redis_up = false;
        std::map<std::string, std::int64_t> keys_by_status;  // empty when Postgres is down
    };
    std::string render(const Gauges& g) const;

private:
    static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                         0.1,   0.25,   0.5,   1.0,  2.5,   5.0};
    struct Histogram {
        std::array<std::uint64_t, kBuckets.size()> counts{};
        std::uint64_t count = 0;
        double sum = 0;
    };
    mutable std::mutex mu_;
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
    std::map<std::string, Histogram> latency_;  // by route
    std::atomic<std::uint64_t> redis_errors_{0}, mirror_rebuilds_{0}, usage_fields_{0};
};

}  // namespace tronch::cp
