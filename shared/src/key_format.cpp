#include "tronch/key_format.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <zlib.h>

#include <array>
#include <cstdint>
#include <stdexcept>

namespace tronch {
namespace {

constexpr std::string_view kBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static_assert(kBase62.size() == 62);

// Largest multiple of 62 that fits in a byte: bytes at or above it are discarded, so
// `byte % 62` is uniform over the alphabet (no modulo bias).
constexpr unsigned kBase62RejectFrom = 62 * (256 / 62);  // 248

// A table rather than three range tests: parse_key checks 49 characters on every request.
constexpr std::array<bool, 256> make_base62_table() noexcept {
    std::array<bool, 256> table{};
    for (char c : kBase62) table[static_cast<unsigned char>(c)] = true;
    return table;
}
constexpr std::array<bool, 256> kIsBase62 = make_base62_table();

constexpr bool is_base62(char c) noexcept { return kIsBase62[static_cast<unsigned char>(c)]; }

// 62^6 > 2^32, so six digits hold any CRC32 and the encoding is one-to-one.
static_assert(62ULL * 62 * 62 * 62 * 62 * 62 > 0xFFFFFFFFULL);

bool prefix_environment(std::string_view key, Environment& out) noexcept {
    if (key.starts_with(kLivePrefix)) {
        out = Environment::live;
        return true;
    }
    if (key.starts_with(kTestPrefix)) {
        out = Environment::test;
        return true;
    }
    return false;
}

std::string_view prefix_of(Environment environment) noexcept {
    return environment == Environment::test ? kTestPrefix : kLivePrefix;
}

}  // namespace

static_assert(kLivePrefix.size() == kPrefixLength && kTestPrefix.size() == kPrefixLength);

std::string_view to_string(KeyError error) noexcept {
    switch (error) {
        case KeyError::ok:
            return "ok";
        case KeyError::wrong_prefix:
            return "wrong_prefix";
        case KeyError::bad_length:
            return "bad_length";
        case KeyError::bad_alphabet:
            return "bad_alphabet";
        case KeyError::bad_checksum:
            return "bad_checksum";
    }
    return "unknown";
}

std::string_view to_string(Environment environment) noexcept {
    switch (environment) {
        case Environment::live:
            return "live";
        case Environment::test:
            return "test";
    }
    return "unknown";
}

bool parse_environment(std::string_view text, Environment& out) noexcept {
    if (text == "live") {
        out = Environment::live;
        return true;
    }
    if (text == "test") {
        out = Environment::test;
        return true;
    }
    return false;
}

std::uint32_t key_crc32(std::string_view data) noexcept {
    // zlib's CRC-32 is the IEEE 802.3 one (reflected 0xEDB88320, init and final xor ~0) that the
    // key format names. On a 58-byte key it costs ~100 ns (zlib goes byte-wise below its braid
    // threshold), about what our own table did; the library simply replaces hand-written code.
    return static_cast<std::uint32_t>(
        crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

void encode_checksum(std::uint32_t crc, char out[kChecksumLength]) noexcept {
    // Most significant digit first, zero padded to the full width.
    for (std::size_t i = kChecksumLength; i-- > 0;) {
        out[i] = kBase62[crc % 62];
        crc /= 62;
    }
}

ParsedKey parse_key(std::string_view key) noexcept {
    ParsedKey result;
    if (!prefix_environment(key, result.environment)) {
        result.error = KeyError::wrong_prefix;
        return result;
    }
    if (key.size() != kKeyLength) {
        result.error = KeyError::bad_length;
        return result;
    }
    for (std::size_t i = kPrefixLength; i < kKeyLength; ++i) {
        if (!is_base62(key[i])) {
            result.error = KeyError::bad_alphabet;
            return result;
        }
    }
    char expected[kChecksumLength];
    encode_checksum(key_crc32(key.substr(0, kKeyLength - kChecksumLength)), expected);
    // The checksum is not secret (anyone can compute it), so a plain comparison is fine.
    result.error = key.substr(kKeyLength - kChecksumLength) == std::string_view(expected, kChecksumLength)
                       ? KeyError::ok
                       : KeyError::bad_checksum;
    return result;
}

std::string generate_key(Environment environment) {
    std::string key;
    key.reserve(kKeyLength);
    key.append(prefix_of(environment));

    // Rejection sampling discards 8 of 256 byte values, so 64 random bytes almost always
    // yield the 43 characters in one draw; loop for the rare case they do not.
    std::array<unsigned char, 64> random{};
    while (key.size() < kPrefixLength + kBodyLength) {
        if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
            throw std::runtime_error("tronch: the CSPRNG (RAND_bytes) failed");
        }
        for (unsigned char byte : random) {
            if (byte >= kBase62RejectFrom) continue;
            key.push_back(kBase62[byte % 62]);
            if (key.size() == kPrefixLength + kBodyLength) break;
        }
    }
    OPENSSL_cleanse(random.data(), random.size());

    char checksum[kChecksumLength];
    encode_checksum(key_crc32(key), checksum);
    key.append(checksum, kChecksumLength);
    return key;
}

std::string_view display_prefix(std::string_view key) noexcept {
    if (!parse_key(key).ok()) return {};
    return key.substr(0, kDisplayPrefixLength);
}

}  // namespace tronch
