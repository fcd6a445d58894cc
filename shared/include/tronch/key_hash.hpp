// How a key is identified at rest: SHA-256 of the whole key, hex encoded.
//
// Keys carry >= 256 random bits, so a fast hash is the right choice (NIST SP 800-63B
// 5.1.2.2): a slow password hash would cost milliseconds per request and add no security.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tronch {

inline constexpr std::size_t kSha256Bytes = 32;
inline constexpr std::size_t kSha256HexLength = 64;

using Sha256Digest = std::array<std::uint8_t, kSha256Bytes>;

// Never throws; returns false only if OpenSSL fails.
bool sha256(std::string_view data, Sha256Digest& out) noexcept;

// Lower-case hex into a caller buffer (no allocation). Returns false if OpenSSL fails.
bool key_hash_hex(std::string_view key, char out[kSha256HexLength]) noexcept;

// Convenience for the control plane. Throws std::runtime_error if OpenSSL fails.
std::string key_hash_hex(std::string_view key);

void hex_encode(const std::uint8_t* data, std::size_t length, char* out) noexcept;

// Constant-time equality (CRYPTO_memcmp). Lengths are not secret.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace tronch
