// Query strings: parsed once per request, then each handler names the parameters it takes.
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

namespace tronch::cp {

using Query = std::map<std::string, std::string>;

inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 200;

// Percent-decoded; a repeated parameter, a bad %-escape, invalid UTF-8 or a control character
// (%00 included) in a name or value is an error (400 invalid_parameter).
Query parse_query(std::string_view query);
std::string percent_decode(std::string_view text, bool plus_is_space);

// Throws 400 unknown_parameter for any parameter not in `allowed`.
void check_parameters(const Query& query, std::initializer_list<std::string_view> allowed);
// "limit": 1..kMaxPageSize, kDefaultPageSize when absent.
int parse_page_size(const Query& query);

}  // namespace tronch::cp
