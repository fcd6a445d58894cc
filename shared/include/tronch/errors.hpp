// The gateway's refusal codes: one table, used for the module's problem+json bodies,
// its $tronch_result variable and the documentation.
#pragma once

#include <string_view>

namespace tronch {

enum class AuthResult : unsigned char {
    ok = 0,
    missing_key,
    malformed_key,
    unknown_key,
    revoked_key,
    expired_key,
    wrong_environment,
    address_not_allowed,
    https_required,
    auth_unavailable,
    rate_limited,
    ambiguous_credentials,  // more than one header carrying a key: which one is meant?
    count_  // not a result: the number of results
};

struct AuthResultInfo {
    AuthResult result;
    int http_status;
    std::string_view code;    // stable, machine readable; also $tronch_result
    std::string_view title;   // short, human readable
    std::string_view detail;  // one sentence for the client
};

const AuthResultInfo& describe(AuthResult result) noexcept;

}  // namespace tronch
