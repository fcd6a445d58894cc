// A key's metadata: free-form JSON within bounds every client's JSON parser copes with.
#pragma once

#include <cstddef>

#include <nlohmann/json.hpp>

namespace tronch::cp {

inline constexpr std::size_t kMaxMetadataBytes = 8 * 1024;
// Metadata bounds (Stripe-like, so every client's JSON parser copes): nesting, members per
// object, key and string lengths.
inline constexpr int kMaxMetadataDepth = 5;  // the metadata object itself is depth 1
inline constexpr std::size_t kMaxMetadataKeys = 50;
inline constexpr std::size_t kMaxMetadataKeyLength = 40;
inline constexpr std::size_t kMaxMetadataStringLength = 500;

// Returns `v` if it is an acceptable metadata object; else throws 400 invalid_field.
nlohmann::json check_metadata(const nlohmann::json& v);

}  // namespace tronch::cp
