// Ed25519 with OpenSSL 3's EVP one-shot sign/verify (Ed25519 signs the message itself, no
// digest: EVP_DigestSign with a NULL md). See record_signing.hpp for the formats.
#include "tronch/record_signing.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <array>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tronch/key_hash.hpp"
#include "tronch/redis_keys.hpp"

namespace tronch::signing {
namespace {

struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    if (len <= 0 || data == nullptr) throw std::runtime_error("cannot write the key as PEM");
    return std::string(data, static_cast<std::size_t>(len));
}

bool is_ed25519(EVP_PKEY* key) noexcept { return key && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519; }

bool lower_hex(std::string_view s) noexcept {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

void PkeyFree::operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }

Pkey generate_key() {
    Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!key) throw std::runtime_error("cannot generate an Ed25519 key");
    return key;
}

std::string private_key_pem(EVP_PKEY* key) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        throw std::runtime_error("cannot write the private key as PEM");
    return bio_text(bio.get());
}

std::string public_key_pem(EVP_PKEY* key) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1)
        throw std::runtime_error("cannot write the public key as PEM");
    return bio_text(bio.get());
}

Pkey load_private_key(std::string_view pem, std::string& error) noexcept {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    Pkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key) {
        error = "not a PEM private key";
        return nullptr;
    }
    if (!is_ed25519(key.get())) {
        error = "not an Ed25519 key";
        return nullptr;
    }
    return key;
}

Pkey load_public_key(std::string_view pem, std::string& error) noexcept {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    Pkey key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key) {
        error = "not a PEM public key (-----BEGIN PUBLIC KEY-----)";
        return nullptr;
    }
    if (!is_ed25519(key.get())) {
        error = "not an Ed25519 key";
        return nullptr;
    }
    return key;
}

std::string key_id(EVP_PKEY* key) noexcept {
    std::array<unsigned char, 32> raw{};
    std::size_t len = raw.size();
    if (!is_ed25519(key) || EVP_PKEY_get_raw_public_key(key, raw.data(), &len) != 1 || len != raw.size())
        return {};
    Sha256Digest digest{};
    if (!sha256(std::string_view(reinterpret_cast<const char*>(raw.data()), len), digest)) return {};
    try {
        std::string hex(kSha256HexLength, '0');
        hex_encode(digest.data(), digest.size(), hex.data());
        return hex.substr(0, kKeyIdLength);
    } catch (...) {
        return {};
    }
}

std::string signing_message(std::string_view key_hash_hex, std::int64_t version, std::int64_t valid_until,
                            std::string_view record_json) {
    std::string m;
    m.reserve(kDomain.size() + 128 + record_json.size());
    m.append(kDomain).append("\n");
    m.append(redis_keys::key_record(key_hash_hex)).append("\n");
    m.append(std::to_string(version)).append("\n");
    m.append(std::to_string(valid_until)).append("\n");
    m.append(record_json);
    return m;
}

std::string sign_record(EVP_PKEY* private_key, std::string_view kid, std::string_view key_hash_hex,
                        std::int64_t version, std::int64_t valid_until, std::string_view record_json) {
    std::string message = signing_message(key_hash_hex, version, valid_until, record_json);
    MdCtx ctx(EVP_MD_CTX_new());
    std::array<unsigned char, kSignatureBytes> sig{};
    std::size_t sig_len = sig.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, private_key) != 1 ||
        EVP_DigestSign(ctx.get(), sig.data(), &sig_len, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1 ||
        sig_len != sig.size())
        throw std::runtime_error("cannot sign the key record");
    nlohmann::json env = {{"v", kEnvelopeVersion},
                          {"key", key_hash_hex},
                          {"ver", version},
                          {"until", valid_until},
                          {"kid", kid},
                          {"sig", base64_encode(std::string_view(reinterpret_cast<const char*>(sig.data()), sig_len))},
                          {"rec", record_json}};
    return env.dump();
}

