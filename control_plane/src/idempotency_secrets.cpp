#include "idempotency_secrets.hpp"

#include <chrono>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "api_error.hpp"
#include "db.hpp"
#include "log.hpp"
#include "tronch/key_hash.hpp"

namespace tronch::cp {

IdempotencySecrets::IdempotencySecrets(std::string current, std::string previous)
    : current_(std::move(current)), previous_(std::move(previous)), current_kid_(kid(current_)),
      previous_kid_(previous_.empty() ? std::string() : kid(previous_)) {}

std::string IdempotencySecrets::kid(std::string_view secret) {
    static const char label[] = "tronch-secret-kid";
    unsigned char out[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(label),
         sizeof(label) - 1, out, &len);
    std::string hex(64, '0');
    hex_encode(out, 32, hex.data());
    return hex.substr(0, 16);
}

void IdempotencySecrets::scan(PgConn& c) {
    auto r = c.exec(
        "SELECT secret_kid, (extract(epoch from max(created_at)) + 86400)::bigint FROM idempotency_keys "
        "WHERE created_at > now() - interval '24 hours' AND secret_kid IS NOT NULL GROUP BY secret_kid");
    std::int64_t until = 0;
    std::string foreign;
    for (int i = 0; i < r.rows(); ++i) {
        std::string k = r.str(i, 0);
        if (k == current_kid_ || (!previous_kid_.empty() && k == previous_kid_)) continue;
        if (r.i64(i, 1) > until) until = r.i64(i, 1), foreign = k;
    }
    {
        std::lock_guard lock(mu_);
        foreign_kid_ = foreign;
    }
    foreign_until_s_ = until;
    if (until > 0)
        log::error("idempotency records sealed under a server secret this tronchd does not hold; Idempotency-Key "
                   "requests are refused (409) until they age out, or set TRONCH_SECRET_KEY_PREVIOUS to that secret",
                   {{"secret_kid", foreign}, {"current_kid", current_kid_}, {"until_unix", until}});
}

void IdempotencySecrets::refuse_if_foreign() const {
    using namespace std::chrono;
    auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
    if (now >= foreign_until_s_.load()) return;
    std::string k;
    {
        std::lock_guard lock(mu_);
        k = foreign_kid_;
    }
    throw ApiError(409, ErrorCode::idempotency_secret_unknown,
                   "Idempotency-Key records exist under a server secret this tronchd does not have (kid " + k +
                       "), so a retry cannot be told from a new request; nothing was created. The operator must set "
                       "TRONCH_SECRET_KEY_PREVIOUS to that secret; or send the request without Idempotency-Key");
}

}  // namespace tronch::cp
