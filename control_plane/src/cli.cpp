#include "cli.hpp"

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace tronch::cp {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using json = nlohmann::json;

const char* kHelp =
    "usage: tronchctl [--url URL] [--token TOKEN] [--json] keys <command> [options]\n"
    "  (also: tronchd keys <command> ...)\n"
    "environment: TRONCH_API_URL (default http://127.0.0.1:8080), TRONCH_ADMIN_TOKEN; flags override\n"
    "commands:\n"
    "  keys create --env live|test [--name N] [--owner O] [--scope S]... [--rate R --period SECONDS [--burst B]]\n"
    "              [--expires-at RFC3339] [--cidr CIDR]... [--metadata JSON] [--idempotency-key K]\n"
    "  keys list [--status S] [--env E] [--owner O] [--expiring-within 7d] [--limit N] [--cursor C] [--all]\n"
    "  keys get ID\n"
    "  keys rotate ID [--grace SECONDS] [--if-match ETAG] [--idempotency-key K]\n"
    "  keys revoke ID [--if-match ETAG]\n"
    "  keys usage ID [--since RFC3339] [--until RFC3339]\n"
    "  records-key   the public key gateways verify key records with (PEM, for tronch_record_key)\n";

struct Response {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;
};

struct Client {
    std::string host, port, base, token;

    Response call(const std::string& method, const std::string& target, const std::string& body = "",
                  const std::map<std::string, std::string>& extra = {}) {
        net::io_context ioc;
        net::ip::tcp::resolver resolver(ioc);
        beast::tcp_stream stream(ioc);
        stream.expires_after(std::chrono::seconds(30));
        stream.connect(resolver.resolve(host, port));
        http::request<http::string_body> req{http::string_to_verb(method), base + target, 11};
        req.set(http::field::host, host);
        req.set(http::field::user_agent, "tronchctl");
        req.set(http::field::authorization, "Bearer " + token);
        if (const char* user = std::getenv("USER")) req.set("X-Tronch-Actor", user);
        for (auto& [k, v] : extra) req.set(k, v);
        if (!body.empty()) {
            req.set(http::field::content_type, "application/json");
            req.body() = body;
        }
        req.prepare_payload();
        http::write(stream, req);
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        http::read(stream, buf, res);
        beast::error_code ec;
        stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
        Response out;
        out.status = static_cast<int>(res.result_int());
        out.body = res.body();
        for (auto& f : res) out.headers[std::string(f.name_string())] = std::string(f.value());
        return out;
    }
};

std::string url_encode(const std::string& s) {
    std::ostringstream o;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') o << c;
        else o << '%' << std::uppercase << std::hex << std::setw(2) << std::setfill('0') << int(c) << std::dec;
    }
    return o.str();
}

std::string str(const json& j) {
    if (j.is_null()) return "-";
    if (j.is_string()) return j.get<std::string>();
    return j.dump();
}

void table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> w(head.size());
    for (std::size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
    for (auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
        for (std::size_t i = 0; i < r.size(); ++i) std::cout << std::left << std::setw(static_cast<int>(w[i]) + 2) << r[i];
        std::cout << "\n";
    };
    line(head);
    for (auto& r : rows) line(r);
}

void show_key(const json& k) {
    std::vector<std::vector<std::string>> rows;
    for (const char* f : {"id", "name", "owner", "prefix", "environment", "status", "scopes", "limits", "allowed_cidrs",
                          "metadata", "created_at", "updated_at", "expires_at", "last_used_at", "revoked_at",
                          "rotated_from", "version"}) {
        if (k.contains(f)) rows.push_back({f, str(k[f])});
    }
    table({"FIELD", "VALUE"}, rows);
}

int fail(const Response& r) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error"))
        std::cerr << "error " << r.status << " " << str(j["error"]["code"]) << ": " << str(j["error"]["message"]) << "\n";
    else
        std::cerr << "error " << r.status << ": " << r.body << "\n";
    return 1;
}

// The command line, parsed: positional words and --options (repeatable ones keep every value).
struct Args {
    std::string url = std::getenv("TRONCH_API_URL") ? std::getenv("TRONCH_API_URL") : "http://127.0.0.1:8080";
    std::string token = std::getenv("TRONCH_ADMIN_TOKEN") ? std::getenv("TRONCH_ADMIN_TOKEN") : "";
    bool as_json = false;
    std::vector<std::string> pos;
    std::multimap<std::string, std::string> opt;

    std::optional<std::string> one(const char* name) const {
        auto it = opt.find(name);
        return it == opt.end() ? std::nullopt : std::optional(it->second);
    }
    std::vector<std::string> all(const char* name) const {
        std::vector<std::string> v;
        for (auto [a, b] = opt.equal_range(name); a != b; ++a) v.push_back(a->second);
        return v;
    }
};

