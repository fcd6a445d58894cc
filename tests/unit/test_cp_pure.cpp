// Unit tests of tronchd's pure pieces: request validation, cursor codec, idempotency crypto, the route table.
#define BOOST_TEST_MODULE tronchd_pure
#include <boost/test/unit_test.hpp>

#include <cctype>
#include <set>

#include "api.hpp"
#include "api_error.hpp"
#include "config.hpp"
#include "cursor.hpp"
#include "embedded.hpp"
#include "idempotency.hpp"
#include "validation.hpp"

using namespace tronch::cp;
using nlohmann::json;

namespace {
std::string code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ApiError& e) {
        return std::string(to_string(e.code));
    }
    return "";
}
}  // namespace

BOOST_AUTO_TEST_CASE(create_request_valid) {
    auto r = parse_create_request(json::parse(R"({"environment":"test","name":"n","scopes":["a","a","b:c"],
        "limits":{"rate":5,"period_seconds":60},"allowed_cidrs":["10.0.0.0/8","::1"],"metadata":{"x":1},
        "expires_at":"2099-01-01T00:00:00+01:00"})"), 0);
    BOOST_TEST((r.environment == tronch::Environment::test));
    BOOST_TEST(r.scopes.size() == 2u);
    BOOST_TEST(r.limit->burst == 0);
    BOOST_TEST(r.allowed_cidrs[1] == "::1/128");
    BOOST_TEST(*r.expires_at_us == (4070908800LL - 3600) * 1000000);
}

BOOST_AUTO_TEST_CASE(create_request_errors) {
    auto code = [](const char* body) { return code_of([&] { parse_create_request(json::parse(body), 0); }); };
    BOOST_TEST(code(R"({})") == "missing_field");
    BOOST_TEST(code(R"({"environment":"live","x":1})") == "unknown_field");
    BOOST_TEST(code(R"({"environment":1})") == "invalid_field");
    BOOST_TEST(code(R"({"environment":"live","limits":{"rate":1.5,"period_seconds":1}})") == "invalid_field");
    BOOST_TEST(code(R"({"environment":"live","limits":{"rate":1,"period_seconds":86401}})") == "invalid_field");
    BOOST_TEST(code(R"({"environment":"live","allowed_cidrs":["10.0.0.1/8"]})") == "invalid_field");
    BOOST_TEST(code(R"({"environment":"live","expires_at":"2099-02-30T00:00:00Z"})") == "invalid_field");
    BOOST_TEST(code_of([] { parse_json_object("{"); }) == "invalid_json");
    BOOST_TEST(code_of([] { parse_json_object("[]"); }) == "invalid_json");
    BOOST_TEST(code_of([] { parse_patch_request(json::object()); }) == "missing_field");
    BOOST_TEST(code_of([] { parse_rotate_request(json{{"grace_period_seconds", 11}}, 10); }) == "invalid_field");
    BOOST_TEST(parse_rotate_request(json::object(), 1000000) == 86400);
}

BOOST_AUTO_TEST_CASE(time_and_durations) {
    BOOST_TEST(*parse_rfc3339("1970-01-01T00:00:00Z") == 0);
    BOOST_TEST(*parse_rfc3339("2000-01-01T00:00:00.5Z") == 946684800500000LL);
    BOOST_TEST(!parse_rfc3339("2000-01-01 00:00:00Z"));
    BOOST_TEST(!parse_rfc3339("2000-01-01T00:00:00"));
    BOOST_TEST(format_rfc3339(946684800500000LL) == "2000-01-01T00:00:00.500000Z");
    BOOST_TEST(format_rfc3339(946684800000000LL) == "2000-01-01T00:00:00Z");
    BOOST_TEST(*parse_duration_seconds("7d") == 604800);
    BOOST_TEST(*parse_duration_seconds("90") == 90);
    BOOST_TEST(!parse_duration_seconds("0"));
    BOOST_TEST(!parse_duration_seconds("1w"));
}

