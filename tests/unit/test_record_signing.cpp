#define BOOST_TEST_MODULE record_signing
#include <boost/test/unit_test.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "tronch/record_signing.hpp"

namespace s = tronch::signing;

namespace {

const std::string kHash(64, 'a');
const std::string kRecord = R"({"v":1,"id":"x","status":"active"})";

struct Pair {
    s::Pkey key = s::generate_key();
    std::string kid = s::key_id(key.get());
    std::string pub = s::public_key_pem(key.get());
};

s::Envelope decoded(const std::string& text) {
    s::Envelope e;
    std::string err;
    BOOST_REQUIRE_MESSAGE(s::decode_envelope(text, e, err), err);
    return e;
}

// The stored text with one member replaced (as an attacker with Redis write access could).
std::string with_member(const std::string& text, const char* name, const nlohmann::json& value) {
    auto j = nlohmann::json::parse(text);
    j[name] = value;
    return j.dump();
}

}  // namespace

BOOST_AUTO_TEST_CASE(sign_then_verify_round_trip) {
    Pair p;
    BOOST_TEST(p.kid.size() == s::kKeyIdLength);
    s::Verifier v;
    std::string err;
    BOOST_REQUIRE(v.add(p.pub, err));
    std::string env = s::sign_record(p.key.get(), p.kid, kHash, 7, 1'900'000'000, kRecord);
    BOOST_TEST(s::looks_like_envelope(env));
    s::Envelope e = decoded(env);
    BOOST_TEST(e.record == kRecord);
    BOOST_TEST(e.version == 7);
    BOOST_TEST(e.valid_until == 1'900'000'000);
    BOOST_TEST(e.key_hash == kHash);
    BOOST_TEST((v.verify(e) == s::Verdict::ok));
}

BOOST_AUTO_TEST_CASE(every_signed_member_is_covered) {
    Pair p;
    s::Verifier v;
    std::string err;
    BOOST_REQUIRE(v.add(p.pub, err));
    std::string env = s::sign_record(p.key.get(), p.kid, kHash, 7, 1'900'000'000, kRecord);
    const std::string changed[] = {
        with_member(env, "key", std::string(64, 'b')),
        with_member(env, "ver", 8),
        with_member(env, "until", 1'900'000'001),
        with_member(env, "rec", R"({"v":1,"id":"x","status":"revoked"})"),
        with_member(env, "rec", kRecord + " "),
    };
    for (const auto& text : changed) BOOST_TEST((v.verify(decoded(text)) == s::Verdict::bad_signature));
    BOOST_TEST((v.verify(decoded(with_member(env, "kid", "0000000000000000"))) == s::Verdict::unknown_kid));
}

BOOST_AUTO_TEST_CASE(another_key_is_not_accepted_until_configured) {
    Pair old_key, new_key;
    s::Verifier v;
    std::string err;
    BOOST_REQUIRE(v.add(old_key.pub, err));
    std::string by_new = s::sign_record(new_key.key.get(), new_key.kid, kHash, 1, 1'900'000'000, kRecord);
    BOOST_TEST((v.verify(decoded(by_new)) == s::Verdict::unknown_kid));
    // a forger who names the configured kid but signs with its own key
    std::string forged = s::sign_record(new_key.key.get(), old_key.kid, kHash, 1, 1'900'000'000, kRecord);
    BOOST_TEST((v.verify(decoded(forged)) == s::Verdict::bad_signature));
    BOOST_REQUIRE(v.add(new_key.pub, err));  // rotation: both configured
    BOOST_TEST((v.verify(decoded(by_new)) == s::Verdict::ok));
    BOOST_TEST(v.size() == 2u);
}

BOOST_AUTO_TEST_CASE(keys_round_trip_through_pem) {
    Pair p;
    std::string err;
    s::Pkey priv = s::load_private_key(s::private_key_pem(p.key.get()), err);
    BOOST_REQUIRE(priv);
    BOOST_TEST(s::key_id(priv.get()) == p.kid);
    s::Pkey pub = s::load_public_key(p.pub, err);
    BOOST_REQUIRE(pub);
    BOOST_TEST(s::key_id(pub.get()) == p.kid);
}

BOOST_AUTO_TEST_CASE(bad_pem_is_refused_with_a_message) {
    std::string err;
    BOOST_TEST(!s::load_public_key("not a key", err));
    BOOST_TEST(!err.empty());
    s::Verifier v;
    BOOST_TEST(!v.add("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", err));
    BOOST_TEST(v.empty());
    Pair p;
    err.clear();
    BOOST_TEST(!s::load_public_key(s::private_key_pem(p.key.get()), err));  // a private key is not a public key
}

BOOST_AUTO_TEST_CASE(malformed_envelopes_are_errors) {
    Pair p;
    std::string env = s::sign_record(p.key.get(), p.kid, kHash, 1, 2, kRecord);
    s::Envelope e;
    std::string err;
    BOOST_TEST(!s::decode_envelope("[]", e, err));
    BOOST_TEST(!s::decode_envelope("{", e, err));
    BOOST_TEST(!s::decode_envelope(with_member(env, "extra", 1), e, err));
    BOOST_TEST(!s::decode_envelope(with_member(env, "ver", "1"), e, err));
    BOOST_TEST(!s::decode_envelope(with_member(env, "key", "zz"), e, err));
    BOOST_TEST(!s::decode_envelope(with_member(env, "sig", "AAAA"), e, err));
    BOOST_TEST(!s::decode_envelope(with_member(env, "v", 2), e, err));
    BOOST_TEST(!s::looks_like_envelope(kRecord));
}

BOOST_AUTO_TEST_CASE(base64_is_strict) {
    BOOST_TEST(s::base64_encode("hello") == "aGVsbG8=");
    BOOST_TEST(*s::base64_decode("aGVsbG8=") == "hello");
    BOOST_TEST(*s::base64_decode("aGVsbA==") == "hell");
    BOOST_TEST(!s::base64_decode("aGVsbG8"));
    BOOST_TEST(!s::base64_decode("aGVs bG8="));
    BOOST_TEST(!s::base64_decode("aGVsbG9="));  // non-canonical padding bits
    BOOST_TEST(!s::base64_decode("a=Vs"));
}
