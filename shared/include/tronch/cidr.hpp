// Address ranges a key may be used from ("allowed CIDRs"). Plain data, so a parsed
// range can live in nginx shared memory as it is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tronch {

struct Cidr {
    std::uint8_t family = 0;        // 4 or 6
    std::uint8_t prefix_length = 0; // 0..32 or 0..128
    std::uint8_t address[16] = {};  // network order; IPv4 uses the first 4 bytes

    // "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). Host bits
    // set below the prefix are refused, so "10.0.0.1/8" is an error, not a surprise.
    static bool parse(std::string_view text, Cidr& out) noexcept;
    std::string to_string() const;

    // family: 4 or 6; address: 4 or 16 bytes in network order. An IPv4-mapped IPv6
    // address (::ffff:a.b.c.d) matches IPv4 ranges.
    bool contains(int address_family, const std::uint8_t* address_bytes) const noexcept;
};

}  // namespace tronch
