// tronchd's record-signing key (Redis is not trusted: see tronch/record_signing.hpp).
//
// The private key is a PEM file (record_signing_key, TRONCH_RECORD_SIGNING_KEY); if it does not
// exist at start-up, a new Ed25519 pair is generated: the private key written with mode 0600,
// the public key beside it (records.key -> records.pub; any other name gets ".pub" appended),
// which is what gateways load with `tronch_record_key`. Rotation: point the setting at a new
// file (or replace the file) and restart tronchd; it re-signs the whole mirror at start-up.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tronch/record_signing.hpp"

namespace tronch::cp {

class RecordSigner {
public:
    // Loads the key at path, or creates it (and its .pub) if there is no file. Throws
    // std::runtime_error with the path and the reason if the file exists but is unusable.
    static RecordSigner load_or_create(const std::string& path, long validity_seconds);

    // The envelope to store in Redis for a record, valid from now for validity_seconds.
    std::string sign(std::string_view key_hash_hex, std::int64_t version, std::string_view record_json,
                     std::int64_t now_seconds) const;
    const std::string& kid() const { return kid_; }
    const std::string& public_pem() const { return public_pem_; }
    const std::string& public_path() const { return public_path_; }
    long validity_seconds() const { return validity_; }

private:
    signing::Pkey key_;
    std::string kid_, public_pem_, public_path_;
    long validity_ = 86400;
};

// Where the public key of the private key at path is written.
std::string public_key_path(const std::string& private_path);

}  // namespace tronch::cp
