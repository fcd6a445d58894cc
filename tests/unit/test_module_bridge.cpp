// The module's C bridge over libtronch_core (ngx_module/tronch_bridge.h).
#define BOOST_TEST_MODULE module_bridge
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "tronch/key_format.hpp"
#include "tronch/key_hash.hpp"
#include "tronch/key_record.hpp"
#include "tronch/record_signing.hpp"
#include "tronch/redis_keys.hpp"
#include "tronch_bridge.h"

namespace {
const char* kId = "0e0f8a6e-3b7f-4c1e-9d2a-1f2e3d4c5b6a";
}

BOOST_AUTO_TEST_CASE(parse_key_hashes_well_formed_keys) {
    std::string key = tronch::generate_key(tronch::Environment::test);
    int env = -1;
    uint8_t digest[TRONCH_DIGEST_LEN];
    BOOST_TEST(tronch_bridge_parse_key(key.data(), key.size(), &env, digest) == 0);
    char hex[TRONCH_HEX_LEN];
    tronch::hex_encode(digest, sizeof(digest), hex);
    BOOST_TEST(env == TRONCH_ENV_TEST);
    BOOST_TEST(std::string(hex, TRONCH_HEX_LEN) == tronch::key_hash_hex(key));
}

BOOST_AUTO_TEST_CASE(parse_key_refuses_malformed_keys) {
    std::string key = tronch::generate_key(tronch::Environment::live);
    int env;
    uint8_t digest[TRONCH_DIGEST_LEN];
    std::string bad = key;
    bad.back() = bad.back() == 'A' ? 'B' : 'A';
    for (const std::string& k : {bad, key.substr(1), key + "x", std::string("Bearer"), std::string()}) {
        BOOST_TEST(tronch_bridge_parse_key(k.data(), k.size(), &env, digest) == -1);
    }
}

BOOST_AUTO_TEST_CASE(decode_record_into_plain_struct) {
    tronch::KeyRecord rec;
    rec.id = kId;
    rec.prefix = "tronch_sk_live_AbCd1234";
    rec.status = tronch::KeyStatus::rotating;
    rec.expires_at = 1900000000;
    rec.limit = tronch::RateLimit{10, 60, 5};
    tronch::Cidr c4, c6;
    BOOST_REQUIRE(tronch::Cidr::parse("10.0.0.0/8", c4));
    BOOST_REQUIRE(tronch::Cidr::parse("2001:db8::/32", c6));
    rec.allowed_cidrs = {c4, c6};
    std::string json = tronch::encode_key_record(rec);

    tronch_record_t out;
    char err[128] = "";
    BOOST_REQUIRE(tronch_bridge_decode_record(json.data(), json.size(), &out, err, sizeof(err)) == 0);
    BOOST_TEST(std::string(out.id) == kId);
    BOOST_TEST(std::string(out.prefix) == rec.prefix);
    BOOST_TEST(out.env == TRONCH_ENV_LIVE);
    BOOST_TEST(out.status == TRONCH_STATUS_ROTATING);
    BOOST_TEST(out.has_expires == 1);
    BOOST_TEST(out.expires_at == 1900000000);
    BOOST_TEST(out.has_limit == 1);
    BOOST_TEST(out.limit_rate == 10);
    BOOST_TEST(out.limit_period == 60);
    BOOST_TEST(out.limit_burst == 5);
    BOOST_TEST(out.ncidrs == 2);

    uint8_t inside[4] = {10, 1, 2, 3}, outside[4] = {11, 0, 0, 1};
    BOOST_TEST(tronch_bridge_cidr_match(&out.cidrs[0], 4, inside) == 1);
    BOOST_TEST(tronch_bridge_cidr_match(&out.cidrs[0], 4, outside) == 0);
    BOOST_TEST(tronch_bridge_cidr_match(&out.cidrs[1], 4, inside) == 0);
}

BOOST_AUTO_TEST_CASE(decode_record_refuses_garbage) {
    tronch_record_t out;
    char err[128] = "";
    for (std::string bad : {"", "{", "[]", "{\"v\":1}", "null"}) {
        BOOST_TEST(tronch_bridge_decode_record(bad.data(), bad.size(), &out, err, sizeof(err)) == -1);
        BOOST_TEST(std::strlen(err) > 0);
    }
}

