// tronchd: serve | migrate | keys ... (the CLI) | version
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <mutex>
#include <stop_token>
#include <thread>

#include "api.hpp"
#include "cli.hpp"
#include "config.hpp"
#include "db.hpp"
#include "http_server.hpp"
#include "keys.hpp"
#include "log.hpp"
#include "log_throttle.hpp"
#include "metrics.hpp"
#include "migrations.hpp"
#include "mirror.hpp"
#include "redis_client.hpp"
#include "usage.hpp"

using namespace tronch::cp;

namespace {

void usage() {
    std::cerr << "usage: tronchd serve [--config FILE]\n"
                 "       tronchd migrate [--config FILE]\n"
                 "       tronchd keys|audit|records-key ... (the CLI; see tronchd keys --help)\n"
                 "Configuration: a JSON file (--config or TRONCH_CONFIG), then TRONCH_* variables:\n"
                 "  TRONCH_DATABASE_URL (any libpq connection string), TRONCH_REDIS_URL (redis[s]://[user@]host:port[/db]\n"
                 "  | redis[s]-sentinel://h1:p1,h2:p2/<master>) or TRONCH_REDIS_ADDR (host:port | unix:/path),\n"
                 "  TRONCH_REDIS_PASSWORD_FILE, TRONCH_REDIS_TLS_CA_FILE, TRONCH_LISTEN (ip:port,\n"
                 "  default 127.0.0.1:8081), TRONCH_ADMIN_TOKEN, TRONCH_SECRET_KEY (hex, >= 32 bytes), TRONCH_SECRET_KEY_PREVIOUS,\n"
                 "  TRONCH_USAGE_INTERVAL_MS, TRONCH_MIRROR_INTERVAL_MS, TRONCH_PG_POOL_SIZE, ...\n";
}

PgPool::Options pool_options(const Config& c) {
    return {c.database_url, static_cast<std::size_t>(c.pg_pool_size), c.pg_connect_timeout_s, c.pg_statement_timeout_ms,
            c.pg_acquire_timeout_ms};
}

// Migrations, retried while Postgres is not reachable yet (up to `wait`).
void migrate_with_retry(PgPool& pool, std::chrono::seconds wait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        try {
            auto conn = pool.connect_one();
            run_migrations(*conn);
            return;
        } catch (const DbUnavailable& e) {
            if (std::chrono::steady_clock::now() >= deadline) throw;
            log::warn("postgres not reachable yet; retrying migrations", {{"error", e.what()}});
            std::this_thread::sleep_for(std::chrono::seconds(1));
        }
    }
}

// Runs f every `interval` until stop is requested. f must not throw.
template <class F>
std::jthread every(std::chrono::milliseconds interval, F f) {
    return std::jthread([interval, f = std::move(f)](std::stop_token st) mutable {
        std::mutex mu;
        std::condition_variable_any cv;
        while (!st.stop_requested()) {
            f();
            std::unique_lock lock(mu);
            cv.wait_for(lock, st, interval, [] { return false; });
        }
    });
}

int serve(const Config& c) {
    if (c.database_url.empty() || c.admin_token.empty()) {
        log::error("TRONCH_DATABASE_URL and TRONCH_ADMIN_TOKEN are required");
        return 2;
    }
    RedisTarget redis_target = c.redis_target();  // before anything starts: a bad address stops us here
    log::info("tronchd starting", {{"listen", c.listen}, {"redis", redis_target.display()}, {"pg_pool_size", c.pg_pool_size},
                                   {"io_threads", c.io_threads}, {"worker_threads", c.worker_threads}});
    PgPool pool(pool_options(c));
    migrate_with_retry(pool, std::chrono::seconds(30));

    Metrics metrics;
    RedisClient redis_api(redis_target, c.redis_timeout_ms, &metrics);
    RedisClient redis_mirror(redis_target, c.redis_timeout_ms, &metrics);
    RedisClient redis_usage(redis_target, c.redis_timeout_ms, &metrics);
    RecordSigner signer = RecordSigner::load_or_create(c.record_signing_key, c.record_validity_seconds);
    Mirror mirror(redis_mirror, pool, metrics, signer, c.revoked_ttl_seconds);
    KeyService keys(pool, mirror, c.secret_key(), c.max_grace_seconds, c.previous_secret_key());
    try {
        keys.scan_idempotency_secrets();
    } catch (const std::exception& e) {
        log::warn("idempotency secret scan failed; retried with the next purge", {{"error", e.what()}});
    }
    UsageRollup rollup(redis_usage, pool, metrics);
    Api api(keys, pool, redis_api, mirror, metrics, c.admin_token);
    HttpServer server(c.listen, c.io_threads, c.worker_threads, api);

    // Re-mirror everything at start-up (if Redis is up; else the loop retries), unless the previous
    // run stopped cleanly with the mirror complete (Mirror::take_over).
    if (!mirror.take_over()) mirror.tick();

    auto last_purge = std::chrono::steady_clock::now();  // the scan above just ran
    // While PostgreSQL is down these loops fail every round: log the change, then once a minute.
    FailureLog sweep_log("expiry sweep", std::chrono::seconds(60));
    FailureLog usage_log("usage roll-up", std::chrono::seconds(60));
    std::jthread maintenance = every(std::chrono::milliseconds(c.mirror_interval_ms), [&] {
        mirror.tick();
        try {
            keys.sweep_expired();
            if (std::chrono::steady_clock::now() - last_purge > std::chrono::minutes(10)) {
                keys.purge_idempotency();
                keys.scan_idempotency_secrets();
                last_purge = std::chrono::steady_clock::now();
            }
            sweep_log.succeeded();
        } catch (const std::exception& e) {
            sweep_log.failed(e.what());
        }
    });
    std::jthread usage_loop = every(std::chrono::milliseconds(c.usage_interval_ms), [&] {
        try {
            rollup.run_once();
            usage_log.succeeded();
        } catch (const std::exception& e) {
            usage_log.failed(e.what());
        }
    });

    log::info("tronchd listening", {{"listen", c.listen}});
    server.run([&] {
        maintenance.request_stop();
        usage_loop.request_stop();
    });
    maintenance.join();
    usage_loop.join();
    mirror.hand_over();  // after the last write: see Mirror::hand_over
    log::info("tronchd stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    std::string cmd = argv[1];
    if (cmd == "keys" || cmd == "audit" || cmd == "records-key") return cli_main(argc, argv);
    if (cmd == "version" || cmd == "--version") {
        std::cout << "tronchd 0.1.0\n";
        return 0;
    }
    std::string config_path;
    for (int i = 2; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    try {
        Config c = load_config(config_path);
        if (cmd == "serve") return serve(c);
        if (cmd == "migrate") {
            if (c.database_url.empty()) {
                log::error("TRONCH_DATABASE_URL is required");
                return 2;
            }
            PgPool pool(pool_options(c));
            auto conn = pool.connect_one();
            auto applied = run_migrations(*conn);
            log::info("migrations up to date", {{"applied", applied}});
            return 0;
        }
        usage();
        return 2;
    } catch (const std::exception& e) {
        log::error("fatal", {{"error", e.what()}});
        return 1;
    }
}
