#include "config.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace tronch::cp {
namespace {

long parse_long(const std::string& name, const std::string& text) {
    try {
        std::size_t used = 0;
        long v = std::stol(text, &used);
        if (used != text.size() || v < 0) throw std::invalid_argument("bad");
        return v;
    } catch (...) {
        throw std::runtime_error(name + ": not a non-negative integer: " + text);
    }
}

template <class F>
void each_setting(Config& c, F&& f) {
    f("database_url", c.database_url);
    f("redis_addr", c.redis_addr);
    f("redis_url", c.redis_url);
    f("redis_user", c.redis_user);
    f("redis_password_file", c.redis_password_file);
    f("redis_tls_ca_file", c.redis_tls_ca_file);
    f("redis_tls_server_name", c.redis_tls_server_name);
    f("redis_tls_cert_file", c.redis_tls_cert_file);
    f("redis_tls_key_file", c.redis_tls_key_file);
    f("redis_sentinel_user", c.redis_sentinel_user);
    f("redis_sentinel_password_file", c.redis_sentinel_password_file);
    f("listen", c.listen);
    f("admin_token", c.admin_token);
    f("secret_key", c.secret_key_hex);
    f("secret_key_previous", c.secret_key_previous_hex);
    f("io_threads", c.io_threads);
    f("worker_threads", c.worker_threads);
    f("pg_pool_size", c.pg_pool_size);
    f("pg_connect_timeout_s", c.pg_connect_timeout_s);
    f("pg_statement_timeout_ms", c.pg_statement_timeout_ms);
    f("pg_acquire_timeout_ms", c.pg_acquire_timeout_ms);
    f("redis_timeout_ms", c.redis_timeout_ms);
    f("mirror_interval_ms", c.mirror_interval_ms);
    f("usage_interval_ms", c.usage_interval_ms);
    f("max_grace_seconds", c.max_grace_seconds);
    f("revoked_ttl_seconds", c.revoked_ttl_seconds);
    f("record_signing_key", c.record_signing_key);
    f("record_validity_seconds", c.record_validity_seconds);
}

// The first line of a password file, without its line end (as nginx's ssl_password_file).
std::string read_password_file(const char* setting, const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string(setting) + ": cannot read " + path);
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) throw std::runtime_error(std::string(setting) + ": " + path + " holds no password");
    return line;
}

std::string env_name(std::string key) {
    std::string out = "TRONCH_";
    for (char ch : key) out += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return out;
}

}  // namespace

void Config::load_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open config file " + path);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
        throw std::runtime_error("config file " + path + ": " + e.what());
    }
    if (!j.is_object()) throw std::runtime_error("config file " + path + ": not a JSON object");
    std::size_t known = 0;
    each_setting(*this, [&](const char* key, auto& field) {
        auto it = j.find(key);
        if (it == j.end()) return;
        ++known;
        using T = std::decay_t<decltype(field)>;
        if constexpr (std::is_same_v<T, std::string>) {
            if (!it->is_string()) throw std::runtime_error(std::string("config ") + key + ": expected a string");
            field = it->template get<std::string>();
        } else {
            if (!it->is_number_integer() || it->template get<long>() < 0)
                throw std::runtime_error(std::string("config ") + key + ": expected a non-negative integer");
            field = static_cast<T>(it->template get<long>());
        }
    });
    if (known != j.size()) throw std::runtime_error("config file " + path + ": unknown setting");
}

void Config::load_env() {
    each_setting(*this, [&](const char* key, auto& field) {
        std::string name = env_name(key);
        if (std::string(key) == "redis_addr") name = "TRONCH_REDIS_ADDR";
        const char* v = std::getenv(name.c_str());
        if (!v) return;
        using T = std::decay_t<decltype(field)>;
        if constexpr (std::is_same_v<T, std::string>) {
            field = v;
        } else {
            field = static_cast<T>(parse_long(name, v));
        }
    });
}

