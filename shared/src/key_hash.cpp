// SHA-256 runs on every request in nginx, so it uses OpenSSL's low-level SHA256_* functions: the
// context lives on the stack, nothing is allocated and no lock is taken. They are marked deprecated
// in OpenSSL 3 in favour of EVP, but EVP costs 3-6x more here (bench/micro BM_key_hash_hex on the
// 2-core VM: EVP_Digest(EVP_sha256()) 390 ns with a provider-store read lock and two allocations
// per call; a fetched EVP_MD with a reused EVP_MD_CTX 189 ns and one allocation, because OpenSSL
// 3.0 frees and re-creates the provider context on every init; SHA256_* 60 ns, none).
// Same library, same SHA-NI code underneath.
#define OPENSSL_SUPPRESS_DEPRECATED  // before any OpenSSL header, or it has no effect
#include "tronch/key_hash.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace tronch {

bool sha256(std::string_view data, Sha256Digest& out) noexcept {
    static_assert(SHA256_DIGEST_LENGTH == kSha256Bytes);
    SHA256_CTX ctx;
    return SHA256_Init(&ctx) == 1 && SHA256_Update(&ctx, data.data(), data.size()) == 1 &&
           SHA256_Final(out.data(), &ctx) == 1;
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
