#include "metadata.hpp"

#include "api_error.hpp"

namespace tronch::cp {
namespace {

// Metadata: an object nested at most kMaxMetadataDepth deep, at most kMaxMetadataKeys members
// per object, keys 1..40 characters, strings up to 500, and no NUL anywhere (PostgreSQL's jsonb
// cannot store U+0000).
void check_metadata_value(const nlohmann::json& v, int depth) {
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s.size() > kMaxMetadataStringLength)
            bad_input(ErrorCode::invalid_field, "'metadata' strings are at most " + std::to_string(kMaxMetadataStringLength) + " bytes");
        if (s.find('\0') != std::string::npos) bad_input(ErrorCode::invalid_field, "'metadata' must not contain NUL (\\u0000)");
        return;
    }
    if (!v.is_structured()) return;
    if (depth > kMaxMetadataDepth)
        bad_input(ErrorCode::invalid_field, "'metadata' is nested deeper than " + std::to_string(kMaxMetadataDepth) + " levels");
    if (v.size() > kMaxMetadataKeys)
        bad_input(ErrorCode::invalid_field, "'metadata' objects and arrays hold at most " + std::to_string(kMaxMetadataKeys) + " entries");
    for (auto& [k, child] : v.items()) {
        if (v.is_object()) {
            if (k.empty() || k.size() > kMaxMetadataKeyLength)
                bad_input(ErrorCode::invalid_field, "'metadata' keys must be 1.." + std::to_string(kMaxMetadataKeyLength) + " bytes");
            if (k.find('\0') != std::string::npos) bad_input(ErrorCode::invalid_field, "'metadata' must not contain NUL (\\u0000)");
        }
        check_metadata_value(child, depth + 1);
    }
}

}  // namespace

nlohmann::json check_metadata(const nlohmann::json& v) {
    if (!v.is_object()) bad_input(ErrorCode::invalid_field, "'metadata' must be an object");
    check_metadata_value(v, 1);
    if (v.dump().size() > kMaxMetadataBytes) bad_input(ErrorCode::invalid_field, "'metadata' is larger than 8 KiB");
    return v;
}

}  // namespace tronch::cp
