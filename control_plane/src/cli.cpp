#include "cli.hpp"

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "cli_text.hpp"
#include "tronch/key_format.hpp"

namespace tronch::cp {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using json = nlohmann::json;

// tronchd's default listen address (config.hpp); ./run.sh uses the same port.
constexpr const char* kDefaultUrl = "http://127.0.0.1:8081";

const char* kHelp =
    "usage: tronchctl [--url URL] [--token TOKEN] [--json] <command> [options]\n"
    "  (also: tronchd keys|audit|records-key ...)\n"
    "environment: TRONCH_API_URL (default http://127.0.0.1:8081), TRONCH_ADMIN_TOKEN; flags override\n"
    "commands:\n"
    "  keys create --env live|test [--name N] [--owner O] [--scope S]... [--rate R --period SECONDS [--burst B]]\n"
    "              [--expires-at RFC3339] [--cidr CIDR]... [--metadata JSON] [--idempotency-key K]\n"
    "  keys list [--status S] [--env E] [--owner O] [--prefix P] [--expiring-within 7d] [--limit N] [--cursor C] [--all]\n"
    "  keys find PREFIX|KEY [--status S]   every key whose prefix starts so (a whole key: its prefix, taken locally)\n"
    "  keys get ID\n"
    "  keys update ID [--name N] [--scope S]... [--no-scopes] [--rate R --period SECONDS [--burst B]] [--no-limits]\n"
    "              [--cidr CIDR]... [--no-cidrs] [--metadata JSON] [--if-match ETAG]\n"
    "  keys rotate ID [--grace SECONDS] [--if-match ETAG] [--idempotency-key K]\n"
    "  keys revoke ID [--if-match ETAG]\n"
    "  keys usage ID [--since RFC3339] [--until RFC3339]\n"
    "  audit [--key-id ID] [--action create|update|rotate|revoke|expire] [--limit N] [--cursor C] [--all]\n"
    "  records-key   the public key gateways verify key records with (PEM, for tronch_record_key)\n"
    "exit status: 0 done, 1 refused by the API or unreachable, 2 usage error\n";

bool g_json = false;  // --json: results and errors as JSON on stdout

// A usage error: exit 2 with the message (and, in --json mode, as {"error":{"code":"usage",...}}).
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// The API could not be reached or did not answer like tronchd: exit 1.
struct ClientError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Response {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;
};

struct Client {
    std::string url, host, port, base, token;

