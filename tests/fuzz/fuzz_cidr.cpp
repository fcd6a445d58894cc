// CIDR parsing (allowed_cidrs: the API validates them, the gateway matches addresses against
// them). Invariants: an accepted CIDR prints in canonical form that parses back to itself;
// matching never reads past the address.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "tronch/cidr.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    tronch::Cidr cidr;
    if (!tronch::Cidr::parse(text, cidr)) return 0;
    if (!((cidr.family == 4 && cidr.prefix_length <= 32) || (cidr.family == 6 && cidr.prefix_length <= 128))) abort();
    std::string canonical = cidr.to_string();
    tronch::Cidr again;
    if (!tronch::Cidr::parse(canonical, again)) abort();
    if (again.family != cidr.family || again.prefix_length != cidr.prefix_length ||
        std::memcmp(again.address, cidr.address, sizeof(cidr.address)) != 0)
        abort();
    if (again.to_string() != canonical) abort();
    // the network address itself is always inside
    if (!cidr.contains(cidr.family, cidr.address)) abort();
    uint8_t v4[4] = {data[0], 1, 2, 3};
    (void)cidr.contains(4, v4);
    return 0;
}
