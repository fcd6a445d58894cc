// Idempotency-Key crypto. A stored response (which holds a plaintext API key once) is
// encrypted with AES-256-GCM under a key derived by HKDF-SHA256 from the server secret and
// the Idempotency-Key value itself; the table stores only an HMAC of the Idempotency-Key.
// So neither a database dump nor the server secret alone yields a plaintext API key.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tronch::cp::idempotency {

inline constexpr std::size_t kMaxKeyLength = 255;
bool valid_key(std::string_view idempotency_key) noexcept;  // printable ASCII, 1..255

// hex HMAC-SHA256(secret, "tronch-idempotency-id:" + idempotency_key)
std::string lookup_hash(std::string_view secret, std::string_view idempotency_key);
// hex SHA-256 of the canonical request (endpoint + canonical body JSON)
std::string request_hash(std::string_view canonical_request);

// nonce(12) || ciphertext || tag(16); aad binds the record (lookup hash + endpoint).
std::string seal(std::string_view secret, std::string_view idempotency_key, std::string_view aad,
                 std::string_view plaintext);
// nullopt if the tag does not verify (wrong key, wrong aad, tampered).
std::optional<std::string> open(std::string_view secret, std::string_view idempotency_key, std::string_view aad,
                                std::string_view sealed);

}  // namespace tronch::cp::idempotency