BOOST_AUTO_TEST_CASE(if_match_and_request_ids) {
    BOOST_TEST(if_match_allows(std::nullopt, 3));
    BOOST_TEST(if_match_allows(std::string("\"3\""), 3));
    BOOST_TEST(if_match_allows(std::string("\"1\", \"3\""), 3));
    BOOST_TEST(if_match_allows(std::string("*"), 3));
    BOOST_TEST(!if_match_allows(std::string("W/\"3\""), 3));
    BOOST_TEST(!if_match_allows(std::string("3"), 3));
    BOOST_TEST(sane_request_id("abc-123_x.y:z"));
    BOOST_TEST(!sane_request_id("a b"));
    BOOST_TEST(!sane_request_id(std::string(129, 'a')));
}

BOOST_AUTO_TEST_CASE(query_parsing) {
    auto q = parse_query("a=1&b=x%20y+z&c");
    BOOST_TEST(q["a"] == "1");
    BOOST_TEST(q["b"] == "x y z");
    BOOST_TEST(q["c"] == "");
    BOOST_TEST(code_of([] { parse_query("a=1&a=2"); }) == "invalid_parameter");
    BOOST_TEST(code_of([] { check_parameters({{"x", "1"}}, {"y"}); }) == "unknown_parameter");
    BOOST_TEST(parse_page_size({}) == 50);
    BOOST_TEST(code_of([] { parse_page_size({{"limit", "201"}}); }) == "invalid_parameter");
}

BOOST_AUTO_TEST_CASE(cursor_codec) {
    for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)}) {
        BOOST_TEST(*base64url_decode(base64url_encode(s)) == s);
    }
    BOOST_TEST(base64url_encode("foobar") == "Zm9vYmFy");
    BOOST_TEST(!base64url_decode("a"));
    BOOST_TEST(!base64url_decode("Zm9v!"));
    KeyCursor c{1700000000123456, "0b5c1a52-4a8e-4e8e-9d6d-1b2c3d4e5f60"};
    auto back = decode_key_cursor(encode_key_cursor(c));
    BOOST_TEST(back->created_us == c.created_us);
    BOOST_TEST(back->id == c.id);
    BOOST_TEST(!decode_key_cursor(base64url_encode("12,not-a-uuid")));
    BOOST_TEST(!decode_key_cursor("Zm9v"));
    BOOST_TEST(*decode_id_cursor(encode_id_cursor(42)) == 42);
    BOOST_TEST(!decode_id_cursor(base64url_encode("42")));
}

BOOST_AUTO_TEST_CASE(idempotency_crypto_round_trip) {
    std::string secret(32, 's');
    std::string plain = R"({"key":"tronch_sk_live_secret"})";
    auto sealed = idempotency::seal(secret, "idem-1", "aad", plain);
    BOOST_TEST(sealed.find("tronch_sk_live_secret") == std::string::npos);
    BOOST_TEST(sealed.size() == plain.size() + 28);
    BOOST_TEST(*idempotency::open(secret, "idem-1", "aad", sealed) == plain);
    BOOST_TEST(!idempotency::open(secret, "idem-2", "aad", sealed));        // other Idempotency-Key
    BOOST_TEST(!idempotency::open(secret, "idem-1", "other", sealed));      // other record
    BOOST_TEST(!idempotency::open(std::string(32, 't'), "idem-1", "aad", sealed));  // other secret
    auto tampered = sealed;
    tampered[15] ^= 1;
    BOOST_TEST(!idempotency::open(secret, "idem-1", "aad", tampered));
    BOOST_TEST(idempotency::seal(secret, "idem-1", "aad", plain) != sealed);  // fresh nonce
    BOOST_TEST(idempotency::lookup_hash(secret, "k").size() == 64u);
    BOOST_TEST(idempotency::lookup_hash(secret, "k") != idempotency::lookup_hash(std::string(32, 't'), "k"));
    BOOST_TEST(idempotency::valid_key("abc"));
    BOOST_TEST(!idempotency::valid_key("a b"));
    BOOST_TEST(!idempotency::valid_key(""));
}

BOOST_AUTO_TEST_CASE(default_pool_is_twice_the_cores_within_bounds) {
    using tronch::cp::default_pool_size;
    BOOST_TEST(default_pool_size(0) == 2);   // hardware_concurrency() may not know
    BOOST_TEST(default_pool_size(1) == 2);
    BOOST_TEST(default_pool_size(2) == 4);
    BOOST_TEST(default_pool_size(6) == 12);
    BOOST_TEST(default_pool_size(64) == 16);
}

