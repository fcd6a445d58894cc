// Helpers shared by the bridge's translation units (tronch_bridge.cpp, tronch_bridge_limit.cpp);
// not part of the C interface.
#pragma once

#include <string_view>

#include <openssl/evp.h>

#include "tronch_bridge.h"
#include "tronch/gcra.hpp"
#include "tronch/key_hash.hpp"

namespace tronch_bridge_detail {

inline tronch::GcraLimit to_gcra(const tronch_limit_t* l) noexcept {
    tronch::GcraLimit g;
    g.rate = l->rate;
    g.period_us = l->period_us;
    g.burst = l->burst;
    return g;
}

// The SHA-1 Redis names a script by (EVALSHA), as 40 hex digits and a NUL.
inline int script_sha1(std::string_view script, char out[41]) noexcept {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(script.data(), script.size(), md, &length, EVP_sha1(), nullptr) != 1 || length != 20)
        return TRONCH_EINTERNAL;
    tronch::hex_encode(md, length, out);
    out[40] = '\0';
    return TRONCH_OK;
}

}  // namespace tronch_bridge_detail
