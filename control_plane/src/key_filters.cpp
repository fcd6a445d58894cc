#include "key_filters.hpp"

#include "api_error.hpp"

namespace tronch::cp {

PrefixRange parse_prefix_filter(const std::string& value) {
    constexpr std::size_t kMax = 40;  // the display prefix is 23 characters; keys are longer
    if (value.size() > kMax)
        throw ApiError(400, ErrorCode::invalid_parameter,
                       "'prefix' is at most 40 characters: give the key's prefix (tronch_sk_live_AbCdEfGh), never the "
                       "whole key (tronchctl keys find KEY takes the prefix from a key locally)");
    if (value.empty()) throw ApiError(400, ErrorCode::invalid_parameter, "'prefix' must not be empty");
    for (unsigned char c : value) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) throw ApiError(400, ErrorCode::invalid_parameter, "'prefix' may hold only letters, digits and '_'");
    }
    PrefixRange r{value, value};
    ++r.to.back();  // ASCII: never overflows ('z' + 1 is '{')
    return r;
}

}  // namespace tronch::cp