    Response call(const std::string& method, const std::string& target, const std::string& body = "",
                  const std::map<std::string, std::string>& extra = {}) {
        net::io_context ioc;
        net::ip::tcp::resolver resolver(ioc);
        beast::tcp_stream stream(ioc);
        stream.expires_after(std::chrono::seconds(30));
        beast::error_code ec;
        auto endpoints = resolver.resolve(host, port, ec);
        if (!ec) stream.connect(endpoints, ec);
        if (ec)
            throw ClientError("cannot reach tronchd at " + url + ": " + ec.message() +
                              " (set TRONCH_API_URL or --url; ./run.sh writes it into .run/env)");
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
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        http::write(stream, req, ec);
        if (!ec) http::read(stream, buf, res, ec);
        if (ec) throw ClientError("no answer from " + url + ": " + ec.message());
        stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
        Response out;
        out.status = static_cast<int>(res.result_int());
        out.body = res.body();
        for (auto& f : res) out.headers[std::string(f.name_string())] = std::string(f.value());
        // Everything tronchd answers with a body is JSON (or Prometheus text, not used here):
        // anything else is another server, typically the gateway at the wrong port.
        auto ct = out.headers.find("Content-Type");
        if (out.status != 204 && (ct == out.headers.end() || ct->second.rfind("application/json", 0) != 0))
            throw ClientError("the answer from " + url + " is not tronchd's (HTTP " + std::to_string(out.status) +
                              ", Content-Type " + (ct == out.headers.end() ? "none" : ct->second) +
                              "): TRONCH_API_URL must be tronchd's API (./run.sh: the API URL in .run/env), "
                              "not the gateway");
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

// A JSON value as a table cell, safe for a terminal.
std::string str(const json& j) {
    if (j.is_null()) return "-";
    if (j.is_string()) return terminal_safe(j.get<std::string>());
    return terminal_safe(j.dump(-1, ' ', false, json::error_handler_t::replace));
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

void key_table(const json& items) {
    std::vector<std::vector<std::string>> rows;
    for (auto& k : items)
        rows.push_back({str(k["id"]), str(k["prefix"]), str(k["name"]), str(k["owner"]), str(k["environment"]),
                        str(k["status"]), str(k["expires_at"]), str(k["last_used_at"])});
    table({"ID", "PREFIX", "NAME", "OWNER", "ENV", "STATUS", "EXPIRES", "LAST USED"}, rows);
}

// An error the API answered (status >= 400).
int fail(const Response& r) {
    json j = json::parse(r.body, nullptr, false);
    bool api_error = j.is_object() && j.contains("error") && j["error"].is_object();
    if (g_json) {
        std::cout << (api_error ? j : json{{"error", {{"code", "http_" + std::to_string(r.status)}, {"message", r.body}}}})
                         .dump(-1, ' ', false, json::error_handler_t::replace)
                  << "\n";
        return 1;
    }
    if (api_error)
        std::cerr << "error " << r.status << " " << str(j["error"]["code"]) << ": " << str(j["error"]["message"]) << "\n";
    else
        std::cerr << "error " << r.status << ": " << terminal_safe(r.body) << "\n";
    return 1;
}

int fail_local(const char* code, const std::string& message, int exit_code) {
    if (g_json) std::cout << json{{"error", {{"code", code}, {"message", message}}}}.dump() << "\n";
    else std::cerr << (exit_code == 2 ? "usage error: " : "error: ") << terminal_safe(message) << "\n";
    if (exit_code == 2 && !g_json) std::cerr << "(tronchctl --help lists every command)\n";
    return exit_code;
}

long long integer(const std::string& flag, const std::string& v) {
    std::size_t used = 0;
    long long n = 0;
    try {
        n = std::stoll(v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != v.size()) throw UsageError(flag + " needs a whole number, not '" + v + "'");
    return n;
}

// The parsed command line: positional words and --options (some repeatable, some bare).
struct Args {
    std::vector<std::string> pos;
    std::multimap<std::string, std::string> opt;

    std::optional<std::string> one(const std::string& name) const {
        auto it = opt.find(name);
        return it == opt.end() ? std::nullopt : std::optional(it->second);
    }
    bool has(const std::string& name) const { return opt.count(name) > 0; }
    std::vector<std::string> all(const std::string& name) const {
        std::vector<std::string> v;
        for (auto [a, b] = opt.equal_range(name); a != b; ++a) v.push_back(a->second);
        return v;
    }
    // Refuses an option the command does not take, and a repeated one that is not a list.
    void only(const std::string& cmd, const std::set<std::string>& allowed, const std::set<std::string>& lists = {}) const {
        for (auto& [k, v] : opt) {
            if (!allowed.count(k)) throw UsageError(cmd + " does not take " + k);
            if (!lists.count(k) && opt.count(k) > 1) throw UsageError(k + " given twice");
        }
    }
};

const std::set<std::string> kBare = {"--all", "--no-scopes", "--no-limits", "--no-cidrs"};

// {"rate","period_seconds","burst"} from --rate/--period/--burst; nullopt without --rate.
std::optional<json> limits_from(const Args& a) {
    if (!a.has("--rate")) {
        if (a.has("--period") || a.has("--burst")) throw UsageError("--period and --burst go with --rate");
        return std::nullopt;
    }
    if (!a.has("--period"))
        throw UsageError("--rate needs --period SECONDS (the window the rate is counted over: --rate 100 --period 1)");
    return json{{"rate", integer("--rate", *a.one("--rate"))},
                {"period_seconds", integer("--period", *a.one("--period"))},
                {"burst", integer("--burst", a.one("--burst").value_or("0"))}};
}

json metadata_from(const std::string& text) {
    json m = json::parse(text, nullptr, false);
    if (m.is_discarded()) throw UsageError("--metadata needs a JSON object, e.g. '{\"team\":\"billing\"}'");
    return m;
}

std::string id_arg(const Args& a, const std::string& cmd) {
    if (a.pos.size() < 3) throw UsageError("keys " + cmd + " needs a key id (tronchctl keys list, or keys find PREFIX)");
    if (a.pos.size() > 3) throw UsageError("keys " + cmd + " takes one key id; unexpected '" + a.pos[3] + "'");
    return a.pos[2];
}

void print_key_shown_once(const json& k) {
    std::cout << "key: " << k["key"].get<std::string>()
              << "\n(the key is shown once; store it now, it cannot be retrieved again)\n";
}

// GET a cursor-paged list, following next_cursor with --all.
json pages(Client& c, const std::string& path, std::string q, const Args& a, json& next) {
    std::optional<std::string> cursor = a.one("--cursor");
    json items = json::array();
    for (;;) {
        std::string t = path + q;
        if (cursor) t += std::string(q.empty() ? "?" : "&") + "cursor=" + url_encode(*cursor);
        auto r = c.call("GET", t);
        if (r.status != 200) {
            fail(r);
            throw ClientError("");  // already reported
        }
        json page = json::parse(r.body);
        for (auto& k : page["data"]) items.push_back(k);
        next = page["next_cursor"];
        cursor = next.is_string() ? std::optional(next.get<std::string>()) : std::nullopt;
        if (!a.has("--all") || !cursor) return items;
    }
}

void print_list(const json& items, const json& next, bool keys) {
    if (g_json) {
        std::cout << json{{"data", items}, {"next_cursor", next}}.dump() << "\n";
        return;
    }
    if (keys) {
        key_table(items);
    } else {
        std::vector<std::vector<std::string>> rows;
        for (auto& e : items)
            rows.push_back({str(e["at"]), str(e["actor"]), str(e["action"]), str(e["key_id"]), str(e["request_id"])});
        table({"AT", "ACTOR", "ACTION", "KEY", "REQUEST"}, rows);
    }
    if (next.is_string()) std::cerr << "more: --cursor " << next.get<std::string>() << " (or --all)\n";
}

std::string query(const Args& a, const std::vector<std::pair<const char*, const char*>>& map) {
    std::string q;
    for (auto& [flag, param] : map)
        if (auto v = a.one(flag)) q += std::string(q.empty() ? "?" : "&") + param + "=" + url_encode(*v);
    return q;
}

int cmd_create(Client& c, const Args& a) {
    a.only("keys create", {"--env", "--name", "--owner", "--scope", "--cidr", "--expires-at", "--metadata", "--rate",
                           "--period", "--burst", "--idempotency-key"},
           {"--scope", "--cidr"});
    if (a.pos.size() > 2) throw UsageError("keys create takes no positional argument ('" + a.pos[2] + "')");
    auto env = a.one("--env");
    if (!env) throw UsageError("keys create needs --env live|test");
    json body = {{"environment", *env}};
    if (auto v = a.one("--name")) body["name"] = *v;
    if (auto v = a.one("--owner")) body["owner"] = *v;
    if (auto v = a.all("--scope"); !v.empty()) body["scopes"] = v;
    if (auto v = a.all("--cidr"); !v.empty()) body["allowed_cidrs"] = v;
    if (auto v = a.one("--expires-at")) body["expires_at"] = *v;
    if (auto v = a.one("--metadata")) body["metadata"] = metadata_from(*v);
    if (auto l = limits_from(a)) body["limits"] = *l;
    std::map<std::string, std::string> h;
    if (auto k = a.one("--idempotency-key")) h["Idempotency-Key"] = *k;
    auto r = c.call("POST", "/api/v1/keys", body.dump(), h);
    if (r.status != 201) return fail(r);
    if (g_json) { std::cout << r.body << "\n"; return 0; }
    json k = json::parse(r.body);
    show_key(k);
    std::cout << "\n";
    print_key_shown_once(k);
    return 0;
}

int cmd_list(Client& c, const Args& a) {
    a.only("keys list", {"--status", "--env", "--owner", "--prefix", "--expiring-within", "--limit", "--cursor", "--all"});
    if (a.pos.size() > 2) throw UsageError("keys list takes no positional argument ('" + a.pos[2] + "'); keys find PREFIX?");
    json next;
    json items = pages(c, "/api/v1/keys",
                       query(a, {{"--status", "status"}, {"--env", "environment"}, {"--owner", "owner"},
                                 {"--prefix", "prefix"}, {"--expiring-within", "expiring_within"}, {"--limit", "limit"}}),
                       a, next);
    print_list(items, next, true);
    return 0;
}

int cmd_find(Client& c, const Args& a) {
    a.only("keys find", {"--status", "--limit"});
    if (a.pos.size() != 3) throw UsageError("keys find takes one PREFIX (tronch_sk_live_AbCdEfGh) or a whole key");
    std::string p = a.pos[2];
    // A whole key is reduced to its prefix here: the secret never goes over the wire.
    if (parse_key(p).ok()) p = std::string(display_prefix(p));
    Args all = a;
    all.opt.emplace("--all", "1");
    all.opt.emplace("--prefix", p);
    json next;
    json items = pages(c, "/api/v1/keys", query(all, {{"--status", "status"}, {"--prefix", "prefix"}, {"--limit", "limit"}}),
                       all, next);
    print_list(items, next, true);
    if (!g_json && items.empty()) std::cerr << "no key has a prefix starting with " << terminal_safe(p) << "\n";
    return 0;
}

int cmd_update(Client& c, const Args& a) {
    a.only("keys update", {"--name", "--scope", "--no-scopes", "--rate", "--period", "--burst", "--no-limits", "--cidr",
                           "--no-cidrs", "--metadata", "--if-match"},
           {"--scope", "--cidr"});
    std::string id = id_arg(a, "update");
    json body = json::object();
    if (auto v = a.one("--name")) body["name"] = *v;
    if (a.has("--scope") && a.has("--no-scopes")) throw UsageError("--scope and --no-scopes exclude each other");
    if (a.has("--scope")) body["scopes"] = a.all("--scope");
    if (a.has("--no-scopes")) body["scopes"] = json::array();
    if (a.has("--cidr") && a.has("--no-cidrs")) throw UsageError("--cidr and --no-cidrs exclude each other");
    if (a.has("--cidr")) body["allowed_cidrs"] = a.all("--cidr");
    if (a.has("--no-cidrs")) body["allowed_cidrs"] = json::array();
    if (a.has("--rate") && a.has("--no-limits")) throw UsageError("--rate and --no-limits exclude each other");
    if (auto l = limits_from(a)) body["limits"] = *l;
    if (a.has("--no-limits")) body["limits"] = nullptr;
    if (auto v = a.one("--metadata")) body["metadata"] = metadata_from(*v);
    if (body.empty())
        throw UsageError("keys update needs something to change: --name, --scope/--no-scopes, --rate --period, "
                         "--no-limits, --cidr/--no-cidrs, --metadata");
    std::map<std::string, std::string> h;
    if (auto v = a.one("--if-match")) h["If-Match"] = v->front() == '"' ? *v : "\"" + *v + "\"";
    auto r = c.call("PATCH", "/api/v1/keys/" + id, body.dump(), h);
    if (r.status != 200) return fail(r);
    if (g_json) std::cout << r.body << "\n";
    else show_key(json::parse(r.body));
    return 0;
}

int cmd_audit(Client& c, const Args& a) {
    a.only("audit", {"--key-id", "--action", "--limit", "--cursor", "--all"});
    if (a.pos.size() > 1) throw UsageError("audit takes no positional argument ('" + a.pos[1] + "'); --key-id ID?");
    json next;
    json items = pages(c, "/api/v1/audit",
                       query(a, {{"--key-id", "key_id"}, {"--action", "action"}, {"--limit", "limit"}}), a, next);
    print_list(items, next, false);
    return 0;
}

int cmd_records_key(Client& c, const Args& a) {
    a.only("records-key", {});
    auto r = c.call("GET", "/api/v1/records-key");
    if (r.status != 200) return fail(r);
    if (g_json) { std::cout << r.body << "\n"; return 0; }
    json k = json::parse(r.body);
    std::cout << "# kid " << str(k["kid"]) << ", Ed25519, written by tronchd to " << str(k["public_key_path"]) << "\n"
              << k["public_key_pem"].get<std::string>();
    return 0;
}

int cmd_key(Client& c, const Args& a, const std::string& cmd) {
    std::map<std::string, std::string> h;
    if (cmd == "get") {
        a.only("keys get", {});
        auto r = c.call("GET", "/api/v1/keys/" + id_arg(a, cmd));
        if (r.status != 200) return fail(r);
        if (g_json) std::cout << r.body << "\n";
        else show_key(json::parse(r.body));
        return 0;
    }
    if (auto v = a.one("--if-match")) h["If-Match"] = v->front() == '"' ? *v : "\"" + *v + "\"";
    if (cmd == "rotate") {
        a.only("keys rotate", {"--grace", "--if-match", "--idempotency-key"});
        std::string id = id_arg(a, cmd);
        if (auto k = a.one("--idempotency-key")) h["Idempotency-Key"] = *k;
        json body = json::object();
        if (auto g = a.one("--grace")) body["grace_period_seconds"] = integer("--grace", *g);
        auto r = c.call("POST", "/api/v1/keys/" + id + "/rotate", body.dump(), h);
        if (r.status != 201) return fail(r);
        if (g_json) { std::cout << r.body << "\n"; return 0; }
        json k = json::parse(r.body);
        show_key(k);
        std::cout << "\nprevious key " << str(k["previous"]["id"]) << " is now " << str(k["previous"]["status"])
                  << " (until " << str(k["previous"]["expires_at"]) << ")\n";
        print_key_shown_once(k);
        return 0;
    }
    if (cmd == "revoke") {
        a.only("keys revoke", {"--if-match"});
        std::string id = id_arg(a, cmd);
        auto r = c.call("DELETE", "/api/v1/keys/" + id, "", h);
        if (r.status != 204) return fail(r);
        if (g_json) std::cout << json{{"id", id}, {"status", "revoked"}}.dump() << "\n";
        else std::cout << "revoked " << terminal_safe(id) << "\n";
        return 0;
    }
    // usage
    a.only("keys usage", {"--since", "--until"});
    std::string id = id_arg(a, cmd);
    auto r = c.call("GET", "/api/v1/keys/" + id + "/usage" + query(a, {{"--since", "since"}, {"--until", "until"}}));
    if (r.status != 200) return fail(r);
    if (g_json) { std::cout << r.body << "\n"; return 0; }
    json u = json::parse(r.body);
    std::vector<std::vector<std::string>> rows;
    for (auto& b : u["data"]) rows.push_back({str(b["bucket_start"]), str(b["requests"]), str(b["errors"])});
    table({"BUCKET", "REQUESTS", "ERRORS"}, rows);
    std::cout << "total: " << str(u["totals"]["requests"]) << " requests, " << str(u["totals"]["errors"])
              << " errors; last used " << str(u["last_used_at"]) << "\n";
    return 0;
}

Client client_for(const std::string& url, const std::string& token) {
    Client c;
    c.url = url;
    if (url.rfind("http://", 0) != 0) throw UsageError("only http:// URLs are supported ('" + url + "')");
    std::string rest = url.substr(7);
    auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    c.base = slash == std::string::npos ? "" : rest.substr(slash);
    while (!c.base.empty() && c.base.back() == '/') c.base.pop_back();
    auto colon = hostport.rfind(':');
    c.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
    c.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
    if (c.host.empty()) throw UsageError("no host in the URL '" + url + "'");
    c.token = token;
    return c;
}

int run(const std::vector<std::string>& args) {
    std::string url = std::getenv("TRONCH_API_URL") ? std::getenv("TRONCH_API_URL") : kDefaultUrl;
    std::string token = std::getenv("TRONCH_ADMIN_TOKEN") ? std::getenv("TRONCH_ADMIN_TOKEN") : "";
    Args a;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& s = args[i];
        if (s == "--json") g_json = true;
        else if (s == "--help" || s == "-h") { std::cout << kHelp; return 0; }
        else if (kBare.count(s)) a.opt.emplace(s, "1");
        else if (s.rfind("--", 0) == 0) {
            if (i + 1 >= args.size()) throw UsageError(s + " needs a value");
            if (s == "--url") url = args[++i];
            else if (s == "--token") token = args[++i];
            else a.opt.emplace(s, args[++i]);
        } else a.pos.push_back(s);
    }
    if (a.pos.empty()) throw UsageError("no command given");
    static const std::set<std::string> key_cmds = {"create", "list", "find", "get", "update", "rotate", "revoke", "usage"};
    const std::string& top = a.pos[0];
    if (top == "keys") {
        if (a.pos.size() < 2) throw UsageError("keys needs a command: create, list, find, get, update, rotate, revoke, usage");
        if (!key_cmds.count(a.pos[1])) throw UsageError("unknown command: keys " + a.pos[1]);
    } else if (top != "audit" && top != "records-key") {
        throw UsageError("unknown command: " + top);
    }
    if (top == "records-key" && a.pos.size() > 1) throw UsageError("records-key takes no argument");
    if (token.empty()) throw UsageError("no admin token: set TRONCH_ADMIN_TOKEN or --token (./run.sh: .run/env)");
    Client c = client_for(url, token);
    if (top == "audit") return cmd_audit(c, a);
    if (top == "records-key") return cmd_records_key(c, a);
    const std::string& cmd = a.pos[1];
    if (cmd == "create") return cmd_create(c, a);
    if (cmd == "list") return cmd_list(c, a);
    if (cmd == "find") return cmd_find(c, a);
    if (cmd == "update") return cmd_update(c, a);
    return cmd_key(c, a, cmd);
}

}  // namespace

int cli_main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        return run(args);
    } catch (const UsageError& e) {
        return fail_local("usage", e.what(), 2);
    } catch (const ClientError& e) {
        if (!*e.what()) return 1;  // already reported
        return fail_local("unreachable", e.what(), 1);
    } catch (const std::exception& e) {
        return fail_local("client_error", e.what(), 1);
    }
}

}  // namespace tronch::cp
