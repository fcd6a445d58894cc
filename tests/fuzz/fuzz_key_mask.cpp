// Masking key-shaped tokens for logs ($tronch_safe_request): the C++ part the module runs on
// every request line it logs. Invariants: the output fits the bound; masking is idempotent
// (the output holds no key-shaped token left to mask); text without a marker is unchanged.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "tronch/key_mask.hpp"
#include "tronch_bridge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<char> out(tronch::masked_size_bound(size));
    std::size_t n = tronch::mask_keys(text, out.data(), out.size());
    if (n > out.size()) abort();
    std::string_view masked(out.data(), n);
    if (!tronch::contains_key_marker(text) && masked != text) abort();

    std::vector<char> again(tronch::masked_size_bound(n));
    std::size_t m = tronch::mask_keys(masked, again.data(), again.size());
    if (std::string_view(again.data(), m) != masked) abort();

    // the bridge's entry points agree with the core
    std::vector<char> via_bridge(tronch_bridge_mask_bound(size));
    std::size_t b = 0;
    if (tronch_bridge_mask_keys(text.data(), size, via_bridge.data(), via_bridge.size(), &b) != TRONCH_OK) abort();
    if (b != n || std::memcmp(via_bridge.data(), out.data(), n) != 0) abort();
    if (tronch_bridge_has_key_marker(text.data(), size) != (tronch::contains_key_marker(text) ? 1 : 0)) abort();
    return 0;
}
