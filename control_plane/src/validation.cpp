#include "validation.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>
#include <vector>

#include "api_error.hpp"
#include "tronch/cidr.hpp"

namespace tronch::cp {
namespace {

[[noreturn]] void bad(const char* code, const std::string& message) { throw ApiError(400, code, message); }
void check_metadata_value(const nlohmann::json& v, int depth);

void only_fields(const nlohmann::json& body, std::initializer_list<std::string_view> allowed) {
    for (auto& [k, v] : body.items()) {
        (void)v;
        if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            bad(codes::unknown_field, "unknown field '" + k + "'");
    }
}

std::string get_string(const nlohmann::json& v, const char* field, std::size_t max_len, bool allow_empty) {
    if (!v.is_string()) bad(codes::invalid_field, std::string("'") + field + "' must be a string");
    std::string s = v.get<std::string>();
    if (s.size() > max_len) bad(codes::invalid_field, std::string("'") + field + "' is too long");
    if (!allow_empty && s.empty()) bad(codes::invalid_field, std::string("'") + field + "' must not be empty");
    if (has_forbidden_chars(s))
        bad(codes::invalid_field, std::string("'") + field + "' has control or bidi-override characters");
    return s;
}

std::int64_t get_int(const nlohmann::json& v, const std::string& field) {
    if (!v.is_number_integer()) bad(codes::invalid_field, "'" + field + "' must be an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        bad(codes::invalid_field, "'" + field + "' is out of range");
    return v.get<std::int64_t>();
}

std::vector<std::string> get_scopes(const nlohmann::json& v) {
    if (!v.is_array()) bad(codes::invalid_field, "'scopes' must be an array of strings");
    if (v.size() > kMaxScopes) bad(codes::invalid_field, "'scopes' has more than " + std::to_string(kMaxScopes) + " entries");
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (auto& s : v) {
        if (!s.is_string() || !valid_scope(s.get<std::string>()))
            bad(codes::invalid_field, "'scopes' entries must match [a-z0-9_.:-]{1,64}");
        if (seen.insert(s.get<std::string>()).second) out.push_back(s.get<std::string>());
    }
    return out;
}

std::optional<RateLimit> get_limit(const nlohmann::json& v) {
    if (v.is_null()) return std::nullopt;
    if (!v.is_object()) bad(codes::invalid_field, "'limits' must be an object or null");
    only_fields(v, {"rate", "period_seconds", "burst"});
    RateLimit l;
    if (!v.contains("rate")) bad(codes::missing_field, "'limits.rate' is required");
    if (!v.contains("period_seconds")) bad(codes::missing_field, "'limits.period_seconds' is required");
    l.rate = get_int(v["rate"], "limits.rate");
    l.period_seconds = get_int(v["period_seconds"], "limits.period_seconds");
    l.burst = v.contains("burst") ? get_int(v["burst"], "limits.burst") : 0;
    if (!valid_rate_limit(l))
        bad(codes::invalid_field, "'limits' out of range: rate 1.." + std::to_string(kMaxRate) + ", period_seconds 1.." +
                                      std::to_string(kMaxPeriodSeconds) + ", burst 0.." + std::to_string(kMaxBurst));
    return l;
}

std::vector<std::string> get_cidrs(const nlohmann::json& v) {
    if (!v.is_array()) bad(codes::invalid_field, "'allowed_cidrs' must be an array of strings");
    if (v.size() > kMaxCidrs) bad(codes::invalid_field, "'allowed_cidrs' has more than " + std::to_string(kMaxCidrs) + " entries");
    std::vector<std::string> out;
    for (auto& c : v) {
        Cidr cidr;
        if (!c.is_string() || !Cidr::parse(c.get<std::string>(), cidr))
            bad(codes::invalid_field, "'allowed_cidrs' entries must be CIDR ranges such as 10.0.0.0/8");
        std::string canon = cidr.to_string();
        if (std::find(out.begin(), out.end(), canon) == out.end()) out.push_back(canon);
    }
    return out;
}

nlohmann::json get_metadata(const nlohmann::json& v) {
    if (!v.is_object()) bad(codes::invalid_field, "'metadata' must be an object");
    check_metadata_value(v, 1);
    if (v.dump().size() > kMaxMetadataBytes) bad(codes::invalid_field, "'metadata' is larger than 8 KiB");
    return v;
}

// SAX handler that builds the tree like nlohmann's own DOM parser but refuses what that parser
// lets through: duplicate member names (which one wins differs between parsers), nesting past
// kMaxJsonDepth, and numbers a double cannot hold exactly.
class StrictSax {
public:
    using json = nlohmann::json;
    explicit StrictSax(json& root) : dom_(root, false) {}

    bool null() { return dom_.null(); }
    bool boolean(bool v) { return dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) {
        if (v > kMaxExactInteger || v < -kMaxExactInteger) return imprecise();
        return dom_.number_integer(v);
    }
    bool number_unsigned(json::number_unsigned_t v) {
        if (v > static_cast<json::number_unsigned_t>(kMaxExactInteger)) return imprecise();
        return dom_.number_unsigned(v);
    }
    bool number_float(json::number_float_t v, const json::string_t& text) {
        // An integer literal too long for 64 bits arrives here, already rounded.
        if (!std::isfinite(v) || text.find_first_of(".eE") == json::string_t::npos) return imprecise();
        return dom_.number_float(v, text);
    }
    bool string(json::string_t& v) { return dom_.string(v); }
    bool binary(json::binary_t& v) { return dom_.binary(v); }
    bool start_object(std::size_t n) {
        members_.emplace_back();
        return deeper() && dom_.start_object(n);
    }
    bool key(json::string_t& k) {
        if (!members_.back().insert(k).second) return fail(codes::invalid_json, "duplicate member name '" + k + "'");
        last_key_ = k;
        return dom_.key(k);
    }
    bool end_object() {
        members_.pop_back();
        return dom_.end_object();
    }
    bool start_array(std::size_t n) {
        members_.emplace_back();  // unused: keeps the depth count in one place
        return deeper() && dom_.start_array(n);
    }
    bool end_array() {
        members_.pop_back();
        return dom_.end_array();
    }
    bool parse_error(std::size_t pos, const std::string& tok, const nlohmann::detail::exception& e) {
        if (code_.empty()) fail(codes::invalid_json, "the body is not valid JSON");
        return dom_.parse_error(pos, tok, e);
    }

    const std::string& code() const { return code_; }
    const std::string& message() const { return message_; }

private:
    bool fail(const char* code, std::string message) {
        code_ = code;
        message_ = std::move(message);
        return false;
    }
    bool deeper() {
        return members_.size() <= static_cast<std::size_t>(kMaxJsonDepth) ||
               fail(codes::invalid_json, "the body is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    bool imprecise() {
        return fail(codes::invalid_field, "'" + last_key_ +
                                              "' has a number that cannot be held exactly (integers must be within "
                                              "-2^53..2^53; no overflowing literals)");
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    std::vector<std::set<std::string>> members_;
    std::string last_key_;
    std::string code_, message_;
};

// Metadata: an object nested at most kMaxMetadataDepth deep, at most kMaxMetadataKeys members
// per object, keys 1..40 characters, strings up to 500, and no NUL anywhere (PostgreSQL's jsonb
// cannot store U+0000).
void check_metadata_value(const nlohmann::json& v, int depth) {
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s.size() > kMaxMetadataStringLength)
            bad(codes::invalid_field, "'metadata' strings are at most " + std::to_string(kMaxMetadataStringLength) + " bytes");
        if (s.find('\0') != std::string::npos) bad(codes::invalid_field, "'metadata' must not contain NUL (\\u0000)");
        return;
    }
    if (!v.is_structured()) return;
    if (depth > kMaxMetadataDepth)
        bad(codes::invalid_field, "'metadata' is nested deeper than " + std::to_string(kMaxMetadataDepth) + " levels");
    if (v.size() > kMaxMetadataKeys)
        bad(codes::invalid_field, "'metadata' objects and arrays hold at most " + std::to_string(kMaxMetadataKeys) + " entries");
    for (auto& [k, child] : v.items()) {
        if (v.is_object()) {
            if (k.empty() || k.size() > kMaxMetadataKeyLength)
                bad(codes::invalid_field, "'metadata' keys must be 1.." + std::to_string(kMaxMetadataKeyLength) + " bytes");
            if (k.find('\0') != std::string::npos) bad(codes::invalid_field, "'metadata' must not contain NUL (\\u0000)");
        }
        check_metadata_value(child, depth + 1);
    }
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

}  // namespace

nlohmann::json parse_json_object(std::string_view body) {
    nlohmann::json j;
    StrictSax sax(j);
    bool ok = nlohmann::json::sax_parse(body.begin(), body.end(), &sax, nlohmann::json::input_format_t::json, true);
    if (!ok || !sax.code().empty()) bad(sax.code().empty() ? codes::invalid_json : sax.code().c_str(),
                                       sax.message().empty() ? "the body is not valid JSON" : sax.message());
    if (j.is_discarded()) bad(codes::invalid_json, "the body is not valid JSON");
    if (!j.is_object()) bad(codes::invalid_json, "the body must be a JSON object");
    return j;
}

bool valid_utf8(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
        if (n == 9 || (n > 0 && i + n >= s.size())) return false;
        std::uint32_t cp = n == 0 ? c : c & (0x3F >> n);
        for (std::size_t k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        static const std::uint32_t min_for_len[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

bool has_forbidden_chars(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) return true;
        auto next = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
        if (c == 0xC2 && next(1) >= 0x80 && next(1) <= 0x9F) return true;  // U+0080-U+009F
        if (c == 0xE2 && next(1) == 0x80 && next(2) >= 0xAA && next(2) <= 0xAE) return true;  // U+202A-U+202E
        if (c == 0xE2 && next(1) == 0x81 && next(2) >= 0xA6 && next(2) <= 0xA9) return true;  // U+2066-U+2069
    }
    return false;
}

CreateKeyRequest parse_create_request(const nlohmann::json& body, std::int64_t now_us) {
    only_fields(body, {"name", "owner", "environment", "scopes", "limits", "expires_at", "allowed_cidrs", "metadata"});
    CreateKeyRequest r;
    if (body.contains("name")) r.name = get_string(body["name"], "name", kMaxNameLength, true);
    if (body.contains("owner")) r.owner = get_string(body["owner"], "owner", kMaxOwnerLength, true);
    if (!body.contains("environment")) bad(codes::missing_field, "'environment' is required (live or test)");
    if (!body["environment"].is_string() || !parse_environment(body["environment"].get<std::string>(), r.environment))
        bad(codes::invalid_field, "'environment' must be \"live\" or \"test\"");
    if (body.contains("scopes")) r.scopes = get_scopes(body["scopes"]);
    if (body.contains("limits")) r.limit = get_limit(body["limits"]);
    if (body.contains("expires_at") && !body["expires_at"].is_null()) {
        auto& e = body["expires_at"];
        std::optional<std::int64_t> t;
        if (e.is_string()) t = parse_rfc3339(e.get<std::string>());
        if (!t) bad(codes::invalid_field, "'expires_at' must be an RFC 3339 time such as 2030-01-01T00:00:00Z");
        if (*t <= now_us) bad(codes::invalid_field, "'expires_at' must be in the future");
        // Whole seconds, rounded up: gateways compare expiry in whole seconds, so a fractional time
        // would make the key refused up to a second early. The response shows the stored time.
        r.expires_at_us = (*t + 999999) / 1000000 * 1000000;
    }
    if (body.contains("allowed_cidrs")) r.allowed_cidrs = get_cidrs(body["allowed_cidrs"]);
    if (body.contains("metadata")) r.metadata = get_metadata(body["metadata"]);
    return r;
}

PatchKeyRequest parse_patch_request(const nlohmann::json& body) {
    only_fields(body, {"name", "scopes", "limits", "allowed_cidrs", "metadata"});
    if (body.empty()) bad(codes::missing_field, "nothing to update: give at least one of name, scopes, limits, allowed_cidrs, metadata");
    PatchKeyRequest r;
    if (body.contains("name")) r.name = get_string(body["name"], "name", kMaxNameLength, true);
    if (body.contains("scopes")) r.scopes = get_scopes(body["scopes"]);
    if (body.contains("limits")) {
        r.limit_set = true;
        r.limit = get_limit(body["limits"]);
    }
    if (body.contains("allowed_cidrs")) r.allowed_cidrs = get_cidrs(body["allowed_cidrs"]);
    if (body.contains("metadata")) r.metadata = get_metadata(body["metadata"]);
    return r;
}

std::int64_t parse_rotate_request(const nlohmann::json& body, std::int64_t max_grace_seconds) {
    only_fields(body, {"grace_period_seconds"});
    if (!body.contains("grace_period_seconds")) return std::min(kDefaultGraceSeconds, max_grace_seconds);
    std::int64_t g = get_int(body["grace_period_seconds"], "grace_period_seconds");
    if (g < 0 || g > max_grace_seconds)
        bad(codes::invalid_field, "'grace_period_seconds' must be 0.." + std::to_string(max_grace_seconds));
    return g;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) noexcept {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
    int Y, M, D, h, m, sec;
    if (!digits(s, 0, 4, Y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, M) || s[7] != '-' ||
        !digits(s, 8, 2, D) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) || s[13] != ':' ||
        !digits(s, 14, 2, m) || s[16] != ':' || !digits(s, 17, 2, sec))
        return std::nullopt;
    std::size_t pos = 19;
    std::int64_t frac_us = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int n = 0;
        std::int64_t scale = 100000;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (n < 6) frac_us += (s[pos] - '0') * scale, scale /= 10;
            ++pos, ++n;
        }
        if (n == 0 || n > 9) return std::nullopt;
    }
    int offset_s = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int oh, om;
        if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om) ||
            oh > 23 || om > 59)
            return std::nullopt;
        offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
    if (Y < 1970 || Y > 9999 || M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || sec > 59) return std::nullopt;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (D > mdays[M - 1] + (M == 2 && leap ? 1 : 0)) return std::nullopt;
    std::tm tm{};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    std::int64_t t = (static_cast<std::int64_t>(timegm(&tm)) - offset_s) * 1000000 + frac_us;
    // An offset can carry 9999-12-31 into year 10000, or 1970-01-01 back into 1969.
    if (t < 0 || t >= kTimeLimitUs) return std::nullopt;
    return t;
}

