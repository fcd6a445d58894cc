#include "tronch/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace tronch {
namespace {

// The longest text inet_pton can accept, plus its terminator (it needs a C string).
constexpr std::size_t kMaxAddressText = INET6_ADDRSTRLEN;

constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

// Strict decimal prefix length: digits only, no sign, no leading zero, at most `max`.
bool parse_prefix_length(std::string_view text, unsigned max, std::uint8_t& out) noexcept {
    if (text.empty() || text.size() > 3) return false;
    if (text.size() > 1 && text[0] == '0') return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > max) return false;
    out = static_cast<std::uint8_t>(value);
    return true;
}

bool parse_address(std::string_view text, Cidr& out) noexcept {
    if (text.empty() || text.size() >= kMaxAddressText) return false;
    // inet_pton stops at a NUL: "1.2.3.4\0junk" must not read as 1.2.3.4.
    if (text.find('\0') != std::string_view::npos) return false;
    char buffer[kMaxAddressText] = {};
    std::memcpy(buffer, text.data(), text.size());
    // A colon can only mean IPv6; this also keeps glibc from ever reading "1.2.3.4" as v6.
    const bool v6 = text.find(':') != std::string_view::npos;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, buffer, out.address) != 1) return false;
    out.family = v6 ? 6 : 4;
    return true;
}

// Whether the first `bits` bits of a and b agree.
bool prefix_matches(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) noexcept {
    const unsigned whole = bits / 8;
    const unsigned rest = bits % 8;
    if (whole > 0 && std::memcmp(a, b, whole) != 0) return false;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xFFU << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

// Whether any bit at or after `bits` is set, within `bytes` bytes.
bool host_bits_set(const std::uint8_t* address, unsigned bytes, unsigned bits) noexcept {
    for (unsigned i = 0; i < bytes; ++i) {
        const unsigned first_bit = i * 8;
        std::uint8_t host_mask = 0xFF;
        if (first_bit + 8 <= bits) {
            host_mask = 0;
        } else if (first_bit < bits) {
            host_mask = static_cast<std::uint8_t>(0xFFU >> (bits - first_bit));
        }
        if ((address[i] & host_mask) != 0) return true;
    }
    return false;
}

// Accepts 4/6 as documented, and also AF_INET/AF_INET6, which is what callers holding a
// sockaddr naturally have (the values differ, so neither reading is ambiguous).
int normalise_family(int family) noexcept {
    if (family == 4 || family == AF_INET) return 4;
    if (family == 6 || family == AF_INET6) return 6;
    return 0;
}

}  // namespace

bool Cidr::parse(std::string_view text, Cidr& out) noexcept {
    Cidr parsed;
    const std::size_t slash = text.find('/');
    if (!parse_address(text.substr(0, slash), parsed)) return false;
    const unsigned max_length = parsed.family == 4 ? 32 : 128;
    if (slash == std::string_view::npos) {
        parsed.prefix_length = static_cast<std::uint8_t>(max_length);
    } else if (!parse_prefix_length(text.substr(slash + 1), max_length, parsed.prefix_length)) {
        return false;
    }
    if (host_bits_set(parsed.address, max_length / 8, parsed.prefix_length)) return false;
    out = parsed;
    return true;
}

std::string Cidr::to_string() const {
    if (family != 4 && family != 6) return {};
    char buffer[INET6_ADDRSTRLEN] = {};
    if (inet_ntop(family == 4 ? AF_INET : AF_INET6, address, buffer, sizeof buffer) == nullptr) return {};
    return std::string(buffer) + "/" + std::to_string(prefix_length);
}

bool Cidr::contains(int address_family, const std::uint8_t* address_bytes) const noexcept {
    if (address_bytes == nullptr) return false;
    const int candidate_family = normalise_family(address_family);
    if (candidate_family == 0) return false;

    if (family == 4 && candidate_family == 4) {
        return prefix_length <= 32 && prefix_matches(address, address_bytes, prefix_length);
    }
    if (family == 6 && candidate_family == 6) {
        return prefix_length <= 128 && prefix_matches(address, address_bytes, prefix_length);
    }
    // A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d: match it against IPv4
    // ranges by its last four bytes.
    if (family == 4 && candidate_family == 6) {
        if (std::memcmp(address_bytes, kMappedPrefix, sizeof kMappedPrefix) != 0) return false;
        return prefix_length <= 32 && prefix_matches(address, address_bytes + 12, prefix_length);
    }
    // And the converse: a range written in mapped form (::ffff:10.0.0.0/104) covers the
    // IPv4 clients it names.
    if (family == 6 && candidate_family == 4) {
        std::uint8_t mapped[16];
        std::memcpy(mapped, kMappedPrefix, sizeof kMappedPrefix);
        std::memcpy(mapped + 12, address_bytes, 4);
        return prefix_length <= 128 && prefix_matches(address, mapped, prefix_length);
    }
    return false;
}

}  // namespace tronch