BOOST_AUTO_TEST_CASE(events) {
    std::string hash = tronch::key_hash_hex(tronch::generate_key(tronch::Environment::live));
    tronch::redis_keys::Event e;
    e.type = tronch::redis_keys::EventType::key_changed;
    e.key_hash = hash;
    e.id = kId;
    std::string json = tronch::redis_keys::event_json(e);
    int type = -1;
    uint8_t digest[TRONCH_DIGEST_LEN];
    BOOST_REQUIRE(tronch_bridge_parse_event(json.data(), json.size(), &type, digest) == 0);
    BOOST_TEST(type == TRONCH_EVENT_KEY_CHANGED);
    char hex[TRONCH_HEX_LEN];
    tronch::hex_encode(digest, sizeof(digest), hex);
    BOOST_TEST(std::string(hex, TRONCH_HEX_LEN) == hash);

    e.type = tronch::redis_keys::EventType::mirror_rebuilt;
    json = tronch::redis_keys::event_json(e);
    BOOST_REQUIRE(tronch_bridge_parse_event(json.data(), json.size(), &type, digest) == 0);
    BOOST_TEST(type == TRONCH_EVENT_MIRROR_REBUILT);

    std::string junk = "not json";
    BOOST_TEST(tronch_bridge_parse_event(junk.data(), junk.size(), &type, digest) == -1);
}

BOOST_AUTO_TEST_CASE(names_come_from_the_core) {
    uint8_t digest[TRONCH_DIGEST_LEN];
    for (std::size_t i = 0; i < sizeof(digest); ++i) digest[i] = static_cast<uint8_t>(0xa0 + i);
    std::string hash = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
    char name[TRONCH_REDIS_KEY_MAX];
    size_t n = 0;
    BOOST_REQUIRE(tronch_bridge_redis_key(digest, name, sizeof(name), &n) == TRONCH_OK);
    BOOST_TEST(std::string(name, n) == tronch::redis_keys::key_record(hash));
    BOOST_TEST(tronch_bridge_redis_key(digest, name, 10, &n) == TRONCH_ESPACE);
    BOOST_TEST(std::string(tronch_bridge_mirror_epoch_key()) == tronch::redis_keys::kMirrorEpoch);
    BOOST_TEST(std::string(tronch_bridge_events_channel()) == tronch::redis_keys::kEventsChannel);
}

BOOST_AUTO_TEST_CASE(problem_bodies_for_every_result) {
    for (int r = 0; r < TRONCH_RESULT_COUNT; ++r) {
        char body[1024];
        size_t n = 0;
        BOOST_REQUIRE(tronch_bridge_problem_body(r, body, sizeof(body), &n) == TRONCH_OK);
        BOOST_REQUIRE(n > 0);
        auto j = nlohmann::json::parse(std::string(body, n));
        size_t len = 0;
        const char* code = tronch_bridge_result_code(r, &len);
        BOOST_TEST(j["code"].get<std::string>() == std::string(code, len));
        BOOST_TEST(j["status"].get<int>() == tronch_bridge_result_status(r));
        BOOST_TEST(j.contains("title"));
        BOOST_TEST(j.contains("detail"));
        BOOST_TEST(j["type"].get<std::string>().find(std::string(code, len)) != std::string::npos);
    }
    BOOST_TEST(tronch_bridge_result_status(TRONCH_RESULT_MISSING_KEY) == 401);
    BOOST_TEST(tronch_bridge_result_status(TRONCH_RESULT_REVOKED_KEY) == 403);
    BOOST_TEST(tronch_bridge_result_status(TRONCH_RESULT_AUTH_UNAVAILABLE) == 503);
    char tiny[4];
    size_t n = 0;
    BOOST_TEST(tronch_bridge_problem_body(0, tiny, sizeof(tiny), &n) == TRONCH_ESPACE);
    BOOST_TEST(tronch_bridge_problem_body(99, tiny, sizeof(tiny), &n) == TRONCH_EINVAL);
}

