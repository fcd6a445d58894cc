#define BOOST_TEST_MODULE cidr
#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <random>
#include <string>

#include "tronch/cidr.hpp"

namespace {

using tronch::Cidr;

Cidr must_parse(std::string_view text) {
    Cidr cidr;
    BOOST_REQUIRE_MESSAGE(Cidr::parse(text, cidr), "should parse: " << text);
    return cidr;
}

// An address as (family 4|6, bytes), from text, for contains().
struct Address {
    int family = 0;
    std::array<std::uint8_t, 16> bytes{};
};

Address address(const char* text) {
    Address out;
    if (inet_pton(AF_INET, text, out.bytes.data()) == 1) {
        out.family = 4;
    } else {
        BOOST_REQUIRE_MESSAGE(inet_pton(AF_INET6, text, out.bytes.data()) == 1, "bad test address " << text);
        out.family = 6;
    }
    return out;
}

bool contains(std::string_view range, const char* text) {
    const Address a = address(text);
    return must_parse(range).contains(a.family, a.bytes.data());
}

// Reference: whether the first `bits` bits of a and b agree, one bit at a time.
bool reference_match(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
    for (unsigned i = 0; i < bits; ++i) {
        const unsigned shift = 7 - i % 8;
        if (((a[i / 8] >> shift) & 1U) != ((b[i / 8] >> shift) & 1U)) return false;
    }
    return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(parses_ranges_and_bare_addresses) {
    const Cidr v4 = must_parse("10.0.0.0/8");
    BOOST_TEST(v4.family == 4);
    BOOST_TEST(v4.prefix_length == 8);
    BOOST_TEST(v4.address[0] == 10);
    BOOST_TEST(v4.address[1] == 0);

    const Cidr host4 = must_parse("192.0.2.7");
    BOOST_TEST(host4.family == 4);
    BOOST_TEST(host4.prefix_length == 32);
    BOOST_TEST(host4.address[3] == 7);

    const Cidr v6 = must_parse("2001:db8::/32");
    BOOST_TEST(v6.family == 6);
    BOOST_TEST(v6.prefix_length == 32);
    BOOST_TEST(v6.address[0] == 0x20);
    BOOST_TEST(v6.address[1] == 0x01);
    BOOST_TEST(v6.address[2] == 0x0d);
    BOOST_TEST(v6.address[3] == 0xb8);

    const Cidr host6 = must_parse("::1");
    BOOST_TEST(host6.family == 6);
    BOOST_TEST(host6.prefix_length == 128);
    BOOST_TEST(host6.address[15] == 1);

    BOOST_TEST(must_parse("0.0.0.0/0").prefix_length == 0);
    BOOST_TEST(must_parse("::/0").prefix_length == 0);
    BOOST_TEST(must_parse("255.255.255.255/32").prefix_length == 32);
    BOOST_TEST(must_parse("10.0.0.0/7").prefix_length == 7);  // 10 = 0b00001010: bit 7 is clear
    BOOST_TEST(must_parse("fe80::/10").prefix_length == 10);
    BOOST_TEST(must_parse("::ffff:10.0.0.0/104").family == 6);
    BOOST_TEST(must_parse("2001:DB8::/32").address[2] == 0x0d);  // upper-case hex is fine
}

BOOST_AUTO_TEST_CASE(refuses_bad_input) {
    const std::string too_long(200, '1');
    const std::string_view with_nul("10.0.0.0\0/8", 11);
    const std::string_view trailing_nul("1.2.3.4\0", 8);
    for (std::string_view bad : {std::string_view(""),
                                 std::string_view("/"),
                                 std::string_view("/8"),
                                 std::string_view("10.0.0.0/"),
                                 std::string_view("10.0.0.1/8"),
                                 std::string_view("10.0.0.0/33"),
                                 std::string_view("2001:db8::/129"),
                                 std::string_view("2001:db8::1/32"),
                                 std::string_view("10.0.0.0/08"),
                                 std::string_view("10.0.0.0/-1"),
                                 std::string_view("10.0.0.0/+8"),
                                 std::string_view("10.0.0.0/8/8"),
                                 std::string_view("10.0.0.0//8"),
                                 std::string_view("10.0.0.0/ 8"),
                                 std::string_view(" 10.0.0.0/8"),
                                 std::string_view("10.0.0.0/8 "),
                                 std::string_view("10.0.0.0/1000"),
                                 std::string_view("10.0.0.0/0x8"),
                                 std::string_view("10.0.0"),
                                 std::string_view("10"),
                                 std::string_view("256.0.0.0"),
                                 std::string_view("1.2.3.4.5"),
                                 std::string_view("0x0a.0.0.0"),
                                 std::string_view("010.0.0.0"),
                                 std::string_view("2001:db8::g"),
                                 std::string_view("fe80::1%eth0"),
                                 std::string_view("1:2:3:4:5:6:7:8:9"),
                                 std::string_view(":::"),
                                 std::string_view("localhost"),
                                 std::string_view("10.0.0.0/8\n"),
                                 std::string_view(too_long),
                                 with_nul,
                                 trailing_nul}) {
        Cidr out;
        out.family = 9;  // sentinel: a failed parse leaves `out` alone
        BOOST_TEST(!Cidr::parse(bad, out), "should refuse: " << std::string(bad));
        BOOST_TEST(out.family == 9);
    }
}

BOOST_AUTO_TEST_CASE(refuses_host_bits_at_every_prefix_length) {
    // For each prefix length p, the first host bit set is refused; the last network bit is fine.
    for (unsigned family : {4U, 6U}) {
        const unsigned width = family == 4 ? 32 : 128;
        for (unsigned p = 0; p < width; ++p) {
            std::array<std::uint8_t, 16> bytes{};
            bytes[p / 8] = static_cast<std::uint8_t>(0x80U >> (p % 8));
            char text[INET6_ADDRSTRLEN];
            BOOST_REQUIRE(inet_ntop(family == 4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof text));
            Cidr out;
            BOOST_TEST(!Cidr::parse(std::string(text) + "/" + std::to_string(p), out), text << "/" << p);
            BOOST_TEST(Cidr::parse(std::string(text) + "/" + std::to_string(p + 1), out),
                       text << "/" << p + 1);
        }
    }
}

BOOST_AUTO_TEST_CASE(contains_v4) {
    BOOST_TEST(contains("10.0.0.0/8", "10.0.0.0"));
    BOOST_TEST(contains("10.0.0.0/8", "10.255.255.255"));
    BOOST_TEST(!contains("10.0.0.0/8", "11.0.0.0"));
    BOOST_TEST(!contains("10.0.0.0/8", "9.255.255.255"));
    BOOST_TEST(contains("192.168.1.128/25", "192.168.1.200"));
    BOOST_TEST(!contains("192.168.1.128/25", "192.168.1.127"));
    BOOST_TEST(contains("192.0.2.7", "192.0.2.7"));
    BOOST_TEST(!contains("192.0.2.7", "192.0.2.6"));
    BOOST_TEST(contains("0.0.0.0/0", "1.2.3.4"));
    BOOST_TEST(contains("0.0.0.0/0", "255.255.255.255"));
    BOOST_TEST(!contains("10.0.0.0/8", "2001:db8::1"));  // a v6 client is not in a v4 range
}

BOOST_AUTO_TEST_CASE(contains_v6) {
    BOOST_TEST(contains("2001:db8::/32", "2001:db8::1"));
    BOOST_TEST(contains("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    BOOST_TEST(!contains("2001:db8::/32", "2001:db9::"));
    BOOST_TEST(contains("fe80::/10", "febf::1"));
    BOOST_TEST(!contains("fe80::/10", "fec0::1"));
    BOOST_TEST(contains("::1", "::1"));
    BOOST_TEST(!contains("::1", "::2"));
    BOOST_TEST(contains("::/0", "2001:db8::1"));
    BOOST_TEST(!contains("2001:db8::/32", "10.0.0.1"));  // a v4 client is not in a non-mapped v6 range
}

BOOST_AUTO_TEST_CASE(ipv4_mapped_ipv6_matches_ipv4_ranges) {
    BOOST_TEST(contains("10.0.0.0/8", "::ffff:10.1.2.3"));
    BOOST_TEST(!contains("10.0.0.0/8", "::ffff:11.1.2.3"));
    BOOST_TEST(contains("0.0.0.0/0", "::ffff:1.2.3.4"));
    BOOST_TEST(contains("192.0.2.7", "::ffff:192.0.2.7"));
    // Only the ::ffff:0:0/96 form is the same client; these embed v4 but are other addresses.
    BOOST_TEST(!contains("10.0.0.0/8", "::10.1.2.3"));         // deprecated v4-compatible
    BOOST_TEST(!contains("10.0.0.0/8", "64:ff9b::10.1.2.3"));  // NAT64
    BOOST_TEST(!contains("0.0.0.0/0", "2001:db8::1"));
    // And a range written in mapped form covers the v4 clients it names.
    BOOST_TEST(contains("::ffff:10.0.0.0/104", "10.1.2.3"));
    BOOST_TEST(!contains("::ffff:10.0.0.0/104", "11.1.2.3"));
    BOOST_TEST(contains("::ffff:10.0.0.0/104", "::ffff:10.1.2.3"));
}

BOOST_AUTO_TEST_CASE(contains_accepts_af_constants_and_refuses_nonsense) {
    const Cidr v4 = must_parse("10.0.0.0/8");
    const Cidr v6 = must_parse("2001:db8::/32");
    const Address a4 = address("10.1.2.3");
    const Address a6 = address("2001:db8::5");
    BOOST_TEST(v4.contains(4, a4.bytes.data()));
    BOOST_TEST(v4.contains(AF_INET, a4.bytes.data()));
    BOOST_TEST(v6.contains(6, a6.bytes.data()));
    BOOST_TEST(v6.contains(AF_INET6, a6.bytes.data()));
    BOOST_TEST(!v4.contains(0, a4.bytes.data()));
    BOOST_TEST(!v4.contains(5, a4.bytes.data()));
    BOOST_TEST(!v4.contains(4, nullptr));
    BOOST_TEST(!Cidr{}.contains(4, a4.bytes.data()));  // an unparsed range contains nothing
}

BOOST_AUTO_TEST_CASE(contains_agrees_with_a_bitwise_reference) {
    std::mt19937_64 random(12345);
    std::uniform_int_distribution<int> byte(0, 255);
    for (unsigned family : {4U, 6U}) {
        const unsigned width = family == 4 ? 32 : 128;
        for (unsigned p = 0; p <= width; ++p) {
            for (int trial = 0; trial < 40; ++trial) {
                std::array<std::uint8_t, 16> network{};
                for (unsigned i = 0; i < width / 8; ++i) network[i] = static_cast<std::uint8_t>(byte(random));
                // Clear host bits so the range parses.
                for (unsigned bit = p; bit < width; ++bit) {
                    network[bit / 8] = static_cast<std::uint8_t>(network[bit / 8] & ~(0x80U >> (bit % 8)));
                }
                char text[INET6_ADDRSTRLEN];
                BOOST_REQUIRE(inet_ntop(family == 4 ? AF_INET : AF_INET6, network.data(), text, sizeof text));
                const Cidr range = must_parse(std::string(text) + "/" + std::to_string(p));
                // A candidate near the network (flip one random bit) and a random one.
                std::array<std::uint8_t, 16> near = network;
                const unsigned flip = static_cast<unsigned>(byte(random)) % width;
                near[flip / 8] = static_cast<std::uint8_t>(near[flip / 8] ^ (0x80U >> (flip % 8)));
                std::array<std::uint8_t, 16> anywhere{};
                for (unsigned i = 0; i < width / 8; ++i)
                    anywhere[i] = static_cast<std::uint8_t>(byte(random));
                for (const auto& candidate : {network, near, anywhere}) {
                    BOOST_REQUIRE_EQUAL(range.contains(static_cast<int>(family), candidate.data()),
                                        reference_match(network.data(), candidate.data(), p));
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(to_string_is_canonical_and_round_trips) {
    BOOST_TEST(must_parse("10.0.0.0/8").to_string() == "10.0.0.0/8");
    BOOST_TEST(must_parse("1.2.3.4").to_string() == "1.2.3.4/32");
    BOOST_TEST(must_parse("0.0.0.0/0").to_string() == "0.0.0.0/0");
    BOOST_TEST(must_parse("2001:0DB8:0000:0000::/32").to_string() == "2001:db8::/32");
    BOOST_TEST(must_parse("::1").to_string() == "::1/128");
    BOOST_TEST(must_parse("::/0").to_string() == "::/0");
    BOOST_TEST(must_parse("::ffff:10.0.0.0/104").to_string() == "::ffff:10.0.0.0/104");
    BOOST_TEST(Cidr{}.to_string().empty());
    for (std::string_view text :
         {"192.168.0.0/16", "2001:db8:1:2::/64", "fe80::/10", "::ffff:0:0/96", "8.8.8.8"}) {
        const Cidr first = must_parse(text);
        const Cidr second = must_parse(first.to_string());
        BOOST_TEST(first.family == second.family);
        BOOST_TEST(first.prefix_length == second.prefix_length);
        BOOST_TEST(std::memcmp(first.address, second.address, sizeof first.address) == 0);
        BOOST_TEST(second.to_string() == first.to_string());
    }
}
