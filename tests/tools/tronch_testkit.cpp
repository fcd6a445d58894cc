// tronch_testkit: keys, records, Redis names and events made by the core library itself, for
// the black-box tests (which then SET/PUBLISH them with python3-redis).
//
//   tronch_testkit key live|test            -> "<key> <sha256hex>"
//   tronch_testkit hash <key>               -> "<sha256hex>"
//   tronch_testkit record --id <uuid> [--key <key> | --prefix <p>] [--env live|test]
//                  [--status active|rotating|revoked|expired] [--expires-at <unix s>]
//                  [--cidr <cidr>]... [--rate N --period S [--burst B]] [--scope S]...
//                                           -> record JSON
//   tronch_testkit redis-key <sha256hex>    -> "tronch:key:{...}"
//   tronch_testkit event <sha256hex> <id>   -> key.changed event JSON
//   tronch_testkit event --rebuilt          -> mirror.rebuilt event JSON
//   tronch_testkit names                    -> "<mirror epoch key> <events channel>"
//   tronch_testkit gcra <rate> <period s> <burst> <n>
//                                           -> the headers of n requests at one instant:
//      line 1: "<RateLimit-Policy> <X-RateLimit-Limit>"
//      then per request: "<allowed 0|1> <RateLimit> <Remaining> <Reset> <Retry-After or ->"
//   tronch_testkit gcra-script              -> the Redis GCRA Lua script
//   tronch_testkit gcra-seq <rate> <period s> <burst> <now us>...
//      line 1: "<interval us> <capacity>", then per check: "<allowed> <remaining> <retry us> <reset us>"
//   tronch_testkit lease-script             -> the Redis lease Lua script
//   tronch_testkit lease-seq <rate> <period s> <burst> <want>@<now us>...
//      line 1: "<interval us> <capacity>", then per lease: "<granted> <remaining> <retry us>
//      <reset us> <wait us>" (gcra_lease from one shared state)
//   tronch_testkit bulk <n> live|test [<signing key>]
//                                           -> n lines "<key> <redis key name> <record JSON>" (bench/run);
//                                              with a signing key, the signed envelope instead
//   tronch_testkit signing-key <path>       -> writes an Ed25519 private key (0600) at path and its
//                                              public key beside it (x.key -> x.pub); prints the key id
//   tronch_testkit sign <signing key> <sha256hex> <version> <valid until>
//                                           -> the signed envelope of the record JSON read on stdin
#include <sys/stat.h>

#include <stdexcept>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "tronch/cidr.hpp"
#include "tronch/key_format.hpp"
#include "tronch/key_hash.hpp"
#include "tronch/key_record.hpp"
#include "tronch/lease.hpp"
#include "tronch/rate_limit.hpp"
#include "tronch/record_signing.hpp"
#include "tronch/redis_keys.hpp"

namespace {

int usage() {
    std::cerr << "usage: tronch_testkit key live|test | hash <key> | record [options] | "
                 "redis-key <hash> | event <hash> <id> | event --rebuilt | names | bulk <n> live|test\n";
    return 2;
}

int fail(const std::string& message) {
    std::cerr << "tronch_testkit: " << message << "\n";
    return 1;
}

int make_record(const std::vector<std::string_view>& args) {
    tronch::KeyRecord record;
    record.name = "testkit";
    record.owner = "tests";
    std::optional<tronch::RateLimit> limit;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view opt = args[i];
        if (i + 1 >= args.size()) return fail("missing value for " + std::string(opt));
        std::string_view val = args[++i];
        if (opt == "--id") {
            record.id = std::string(val);
        } else if (opt == "--key") {
            record.prefix = std::string(tronch::display_prefix(val));
            tronch::ParsedKey parsed = tronch::parse_key(val);
            if (!parsed.ok()) return fail("malformed key");
            record.environment = parsed.environment;
        } else if (opt == "--prefix") {
            record.prefix = std::string(val);
        } else if (opt == "--env") {
            if (!tronch::parse_environment(val, record.environment)) return fail("bad env");
        } else if (opt == "--status") {
            if (!tronch::parse_status(val, record.status)) return fail("bad status");
        } else if (opt == "--expires-at") {
            record.expires_at = std::stoll(std::string(val));
        } else if (opt == "--cidr") {
            tronch::Cidr cidr;
            if (!tronch::Cidr::parse(val, cidr)) return fail("bad cidr");
            record.allowed_cidrs.push_back(cidr);
        } else if (opt == "--rate") {
            if (!limit) limit.emplace();
            limit->rate = std::stoll(std::string(val));
        } else if (opt == "--period") {
            if (!limit) limit.emplace();
            limit->period_seconds = std::stoll(std::string(val));
        } else if (opt == "--burst") {
            if (!limit) limit.emplace();
            limit->burst = std::stoll(std::string(val));
        } else if (opt == "--scope") {
            record.scopes.emplace_back(val);
        } else if (opt == "--name") {
            record.name = std::string(val);
        } else {
            return fail("unknown option " + std::string(opt));
        }
    }
    record.limit = limit;
    std::cout << tronch::encode_key_record(record) << "\n";
    return 0;
}

