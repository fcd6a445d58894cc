#include "cursor.hpp"

#include "tronch/key_record.hpp"

namespace tronch::cp {
namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int value_of(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

std::optional<std::int64_t> parse_i64(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}
}  // namespace

std::string base64url_encode(std::string_view data) {
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : data) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kAlphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = value_of(c);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical tail
    return out;
}

std::string encode_key_cursor(const KeyCursor& c) {
    return base64url_encode(std::to_string(c.created_us) + "," + c.id);
}

std::optional<KeyCursor> decode_key_cursor(std::string_view text) {
    if (text.size() > 200) return std::nullopt;
    auto raw = base64url_decode(text);
    if (!raw) return std::nullopt;
    auto comma = raw->find(',');
    if (comma == std::string::npos) return std::nullopt;
    auto us = parse_i64(std::string_view(*raw).substr(0, comma));
    std::string id = raw->substr(comma + 1);
    if (!us || !valid_uuid(id)) return std::nullopt;
    return KeyCursor{*us, id};
}

std::string encode_id_cursor(std::int64_t id) { return base64url_encode("a" + std::to_string(id)); }

std::optional<std::int64_t> decode_id_cursor(std::string_view text) {
    if (text.size() > 40) return std::nullopt;
    auto raw = base64url_decode(text);
    if (!raw || raw->empty() || (*raw)[0] != 'a') return std::nullopt;
    return parse_i64(std::string_view(*raw).substr(1));
}

}  // namespace tronch::cp
