#define BOOST_TEST_MODULE key_hash
#include <boost/test/unit_test.hpp>
#include <cctype>
#include <string>

#include "tronch/key_format.hpp"
#include "tronch/key_hash.hpp"

namespace {

std::string digest_hex(std::string_view data) {
    tronch::Sha256Digest digest{};
    BOOST_REQUIRE(tronch::sha256(data, digest));
    std::string hex(tronch::kSha256HexLength, '?');
    tronch::hex_encode(digest.data(), digest.size(), hex.data());
    return hex;
}

}  // namespace

BOOST_AUTO_TEST_CASE(sha256_known_answers) {
    // FIPS 180-2 examples.
    BOOST_TEST(digest_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    BOOST_TEST(digest_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    BOOST_TEST(digest_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    BOOST_TEST(digest_hex(std::string(1'000'000, 'a')) ==
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

BOOST_AUTO_TEST_CASE(key_hash_hex_forms_agree) {
    const std::string key = tronch::generate_key(tronch::Environment::live);
    char buffer[tronch::kSha256HexLength];
    BOOST_REQUIRE(tronch::key_hash_hex(key, buffer));
    const std::string from_string = tronch::key_hash_hex(key);
    BOOST_TEST(from_string.size() == tronch::kSha256HexLength);
    BOOST_TEST(std::string(buffer, tronch::kSha256HexLength) == from_string);
    BOOST_TEST(from_string == digest_hex(key));
    for (char c : from_string) {
        BOOST_TEST(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')), "not lower-case hex: " << c);
    }
    BOOST_TEST(tronch::key_hash_hex("abc") ==
               "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

BOOST_AUTO_TEST_CASE(hash_distinguishes_keys_differing_in_one_character) {
    std::string key = tronch::generate_key(tronch::Environment::test);
    const std::string original = tronch::key_hash_hex(key);
    key.back() = key.back() == 'A' ? 'B' : 'A';
    BOOST_TEST(tronch::key_hash_hex(key) != original);
}

BOOST_AUTO_TEST_CASE(hex_encode_is_lower_case_high_nibble_first) {
    const std::uint8_t bytes[] = {0x00, 0x0f, 0xf0, 0xff, 0xab, 0x12};
    char out[2 * sizeof bytes];
    tronch::hex_encode(bytes, sizeof bytes, out);
    BOOST_TEST(std::string(out, sizeof out) == "000ff0ffab12");
    tronch::hex_encode(bytes, 0, out);  // length 0 writes nothing
    BOOST_TEST(std::string(out, 2) == "00");
}

BOOST_AUTO_TEST_CASE(repeated_hashing_is_stable) {
    // Run under LeakSanitizer, this also shows the per-request path leaks nothing.
    const std::string key = tronch::generate_key(tronch::Environment::live);
    const std::string first = tronch::key_hash_hex(key);
    char buffer[tronch::kSha256HexLength];
    for (int i = 0; i < 20'000; ++i) {
        BOOST_REQUIRE(tronch::key_hash_hex(key, buffer));
    }
    BOOST_TEST(std::string(buffer, tronch::kSha256HexLength) == first);
}

BOOST_AUTO_TEST_CASE(constant_time_equal_cases) {
    using tronch::constant_time_equal;
    BOOST_TEST(constant_time_equal("", ""));
    BOOST_TEST(constant_time_equal(std::string_view(), std::string_view()));
    BOOST_TEST(constant_time_equal("abc", "abc"));
    BOOST_TEST(!constant_time_equal("abc", "abd"));  // last byte
    BOOST_TEST(!constant_time_equal("abc", "xbc"));  // first byte
    BOOST_TEST(!constant_time_equal("abc", "ab"));   // prefix, shorter
    BOOST_TEST(!constant_time_equal("ab", "abc"));   // prefix, longer
    BOOST_TEST(!constant_time_equal("", "a"));
    BOOST_TEST(!constant_time_equal("a", ""));
    BOOST_TEST(!constant_time_equal("abc", "ABC"));
    // Embedded NULs are compared, not treated as terminators.
    BOOST_TEST(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
    BOOST_TEST(!constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
    // Every single-bit difference in a 64-byte hash is seen.
    const std::string hash = tronch::key_hash_hex("x");
    for (std::size_t i = 0; i < hash.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string flipped = hash;
            flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
            BOOST_REQUIRE(!constant_time_equal(hash, flipped));
        }
    }
    BOOST_TEST(constant_time_equal(hash, std::string(hash)));
    // A view of the first bytes of the same buffer: equal content up to the shorter length,
    // so only the length check can tell them apart (in either order).
    const std::string_view whole(hash);
    BOOST_TEST(!constant_time_equal(whole, whole.substr(0, whole.size() - 1)));
    BOOST_TEST(!constant_time_equal(whole.substr(0, whole.size() - 1), whole));
    BOOST_TEST(!constant_time_equal(whole.substr(0, 1), whole.substr(0, 0)));
}