// Fills `a`; returns an exit code when the command line is done with (help, a bad option).
std::optional<int> parse_args(const std::vector<std::string>& args, Args& a) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& s = args[i];
        if (s == "--json") a.as_json = true;
        else if (s == "--help" || s == "-h") { std::cout << kHelp; return 0; }
        else if (s == "--all") a.opt.emplace("--all", "1");
        else if (s.rfind("--", 0) == 0) {
            if (i + 1 >= args.size()) { std::cerr << s << " needs a value\n" << kHelp; return 2; }
            if (s == "--url") a.url = args[++i];
            else if (s == "--token") a.token = args[++i];
            else a.opt.emplace(s, args[++i]);
        } else a.pos.push_back(s);
    }
    return std::nullopt;
}

// http://host[:port][/base]; false for any other scheme.
bool client_for(const Args& a, Client& c) {
    if (a.url.rfind("http://", 0) != 0) return false;
    std::string rest = a.url.substr(7);
    auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    c.base = slash == std::string::npos ? "" : rest.substr(slash);
    while (!c.base.empty() && c.base.back() == '/') c.base.pop_back();
    auto colon = hostport.rfind(':');
    c.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
    c.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
    c.token = a.token;
    return true;
}

void show_new_key(const json& k) {
    std::cout << "key: " << k["key"].get<std::string>()
              << "\n(the key is shown once; store it now, it cannot be retrieved again)\n";
}

int records_key(Client& c, const Args& a) {
    auto r = c.call("GET", "/api/v1/records-key");
    if (r.status != 200) return fail(r);
    if (a.as_json) { std::cout << r.body << "\n"; return 0; }
    json k = json::parse(r.body);
    std::cout << "# kid " << str(k["kid"]) << ", Ed25519, written by tronchd to " << str(k["public_key_path"])
              << "\n" << str(k["public_key_pem"]);
    return 0;
}

int create(Client& c, const Args& a) {
    json body = json::object();
    if (auto v = a.one("--env")) body["environment"] = *v;
    if (auto v = a.one("--name")) body["name"] = *v;
    if (auto v = a.one("--owner")) body["owner"] = *v;
    if (auto v = a.all("--scope"); !v.empty()) body["scopes"] = v;
    if (auto v = a.all("--cidr"); !v.empty()) body["allowed_cidrs"] = v;
    if (auto v = a.one("--expires-at")) body["expires_at"] = *v;
    if (auto v = a.one("--metadata")) body["metadata"] = json::parse(*v);
    if (auto r = a.one("--rate")) {
        body["limits"] = {{"rate", std::stoll(*r)}, {"period_seconds", std::stoll(a.one("--period").value_or("1"))},
                          {"burst", std::stoll(a.one("--burst").value_or("0"))}};
    }
    std::map<std::string, std::string> h;
    if (auto k = a.one("--idempotency-key")) h["Idempotency-Key"] = *k;
    auto r = c.call("POST", "/api/v1/keys", body.dump(), h);
    if (r.status != 201) return fail(r);
    if (a.as_json) { std::cout << r.body << "\n"; return 0; }
    json k = json::parse(r.body);
    show_key(k);
    std::cout << "\n";
    show_new_key(k);
    return 0;
}

int list(Client& c, const Args& a) {
    std::string q;
    auto add = [&](const char* flag, const char* param) {
        if (auto v = a.one(flag)) q += std::string(q.empty() ? "?" : "&") + param + "=" + url_encode(*v);
    };
    add("--status", "status");
    add("--env", "environment");
    add("--owner", "owner");
    add("--expiring-within", "expiring_within");
    add("--limit", "limit");
    std::optional<std::string> cursor = a.one("--cursor");
    json items = json::array();
    json next = nullptr;
    do {
        std::string t = "/api/v1/keys" + q;
        if (cursor) t += std::string(q.empty() ? "?" : "&") + "cursor=" + url_encode(*cursor);
        auto r = c.call("GET", t);
        if (r.status != 200) return fail(r);
        json page = json::parse(r.body);
        for (auto& k : page["data"]) items.push_back(k);
        next = page["next_cursor"];
        cursor = next.is_string() ? std::optional(next.get<std::string>()) : std::nullopt;
    } while (a.one("--all") && cursor);
    if (a.as_json) { std::cout << json{{"data", items}, {"next_cursor", next}}.dump() << "\n"; return 0; }
    std::vector<std::vector<std::string>> rows;
    for (auto& k : items)
        rows.push_back({str(k["id"]), str(k["prefix"]), str(k["name"]), str(k["owner"]), str(k["environment"]),
                        str(k["status"]), str(k["expires_at"]), str(k["last_used_at"])});
    table({"ID", "PREFIX", "NAME", "OWNER", "ENV", "STATUS", "EXPIRES", "LAST USED"}, rows);
    if (next.is_string()) std::cout << "more: --cursor " << next.get<std::string>() << "\n";
    return 0;
}

