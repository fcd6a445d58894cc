// Micro-benchmarks of the request-path pieces of libtronch_core and of the module's C bridge.
// The shm cache (ngx_http_tronch_cache.c) is nginx C code over ngx_slab/rbtree and an nginx
// shm zone: it cannot be linked standalone, so it is not measured here (see bench/RESULTS.md).
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include "tronch/gcra.hpp"
#include "tronch/key_format.hpp"
#include "tronch/key_hash.hpp"
#include "tronch/key_record.hpp"
#include "tronch/record_signing.hpp"
#ifdef TRONCH_MICRO_BRIDGE
#include "tronch_bridge.h"
#endif

namespace {

const std::string& valid_key() {
    static const std::string key = tronch::generate_key(tronch::Environment::live);
    return key;
}

std::string malformed_key() {
    std::string k = valid_key();
    k.back() = k.back() == 'A' ? 'B' : 'A';  // checksum no longer matches
    return k;
}

const std::string& record_json() {
    static const std::string json = [] {
        tronch::KeyRecord r;
        r.id = "0f8b6c1e-3a57-4d2b-9a3e-2f4c5d6e7f80";
        r.name = "bench";
        r.owner = "bench";
        r.prefix = std::string(tronch::display_prefix(valid_key()));
        r.limit = tronch::RateLimit{};
        r.limit->rate = 100;
        r.limit->period_seconds = 1;
        r.limit->burst = 20;
        r.scopes = {"read", "write"};
        return tronch::encode_key_record(r);
    }();
    return json;
}

void BM_parse_key_valid(benchmark::State& st) {
    const std::string& k = valid_key();
    for (auto _ : st) benchmark::DoNotOptimize(tronch::parse_key(k));
}
BENCHMARK(BM_parse_key_valid);

void BM_parse_key_malformed(benchmark::State& st) {
    const std::string k = malformed_key();
    for (auto _ : st) benchmark::DoNotOptimize(tronch::parse_key(k));
}
BENCHMARK(BM_parse_key_malformed);

void BM_key_hash_hex(benchmark::State& st) {
    const std::string& k = valid_key();
    char hex[tronch::kSha256HexLength];
    for (auto _ : st) {
        benchmark::DoNotOptimize(tronch::key_hash_hex(k, hex));
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_key_hash_hex);

void BM_gcra_check(benchmark::State& st) {
    tronch::GcraLimit limit;
    limit.rate = 100;
    limit.period_us = 1'000'000;
    limit.burst = 20;
    std::int64_t tat = 0, now = 1'700'000'000'000'000;
    for (auto _ : st) {
        auto d = tronch::gcra_check(tat, now, limit);
        tat = d.allowed ? d.new_tat_us : tat;
        now += 10'000;
        benchmark::DoNotOptimize(d);
    }
}
BENCHMARK(BM_gcra_check);

void BM_decode_key_record(benchmark::State& st) {
    const std::string& json = record_json();
    for (auto _ : st) {
        tronch::KeyRecord r;
        benchmark::DoNotOptimize(tronch::decode_key_record(json, r));
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * json.size()));
}
BENCHMARK(BM_decode_key_record);

void BM_encode_key_record(benchmark::State& st) {  // tronchd, once per key change (the Redis record)
    tronch::KeyRecord r;
    if (tronch::decode_key_record(record_json(), r).ok) {
        for (auto _ : st) benchmark::DoNotOptimize(tronch::encode_key_record(r));
    } else {
        st.SkipWithError("record_json() does not decode");
    }
}
BENCHMARK(BM_encode_key_record);

// Signed records (record_signing.hpp): tronchd signs once per write; a gateway verifies on a miss.
struct SignedRecord {
    tronch::signing::Pkey key = tronch::signing::generate_key();
    std::string kid = tronch::signing::key_id(key.get());
    std::string hash = tronch::key_hash_hex(valid_key());
    std::string envelope = tronch::signing::sign_record(key.get(), kid, hash, 7, 4'000'000'000, record_json());
};

const SignedRecord& signed_record() {
    static const SignedRecord s;
    return s;
}

void BM_sign_record(benchmark::State& st) {  // tronchd, once per write and per re-sign
    const SignedRecord& s = signed_record();
    for (auto _ : st)
        benchmark::DoNotOptimize(tronch::signing::sign_record(s.key.get(), s.kid, s.hash, 7, 4'000'000'000, record_json()));
}
BENCHMARK(BM_sign_record);

void BM_verify_record(benchmark::State& st) {  // envelope decode + Ed25519 verify, no record decode
    const SignedRecord& s = signed_record();
    tronch::signing::Verifier v;
    std::string err;
    if (!v.add(tronch::signing::public_key_pem(s.key.get()), err)) st.SkipWithError(err.c_str());
    for (auto _ : st) {
        tronch::signing::Envelope e;
        benchmark::DoNotOptimize(tronch::signing::decode_envelope(s.envelope, e, err));
        benchmark::DoNotOptimize(v.verify(e));
    }
}
BENCHMARK(BM_verify_record);

#ifdef TRONCH_MICRO_BRIDGE
void BM_bridge_parse_key(benchmark::State& st) {  // format check + SHA-256, as on every request
    const std::string& k = valid_key();
    int env;
    uint8_t digest[TRONCH_DIGEST_LEN];
    for (auto _ : st) {
        benchmark::DoNotOptimize(tronch_bridge_parse_key(k.data(), k.size(), &env, digest));
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_bridge_parse_key);

void BM_bridge_parse_key_malformed(benchmark::State& st) {
    const std::string k = malformed_key();
    int env;
    uint8_t digest[TRONCH_DIGEST_LEN];
    for (auto _ : st) benchmark::DoNotOptimize(tronch_bridge_parse_key(k.data(), k.size(), &env, digest));
}
BENCHMARK(BM_bridge_parse_key_malformed);

void BM_bridge_decode_record(benchmark::State& st) {  // on every cache miss answered by Redis
    const std::string& json = record_json();
    tronch_record_t rec;
    char err[128];
    for (auto _ : st) benchmark::DoNotOptimize(tronch_bridge_decode_record(json.data(), json.size(), &rec, err, sizeof err));
}
BENCHMARK(BM_bridge_decode_record);

void BM_bridge_decode_signed_record(benchmark::State& st) {  // a miss with tronch_record_key: all of it
    const SignedRecord& s = signed_record();
    std::string pem = tronch::signing::public_key_pem(s.key.get());
    char kid[32], err[128];
    void* key = nullptr;
    if (tronch_bridge_record_key_load(pem.data(), pem.size(), &key, kid, sizeof kid, err, sizeof err) != TRONCH_OK || tronch_bridge_record_keys_use(&key, 1) != 0) st.SkipWithError("no record key");
    tronch_record_t rec;
    for (auto _ : st) {
        benchmark::DoNotOptimize(
            tronch_bridge_decode_record(s.envelope.data(), s.envelope.size(), &rec, err, sizeof err));
        if (rec.rejected) st.SkipWithError("rejected");
    }
    tronch_bridge_record_keys_use(nullptr, 0);
    tronch_bridge_record_key_free(key);
}
BENCHMARK(BM_bridge_decode_signed_record);

void BM_bridge_redis_key(benchmark::State& st) {
    uint8_t digest[TRONCH_DIGEST_LEN];
    std::memset(digest, 0xab, sizeof digest);
    char out[TRONCH_REDIS_KEY_MAX];
    std::size_t len = 0;
    for (auto _ : st) benchmark::DoNotOptimize(tronch_bridge_redis_key(digest, out, sizeof out, &len));
}
BENCHMARK(BM_bridge_redis_key);
#endif

}  // namespace

BENCHMARK_MAIN();