RedisTarget Config::redis_target() const {
    RedisTarget t = parse_redis_target(redis_url.empty() ? redis_addr : redis_url);
    if (!redis_user.empty()) t.user = redis_user;
    if (!redis_password_file.empty()) t.password = read_password_file("TRONCH_REDIS_PASSWORD_FILE", redis_password_file);
    if (!redis_sentinel_user.empty()) t.sentinel_user = redis_sentinel_user;
    if (!redis_sentinel_password_file.empty())
        t.sentinel_password = read_password_file("TRONCH_REDIS_SENTINEL_PASSWORD_FILE", redis_sentinel_password_file);
    bool tls_files = !redis_tls_ca_file.empty() || !redis_tls_cert_file.empty() || !redis_tls_key_file.empty() ||
                     !redis_tls_server_name.empty();
    if (tls_files && !t.tls.enabled)
        throw std::runtime_error("TRONCH_REDIS_TLS_* settings need a TLS address (rediss:// or rediss-sentinel://)");
    if (redis_tls_cert_file.empty() != redis_tls_key_file.empty())
        throw std::runtime_error("TRONCH_REDIS_TLS_CERT_FILE and TRONCH_REDIS_TLS_KEY_FILE go together");
    if (!t.user.empty() && t.password.empty())
        throw std::runtime_error("a Redis user needs a password (TRONCH_REDIS_PASSWORD_FILE)");
    t.tls.ca_file = redis_tls_ca_file;
    t.tls.server_name = redis_tls_server_name;
    t.tls.cert_file = redis_tls_cert_file;
    t.tls.key_file = redis_tls_key_file;
    return t;
}

namespace {
std::string secret_from_hex(const char* setting, const std::string& hex) {
    if (hex.size() < 64 || hex.size() % 2 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        throw std::runtime_error(std::string(setting) + ": need at least 32 bytes of hex (openssl rand -hex 32)");
    std::string raw;
    for (std::size_t i = 0; i < hex.size(); i += 2) raw += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return raw;
}
}  // namespace

std::string Config::previous_secret_key() const {
    if (secret_key_previous_hex.empty()) return {};
    return secret_from_hex("TRONCH_SECRET_KEY_PREVIOUS", secret_key_previous_hex);
}

std::string Config::secret_key() const {
    if (!secret_key_hex.empty()) return secret_from_hex("TRONCH_SECRET_KEY", secret_key_hex);
    // Derived from the admin token: rotating the token then invalidates idempotency replays.
    unsigned char out[32];
    unsigned int len = 0;
    static const char label[] = "tronch-server-secret-v1";
    HMAC(EVP_sha256(), admin_token.data(), static_cast<int>(admin_token.size()),
         reinterpret_cast<const unsigned char*>(label), sizeof(label) - 1, out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

int default_pool_size(unsigned cores) {
    int n = 2 * static_cast<int>(cores == 0 ? 1 : cores);
    return n < 2 ? 2 : n > 16 ? 16 : n;
}

Config load_config(const std::string& file_path) {
    Config c;
    std::string path = file_path;
    if (path.empty()) {
        if (const char* p = std::getenv("TRONCH_CONFIG")) path = p;
    }
    if (!path.empty()) c.load_file(path);
    c.load_env();
    if (c.io_threads < 1) c.io_threads = 1;
    // More connections than the database's cores can run only queue inside Postgres and stretch
    // the tail: on 2 cores at 32 concurrent creates, pool 16 gave p99 293 ms and pool 4 37 ms,
    // with more throughput (bench/cp_latency, bench/RESULTS.md). A blocking worker without a
    // connection only waits, so by default there are as many workers as connections.
    if (c.pg_pool_size < 1) c.pg_pool_size = default_pool_size(std::thread::hardware_concurrency());
    if (c.worker_threads < 1) c.worker_threads = c.pg_pool_size;
    return c;
}

}  // namespace tronch::cp