// The headers of a command on one key: If-Match (quoted if given bare), Idempotency-Key.
std::map<std::string, std::string> key_headers(const Args& a) {
    std::map<std::string, std::string> h;
    if (auto v = a.one("--if-match")) h["If-Match"] = v->front() == '"' ? *v : "\"" + *v + "\"";
    if (auto k = a.one("--idempotency-key")) h["Idempotency-Key"] = *k;
    return h;
}

int get(Client& c, const Args& a, const std::string& id) {
    auto r = c.call("GET", "/api/v1/keys/" + id);
    if (r.status != 200) return fail(r);
    if (a.as_json) std::cout << r.body << "\n";
    else show_key(json::parse(r.body));
    return 0;
}

int rotate(Client& c, const Args& a, const std::string& id) {
    json body = json::object();
    if (auto g = a.one("--grace")) body["grace_period_seconds"] = std::stoll(*g);
    auto r = c.call("POST", "/api/v1/keys/" + id + "/rotate", body.dump(), key_headers(a));
    if (r.status != 201) return fail(r);
    if (a.as_json) { std::cout << r.body << "\n"; return 0; }
    json k = json::parse(r.body);
    show_key(k);
    std::cout << "\nprevious key " << str(k["previous"]["id"]) << " is now " << str(k["previous"]["status"])
              << " (until " << str(k["previous"]["expires_at"]) << ")\n";
    show_new_key(k);
    return 0;
}

int revoke(Client& c, const Args& a, const std::string& id) {
    auto r = c.call("DELETE", "/api/v1/keys/" + id, "", key_headers(a));
    if (r.status != 204) return fail(r);
    if (a.as_json) std::cout << json{{"id", id}, {"status", "revoked"}}.dump() << "\n";
    else std::cout << "revoked " << id << "\n";
    return 0;
}

int usage(Client& c, const Args& a, const std::string& id) {
    std::string q;
    if (auto v = a.one("--since")) q += "?since=" + url_encode(*v);
    if (auto v = a.one("--until")) q += std::string(q.empty() ? "?" : "&") + "until=" + url_encode(*v);
    auto r = c.call("GET", "/api/v1/keys/" + id + "/usage" + q);
    if (r.status != 200) return fail(r);
    if (a.as_json) { std::cout << r.body << "\n"; return 0; }
    json u = json::parse(r.body);
    std::vector<std::vector<std::string>> rows;
    for (auto& b : u["data"]) rows.push_back({str(b["bucket_start"]), str(b["requests"]), str(b["errors"])});
    table({"BUCKET", "REQUESTS", "ERRORS"}, rows);
    std::cout << "total: " << str(u["totals"]["requests"]) << " requests, " << str(u["totals"]["errors"])
              << " errors; last used " << str(u["last_used_at"]) << "\n";
    return 0;
}

// `keys <cmd> ...`: the commands without an id, then those on one key (the id is asked for
// before the command name is checked).
int keys_command(Client& c, const Args& a) {
    const std::string& cmd = a.pos[1];
    if (cmd == "create") return create(c, a);
    if (cmd == "list") return list(c, a);
    if (a.pos.size() < 3) { std::cerr << "missing key id\n" << kHelp; return 2; }
    using OnKey = int (*)(Client&, const Args&, const std::string&);
    static const std::map<std::string, OnKey> on_key = {{"get", get}, {"rotate", rotate}, {"revoke", revoke}, {"usage", usage}};
    auto it = on_key.find(cmd);
    if (it == on_key.end()) { std::cerr << "unknown command: " << cmd << "\n" << kHelp; return 2; }
    return it->second(c, a, a.pos[2]);
}

}  // namespace

int cli_main(int argc, char** argv) {
    Args a;
    if (auto done = parse_args(std::vector<std::string>(argv + 1, argv + argc), a)) return *done;
    const bool is_records_key = a.pos.size() == 1 && a.pos[0] == "records-key";
    if (!is_records_key && (a.pos.size() < 2 || a.pos[0] != "keys")) { std::cerr << kHelp; return 2; }
    Client c;
    if (!client_for(a, c)) { std::cerr << "only http:// URLs are supported\n"; return 2; }
    try {
        return is_records_key ? records_key(c, a) : keys_command(c, a);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace tronch::cp
