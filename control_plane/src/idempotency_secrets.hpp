// The server secrets Idempotency-Key records are looked up under: the current one (it seals every
// new record) and, after a rotation, the previous one (look-ups only, so retries of requests made
// before the rotation still replay). Each record stores its secret's fingerprint (kid); a record
// sealed under a secret tronchd holds neither of is "foreign". While a live (< 24 h) foreign
// record exists, tronchd cannot tell a retry from a new request, so it refuses Idempotency-Key
// requests (409 idempotency_secret_unknown) instead of issuing a second key for a retry.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace tronch::cp {

class PgConn;

class IdempotencySecrets {
public:
    IdempotencySecrets(std::string current, std::string previous);

    const std::string& current() const { return current_; }
    const std::string& previous() const { return previous_; }  // empty: none
    const std::string& current_kid() const { return current_kid_; }

    // 16 hex characters of HMAC-SHA256(secret, "tronch-secret-kid"): names a secret, reveals nothing.
    static std::string kid(std::string_view secret);

    // Reads which secrets live records were sealed under (one grouped scan; run at start-up and
    // with the hourly-ish purge). Logs an error naming a foreign kid. Throws on database errors.
    void scan(PgConn& c);
    // Throws ApiError 409 while a live foreign record may exist.
    void refuse_if_foreign() const;

private:
    std::string current_, previous_, current_kid_, previous_kid_;
    std::atomic<std::int64_t> foreign_until_s_{0};  // unix seconds
    mutable std::mutex mu_;
    std::string foreign_kid_;
};

}  // namespace tronch::cp
