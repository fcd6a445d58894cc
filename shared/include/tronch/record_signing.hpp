// Signed key records: Redis is not trusted. tronchd signs each record it mirrors with an
// Ed25519 key; a gateway holding only the public key(s) verifies it on a cache miss.
//
// What is stored under redis_keys::key_record(hash) is an envelope:
//   {"v":1,"key":"<sha256hex>","ver":<version>,"until":<unix s>,"kid":"<key id>",
//    "sig":"<base64 of 64 bytes>","rec":"<key record JSON, as a string>"}
// The signature covers exact bytes, never re-serialised JSON:
//   "tronch-record-v1\n" <Redis key name> "\n" <ver> "\n" <until> "\n" <rec bytes>
// so a record cannot be moved to another key's name, rolled back under a newer version
// number, or kept alive past its validity end without the private key. The gateway checks
// the signed key name against the name it asked for, the version against the highest it has
// seen for that hash, and `until` against its clock.
//
// The key id is the first 16 hex digits of SHA-256 over the raw 32-byte public key: tronchd and
// the gateway derive it independently, so configuring a public key is all a gateway needs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace tronch::signing {

inline constexpr std::string_view kDomain = "tronch-record-v1";
inline constexpr int kEnvelopeVersion = 1;
inline constexpr std::size_t kKeyIdLength = 16;
inline constexpr std::size_t kSignatureBytes = 64;

struct PkeyFree {
    void operator()(EVP_PKEY* p) const noexcept;
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A new Ed25519 key pair. Throws std::runtime_error if OpenSSL fails.
Pkey generate_key();
// PEM texts (PKCS#8 private, SubjectPublicKeyInfo public). Throw on failure.
std::string private_key_pem(EVP_PKEY* key);
std::string public_key_pem(EVP_PKEY* key);
// Parse PEM; nullptr and a readable message if it is not an Ed25519 key of that kind.
Pkey load_private_key(std::string_view pem, std::string& error) noexcept;
Pkey load_public_key(std::string_view pem, std::string& error) noexcept;
// The key id of a (public or private) key; empty on failure.
std::string key_id(EVP_PKEY* key) noexcept;

// The exact bytes signed for a record.
std::string signing_message(std::string_view key_hash_hex, std::int64_t version, std::int64_t valid_until,
                            std::string_view record_json);

// The envelope as stored in Redis. Throws on failure.
std::string sign_record(EVP_PKEY* private_key, std::string_view kid, std::string_view key_hash_hex,
                        std::int64_t version, std::int64_t valid_until, std::string_view record_json);

struct Envelope {
    std::string key_hash;     // lower-case hex, 64 characters
    std::int64_t version = 0;
    std::int64_t valid_until = 0;
    std::string kid;
    std::string signature;    // raw bytes
    std::string record;       // the record JSON, exactly as signed
};

// Whether text is an envelope at all (a JSON object with a "sig" member); a plain record is not.
bool looks_like_envelope(std::string_view text) noexcept;
// Strict: every member present with the right type and nothing else. Never throws.
bool decode_envelope(std::string_view text, Envelope& out, std::string& error) noexcept;
// The same, parsing once: when it fails, not_envelope says whether the text is no envelope at all
// (looks_like_envelope would be false) rather than a malformed one.
bool decode_envelope(std::string_view text, Envelope& out, std::string& error, bool& not_envelope) noexcept;

enum class Verdict { ok, unknown_kid, bad_signature };

// The public keys a gateway accepts (several during a signing-key rotation).
class Verifier {
public:
    // False (and a message) if the PEM is not an Ed25519 public key.
    bool add(std::string_view pem, std::string& error);
    void add(Pkey key, std::string kid);
    bool empty() const noexcept { return keys_.empty(); }
    std::size_t size() const noexcept { return keys_.size(); }
    const std::string& kid(std::size_t i) const { return keys_[i].kid; }
    Verdict verify(const Envelope& envelope) const noexcept;

private:
    struct Entry {
        std::string kid;
        Pkey key;
    };
    std::vector<Entry> keys_;
};

std::string_view to_string(Verdict) noexcept;

// Standard base64 with padding; decode is strict (nullopt on anything else).
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace tronch::signing
