#define BOOST_TEST_MODULE key_format
#include <array>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <map>
#include <new>
#include <ostream>
#include <string>
#include <unordered_set>

#include "tronch/key_format.hpp"

// parse_key and display_prefix promise never to allocate (they run per request inside nginx).
// Count allocations made by this program to hold them to it.
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// GCC 12 sees malloc'ed memory freed through an inlined operator delete and warns of a
// mismatch; here new and delete are both malloc/free, which is exactly the pairing it wants.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

// So BOOST_TEST can print these when a comparison fails.
namespace tronch {
std::ostream& operator<<(std::ostream& out, KeyError error) { return out << to_string(error); }
std::ostream& operator<<(std::ostream& out, Environment environment) { return out << to_string(environment); }
}  // namespace tronch

namespace {

using tronch::Environment;
using tronch::KeyError;

constexpr std::string_view kBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// Built independently with Python's zlib.crc32 and a base62 encoder, so these also check
// the checksum's polynomial, digit order and padding against another implementation.
constexpr std::string_view kKnownLiveKey = "tronch_sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0ot05I";
constexpr std::string_view kKnownTestKey = "tronch_sk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg2gvkwE";

bool is_base62(char c) { return kBase62.find(c) != std::string_view::npos; }

std::string checksum_of(std::uint32_t crc) {
    char out[tronch::kChecksumLength];
    tronch::encode_checksum(crc, out);
    return std::string(out, tronch::kChecksumLength);
}

}  // namespace

BOOST_AUTO_TEST_CASE(constants_are_consistent) {
    BOOST_TEST(tronch::kLivePrefix.size() == tronch::kPrefixLength);
    BOOST_TEST(tronch::kTestPrefix.size() == tronch::kPrefixLength);
    BOOST_TEST(tronch::kKeyLength == 64U);
    BOOST_TEST(tronch::kDisplayPrefixLength == 23U);
}

BOOST_AUTO_TEST_CASE(crc32_known_answers) {
    BOOST_TEST(tronch::key_crc32("123456789") == 0xCBF43926U);
    BOOST_TEST(tronch::key_crc32("") == 0U);
    BOOST_TEST(tronch::key_crc32("The quick brown fox jumps over the lazy dog") == 0x414FA339U);
    BOOST_TEST(tronch::key_crc32(std::string_view("\0", 1)) == 0xD202EF8DU);
}

BOOST_AUTO_TEST_CASE(checksum_encoding_is_msd_first_and_zero_padded) {
    BOOST_TEST(checksum_of(0) == "000000");
    BOOST_TEST(checksum_of(61) == "00000z");
    BOOST_TEST(checksum_of(62) == "000010");
    BOOST_TEST(checksum_of(0xFFFFFFFFU) == "4gfFC3");
    BOOST_TEST(checksum_of(0x2CD177B0U) == "0ot05I");
}

BOOST_AUTO_TEST_CASE(known_keys_parse) {
    const auto live = tronch::parse_key(kKnownLiveKey);
    BOOST_TEST(live.ok());
    BOOST_TEST(live.environment == Environment::live);
    const auto test = tronch::parse_key(kKnownTestKey);
    BOOST_TEST(test.ok());
    BOOST_TEST(test.environment == Environment::test);
    BOOST_TEST(tronch::display_prefix(kKnownLiveKey) == "tronch_sk_live_AAAAAAAA");
    BOOST_TEST(tronch::display_prefix(kKnownTestKey) == "tronch_sk_test_01234567");
}