std::string format_rfc3339(std::int64_t unix_us) {
    std::int64_t secs = unix_us / 1000000;
    std::int64_t us = unix_us % 1000000;
    if (us < 0) us += 1000000, secs -= 1;
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[48];
    if (us) {
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(us));
    } else {
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    return buf;
}

std::optional<std::int64_t> parse_duration_seconds(std::string_view s) noexcept {
    if (s.empty() || s.size() > 12) return std::nullopt;
    std::int64_t mult = 1;
    char last = s.back();
    if (last == 's' || last == 'm' || last == 'h' || last == 'd') {
        mult = last == 's' ? 1 : last == 'm' ? 60 : last == 'h' ? 3600 : 86400;
        s.remove_suffix(1);
    }
    if (s.empty()) return std::nullopt;
    std::int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    if (v <= 0 || v > 100LL * 365 * 86400 / mult) return std::nullopt;
    return v * mult;
}

namespace {
// A query name or value after decoding: well-formed UTF-8 without control characters (a NUL
// or an invalid byte would otherwise reach PostgreSQL and come back as a 500).
void check_query_text(const std::string& text, std::string_view raw) {
    bool ok = valid_utf8(text) && std::none_of(text.begin(), text.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
    if (!ok)
        bad(codes::invalid_parameter, "query parameter '" + std::string(raw.substr(0, 64)) +
                                          "' is not valid UTF-8 text (no control characters, %00 included)");
}
void check_escapes(std::string_view raw) {
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') continue;
        if (i + 2 >= raw.size() || !std::isxdigit(static_cast<unsigned char>(raw[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(raw[i + 2])))
            bad(codes::invalid_parameter, "the query string has a '%' not followed by two hex digits");
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
        if (!out.emplace(k, v).second) bad(codes::invalid_parameter, "parameter '" + k + "' given more than once");
    }
    return out;
}

void check_parameters(const std::map<std::string, std::string>& query, std::initializer_list<std::string_view> allowed) {
    for (auto& [k, v] : query) {
        (void)v;
        if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            bad(codes::unknown_parameter, "unknown query parameter '" + k + "'");
    }
}

int parse_page_size(const std::map<std::string, std::string>& query) {
    auto it = query.find("limit");
    if (it == query.end()) return kDefaultPageSize;
    const std::string& s = it->second;
    int v = 0;
    if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        (v = std::stoi(s)) < 1 || v > kMaxPageSize)
        bad(codes::invalid_parameter, "'limit' must be 1.." + std::to_string(kMaxPageSize));
    return v;
}

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

bool sane_request_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '-')) return false;
    }
    return true;
}

}  // namespace tronch::cp
