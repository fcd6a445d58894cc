#include "tronch/errors.hpp"

#include <array>
#include <cstddef>

namespace tronch {
namespace {

constexpr std::size_t kResultCount = static_cast<std::size_t>(AuthResult::count_);

// Indexed by AuthResult. The texts go to clients: they say what to do, never which key
// or which part of it was wrong beyond the class of failure.
constexpr std::array<AuthResultInfo, kResultCount> kResults = {{
    {AuthResult::ok, 200, "ok", "OK", "The request is authenticated."},
    {AuthResult::missing_key, 401, "missing_key", "API key required",
     "This request needs an API key, and none was sent."},
    {AuthResult::malformed_key, 401, "malformed_key", "Malformed API key",
     "The API key is not in the expected format; check that it was copied in full."},
    {AuthResult::unknown_key, 401, "unknown_key", "Invalid API key", "The API key is not recognised."},
    {AuthResult::revoked_key, 403, "revoked_key", "API key revoked", "The API key has been revoked."},
    {AuthResult::expired_key, 403, "expired_key", "API key expired", "The API key has expired."},
    {AuthResult::wrong_environment, 403, "wrong_environment", "Wrong environment",
     "The API key belongs to a different environment (live or test) than this endpoint."},
    {AuthResult::address_not_allowed, 403, "address_not_allowed", "Address not allowed",
     "The API key may not be used from this client address."},
    {AuthResult::https_required, 403, "https_required", "HTTPS required",
     "API keys must be sent over HTTPS."},
    {AuthResult::auth_unavailable, 503, "auth_unavailable", "Authentication unavailable",
     "The API key could not be checked right now; retry shortly."},
    {AuthResult::rate_limited, 429, "rate_limited", "Too many requests",
     "Too many requests; retry after the number of seconds in Retry-After."},
    // Two keys (Authorization and X-API-Key, or one header twice): refused rather than guess, so
    // the other key can never travel upstream.
    {AuthResult::ambiguous_credentials, 400, "ambiguous_credentials", "Ambiguous credentials",
     "The request carries more than one API key header; send exactly one."},
}};

// A row out of place would pair a result with another's status: check order at compile time.
constexpr bool table_in_enum_order() {
    for (std::size_t i = 0; i < kResults.size(); ++i) {
        if (static_cast<std::size_t>(kResults[i].result) != i) return false;
        if (kResults[i].code.empty() || kResults[i].title.empty() || kResults[i].detail.empty()) return false;
    }
    return true;
}
static_assert(kResults.size() == kResultCount, "one row per AuthResult");
static_assert(table_in_enum_order(), "rows must follow the order of AuthResult");

}  // namespace

const AuthResultInfo& describe(AuthResult result) noexcept {
    const auto index = static_cast<std::size_t>(result);
    // Not a result (count_ or a stray value): answer as a failure to authenticate, never "ok".
    if (index >= kResults.size()) return kResults[static_cast<std::size_t>(AuthResult::auth_unavailable)];
    return kResults[index];
}

}  // namespace tronch
