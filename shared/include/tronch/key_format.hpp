// The API key format: the one definition shared by the nginx module and tronchd.
//
//   tronch_sk_<env>_<body><checksum>
//   env      = "live" | "test"
//   body     = 43 base62 characters drawn from a CSPRNG (62^43 > 2^256)
//   checksum = CRC32 of everything before it, 6 base62 characters (62^6 > 2^32)
//
// The checksum lets the gateway refuse typos and garbage with no I/O at all,
// as GitHub's token format does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tronch {

enum class Environment : unsigned char { live = 0, test = 1 };

inline constexpr std::string_view kLivePrefix = "tronch_sk_live_";
inline constexpr std::string_view kTestPrefix = "tronch_sk_test_";
inline constexpr std::size_t kPrefixLength = 15;   // both prefixes have this length
inline constexpr std::size_t kBodyLength = 43;     // base62 characters of randomness
inline constexpr std::size_t kChecksumLength = 6;  // base62 CRC32
inline constexpr std::size_t kKeyLength = kPrefixLength + kBodyLength + kChecksumLength;
// Characters of the body shown in listings after the prefix ("tronch_sk_live_AbCd1234").
inline constexpr std::size_t kDisplayBodyChars = 8;
inline constexpr std::size_t kDisplayPrefixLength = kPrefixLength + kDisplayBodyChars;

enum class KeyError : unsigned char {
    ok = 0,
    wrong_prefix,  // not tronch_sk_live_ / tronch_sk_test_
    bad_length,    // right prefix, wrong total length
    bad_alphabet,  // a character outside [0-9A-Za-z] after the prefix
    bad_checksum,  // well formed, but the CRC32 tail does not match
};

std::string_view to_string(KeyError) noexcept;
std::string_view to_string(Environment) noexcept;
bool parse_environment(std::string_view text, Environment& out) noexcept;

struct ParsedKey {
    KeyError error = KeyError::wrong_prefix;
    Environment environment = Environment::live;
    bool ok() const noexcept { return error == KeyError::ok; }
};

// Validates prefix, length, alphabet and checksum. Never allocates, never throws.
ParsedKey parse_key(std::string_view key) noexcept;

// A new key from OpenSSL's CSPRNG. Throws std::runtime_error if the CSPRNG fails.
std::string generate_key(Environment environment);

// The non-secret start of a key, for listings and logs. Empty for a malformed key.
std::string_view display_prefix(std::string_view key) noexcept;

// Exposed for tests and for the checksum's single definition.
std::uint32_t key_crc32(std::string_view data) noexcept;
void encode_checksum(std::uint32_t crc, char out[kChecksumLength]) noexcept;

}  // namespace tronch