bool looks_like_envelope(std::string_view text) noexcept {
    try {
        auto j = nlohmann::json::parse(text, nullptr, false);
        return j.is_object() && j.contains("sig");
    } catch (...) {
        return false;
    }
}

bool decode_envelope(std::string_view text, Envelope& out, std::string& error) noexcept {
    bool not_envelope = false;
    return decode_envelope(text, out, error, not_envelope);
}

bool decode_envelope(std::string_view text, Envelope& out, std::string& error, bool& not_envelope) noexcept {
    not_envelope = false;
    try {
        auto j = nlohmann::json::parse(text, nullptr, false);
        if (!j.is_object() || !j.contains("sig")) {
            not_envelope = true;
            error = "not a signed envelope";
            return false;
        }
        if (j.size() != 7 || !j.contains("v") || !j["v"].is_number_integer() || j["v"].get<int>() != kEnvelopeVersion) {
            error = "envelope members or version not as expected";
            return false;
        }
        auto str = [&](const char* name) { return j.contains(name) && j[name].is_string(); };
        auto num = [&](const char* name) { return j.contains(name) && j[name].is_number_integer(); };
        if (!str("key") || !str("kid") || !str("sig") || !str("rec") || !num("ver") || !num("until")) {
            error = "envelope member missing or of the wrong type";
            return false;
        }
        out.key_hash = j["key"].get<std::string>();
        if (out.key_hash.size() != kSha256HexLength || !lower_hex(out.key_hash)) {
            error = "envelope key is not a SHA-256 hex digest";
            return false;
        }
        out.version = j["ver"].get<std::int64_t>();
        out.valid_until = j["until"].get<std::int64_t>();
        out.kid = j["kid"].get<std::string>();
        out.record = j["rec"].get<std::string>();
        auto sig = base64_decode(j["sig"].get<std::string>());
        if (!sig || sig->size() != kSignatureBytes) {
            error = "envelope signature is not 64 bytes of base64";
            return false;
        }
        out.signature = std::move(*sig);
        return true;
    } catch (...) {
        error = "envelope could not be decoded";
        return false;
    }
}

bool Verifier::add(std::string_view pem, std::string& error) {
    Pkey key = load_public_key(pem, error);
    if (!key) return false;
    std::string kid = key_id(key.get());
    if (kid.empty()) {
        error = "cannot derive the key id";
        return false;
    }
    add(std::move(key), std::move(kid));
    return true;
}

void Verifier::add(Pkey key, std::string kid) { keys_.push_back({std::move(kid), std::move(key)}); }

Verdict Verifier::verify(const Envelope& e) const noexcept {
    try {
        for (const Entry& k : keys_) {
            if (k.kid != e.kid) continue;
            std::string message = signing_message(e.key_hash, e.version, e.valid_until, e.record);
            MdCtx ctx(EVP_MD_CTX_new());
            bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, k.key.get()) == 1 &&
                      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(e.signature.data()),
                                       e.signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                                       message.size()) == 1;
            return ok ? Verdict::ok : Verdict::bad_signature;
        }
        return Verdict::unknown_kid;
    } catch (...) {
        return Verdict::bad_signature;
    }
}

std::string_view to_string(Verdict v) noexcept {
    switch (v) {
        case Verdict::ok: return "ok";
        case Verdict::unknown_kid: return "signed by an unknown key";
        case Verdict::bad_signature: return "bad signature";
    }
    return "bad signature";
}

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) return std::nullopt;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
                  (c == '=' && i >= text.size() - 2 && (i == text.size() - 1 || text[i + 1] == '='));
        if (!ok) return std::nullopt;
    }
    std::string out(text.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = (text.back() == '=') + (text.size() >= 2 && text[text.size() - 2] == '=');
    out.resize(static_cast<std::size_t>(n) - pad);
    if (base64_encode(out) != text) return std::nullopt;  // non-canonical trailing bits
    return out;
}

}  // namespace tronch::signing