BOOST_AUTO_TEST_CASE(every_single_character_substitution_is_rejected) {
    const std::string keys[] = {std::string(kKnownLiveKey), std::string(kKnownTestKey),
                                tronch::generate_key(Environment::live),
                                tronch::generate_key(Environment::test)};
    const char replacements[] = {'0', '9', 'A', 'Z',  'a',  'z',    '_',
                                 '-', '!', ' ', '\0', '\n', '\x7f', '\xff'};
    int checked = 0;
    for (const std::string& key : keys) {
        BOOST_REQUIRE(tronch::parse_key(key).ok());
        for (std::size_t position = 0; position < key.size(); ++position) {
            // The listed characters, plus the next base62 character: always valid, always different.
            std::string candidates(std::begin(replacements), std::end(replacements));
            const std::size_t index = kBase62.find(key[position]);
            if (index != std::string_view::npos) candidates.push_back(kBase62[(index + 1) % kBase62.size()]);
            for (char replacement : candidates) {
                if (replacement == key[position]) continue;
                std::string changed = key;
                changed[position] = replacement;
                KeyError expected = KeyError::bad_checksum;
                if (position < tronch::kPrefixLength) {
                    expected = KeyError::wrong_prefix;
                } else if (!is_base62(replacement)) {
                    expected = KeyError::bad_alphabet;
                }
                const auto parsed = tronch::parse_key(changed);
                BOOST_TEST(!parsed.ok());
                BOOST_TEST(parsed.error == expected, "position " << position << " replacement "
                                                                 << static_cast<int>(replacement) << ": "
                                                                 << tronch::to_string(parsed.error));
                BOOST_TEST(tronch::display_prefix(changed).empty());
                ++checked;
            }
        }
    }
    BOOST_TEST(checked > 4 * 64 * 10);
}

BOOST_AUTO_TEST_CASE(every_adjacent_transposition_in_the_body_is_rejected) {
    const std::string key = tronch::generate_key(Environment::live);
    for (std::size_t i = tronch::kPrefixLength; i + 1 < key.size(); ++i) {
        if (key[i] == key[i + 1]) continue;
        std::string swapped = key;
        std::swap(swapped[i], swapped[i + 1]);
        BOOST_TEST(tronch::parse_key(swapped).error == KeyError::bad_checksum, "swap at " << i);
    }
}

BOOST_AUTO_TEST_CASE(every_truncation_is_rejected) {
    for (std::string_view key : {kKnownLiveKey, kKnownTestKey}) {
        for (std::size_t length = 0; length < key.size(); ++length) {
            const auto parsed = tronch::parse_key(key.substr(0, length));
            const KeyError expected =
                length < tronch::kPrefixLength ? KeyError::wrong_prefix : KeyError::bad_length;
            BOOST_TEST(parsed.error == expected, "length " << length);
            BOOST_TEST(tronch::display_prefix(key.substr(0, length)).empty());
        }
    }
}

BOOST_AUTO_TEST_CASE(extensions_are_rejected_as_bad_length) {
    BOOST_TEST(tronch::parse_key(std::string(kKnownLiveKey) + "A").error == KeyError::bad_length);
    BOOST_TEST(tronch::parse_key(std::string(kKnownLiveKey) + "\n").error == KeyError::bad_length);
    BOOST_TEST(tronch::parse_key(std::string(kKnownLiveKey) + std::string(kKnownLiveKey)).error ==
               KeyError::bad_length);
}

BOOST_AUTO_TEST_CASE(checks_run_in_the_documented_order) {
    // Wrong prefix wins over everything else.
    BOOST_TEST(tronch::parse_key("").error == KeyError::wrong_prefix);
    BOOST_TEST(tronch::parse_key("Bearer tronch_sk_live_").error == KeyError::wrong_prefix);
    BOOST_TEST(tronch::parse_key("TRONCH_SK_LIVE_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0ot05I").error ==
               KeyError::wrong_prefix);
    BOOST_TEST(tronch::parse_key("tronch_sk_prod_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0ot05I").error ==
               KeyError::wrong_prefix);
    BOOST_TEST(tronch::parse_key("tronch_pk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0ot05I").error ==
               KeyError::wrong_prefix);
    // Then length, even when the characters are also bad.
    BOOST_TEST(tronch::parse_key("tronch_sk_live_!!!").error == KeyError::bad_length);
    // Then alphabet, even when the checksum is also bad.
    BOOST_TEST(tronch::parse_key("tronch_sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_000000").error ==
               KeyError::bad_alphabet);
    // The environment is reported as soon as the prefix is known.
    BOOST_TEST((tronch::parse_key("tronch_sk_test_short").environment == Environment::test));
}

BOOST_AUTO_TEST_CASE(the_checksum_covers_the_prefix) {
    // Same body and tail with the other environment's prefix: the CRC differs.
    std::string swapped(kKnownLiveKey);
    swapped.replace(0, tronch::kPrefixLength, tronch::kTestPrefix);
    BOOST_TEST(tronch::parse_key(swapped).error == KeyError::bad_checksum);
}

