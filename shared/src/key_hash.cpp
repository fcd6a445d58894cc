#include "tronch/key_hash.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace tronch {

bool sha256(std::string_view data, Sha256Digest& out) noexcept {
    // EVP_Digest is one-shot: it creates and frees its own context, so nothing outlives the
    // call and it is safe on every request inside nginx. EVP_sha256() is a static object.
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &length, EVP_sha256(), nullptr) != 1) {
        return false;
    }
    return length == kSha256Bytes;
}

void hex_encode(const std::uint8_t* data, std::size_t length, char* out) noexcept {
    constexpr char kDigits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < length; ++i) {
        out[2 * i] = kDigits[data[i] >> 4];
        out[2 * i + 1] = kDigits[data[i] & 0x0F];
    }
}

bool key_hash_hex(std::string_view key, char out[kSha256HexLength]) noexcept {
    Sha256Digest digest;
    if (!sha256(key, digest)) return false;
    hex_encode(digest.data(), digest.size(), out);
    return true;
}

std::string key_hash_hex(std::string_view key) {
    std::string hex(kSha256HexLength, '\0');
    if (!key_hash_hex(key, hex.data())) {
        throw std::runtime_error("tronch: SHA-256 failed (OpenSSL EVP_Digest)");
    }
    return hex;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;  // CRYPTO_memcmp with length 0 is fine, but data() may be null
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tronch
