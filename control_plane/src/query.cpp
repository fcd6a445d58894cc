#include "query.hpp"

#include <algorithm>
#include <cctype>

#include "api_error.hpp"
#include "text_checks.hpp"

namespace tronch::cp {
namespace {

// A query name or value after decoding: well-formed UTF-8 without control characters (a NUL
// or an invalid byte would otherwise reach PostgreSQL and come back as a 500).
void check_query_text(const std::string& text, std::string_view raw) {
    bool ok = valid_utf8(text) && std::none_of(text.begin(), text.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
    if (!ok)
        bad_input(ErrorCode::invalid_parameter, "query parameter '" + std::string(raw.substr(0, 64)) +
                                          "' is not valid UTF-8 text (no control characters, %00 included)");
}
void check_escapes(std::string_view raw) {
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') continue;
        if (i + 2 >= raw.size() || !std::isxdigit(static_cast<unsigned char>(raw[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(raw[i + 2])))
            bad_input(ErrorCode::invalid_parameter, "the query string has a '%' not followed by two hex digits");
    }
}

}  // namespace

std::string percent_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '+' && plus_is_space) {
            out += ' ';
        } else if (c == '%' && i + 2 < s.size() + 0 && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
    std::map<std::string, std::string> out;
    while (!q.empty()) {
        auto amp = q.find('&');
        std::string_view part = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (part.empty()) continue;
        check_escapes(part);
        auto eq = part.find('=');
        std::string k = percent_decode(part.substr(0, eq), true);
        std::string v = eq == std::string_view::npos ? "" : percent_decode(part.substr(eq + 1), true);
        check_query_text(k, part.substr(0, eq));
        check_query_text(v, part.substr(0, eq));
        if (!out.emplace(k, v).second) bad_input(ErrorCode::invalid_parameter, "parameter '" + k + "' given more than once");
    }
    return out;
}

void check_parameters(const std::map<std::string, std::string>& query, std::initializer_list<std::string_view> allowed) {
    for (auto& [k, v] : query) {
        (void)v;
        if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            bad_input(ErrorCode::unknown_parameter, "unknown query parameter '" + k + "'");
    }
}

int parse_page_size(const std::map<std::string, std::string>& query) {
    auto it = query.find("limit");
    if (it == query.end()) return kDefaultPageSize;
    const std::string& s = it->second;
    int v = 0;
    if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        (v = std::stoi(s)) < 1 || v > kMaxPageSize)
        bad_input(ErrorCode::invalid_parameter, "'limit' must be 1.." + std::to_string(kMaxPageSize));
    return v;
}

}  // namespace tronch::cp
