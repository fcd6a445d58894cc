#define BOOST_TEST_MODULE errors
#include <boost/test/unit_test.hpp>
#include <set>
#include <string>

#include "tronch/errors.hpp"

namespace {

using tronch::AuthResult;

struct Expected {
    AuthResult result;
    int status;
    std::string_view code;
};

constexpr Expected kExpected[] = {
    {AuthResult::ok, 200, "ok"},
    {AuthResult::missing_key, 401, "missing_key"},
    {AuthResult::malformed_key, 401, "malformed_key"},
    {AuthResult::unknown_key, 401, "unknown_key"},
    {AuthResult::revoked_key, 403, "revoked_key"},
    {AuthResult::expired_key, 403, "expired_key"},
    {AuthResult::wrong_environment, 403, "wrong_environment"},
    {AuthResult::address_not_allowed, 403, "address_not_allowed"},
    {AuthResult::https_required, 403, "https_required"},
    {AuthResult::auth_unavailable, 503, "auth_unavailable"},
    {AuthResult::rate_limited, 429, "rate_limited"},
    {AuthResult::ambiguous_credentials, 400, "ambiguous_credentials"},
};
static_assert(std::size(kExpected) == static_cast<std::size_t>(AuthResult::count_));

}  // namespace

BOOST_AUTO_TEST_CASE(table_matches_the_specification) {
    std::set<std::string_view> codes;
    for (const Expected& expected : kExpected) {
        const tronch::AuthResultInfo& info = tronch::describe(expected.result);
        BOOST_TEST((info.result == expected.result));
        BOOST_TEST(info.http_status == expected.status, expected.code);
        BOOST_TEST(info.code == expected.code);
        BOOST_TEST(!info.title.empty(), expected.code);
        BOOST_TEST(!info.detail.empty(), expected.code);
        BOOST_TEST(info.title.size() < 60U, expected.code);
        BOOST_TEST(info.detail.size() < 200U, expected.code);
        // Client-facing text: no key material, no control characters that would break headers or logs.
        BOOST_TEST(info.detail.find("tronch_sk_") == std::string_view::npos);
        for (char c : std::string(info.title) + std::string(info.detail)) {
            BOOST_TEST((c >= 0x20 && c < 0x7f), expected.code);
        }
        BOOST_TEST(codes.insert(info.code).second, "duplicate code " << info.code);
    }
}

BOOST_AUTO_TEST_CASE(out_of_range_fails_closed) {
    const tronch::AuthResultInfo& count = tronch::describe(AuthResult::count_);
    BOOST_TEST(count.http_status != 200);
    const tronch::AuthResultInfo& stray = tronch::describe(static_cast<AuthResult>(200));
    BOOST_TEST(stray.http_status != 200);
    BOOST_TEST(stray.code != "ok");
}
