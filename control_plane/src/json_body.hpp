// A request body as JSON, parsed strictly: what nlohmann's own parser lets through but a
// client of another language would read differently is refused here, before any tree is built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tronch::cp {

inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;
// A request body nested deeper than this is refused while parsing (before any tree is built).
inline constexpr int kMaxJsonDepth = 16;
// Integers beyond +-2^53 are refused: a JSON client holding numbers as doubles would round them.
inline constexpr std::int64_t kMaxExactInteger = 9007199254740992LL;

// Parses a body; throws ApiError(400, invalid_json) if it is not a JSON object, has a duplicate
// member name or is nested deeper than kMaxJsonDepth, and 400 invalid_field for a number that a
// double cannot hold exactly (an integer beyond 2^53, an integer literal that overflowed).
nlohmann::json parse_json_object(std::string_view body);

}  // namespace tronch::cp