// Issue 12: what the strict parser and the text checks refuse.
BOOST_AUTO_TEST_CASE(hostile_input_is_refused) {
    BOOST_TEST(code_of([] { parse_json_object(R"({"a":1,"a":2})"); }) == "invalid_json");
    BOOST_TEST(code_of([] { parse_json_object(R"({"a":{"b":1,"b":1}})"); }) == "invalid_json");
    BOOST_TEST(code_of([] { parse_json_object(R"({"n":9007199254740993})"); }) == "invalid_field");
    BOOST_TEST(code_of([] { parse_json_object(R"({"n":-9007199254740993})"); }) == "invalid_field");
    BOOST_TEST(code_of([] { parse_json_object(R"({"n":123456789012345678901234567890})"); }) == "invalid_field");
    BOOST_TEST(code_of([] { parse_json_object("{\"a\":" + std::string(40, '[') + std::string(40, ']') + "}"); }) ==
               "invalid_json");
    BOOST_TEST(parse_json_object(R"({"n":9007199254740992,"f":0.5,"a":{"a":1}})")["n"] == 9007199254740992LL);
    BOOST_TEST(valid_utf8("plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x9A\x80"));
    BOOST_TEST(!valid_utf8("\xFF\xFE"));
    BOOST_TEST(!valid_utf8("\xC0\xAF"));          // overlong '/'
    BOOST_TEST(!valid_utf8("\xED\xA0\x80"));      // a surrogate
    BOOST_TEST(!valid_utf8("\xE2\x82"));          // truncated
    BOOST_TEST(has_forbidden_chars(std::string("a\0b", 3)));
    BOOST_TEST(has_forbidden_chars("a\xC2\x85"));      // U+0085
    BOOST_TEST(has_forbidden_chars("\xE2\x80\xAE"));   // U+202E
    BOOST_TEST(has_forbidden_chars("\xE2\x81\xA9"));   // U+2069
    BOOST_TEST(!has_forbidden_chars("caf\xC3\xA9 \xE2\x80\x8F"));  // é, U+200F
    BOOST_TEST(!parse_rfc3339("9999-12-31T23:00:00-05:00"));
    BOOST_TEST(!parse_rfc3339("1970-01-01T00:00:00+01:00"));
    BOOST_TEST(*parse_rfc3339("9999-12-31T23:59:59Z") == 253402300799LL * 1000000);
    BOOST_TEST(code_of([] { parse_query("owner=%FF"); }) == "invalid_parameter");
    BOOST_TEST(code_of([] { parse_query("owner=%00"); }) == "invalid_parameter");
    BOOST_TEST(code_of([] { parse_query("owner=%zz"); }) == "invalid_parameter");
    BOOST_TEST(parse_query("owner=%C3%A9")["owner"] == "\xC3\xA9");
}

// The route table is what tronchd serves; the OpenAPI document it serves must list the same
// (method, path) pairs, no more, no fewer.
BOOST_AUTO_TEST_CASE(route_table_matches_openapi) {
    std::set<std::pair<std::string, std::string>> served, documented;
    for (const auto& r : Api::routes()) {
        std::string m = r.method;
        for (char& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        BOOST_TEST(served.emplace(m, r.path).second, "route listed twice: " << r.method << " " << r.path);
    }
    json doc = json::parse(embedded_openapi());
    for (auto& [path, ops] : doc["paths"].items())
        for (auto& [method, op] : ops.items()) documented.emplace(method, path);
    BOOST_TEST((served == documented));
}

// Every ErrorCode tronchd can send is one the OpenAPI Error schema lists, and the other way round.
BOOST_AUTO_TEST_CASE(error_codes_match_openapi) {
    json doc = json::parse(embedded_openapi());
    std::set<std::string> documented, sent;
    for (auto& c : doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
        documented.insert(c.get<std::string>());
    for (int i = 0; i <= static_cast<int>(ErrorCode::bad_request); ++i)
        sent.emplace(to_string(static_cast<ErrorCode>(i)));
    BOOST_TEST((sent == documented));
}
