#include "etag.hpp"

namespace tronch::cp {

std::string etag_for(std::int64_t version) { return "\"" + std::to_string(version) + "\""; }

bool if_match_allows(const std::optional<std::string>& header, std::int64_t version) {
    if (!header) return true;
    std::string_view h = *header;
    std::string want = etag_for(version);
    while (!h.empty()) {
        auto comma = h.find(',');
        std::string_view item = h.substr(0, comma);
        h = comma == std::string_view::npos ? std::string_view{} : h.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (item == "*") return true;
        if (item == want) return true;  // strong comparison: W/ tags never match
    }
    return false;
}

}  // namespace tronch::cp
