#include "tronch/key_mask.hpp"

#include <cstring>

namespace tronch {
namespace {

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool hex_pair_at(std::string_view text, std::size_t j) noexcept {
    return j + 1 < text.size() && hex_digit(text[j]) >= 0 && hex_digit(text[j + 1]) >= 0;
}

// The character at text[i], decoding a %XX escape, also one encoded again ("%255F" is "%5F" is
// "_": "%25" is '%' itself, so the chain is followed); `width` is how many bytes it took.
char decoded_at(std::string_view text, std::size_t i, std::size_t& width) noexcept {
    if (text[i] == '%') {
        std::size_t j = i + 1;
        while (text.substr(j, 2) == "25" && hex_pair_at(text, j + 2)) j += 2;
        if (hex_pair_at(text, j)) {
            width = j + 2 - i;
            return static_cast<char>(hex_digit(text[j]) << 4 | hex_digit(text[j + 1]));
        }
    }
    width = 1;
    return text[i];
}

bool is_key_char(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// If the decoded text at i spells `word` (ASCII case ignored: "TRONCH_SK_LIVE_..." is no valid
// key, but what follows may still be a real secret), the raw index just past it; else 0.
std::size_t match_at(std::string_view text, std::size_t i, std::string_view word) noexcept {
    for (char want : word) {
        if (i >= text.size()) return 0;
        std::size_t width = 0;
        if (lower(decoded_at(text, i, width)) != want) return 0;
        i += width;
    }
    return i;
}

// Only a 't', a 'T' or a '%' can start a token: skip to the next one.
std::size_t next_candidate(std::string_view text, std::size_t from) noexcept {
    for (std::size_t i = from; i < text.size(); ++i) {
        if (text[i] == 't' || text[i] == 'T' || text[i] == '%') return i;
    }
    return text.size();
}

}  // namespace

bool contains_key_marker(std::string_view text) noexcept {
    for (std::size_t i = next_candidate(text, 0); i < text.size(); i = next_candidate(text, i + 1)) {
        if (match_at(text, i, kKeyMarker) != 0) return true;
    }
    return false;
}

std::size_t mask_keys(std::string_view text, char* out, std::size_t capacity) noexcept {
    if (capacity < masked_size_bound(text.size())) return 0;
    std::size_t o = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t end = match_at(text, i, kKeyMarker);
        if (end == 0) {
            out[o++] = text[i++];
            continue;
        }
        // What is kept: the marker, and the environment if the token spells one.
        std::string_view kept = kKeyMarker;
        if (std::size_t env_end = match_at(text, end, kLivePrefix.substr(kKeyMarker.size()))) {
            kept = kLivePrefix;
            end = env_end;
        } else if (std::size_t test_end = match_at(text, end, kTestPrefix.substr(kKeyMarker.size()))) {
            kept = kTestPrefix;
            end = test_end;
        }
        // The secret: every key character after that.
        std::size_t secret_end = end;
        while (secret_end < text.size()) {
            std::size_t width = 0;
            if (!is_key_char(decoded_at(text, secret_end, width))) break;
            secret_end += width;
        }
        if (secret_end == end) {  // nothing secret follows: copy the token as it was
            std::memcpy(out + o, text.data() + i, end - i);
            o += end - i;
        } else {
            std::memcpy(out + o, kept.data(), kept.size());
            o += kept.size();
            std::memcpy(out + o, kMaskText.data(), kMaskText.size());
            o += kMaskText.size();
        }
        i = secret_end;
    }
    return o;
}

}  // namespace tronch
