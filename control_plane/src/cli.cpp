#include "cli.hpp"

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>
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

}  // namespace

int cli_main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string url = std::getenv("TRONCH_API_URL") ? std::getenv("TRONCH_API_URL") : "http://127.0.0.1:8080";
    std::string token = std::getenv("TRONCH_ADMIN_TOKEN") ? std::getenv("TRONCH_ADMIN_TOKEN") : "";
    bool as_json = false;
    std::vector<std::string> pos;
    std::multimap<std::string, std::string> opt;
    static const std::vector<std::string> flags = {"--json", "--all", "--help", "-h"};
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--json") as_json = true;
        else if (a == "--help" || a == "-h") { std::cout << kHelp; return 0; }
        else if (a == "--all") opt.emplace("--all", "1");
        else if (a.rfind("--", 0) == 0) {
            if (i + 1 >= args.size()) { std::cerr << a << " needs a value\n" << kHelp; return 2; }
            if (a == "--url") url = args[++i];
            else if (a == "--token") token = args[++i];
            else opt.emplace(a, args[++i]);
        } else pos.push_back(a);
    }
    const bool records_key = pos.size() == 1 && pos[0] == "records-key";
    if (!records_key && (pos.size() < 2 || pos[0] != "keys")) { std::cerr << kHelp; return 2; }
    Client c;
    if (url.rfind("http://", 0) != 0) { std::cerr << "only http:// URLs are supported\n"; return 2; }
    std::string rest = url.substr(7);
    auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    c.base = slash == std::string::npos ? "" : rest.substr(slash);
    while (!c.base.empty() && c.base.back() == '/') c.base.pop_back();
    auto colon = hostport.rfind(':');
    c.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
    c.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
    c.token = token;
    auto one = [&](const char* name) -> std::optional<std::string> {
        auto it = opt.find(name);
        return it == opt.end() ? std::nullopt : std::optional(it->second);
    };
    auto all = [&](const char* name) {
        std::vector<std::string> v;
        for (auto [a, b] = opt.equal_range(name); a != b; ++a) v.push_back(a->second);
        return v;
    };
    if (records_key) {
        try {
            auto r = c.call("GET", "/api/v1/records-key");
            if (r.status != 200) return fail(r);
            if (as_json) { std::cout << r.body << "\n"; return 0; }
            json k = json::parse(r.body);
            std::cout << "# kid " << str(k["kid"]) << ", Ed25519, written by tronchd to " << str(k["public_key_path"])
                      << "\n" << str(k["public_key_pem"]);
            return 0;
        } catch (const std::exception& e) {
            std::cerr << "error: " << e.what() << "\n";
            return 1;
        }
    }
    const std::string& cmd = pos[1];
    try {
        if (cmd == "create") {
            json body = json::object();
            if (auto v = one("--env")) body["environment"] = *v;
            if (auto v = one("--name")) body["name"] = *v;
            if (auto v = one("--owner")) body["owner"] = *v;
            if (auto v = all("--scope"); !v.empty()) body["scopes"] = v;
            if (auto v = all("--cidr"); !v.empty()) body["allowed_cidrs"] = v;
            if (auto v = one("--expires-at")) body["expires_at"] = *v;
            if (auto v = one("--metadata")) body["metadata"] = json::parse(*v);
            if (auto r = one("--rate")) {
                body["limits"] = {{"rate", std::stoll(*r)}, {"period_seconds", std::stoll(one("--period").value_or("1"))},
                                  {"burst", std::stoll(one("--burst").value_or("0"))}};
            }
            std::map<std::string, std::string> h;
            if (auto k = one("--idempotency-key")) h["Idempotency-Key"] = *k;
            auto r = c.call("POST", "/api/v1/keys", body.dump(), h);
            if (r.status != 201) return fail(r);
            if (as_json) { std::cout << r.body << "\n"; return 0; }
            json k = json::parse(r.body);
            show_key(k);
            std::cout << "\nkey: " << k["key"].get<std::string>()
                      << "\n(the key is shown once; store it now, it cannot be retrieved again)\n";
            return 0;
        }
        if (cmd == "list") {
            std::string q;
            auto add = [&](const char* flag, const char* param) {
                if (auto v = one(flag)) q += std::string(q.empty() ? "?" : "&") + param + "=" + url_encode(*v);
            };
            add("--status", "status");
            add("--env", "environment");
            add("--owner", "owner");
            add("--expiring-within", "expiring_within");
            add("--limit", "limit");
            std::optional<std::string> cursor = one("--cursor");
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
            } while (one("--all") && cursor);
            if (as_json) { std::cout << json{{"data", items}, {"next_cursor", next}}.dump() << "\n"; return 0; }
            std::vector<std::vector<std::string>> rows;
            for (auto& k : items)
                rows.push_back({str(k["id"]), str(k["prefix"]), str(k["name"]), str(k["owner"]), str(k["environment"]),
                                str(k["status"]), str(k["expires_at"]), str(k["last_used_at"])});
            table({"ID", "PREFIX", "NAME", "OWNER", "ENV", "STATUS", "EXPIRES", "LAST USED"}, rows);
            if (next.is_string()) std::cout << "more: --cursor " << next.get<std::string>() << "\n";
            return 0;
        }
        if (pos.size() < 3) { std::cerr << "missing key id\n" << kHelp; return 2; }
        const std::string id = pos[2];
        std::map<std::string, std::string> h;
        if (auto v = one("--if-match")) h["If-Match"] = v->front() == '"' ? *v : "\"" + *v + "\"";
        if (auto k = one("--idempotency-key")) h["Idempotency-Key"] = *k;
        if (cmd == "get") {
            auto r = c.call("GET", "/api/v1/keys/" + id);
            if (r.status != 200) return fail(r);
            if (as_json) std::cout << r.body << "\n";
            else show_key(json::parse(r.body));
            return 0;
        }
        if (cmd == "rotate") {
            json body = json::object();
            if (auto g = one("--grace")) body["grace_period_seconds"] = std::stoll(*g);
            auto r = c.call("POST", "/api/v1/keys/" + id + "/rotate", body.dump(), h);
            if (r.status != 201) return fail(r);
            if (as_json) { std::cout << r.body << "\n"; return 0; }
            json k = json::parse(r.body);
            show_key(k);
            std::cout << "\nprevious key " << str(k["previous"]["id"]) << " is now " << str(k["previous"]["status"])
                      << " (until " << str(k["previous"]["expires_at"]) << ")\n";
            std::cout << "key: " << k["key"].get<std::string>()
                      << "\n(the key is shown once; store it now, it cannot be retrieved again)\n";
            return 0;
        }
        if (cmd == "revoke") {
            auto r = c.call("DELETE", "/api/v1/keys/" + id, "", h);
            if (r.status != 204) return fail(r);
            if (as_json) std::cout << json{{"id", id}, {"status", "revoked"}}.dump() << "\n";
            else std::cout << "revoked " << id << "\n";
            return 0;
        }
        if (cmd == "usage") {
            std::string q;
            if (auto v = one("--since")) q += "?since=" + url_encode(*v);
            if (auto v = one("--until")) q += std::string(q.empty() ? "?" : "&") + "until=" + url_encode(*v);
            auto r = c.call("GET", "/api/v1/keys/" + id + "/usage" + q);
            if (r.status != 200) return fail(r);
            if (as_json) { std::cout << r.body << "\n"; return 0; }
            json u = json::parse(r.body);
            std::vector<std::vector<std::string>> rows;
            for (auto& b : u["data"]) rows.push_back({str(b["bucket_start"]), str(b["requests"]), str(b["errors"])});
            table({"BUCKET", "REQUESTS", "ERRORS"}, rows);
            std::cout << "total: " << str(u["totals"]["requests"]) << " requests, " << str(u["totals"]["errors"])
                      << " errors; last used " << str(u["last_used_at"]) << "\n";
            return 0;
        }
        std::cerr << "unknown command: " << cmd << "\n" << kHelp;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace tronch::cp
