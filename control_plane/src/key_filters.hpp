// Filters of GET /api/v1/keys that need more than an equality: `prefix`.
#pragma once

#include <string>

namespace tronch::cp {

// key_prefix >= from AND key_prefix < to, in byte order (COLLATE "C"): every prefix starting so.
struct PrefixRange {
    std::string from, to;
};

// 1..40 characters of [A-Za-z0-9_] (what a key prefix is made of: `tronch_sk_live_AbCdEfGh`, or
// the start of one). A whole key is refused with a hint: it must not travel in a URL or a log.
// Throws ApiError 400 invalid_parameter.
PrefixRange parse_prefix_filter(const std::string& value);

}  // namespace tronch::cp
