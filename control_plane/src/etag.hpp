// ETags (a key's version, strong) and If-Match preconditions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tronch::cp {

// If-Match: true if the header (absent = true, "*", or a list of ETags) matches `version`.
bool if_match_allows(const std::optional<std::string>& header, std::int64_t version);
std::string etag_for(std::int64_t version);

}  // namespace tronch::cp
