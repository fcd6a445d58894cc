#define BOOST_TEST_MODULE key_mask
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "tronch/key_format.hpp"
#include "tronch/key_mask.hpp"

namespace {

std::string mask(std::string_view text) {
    std::vector<char> out(tronch::masked_size_bound(text.size()));
    std::size_t n = tronch::mask_keys(text, out.data(), out.size());
    return std::string(out.data(), n);
}

std::string percent_encode_all(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

const std::string kKey = tronch::generate_key(tronch::Environment::live);
const std::string kSecret = kKey.substr(tronch::kPrefixLength);

}  // namespace

BOOST_AUTO_TEST_CASE(a_key_in_the_query_is_masked_to_its_prefix) {
    std::string line = "GET /v1/x?api_key=" + kKey + "&a=b HTTP/1.1";
    BOOST_TEST(mask(line) == "GET /v1/x?api_key=tronch_sk_live_***&a=b HTTP/1.1");
    BOOST_TEST(tronch::contains_key_marker(line));
}

BOOST_AUTO_TEST_CASE(text_without_keys_is_unchanged) {
    for (std::string_view text : {"", "GET / HTTP/1.1", "tronch_sk_", "tronch_sk_live_ x", "%zz%4", "t%", "%7"}) {
        BOOST_TEST(mask(text) == text);
    }
    BOOST_TEST(!tronch::contains_key_marker("GET /index.html?tronch=1 HTTP/1.1"));
}

BOOST_AUTO_TEST_CASE(percent_encoded_keys_are_masked) {
    std::string partly = "GET /?k=tronch%5Fsk%5Ftest%5F" + kSecret + " HTTP/1.1";
    BOOST_TEST(mask(partly) == "GET /?k=tronch_sk_test_*** HTTP/1.1");
    std::string fully = "GET /?k=" + percent_encode_all(kKey) + " HTTP/1.1";
    BOOST_TEST(tronch::contains_key_marker(fully));
    BOOST_TEST(mask(fully) == "GET /?k=tronch_sk_live_*** HTTP/1.1");
    std::string lower = "/?k=%74ronch_sk_live_%61bc";
    BOOST_TEST(mask(lower) == "/?k=tronch_sk_live_***");
    std::string twice = "/?k=tronch%255Fsk%255Flive%255F" + kSecret + "&x";
    BOOST_TEST(mask(twice) == "/?k=tronch_sk_live_***&x");
    BOOST_TEST(mask("/?k=tronch%25252Fsk") == "/?k=tronch%25252Fsk");   // a '/' three times encoded
    BOOST_TEST(mask("%25%2525%25zz%255") == "%25%2525%25zz%255");       // escapes of nothing
}

BOOST_AUTO_TEST_CASE(malformed_and_truncated_keys_are_masked_too) {
    BOOST_TEST(mask("a=tronch_sk_XYZ b") == "a=tronch_sk_*** b");
    BOOST_TEST(mask("tronch_sk_live_" + kSecret.substr(0, 5)) == "tronch_sk_live_***");
    BOOST_TEST(mask("tronch_sk_livex") == "tronch_sk_***");
    BOOST_TEST(mask("x=TRONCH_SK_LIVE_" + kSecret) == "x=tronch_sk_live_***");   // case ignored
    BOOST_TEST(mask("x=Tronch_Sk_" + kSecret) == "x=tronch_sk_***");
    BOOST_TEST(mask(kKey + kKey) == "tronch_sk_live_***");
    BOOST_TEST(mask(kKey + " " + kKey) == "tronch_sk_live_*** tronch_sk_live_***");
}

BOOST_AUTO_TEST_CASE(the_output_never_exceeds_the_bound) {
    // The densest growth: many shortest tokens.
    std::string text;
    for (int i = 0; i < 50; ++i) text += "tronch_sk_a";
    std::vector<char> out(tronch::masked_size_bound(text.size()));
    std::size_t n = tronch::mask_keys(text, out.data(), out.size());
    BOOST_TEST(n <= out.size());
    BOOST_TEST(std::string(out.data(), n) == "tronch_sk_***");  // one run of key characters
    std::string spaced;
    for (int i = 0; i < 50; ++i) spaced += "tronch_sk_a ";
    std::vector<char> out2(tronch::masked_size_bound(spaced.size()));
    BOOST_TEST(tronch::mask_keys(spaced, out2.data(), out2.size()) <= out2.size());
    BOOST_TEST(tronch::mask_keys(spaced, out2.data(), 3) == 0u);  // too small: refused, nothing written
}

BOOST_AUTO_TEST_CASE(no_secret_character_survives) {
    std::string line = "GET /a?x=" + kKey + "&y=" + percent_encode_all(kKey) + " HTTP/1.1";
    std::string masked = mask(line);
    BOOST_TEST(masked.find(kSecret.substr(0, 8)) == std::string::npos);
    BOOST_TEST(masked.find(kSecret.substr(kSecret.size() - 8)) == std::string::npos);
}
