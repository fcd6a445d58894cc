// Masking key-shaped tokens in text bound for logs (nginx's $tronch_safe_request).
//
// A key-shaped token is the key marker "tronch_sk_" followed by key characters ([0-9A-Za-z_]),
// in plain text or percent-encoded (any character may be written %XX, as a client or a query
// string may have it, or encoded twice: %255F), in any letter case. It is kept up to its environment ("tronch_sk_live_") and the rest, the
// secret, becomes "***". Anything else is copied byte for byte. The token need not be a valid
// key: a key with a typo is still a secret.
#pragma once

#include <cstddef>
#include <string_view>

#include "tronch/key_format.hpp"

namespace tronch {

// The part every key starts with, whatever its environment.
inline constexpr std::string_view kKeyMarker = kLivePrefix.substr(0, 10);  // "tronch_sk_"
static_assert(kTestPrefix.starts_with(kKeyMarker));
inline constexpr std::string_view kMaskText = "***";

// The largest output of mask_keys for an input of n bytes: a token takes at least 11 bytes of
// input ("tronch_sk_" and one secret character) and its masked form at most 2 more.
constexpr std::size_t masked_size_bound(std::size_t n) noexcept { return n + 2 * (n / 11) + 1; }

// Whether text holds a key marker (plain or percent-encoded): when not, it needs no copy.
bool contains_key_marker(std::string_view text) noexcept;

// Writes text with every key-shaped token masked into out, which must hold
// masked_size_bound(text.size()) bytes; returns the length written. Never allocates or throws.
std::size_t mask_keys(std::string_view text, char* out, std::size_t capacity) noexcept;

}  // namespace tronch