BOOST_AUTO_TEST_CASE(random_keys_round_trip_and_are_distinct) {
    constexpr int kCount = 10'000;
    std::unordered_set<std::string> seen;
    for (int i = 0; i < kCount; ++i) {
        const Environment environment = i % 2 == 0 ? Environment::live : Environment::test;
        const std::string key = tronch::generate_key(environment);
        BOOST_REQUIRE_EQUAL(key.size(), tronch::kKeyLength);
        const auto parsed = tronch::parse_key(key);
        BOOST_REQUIRE(parsed.ok());
        BOOST_REQUIRE(parsed.environment == environment);
        BOOST_REQUIRE(
            key.starts_with(environment == Environment::live ? tronch::kLivePrefix : tronch::kTestPrefix));
        BOOST_REQUIRE(tronch::display_prefix(key) == std::string_view(key).substr(0, 23));
        const std::string_view head = std::string_view(key).substr(0, tronch::kKeyLength - 6);
        BOOST_REQUIRE(std::string_view(key).substr(tronch::kKeyLength - 6) ==
                      checksum_of(tronch::key_crc32(head)));
        BOOST_REQUIRE(seen.insert(key).second);
    }
    BOOST_TEST(seen.size() == static_cast<std::size_t>(kCount));
}

BOOST_AUTO_TEST_CASE(body_characters_are_unbiased) {
    // Without rejection sampling, byte % 62 makes '0'..'7' 25% more likely than the rest.
    // 430,000 characters give about 6,935 per symbol with a standard deviation near 83, so
    // a +-8% band (about 7 sigma) never fails by chance and still catches that bias.
    std::map<char, long> counts;
    long total = 0;
    for (int i = 0; i < 10'000; ++i) {
        const std::string key = tronch::generate_key(Environment::live);
        for (std::size_t j = tronch::kPrefixLength; j < tronch::kPrefixLength + tronch::kBodyLength; ++j) {
            ++counts[key[j]];
            ++total;
        }
    }
    BOOST_TEST(counts.size() == 62U);
    const double expected = static_cast<double>(total) / 62.0;
    for (const auto& [symbol, count] : counts) {
        BOOST_TEST(is_base62(symbol));
        BOOST_TEST(static_cast<double>(count) > expected * 0.92, "symbol " << symbol << ": " << count);
        BOOST_TEST(static_cast<double>(count) < expected * 1.08, "symbol " << symbol << ": " << count);
    }
}

BOOST_AUTO_TEST_CASE(parse_and_display_prefix_do_not_allocate) {
    const std::string good = tronch::generate_key(Environment::test);
    const std::string bad = good.substr(0, 40);
    const long before = g_allocations.load();
    const bool ok = tronch::parse_key(good).ok();
    const bool bad_rejected = !tronch::parse_key(bad).ok();
    const std::size_t prefix_length = tronch::display_prefix(good).size();
    const long after = g_allocations.load();
    BOOST_TEST(ok);
    BOOST_TEST(bad_rejected);
    BOOST_TEST(prefix_length == tronch::kDisplayPrefixLength);
    BOOST_TEST(after == before);
}

BOOST_AUTO_TEST_CASE(enum_names) {
    BOOST_TEST(tronch::to_string(Environment::live) == "live");
    BOOST_TEST(tronch::to_string(Environment::test) == "test");
    BOOST_TEST(tronch::to_string(KeyError::ok) == "ok");
    BOOST_TEST(tronch::to_string(KeyError::wrong_prefix) == "wrong_prefix");
    BOOST_TEST(tronch::to_string(KeyError::bad_length) == "bad_length");
    BOOST_TEST(tronch::to_string(KeyError::bad_alphabet) == "bad_alphabet");
    BOOST_TEST(tronch::to_string(KeyError::bad_checksum) == "bad_checksum");
}

BOOST_AUTO_TEST_CASE(parse_environment_accepts_exactly_live_and_test) {
    Environment environment = Environment::test;
    BOOST_TEST(tronch::parse_environment("live", environment));
    BOOST_TEST((environment == Environment::live));
    BOOST_TEST(tronch::parse_environment("test", environment));
    BOOST_TEST((environment == Environment::test));
    for (std::string_view bad : {"", "LIVE", "Test", "prod", "live ", " test", "tes", "lives"}) {
        Environment untouched = Environment::live;
        BOOST_TEST(!tronch::parse_environment(bad, untouched), bad);
        BOOST_TEST((untouched == Environment::live));
    }
}