BOOST_AUTO_TEST_CASE(limit_parse_share_headers_and_names) {
    tronch_limit_t limit{};
    char err[128] = {};
    const std::string spec = "rate=10r/s burst=4";
    BOOST_TEST(tronch_bridge_parse_limit(spec.data(), spec.size(), &limit, err, sizeof err) == 0);
    BOOST_TEST(limit.rate == 10);
    BOOST_TEST(limit.period_us == 1'000'000);
    BOOST_TEST(limit.burst == 4);
    const std::string bad = "rate=10r/d";
    BOOST_TEST(tronch_bridge_parse_limit(bad.data(), bad.size(), &limit, err, sizeof err) == -1);
    BOOST_TEST(std::string(err).find("invalid rate") != std::string::npos);

    tronch_limit_t share{};
    tronch_limit_t whole{10, 1'000'000, 4};
    tronch_bridge_limit_share(&whole, 3, &share);  // 10/3 -> 3, 4/3 -> 1
    BOOST_TEST(share.rate == 3);
    BOOST_TEST(share.burst == 1);
    BOOST_TEST(share.period_us == 1'000'000);
    tronch_limit_t slow{1, 60'000'000, 0};
    tronch_bridge_limit_share(&slow, 2, &share);  // one per node per two minutes
    BOOST_TEST(share.rate == 1);
    BOOST_TEST(share.period_us == 120'000'000);

    tronch_decision_t d{};
    tronch_bridge_gcra(0, 1'000'000'000, &whole, 1, &d);
    BOOST_TEST(d.allowed == 1);
    BOOST_TEST(d.remaining == 13);
    tronch_limit_headers_t h{};
    tronch_bridge_limit_headers(&whole, &d, &h);
    BOOST_TEST(std::string(h.policy, h.policy_len) == "\"default\";q=14;w=2");
    BOOST_TEST(std::string(h.ratelimit, h.ratelimit_len) == "\"default\";r=13;t=1");
    BOOST_TEST(std::string(h.limit, h.limit_len) == "14");

    char name[TRONCH_REDIS_KEY_MAX];
    std::size_t n = 0;
    BOOST_REQUIRE(tronch_bridge_rate_limit_key("abc", name, sizeof name, &n) == TRONCH_OK);
    BOOST_TEST(std::string(name, n) == tronch::redis_keys::rate_limit_key("abc"));
    char sha[41];
    BOOST_TEST(tronch_bridge_gcra_script_sha1(sha) == 0);
    BOOST_TEST(std::strlen(sha) == 40u);
    std::size_t f = 0;
    BOOST_REQUIRE(tronch_bridge_usage_field("id", 60, TRONCH_USAGE_REQUESTS, name, sizeof name, &f) == TRONCH_OK);
    BOOST_TEST(std::string(name, f) == "id|60|r");
    BOOST_TEST(tronch_bridge_usage_field("id", 60, 'x', name, sizeof name, &f) == TRONCH_EINVAL);
    BOOST_TEST(tronch_bridge_usage_field("id", 60, TRONCH_USAGE_ERRORS, name, 3, &f) == TRONCH_ESPACE);
}

// Signed records (tronch_record_key): verification inside decode, the checks the module makes after.
namespace {

struct RecordKeys {  // a signing key, and its public key in use in this process for the test's duration
    tronch::signing::Pkey key = tronch::signing::generate_key();
    std::string kid = tronch::signing::key_id(key.get());
    void* handle = nullptr;
    RecordKeys() {
        std::string pem = tronch::signing::public_key_pem(key.get());
        char id[32], err[128];
        BOOST_REQUIRE(tronch_bridge_record_key_load(pem.data(), pem.size(), &handle, id, sizeof id, err,
                                                    sizeof err) == TRONCH_OK);
        BOOST_REQUIRE(handle != nullptr);
        BOOST_REQUIRE(std::string(id) == kid);
        BOOST_REQUIRE(tronch_bridge_record_keys_use(&handle, 1) == 0);
    }
    ~RecordKeys() {
        tronch_bridge_record_keys_use(nullptr, 0);
        tronch_bridge_record_key_free(handle);
    }
    std::string sign(const std::string& hash, std::int64_t version, std::int64_t until, const std::string& rec) const {
        return tronch::signing::sign_record(key.get(), kid, hash, version, until, rec);
    }
};

std::string a_record() {
    tronch::KeyRecord r;
    r.id = kId;
    r.prefix = "tronch_sk_live_AbCdEfGh";
    return tronch::encode_key_record(r);
}

int decode(const std::string& text, tronch_record_t& rec) {
    char err[128];
    return tronch_bridge_decode_record(text.data(), text.size(), &rec, err, sizeof err);
}

}  // namespace

BOOST_AUTO_TEST_CASE(signed_record_verifies_and_carries_what_was_signed) {
    RecordKeys keys;
    std::string key = tronch::generate_key(tronch::Environment::live);
    uint8_t digest[TRONCH_DIGEST_LEN];
    int env;
    BOOST_REQUIRE(tronch_bridge_parse_key(key.data(), key.size(), &env, digest) == 0);
    tronch_record_t rec;
    BOOST_REQUIRE(decode(keys.sign(tronch::key_hash_hex(key), 42, 2'000'000'000, a_record()), rec) == 0);
    BOOST_TEST(rec.rejected == TRONCH_REJECT_NONE);
    BOOST_TEST(rec.signature_ok == 1);
    BOOST_TEST(rec.version == 42);
    BOOST_TEST(std::string(rec.id) == kId);
    BOOST_TEST(tronch_bridge_record_check(&rec, digest, 41, 1'999'999'999) == TRONCH_REJECT_NONE);
    BOOST_TEST(tronch_bridge_record_check(&rec, digest, 42, 1'999'999'999) == TRONCH_REJECT_NONE);
    BOOST_TEST(tronch_bridge_record_check(&rec, digest, 43, 1'999'999'999) == TRONCH_REJECT_OLD_VERSION);
    BOOST_TEST(tronch_bridge_record_check(&rec, digest, 0, 2'000'000'000) == TRONCH_REJECT_LAPSED);
    digest[0] ^= 1;
    BOOST_TEST(tronch_bridge_record_check(&rec, digest, 0, 0) == TRONCH_REJECT_WRONG_KEY);
}

BOOST_AUTO_TEST_CASE(with_keys_nothing_from_redis_is_an_error_only_a_rejection) {
    RecordKeys keys;
    std::string hash(64, 'a');
    tronch_record_t rec;
    const std::pair<std::string, int> cases[] = {
        {a_record(), TRONCH_REJECT_UNSIGNED},
        {"not json at all", TRONCH_REJECT_UNSIGNED},
        {"", TRONCH_REJECT_UNSIGNED},
        {R"({"sig":1})", TRONCH_REJECT_MALFORMED},
        {tronch::signing::sign_record(tronch::signing::generate_key().get(), keys.kid, hash, 1, 2, a_record()),
         TRONCH_REJECT_BAD_SIGNATURE},
        {tronch::signing::sign_record(keys.key.get(), "0123456789abcdef", hash, 1, 2, a_record()),
         TRONCH_REJECT_UNKNOWN_KID},
        {keys.sign(hash, 1, 2, "{\"v\":1}"), TRONCH_REJECT_MALFORMED},  // genuine, but not a record
    };
    for (const auto& [text, reason] : cases) {
        BOOST_TEST(decode(text, rec) == 0);
        BOOST_TEST(int(rec.rejected) == reason, text);
        BOOST_TEST(tronch_bridge_record_check(&rec, nullptr, 0, 0) == reason);
        BOOST_TEST(std::string(tronch_bridge_reject_reason(reason)) != "not rejected");
    }
}

BOOST_AUTO_TEST_CASE(without_keys_plain_and_signed_records_decode_unverified) {
    tronch_record_t rec;
    BOOST_TEST(tronch_bridge_record_keys_in_use() == 0u);
    BOOST_TEST(decode(a_record(), rec) == 0);
    BOOST_TEST(rec.signature_ok == 0);
    uint8_t digest[TRONCH_DIGEST_LEN] = {};
    BOOST_TEST(tronch_bridge_record_check(&rec, digest, 99, 0) == TRONCH_REJECT_NONE);
    auto key = tronch::signing::generate_key();
    BOOST_TEST(decode(tronch::signing::sign_record(key.get(), "k", std::string(64, 'b'), 3, 4, a_record()), rec) == 0);
    BOOST_TEST(rec.signature_ok == 0);
    BOOST_TEST(rec.version == 3);
    BOOST_TEST(decode("garbage", rec) == -1);  // as before signing existed: Redis gave nonsense
}

BOOST_AUTO_TEST_CASE(record_key_load_refuses_what_is_not_an_ed25519_public_key) {
    char kid[32], err[128] = "";
    void* handle = nullptr;
    BOOST_TEST(tronch_bridge_record_key_load("nope", 4, &handle, kid, sizeof kid, err, sizeof err) == TRONCH_EINVAL);
    BOOST_TEST(handle == nullptr);
    BOOST_TEST(std::strlen(err) > 0u);
    auto key = tronch::signing::generate_key();
    std::string priv = tronch::signing::private_key_pem(key.get());
    BOOST_TEST(tronch_bridge_record_key_load(priv.data(), priv.size(), &handle, kid, sizeof kid, err, sizeof err) ==
               TRONCH_EINVAL);
    BOOST_TEST(handle == nullptr);
}
