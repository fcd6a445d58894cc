#include "redis_target.hpp"

#include <cctype>
#include <stdexcept>

namespace tronch::cp {
namespace {

[[noreturn]] void bad(const std::string& why) {
    throw std::runtime_error("Redis address: " + why +
                             " (expected host:port, unix:/path, redis[s]://[user[:password]@]host[:port][/db] or "
                             "redis[s]-sentinel://[user[:password]@]h1:p1,h2:p2/<master_name>[/db])");
}

int parse_int(const std::string& text, int lo, int hi, const char* what) {
    if (text.empty() || text.size() > 6) bad(std::string("bad ") + what + " '" + text + "'");
    for (char c : text) {
        if (!std::isdigit(static_cast<unsigned char>(c))) bad(std::string("bad ") + what + " '" + text + "'");
    }
    int v = std::stoi(text);
    if (v < lo || v > hi) bad(std::string(what) + " out of range: " + text);
    return v;
}

std::string percent_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// "host:port", "host" (default port), "[v6]:port"
RedisEndpoint parse_endpoint(const std::string& text) {
    if (text.empty()) bad("empty host");
    RedisEndpoint ep;
    std::string port;
    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) bad("unclosed [ in '" + text + "'");
        ep.host = text.substr(1, close - 1);
        if (close + 1 < text.size()) {
            if (text[close + 1] != ':') bad("expected :port after ] in '" + text + "'");
            port = text.substr(close + 2);
        }
    } else {
        auto colon = text.rfind(':');
        ep.host = text.substr(0, colon);
        if (colon != std::string::npos) port = text.substr(colon + 1);
    }
    if (ep.host.empty()) bad("empty host in '" + text + "'");
    if (!port.empty() || text.back() == ':') ep.port = parse_int(port, 1, 65535, "port");
    return ep;
}

std::vector<RedisEndpoint> parse_endpoints(const std::string& text) {
    std::vector<RedisEndpoint> out;
    std::size_t start = 0;
    for (;;) {
        auto comma = text.find(',', start);
        out.push_back(parse_endpoint(text.substr(start, comma - start)));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

}  // namespace

RedisTarget parse_redis_target(const std::string& spec) {
    RedisTarget t;
    if (spec.rfind("unix:", 0) == 0) {
        t.unix_path = spec.substr(5);
        if (t.unix_path.empty()) bad("empty socket path");
        return t;
    }
    auto scheme_end = spec.find("://");
    if (scheme_end == std::string::npos) {  // the old host:port form
        t.hosts.push_back(parse_endpoint(spec));
        return t;
    }
    std::string scheme = spec.substr(0, scheme_end);
    bool sentinel = false;
    if (scheme == "redis" || scheme == "rediss") {
    } else if (scheme == "redis-sentinel" || scheme == "rediss-sentinel") {
        sentinel = true;
    } else {
        bad("unknown scheme '" + scheme + "://'");
    }
    t.tls.enabled = scheme.rfind("rediss", 0) == 0;
    std::string rest = spec.substr(scheme_end + 3);
    if (rest.find_first_of("?#") != std::string::npos) bad("options in the URL are not supported; use TRONCH_REDIS_* settings");
    auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    std::string path = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (auto at = authority.rfind('@'); at != std::string::npos) {
        std::string userinfo = authority.substr(0, at);
        authority = authority.substr(at + 1);
        auto colon = userinfo.find(':');
        t.user = percent_decode(userinfo.substr(0, colon));
        if (colon != std::string::npos) t.password = percent_decode(userinfo.substr(colon + 1));
    }
    t.hosts = parse_endpoints(authority);
    if (sentinel) {
        auto s2 = path.find('/');
        t.master_name = path.substr(0, s2);
        if (t.master_name.empty()) bad("a sentinel URL needs the master's name: redis-sentinel://h1:p1,h2:p2/<master_name>");
        path = s2 == std::string::npos ? "" : path.substr(s2 + 1);
    } else if (t.hosts.size() > 1) {
        bad("several hosts need the sentinel form (redis-sentinel://...)");
    }
    if (!path.empty()) t.db = parse_int(path, 0, 100000, "database number");
    return t;
}

std::string RedisTarget::display() const {
    if (!unix_path.empty()) return "unix:" + unix_path;
    std::string out = std::string(tls.enabled ? "rediss" : "redis") + (sentinel() ? "-sentinel" : "") + "://";
    if (!user.empty() || !password.empty()) out += user + (password.empty() ? "" : ":***") + "@";
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        if (i) out += ",";
        bool v6 = hosts[i].host.find(':') != std::string::npos;
        out += (v6 ? "[" + hosts[i].host + "]" : hosts[i].host) + ":" + std::to_string(hosts[i].port);
    }
    if (sentinel()) out += "/" + master_name;
    if (db) out += "/" + std::to_string(db);
    return out;
}

}  // namespace tronch::cp
