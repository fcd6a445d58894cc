// Key-record decoding (the JSON tronchd mirrors into Redis) and events (tronch:events), through
// the core and through the bridge's conversion into the fixed-size record nginx caches.
// Invariants: what the bridge accepts fits its fixed fields; the core agrees on acceptance.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "tronch/key_record.hpp"
#include "tronch/redis_keys.hpp"
#include "tronch_bridge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    tronch_record_t record;
    char err[128];
    int rc = tronch_bridge_decode_record(text.data(), text.size(), &record, err, sizeof(err));
    tronch::KeyRecord core;
    tronch::DecodeResult decoded = tronch::decode_key_record(text, core);
    if (rc == 0) {
        if (!decoded.ok) abort();
        if (memchr(record.id, '\0', sizeof(record.id)) == nullptr) abort();
        if (memchr(record.prefix, '\0', sizeof(record.prefix)) == nullptr) abort();
        if (record.ncidrs > TRONCH_MAX_CIDRS || record.env > TRONCH_ENV_TEST) abort();
        if (record.status > TRONCH_STATUS_EXPIRED) abort();
        for (unsigned i = 0; i < record.ncidrs; ++i) {
            const tronch_cidr_t& c = record.cidrs[i];
            if (!((c.family == 4 && c.prefix_length <= 32) || (c.family == 6 && c.prefix_length <= 128))) abort();
            uint8_t address[16] = {};
            (void)tronch_bridge_cidr_match(&c, c.family, address);
        }
        if (record.has_limit) {
            tronch_limit_t limit;
            (void)tronch_bridge_record_limit(record.limit_rate, record.limit_period, record.limit_burst, &limit);
        }
    } else {
        if (err[sizeof(err) - 1] != '\0' && strnlen(err, sizeof(err)) == sizeof(err)) abort();
    }

    int type = -1;
    uint8_t digest[TRONCH_DIGEST_LEN];
    if (tronch_bridge_parse_event(text.data(), text.size(), &type, digest) == 0) {
        if (type != TRONCH_EVENT_KEY_CHANGED && type != TRONCH_EVENT_MIRROR_REBUILT) abort();
    }
    return 0;
}
