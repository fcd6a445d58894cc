#include "idempotency.hpp"

#include <memory>
#include <stdexcept>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "tronch/key_hash.hpp"

namespace tronch::cp::idempotency {
namespace {

constexpr std::size_t kNonce = 12, kTag = 16, kKey = 32;

std::string derive_key(std::string_view secret, std::string_view idem_key) {
    std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr), EVP_KDF_free);
    if (!kdf) throw std::runtime_error("HKDF unavailable");
    std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()), EVP_KDF_CTX_free);
    static const char salt[] = "tronch-idempotency-v1";
    std::string info(idem_key);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()), secret.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt), sizeof(salt) - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
        OSSL_PARAM_construct_end(),
    };
    unsigned char out[kKey];
    if (!ctx || EVP_KDF_derive(ctx.get(), out, sizeof out, params) != 1) throw std::runtime_error("HKDF failed");
    return std::string(reinterpret_cast<char*>(out), sizeof out);
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

bool valid_key(std::string_view k) noexcept {
    if (k.empty() || k.size() > kMaxKeyLength) return false;
    for (unsigned char c : k) {
        if (c < 0x21 || c > 0x7e) return false;
    }
    return true;
}

std::string lookup_hash(std::string_view secret, std::string_view idem_key) {
    std::string msg = "tronch-idempotency-id:" + std::string(idem_key);
    unsigned char out[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(msg.data()),
         msg.size(), out, &len);
    std::string hex(64, '0');
    hex_encode(out, 32, hex.data());
    return hex;
}

std::string request_hash(std::string_view canonical) {
    return key_hash_hex(canonical);  // SHA-256 hex
}

std::string seal(std::string_view secret, std::string_view idem_key, std::string_view aad, std::string_view plaintext) {
    std::string key = derive_key(secret, idem_key);
    std::string out(kNonce + plaintext.size() + kTag, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (RAND_bytes(o, kNonce) != 1) throw std::runtime_error("RAND_bytes failed");
    CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int len = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) != 1 ||
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()), o) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                          static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), o + kNonce, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                          static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), o + kNonce + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, o + kNonce + plaintext.size()) != 1)
        throw std::runtime_error("AES-GCM encryption failed");
    OPENSSL_cleanse(key.data(), key.size());
    return out;
}

std::optional<std::string> open(std::string_view secret, std::string_view idem_key, std::string_view aad,
                                std::string_view sealed) {
    if (sealed.size() < kNonce + kTag) return std::nullopt;
    std::string key = derive_key(secret, idem_key);
    auto* s = reinterpret_cast<const unsigned char*>(sealed.data());
    std::size_t n = sealed.size() - kNonce - kTag;
    std::string out(n, '\0');
    CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int len = 0;
    bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) == 1 &&
              EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()), s) == 1 &&
              EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                                static_cast<int>(aad.size())) == 1 &&
              EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, s + kNonce,
                                static_cast<int>(n)) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, const_cast<unsigned char*>(s + kNonce + n)) == 1 &&
              EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &len) == 1;
    OPENSSL_cleanse(key.data(), key.size());
    if (!ok) return std::nullopt;
    return out;
}

}  // namespace tronch::cp::idempotency
