// tronchd configuration: defaults, then an optional JSON file, then TRONCH_* variables.
#pragma once

#include <string>

#include "redis_target.hpp"

namespace tronch::cp {

struct Config {
    std::string database_url;                  // TRONCH_DATABASE_URL (required to serve)
    std::string redis_addr = "127.0.0.1:6379"; // TRONCH_REDIS_ADDR: host:port or unix:/path
    // TRONCH_REDIS_URL (wins over redis_addr): redis[s]://[user[:password]@]host:port[/db] or
    // redis[s]-sentinel://[user[:password]@]h1:p1,h2:p2/<master_name>[/db] (redis_target.hpp)
    std::string redis_url;
    std::string redis_user;                    // TRONCH_REDIS_USER: ACL user (else the URL's)
    std::string redis_password_file;           // TRONCH_REDIS_PASSWORD_FILE: first line is the password
    std::string redis_tls_ca_file;             // TRONCH_REDIS_TLS_CA_FILE (else the system's CAs)
    std::string redis_tls_server_name;         // TRONCH_REDIS_TLS_SERVER_NAME (else the host)
    std::string redis_tls_cert_file;           // TRONCH_REDIS_TLS_CERT_FILE: client certificate
    std::string redis_tls_key_file;            // TRONCH_REDIS_TLS_KEY_FILE: its key
    std::string redis_sentinel_user;           // TRONCH_REDIS_SENTINEL_USER: the sentinels' own ACL user
    std::string redis_sentinel_password_file;  // TRONCH_REDIS_SENTINEL_PASSWORD_FILE
    std::string listen = "127.0.0.1:8081";     // TRONCH_LISTEN: ip:port (loopback; 8080 is left to nginx)
    std::string admin_token;                   // TRONCH_ADMIN_TOKEN (required to serve)
    std::string secret_key_hex;                // TRONCH_SECRET_KEY: hex; else derived from the token
    // TRONCH_SECRET_KEY_PREVIOUS: hex; the secret before a rotation, still accepted for
    // Idempotency-Key look-ups (records live 24 h), never used to seal new ones
    std::string secret_key_previous_hex;
    int io_threads = 2;                        // TRONCH_IO_THREADS
    int worker_threads = 0;                    // TRONCH_WORKER_THREADS (blocking libpq/hiredis work); 0: pg_pool_size
    int pg_pool_size = 0;                      // TRONCH_PG_POOL_SIZE; 0: 2 x CPU cores, 2..16
    int pg_connect_timeout_s = 3;              // TRONCH_PG_CONNECT_TIMEOUT_S
    int pg_statement_timeout_ms = 5000;        // TRONCH_PG_STATEMENT_TIMEOUT_MS
    int pg_acquire_timeout_ms = 3000;          // TRONCH_PG_ACQUIRE_TIMEOUT_MS
    int redis_timeout_ms = 1000;               // TRONCH_REDIS_TIMEOUT_MS
    int mirror_interval_ms = 1000;             // TRONCH_MIRROR_INTERVAL_MS (epoch check + sweep)
    int usage_interval_ms = 5000;              // TRONCH_USAGE_INTERVAL_MS (usage roll-up)
    long max_grace_seconds = 30L * 86400;      // TRONCH_MAX_GRACE_SECONDS (rotation grace cap)
    long revoked_ttl_seconds = 30L * 86400;    // TRONCH_REVOKED_TTL_SECONDS (revoked/expired in Redis)
    // TRONCH_RECORD_SIGNING_KEY: Ed25519 private key (PEM) that signs the Redis records; created
    // (mode 0600, public key beside it) if missing. Relative paths: from the working directory.
    std::string record_signing_key = "tronch-records.key";
    long record_validity_seconds = 86400;      // TRONCH_RECORD_VALIDITY_SECONDS (signed validity; >= 2)

    // Throws std::runtime_error with a readable message on a bad file or value.
    void load_file(const std::string& path);
    void load_env();
    // Where Redis is and how to reach it (reads the password files). Throws std::runtime_error
    // with a message that never holds a password.
    RedisTarget redis_target() const;
    // The 32-byte server secret (from secret_key_hex, else HMAC-derived from the admin token).
    std::string secret_key() const;
    // The previous secret (empty when none is configured).
    std::string previous_secret_key() const;
};

// The PostgreSQL pool size when none is configured: twice the cores, between 2 and 16.
int default_pool_size(unsigned cores);

// Defaults, then the file named by `file_path` (or TRONCH_CONFIG when empty), then env.
Config load_config(const std::string& file_path);

}  // namespace tronch::cp
