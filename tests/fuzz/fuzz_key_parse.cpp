// Key parsing: the format check every request runs (tronch::parse_key) and the bridge's
// parse-and-hash entry point. Invariants: an accepted key has the exact format; the display
// prefix exists exactly for accepted keys.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tronch/key_format.hpp"
#include "tronch_bridge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    tronch::ParsedKey parsed = tronch::parse_key(text);
    std::string_view shown = tronch::display_prefix(text);
    int env = -1;
    uint8_t digest[TRONCH_DIGEST_LEN];
    int rc = tronch_bridge_parse_key(text.data(), text.size(), &env, digest);
    if (parsed.ok()) {
        if (text.size() != tronch::kKeyLength || shown.size() != tronch::kDisplayPrefixLength) abort();
        if (rc != 0 || env != static_cast<int>(parsed.environment)) abort();
        if (!text.starts_with(parsed.environment == tronch::Environment::live ? tronch::kLivePrefix
                                                                            : tronch::kTestPrefix))
            abort();
    } else if (!shown.empty() || rc == 0) {
        abort();
    }
    return 0;
}