std::string read_all(std::istream& in) { return std::string(std::istreambuf_iterator<char>(in), {}); }

tronch::signing::Pkey load_signing_key(std::string_view path) {
    std::ifstream in{std::string(path)};
    std::string error;
    auto key = tronch::signing::load_private_key(read_all(in), error);
    if (!key) throw std::runtime_error(std::string(path) + ": " + error);
    return key;
}

int make_signing_key(const std::string& path) {
    auto key = tronch::signing::generate_key();
    std::string pub = path.ends_with(".key") ? path.substr(0, path.size() - 4) + ".pub" : path + ".pub";
    std::ofstream(path) << tronch::signing::private_key_pem(key.get());
    ::chmod(path.c_str(), 0600);
    std::ofstream(pub) << tronch::signing::public_key_pem(key.get());
    std::cout << tronch::signing::key_id(key.get()) << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) try {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.empty()) return usage();
    std::string_view cmd = args[0];
    if (cmd == "key" && args.size() == 2) {
        tronch::Environment env;
        if (!tronch::parse_environment(args[1], env)) return fail("env must be live or test");
        std::string key = tronch::generate_key(env);
        std::cout << key << " " << tronch::key_hash_hex(key) << "\n";
        return 0;
    }
    if (cmd == "hash" && args.size() == 2) {
        std::cout << tronch::key_hash_hex(args[1]) << "\n";
        return 0;
    }
    if (cmd == "record") {
        return make_record(std::vector<std::string_view>(args.begin() + 1, args.end()));
    }
    if (cmd == "redis-key" && args.size() == 2) {
        std::cout << tronch::redis_keys::key_record(args[1]) << "\n";
        return 0;
    }
    if (cmd == "event" && args.size() == 2 && args[1] == "--rebuilt") {
        tronch::redis_keys::Event event;
        event.type = tronch::redis_keys::EventType::mirror_rebuilt;
        std::cout << tronch::redis_keys::event_json(event) << "\n";
        return 0;
    }
    if (cmd == "event" && args.size() == 3) {
        tronch::redis_keys::Event event;
        event.type = tronch::redis_keys::EventType::key_changed;
        event.key_hash = std::string(args[1]);
        event.id = std::string(args[2]);
        std::cout << tronch::redis_keys::event_json(event) << "\n";
        return 0;
    }
    if (cmd == "signing-key" && args.size() == 2) return make_signing_key(std::string(args[1]));
    if (cmd == "sign" && args.size() == 5) {
        auto key = load_signing_key(args[1]);
        std::string record = read_all(std::cin);
        while (!record.empty() && record.back() == '\n') record.pop_back();
        std::cout << tronch::signing::sign_record(key.get(), tronch::signing::key_id(key.get()), args[2],
                                                  std::stoll(std::string(args[3])), std::stoll(std::string(args[4])),
                                                  record)
                  << "\n";
        return 0;
    }
    if (cmd == "bulk" && (args.size() == 3 || args.size() == 4)) {  // N keys: "<key> <redis key name> <record json>" per line
        tronch::signing::Pkey signer;
        if (args.size() == 4) signer = load_signing_key(args[3]);
        std::string kid = signer ? tronch::signing::key_id(signer.get()) : "";
        tronch::Environment env;
        if (!tronch::parse_environment(args[2], env)) return fail("env must be live or test");
        long n = std::stol(std::string(args[1]));
        for (long i = 0; i < n; ++i) {
            std::string key = tronch::generate_key(env);
            tronch::KeyRecord record;
            char id[48];  // room for any long, so the format cannot truncate
            std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012ld", i);
            record.id = id;
            record.name = "bench";
            record.owner = "bench";
            record.prefix = std::string(tronch::display_prefix(key));
            record.environment = env;
            record.status = tronch::KeyStatus::active;
            std::string hash = tronch::key_hash_hex(key);
            std::string json = tronch::encode_key_record(record);
            if (signer) json = tronch::signing::sign_record(signer.get(), kid, hash, 1, 4'000'000'000, json);
            std::cout << key << " " << tronch::redis_keys::key_record(hash) << " " << json << "\n";
        }
        return 0;
    }
    if (cmd == "names" && args.size() == 1) {
        std::cout << tronch::redis_keys::kMirrorEpoch << " " << tronch::redis_keys::kEventsChannel << "\n";
        return 0;
    }
    if (cmd == "gcra-script" && args.size() == 1) {
        std::cout << tronch::kGcraLuaScript;
        return 0;
    }
    if (cmd == "lease-script" && args.size() == 1) {
        std::cout << tronch::kGcraLeaseLuaScript;
        return 0;
    }
    if (cmd == "lease-seq" && args.size() >= 5) {
        tronch::GcraLimit limit;
        limit.rate = std::stoll(std::string(args[1]));
        limit.period_us = std::stoll(std::string(args[2])) * 1'000'000;
        limit.burst = std::stoll(std::string(args[3]));
        if (!limit.valid()) return fail("invalid limit");
        std::cout << limit.emission_interval_us() << " " << limit.capacity() << "\n";
        std::int64_t tat = 0;
        for (std::size_t i = 4; i < args.size(); ++i) {
            const std::string arg(args[i]);
            const std::size_t at = arg.find('@');
            if (at == std::string::npos) return fail("lease-seq: expected <want>@<now us>");
            tronch::LeaseGrant g =
                tronch::gcra_lease(tat, std::stoll(arg.substr(at + 1)), limit, std::stoll(arg.substr(0, at)));
            tat = g.new_tat_us;
            std::cout << g.granted << " " << g.remaining << " " << g.retry_after_us << " " << g.reset_after_us
                      << " " << g.wait_us << "\n";
        }
        return 0;
    }
    if (cmd == "gcra-seq" && args.size() >= 5) {
        tronch::GcraLimit limit;
        limit.rate = std::stoll(std::string(args[1]));
        limit.period_us = std::stoll(std::string(args[2])) * 1'000'000;
        limit.burst = std::stoll(std::string(args[3]));
        if (!limit.valid()) return fail("invalid limit");
        std::cout << limit.emission_interval_us() << " " << limit.capacity() << "\n";
        std::int64_t tat = 0;
        for (std::size_t i = 4; i < args.size(); ++i) {
            tronch::GcraDecision d = tronch::gcra_check(tat, std::stoll(std::string(args[i])), limit);
            if (d.allowed) tat = d.new_tat_us;
            std::cout << (d.allowed ? 1 : 0) << " " << d.remaining << " " << d.retry_after_us << " "
                      << d.reset_after_us << "\n";
        }
        return 0;
    }
    if (cmd == "gcra" && args.size() == 5) {
        tronch::GcraLimit limit;
        limit.rate = std::stoll(std::string(args[1]));
        limit.period_us = std::stoll(std::string(args[2])) * 1'000'000;
        limit.burst = std::stoll(std::string(args[3]));
        const long long n = std::stoll(std::string(args[4]));
        if (!limit.valid()) return fail("invalid limit");
        char buf[96];
        std::cout << std::string(buf, tronch::format_ratelimit_policy(limit, buf, sizeof buf)) << " "
                  << limit.capacity() << "\n";
        const std::int64_t now = 1'700'000'000'000'000;
        std::int64_t tat = 0;
        for (long long i = 0; i < n; ++i) {
            tronch::GcraDecision d = tronch::gcra_check(tat, now, limit);
            if (d.allowed) tat = d.new_tat_us;
            std::cout << (d.allowed ? 1 : 0) << " "
                      << std::string(buf, tronch::format_ratelimit(d, buf, sizeof buf)) << " " << d.remaining
                      << " " << tronch::ceil_seconds(d.reset_after_us) << " ";
            if (d.allowed) std::cout << "-\n"; else std::cout << tronch::retry_after_seconds(d) << "\n";
        }
        return 0;
    }
    return usage();
} catch (const std::exception& e) {
    return fail(e.what());
}
