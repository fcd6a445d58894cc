// The C++ side of tronch_bridge.h: thin wrappers over libtronch_core.
// Every entry point is noexcept and catches everything: no exception reaches nginx.
#include "tronch_bridge.h"
#include "tronch_bridge_internal.hpp"

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "tronch/cidr.hpp"
#include "tronch/errors.hpp"
#include "tronch/key_format.hpp"
#include "tronch/key_hash.hpp"
#include "tronch/key_mask.hpp"
#include "tronch/key_record.hpp"
#include "tronch/rate_limit.hpp"
#include "tronch/record_signing.hpp"
#include "tronch/redis_keys.hpp"

// Every constant tronch_bridge.h shares with the core, checked here (the C side cannot see C++).
namespace {
template <typename E>
constexpr int as_int(E e) { return static_cast<int>(e); }
}  // namespace

static_assert(sizeof(tronch_cidr_t) == sizeof(tronch::Cidr), "tronch_cidr_t mirrors tronch::Cidr");
static_assert(TRONCH_DIGEST_LEN == tronch::kSha256Bytes);
static_assert(TRONCH_KEY_LEN == tronch::kKeyLength);
static_assert(TRONCH_HEX_LEN == tronch::kSha256HexLength);
static_assert(TRONCH_MAX_CIDRS == tronch::kMaxCidrs);
static_assert(TRONCH_PREFIX_MAX > tronch::kDisplayPrefixLength);
static_assert(TRONCH_REDIS_KEY_MAX > tronch::redis_keys::kKeyRecordPrefix.size() + TRONCH_HEX_LEN + 1);
static_assert(TRONCH_ENV_LIVE == as_int(tronch::Environment::live));
static_assert(TRONCH_ENV_TEST == as_int(tronch::Environment::test));
static_assert(TRONCH_STATUS_ACTIVE == as_int(tronch::KeyStatus::active));
static_assert(TRONCH_STATUS_ROTATING == as_int(tronch::KeyStatus::rotating));
static_assert(TRONCH_STATUS_REVOKED == as_int(tronch::KeyStatus::revoked));
static_assert(TRONCH_STATUS_EXPIRED == as_int(tronch::KeyStatus::expired));
static_assert(TRONCH_RESULT_OK == as_int(tronch::AuthResult::ok));
static_assert(TRONCH_RESULT_MISSING_KEY == as_int(tronch::AuthResult::missing_key));
static_assert(TRONCH_RESULT_MALFORMED_KEY == as_int(tronch::AuthResult::malformed_key));
static_assert(TRONCH_RESULT_UNKNOWN_KEY == as_int(tronch::AuthResult::unknown_key));
static_assert(TRONCH_RESULT_REVOKED_KEY == as_int(tronch::AuthResult::revoked_key));
static_assert(TRONCH_RESULT_EXPIRED_KEY == as_int(tronch::AuthResult::expired_key));
static_assert(TRONCH_RESULT_WRONG_ENVIRONMENT == as_int(tronch::AuthResult::wrong_environment));
static_assert(TRONCH_RESULT_ADDRESS_NOT_ALLOWED == as_int(tronch::AuthResult::address_not_allowed));
static_assert(TRONCH_RESULT_HTTPS_REQUIRED == as_int(tronch::AuthResult::https_required));
static_assert(TRONCH_RESULT_AUTH_UNAVAILABLE == as_int(tronch::AuthResult::auth_unavailable));
static_assert(TRONCH_RESULT_RATE_LIMITED == as_int(tronch::AuthResult::rate_limited));
static_assert(TRONCH_RESULT_AMBIGUOUS_CREDENTIALS == as_int(tronch::AuthResult::ambiguous_credentials));
static_assert(TRONCH_RESULT_COUNT == as_int(tronch::AuthResult::count_));
static_assert(TRONCH_EVENT_KEY_CHANGED == as_int(tronch::redis_keys::EventType::key_changed));
static_assert(TRONCH_EVENT_MIRROR_REBUILT == as_int(tronch::redis_keys::EventType::mirror_rebuilt));
static_assert(TRONCH_USAGE_REQUESTS == static_cast<char>(tronch::redis_keys::UsageCounter::requests));
static_assert(TRONCH_USAGE_ERRORS == static_cast<char>(tronch::redis_keys::UsageCounter::errors));
static_assert(TRONCH_USAGE_LAST_USED == static_cast<char>(tronch::redis_keys::UsageCounter::last_used));
static_assert(TRONCH_USAGE_BUCKET_SECONDS == tronch::redis_keys::kUsageBucketSeconds);

namespace {

void copy_text(std::string_view from, char* to, std::size_t capacity) noexcept {
    std::size_t n = from.size() < capacity - 1 ? from.size() : capacity - 1;
    std::memcpy(to, from.data(), n);
    to[n] = '\0';
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool valid_result(int result) noexcept { return result >= 0 && result < TRONCH_RESULT_COUNT; }

// A Redis name into out, NUL terminated, its length into len.
int copy_name(const std::string& name, char* out, std::size_t out_len, std::size_t* len) noexcept {
    if (name.size() + 1 > out_len) return TRONCH_ESPACE;
    std::memcpy(out, name.c_str(), name.size() + 1);
    *len = name.size();
    return TRONCH_OK;
}

// The record keys this process verifies against (tronch_bridge_record_keys_use); never freed at exit.
tronch::signing::Verifier* g_verifier = nullptr;

// A plain record JSON into out (the fields the envelope adds are left alone).
int decode_plain(std::string_view json, tronch_record_t* out, char* err, std::size_t err_len) noexcept {
    try {
        tronch::KeyRecord record;
        tronch::DecodeResult result = tronch::decode_key_record(json, record);
        if (!result.ok) {
            if (err && err_len) copy_text(result.error, err, err_len);
            return TRONCH_EINVAL;
        }
        if (record.id.size() >= TRONCH_ID_MAX || record.prefix.size() >= TRONCH_PREFIX_MAX ||
            record.allowed_cidrs.size() > TRONCH_MAX_CIDRS) {
            if (err && err_len) copy_text("record field too long for the gateway", err, err_len);
            return TRONCH_EINVAL;
        }
        copy_text(record.id, out->id, sizeof(out->id));
        copy_text(record.prefix, out->prefix, sizeof(out->prefix));
        out->env = static_cast<uint8_t>(record.environment);
        out->status = static_cast<uint8_t>(record.status);
        if (record.expires_at) {
            out->has_expires = 1;
            out->expires_at = *record.expires_at;
        }
        if (record.limit) {
            out->has_limit = 1;
            out->limit_rate = record.limit->rate;
            out->limit_period = record.limit->period_seconds;
            out->limit_burst = record.limit->burst;
        }
        out->ncidrs = static_cast<uint8_t>(record.allowed_cidrs.size());
        for (std::size_t i = 0; i < record.allowed_cidrs.size(); ++i) {
            const tronch::Cidr& c = record.allowed_cidrs[i];
            out->cidrs[i].family = c.family;
            out->cidrs[i].prefix_length = c.prefix_length;
            std::memcpy(out->cidrs[i].address, c.address, sizeof(c.address));
        }
        return TRONCH_OK;
    } catch (...) {
        if (err && err_len) copy_text("internal error decoding the record", err, err_len);
        return TRONCH_EINTERNAL;
    }
}

}  // namespace

extern "C" {

int tronch_bridge_parse_key(const char* key, std::size_t len, int* env, uint8_t digest[TRONCH_DIGEST_LEN]) noexcept {
    try {
        std::string_view text(key, len);
        tronch::ParsedKey parsed = tronch::parse_key(text);
        if (!parsed.ok()) return TRONCH_EINVAL;
        tronch::Sha256Digest d;
        if (!tronch::sha256(text, d)) return TRONCH_EINTERNAL;
        std::memcpy(digest, d.data(), d.size());
        *env = static_cast<int>(parsed.environment);
        return TRONCH_OK;
    } catch (...) {
        return TRONCH_EINTERNAL;
    }
}

int tronch_bridge_decode_record(const char* json, std::size_t len, tronch_record_t* out, char* err,
                                std::size_t err_len) noexcept {
    try {
        namespace sg = tronch::signing;
        std::memset(out, 0, sizeof(*out));
        std::string_view text(json, len);
        const bool verify = g_verifier != nullptr && !g_verifier->empty();
        // with keys in use nothing Redis holds is an error (that would be "Redis failed", and
        // tronch_failure_mode open would pass it): it is a rejected record, refused as unknown
        auto reject = [&](int reason) {
            std::memset(out, 0, sizeof(*out));
            out->rejected = static_cast<uint8_t>(reason);
            return TRONCH_OK;
        };
        sg::Envelope envelope;
        std::string error;
        bool not_envelope = false;
        if (!sg::decode_envelope(text, envelope, error, not_envelope)) {  // one JSON parse either way
            if (not_envelope) {
                if (verify) return reject(TRONCH_REJECT_UNSIGNED);
                return decode_plain(text, out, err, err_len);
            }
            if (verify) return reject(TRONCH_REJECT_MALFORMED);
            if (err && err_len) copy_text(error, err, err_len);
            return TRONCH_EINVAL;
        }
        if (verify) {
            sg::Verdict verdict = g_verifier->verify(envelope);
            if (verdict == sg::Verdict::unknown_kid) return reject(TRONCH_REJECT_UNKNOWN_KID);
            if (verdict != sg::Verdict::ok) return reject(TRONCH_REJECT_BAD_SIGNATURE);
        }
        if (decode_plain(envelope.record, out, err, err_len) != 0) {
            return verify ? reject(TRONCH_REJECT_MALFORMED) : TRONCH_EINVAL;
        }
        out->signature_ok = verify ? 1 : 0;
        out->version = envelope.version;
        out->valid_until = envelope.valid_until;
        for (std::size_t i = 0; i < TRONCH_DIGEST_LEN; ++i)
            out->signed_digest[i] = static_cast<uint8_t>(hex_value(envelope.key_hash[2 * i]) << 4 |
                                                         hex_value(envelope.key_hash[2 * i + 1]));
        return TRONCH_OK;
    } catch (...) {
        if (err && err_len) copy_text("internal error decoding the record", err, err_len);
        return TRONCH_EINTERNAL;
    }
}

int tronch_bridge_record_key_load(const char* pem, std::size_t len, void** out, char* kid, std::size_t kid_len,
                                  char* err, std::size_t err_len) noexcept {
    *out = nullptr;
    try {
        std::string error;
        tronch::signing::Pkey key = tronch::signing::load_public_key(std::string_view(pem, len), error);
        std::string id = key ? tronch::signing::key_id(key.get()) : std::string();
        if (!key || id.empty() || kid_len <= id.size()) {
            if (err && err_len) copy_text(key ? "cannot derive the key id" : error, err, err_len);
            return TRONCH_EINVAL;
        }
        copy_text(id, kid, kid_len);
        *out = key.release();
        return TRONCH_OK;
    } catch (...) {
        if (err && err_len) copy_text("internal error loading the key", err, err_len);
        return TRONCH_EINTERNAL;
    }
}

void tronch_bridge_record_key_free(void* key) noexcept { EVP_PKEY_free(static_cast<EVP_PKEY*>(key)); }

int tronch_bridge_record_keys_use(void* const* keys, std::size_t n) noexcept {
    try {
        auto next = std::make_unique<tronch::signing::Verifier>();
        for (std::size_t i = 0; i < n; ++i) {
            auto* key = static_cast<EVP_PKEY*>(keys[i]);
            if (EVP_PKEY_up_ref(key) != 1) return TRONCH_EINTERNAL;
            tronch::signing::Pkey owned(key);
            std::string kid = tronch::signing::key_id(key);
            next->add(std::move(owned), std::move(kid));
        }
        delete g_verifier;
        g_verifier = next.release();
        return TRONCH_OK;
    } catch (...) {
        return TRONCH_EINTERNAL;
    }
}

std::size_t tronch_bridge_record_keys_in_use(void) noexcept { return g_verifier ? g_verifier->size() : 0; }

int tronch_bridge_record_check(const tronch_record_t* rec, const uint8_t digest[TRONCH_DIGEST_LEN],
                               int64_t seen_version, int64_t now) noexcept {
    if (rec->rejected) return rec->rejected;
    if (!rec->signature_ok) return TRONCH_REJECT_NONE;  // no keys in use: nothing was verified
    // not secret (the hash is the Redis name), so a plain compare
    if (std::memcmp(rec->signed_digest, digest, TRONCH_DIGEST_LEN) != 0) return TRONCH_REJECT_WRONG_KEY;
    if (rec->version < seen_version) return TRONCH_REJECT_OLD_VERSION;
    if (rec->valid_until <= now) return TRONCH_REJECT_LAPSED;
    return TRONCH_REJECT_NONE;
}

const char* tronch_bridge_reject_reason(int reason) noexcept {
    switch (reason) {
        case TRONCH_REJECT_UNSIGNED: return "not signed";
        case TRONCH_REJECT_MALFORMED: return "malformed signed record";
        case TRONCH_REJECT_UNKNOWN_KID: return "signed by a key not configured in tronch_record_key";
        case TRONCH_REJECT_BAD_SIGNATURE: return "bad signature";
        case TRONCH_REJECT_WRONG_KEY: return "signed for another key hash";
        case TRONCH_REJECT_OLD_VERSION: return "older than a version already seen (replay)";
        case TRONCH_REJECT_LAPSED: return "signature validity ended";
        default: return "not rejected";
    }
}

int tronch_bridge_parse_event(const char* json, std::size_t len, int* type,
                              uint8_t digest[TRONCH_DIGEST_LEN]) noexcept {
    try {
        tronch::redis_keys::Event event;
        if (!tronch::redis_keys::parse_event(std::string_view(json, len), event)) return TRONCH_EINVAL;
        if (event.type == tronch::redis_keys::EventType::mirror_rebuilt) {
            *type = TRONCH_EVENT_MIRROR_REBUILT;
            return TRONCH_OK;
        }
        if (event.key_hash.size() != TRONCH_HEX_LEN) return TRONCH_EINVAL;
        for (std::size_t i = 0; i < TRONCH_DIGEST_LEN; ++i) {
            int hi = hex_value(event.key_hash[2 * i]);
            int lo = hex_value(event.key_hash[2 * i + 1]);
            if (hi < 0 || lo < 0) return TRONCH_EINVAL;
            digest[i] = static_cast<uint8_t>(hi << 4 | lo);
        }
        *type = TRONCH_EVENT_KEY_CHANGED;
        return TRONCH_OK;
    } catch (...) {
        return TRONCH_EINVAL;
    }
}

int tronch_bridge_cidr_match(const tronch_cidr_t* cidr, int family, const uint8_t* address) noexcept {
    try {
        tronch::Cidr c;
        c.family = cidr->family;
        c.prefix_length = cidr->prefix_length;
        std::memcpy(c.address, cidr->address, sizeof(c.address));
        return c.contains(family, address) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

int tronch_bridge_redis_key(const uint8_t digest[TRONCH_DIGEST_LEN], char* out, std::size_t out_len,
                            std::size_t* len) noexcept {
    try {
        char hex[TRONCH_HEX_LEN];
        tronch::hex_encode(digest, TRONCH_DIGEST_LEN, hex);
        return copy_name(tronch::redis_keys::key_record(std::string_view(hex, TRONCH_HEX_LEN)), out, out_len, len);
    } catch (...) {
        return TRONCH_EINTERNAL;
    }
}

const char* tronch_bridge_mirror_epoch_key(void) noexcept {
    static const std::string name(tronch::redis_keys::kMirrorEpoch);
    return name.c_str();
}

const char* tronch_bridge_events_channel(void) noexcept {
    static const std::string name(tronch::redis_keys::kEventsChannel);
    return name.c_str();
}

const char* tronch_bridge_result_code(int result, std::size_t* len) noexcept {
    if (!valid_result(result)) result = TRONCH_RESULT_AUTH_UNAVAILABLE;
    const tronch::AuthResultInfo& info = tronch::describe(static_cast<tronch::AuthResult>(result));
    *len = info.code.size();
    return info.code.data();
}

int tronch_bridge_result_status(int result) noexcept {
    if (!valid_result(result)) return 500;
    return tronch::describe(static_cast<tronch::AuthResult>(result)).http_status;
}

int tronch_bridge_problem_body(int result, char* out, std::size_t out_len, std::size_t* len) noexcept {
    try {
        if (!valid_result(result)) return TRONCH_EINVAL;
        const tronch::AuthResultInfo& info = tronch::describe(static_cast<tronch::AuthResult>(result));
        nlohmann::json body = {
            {"type", "https://tronch.dev/problems/" + std::string(info.code)},
            {"title", std::string(info.title)},
            {"status", info.http_status},
            {"detail", std::string(info.detail)},
            {"code", std::string(info.code)},
        };
        std::string text = body.dump() + "\n";
        if (text.size() > out_len) return TRONCH_ESPACE;
        std::memcpy(out, text.data(), text.size());
        *len = text.size();
        return TRONCH_OK;
    } catch (...) {
        return TRONCH_EINTERNAL;
    }
}

}  // extern "C"

// Rate limiting.
namespace {
using tronch_bridge_detail::to_gcra;
tronch::GcraDecision to_decision(const tronch_decision_t* d) noexcept {
    tronch::GcraDecision g;
    g.allowed = d->allowed != 0;
    g.remaining = d->remaining;
    g.retry_after_us = d->retry_after_us;
    g.reset_after_us = d->reset_after_us;
    g.new_tat_us = d->new_tat_us;
    return g;
}
}  // namespace

extern "C" {

int tronch_bridge_parse_limit(const char* text, std::size_t len, tronch_limit_t* out, char* err,
                              std::size_t err_len) noexcept {
    try {
        tronch::GcraLimit g;
        std::string message;
        if (!tronch::parse_limit_spec(std::string_view(text, len), g, message)) {
            if (err_len) copy_text(message, err, err_len);
            return TRONCH_EINVAL;
        }
        out->rate = g.rate;
        out->period_us = g.period_us;
        out->burst = g.burst;
        return TRONCH_OK;
    } catch (...) {
        if (err_len) copy_text("out of memory", err, err_len);
        return TRONCH_EINVAL;
    }
}

int tronch_bridge_record_limit(int64_t rate, int64_t period_s, int64_t burst, tronch_limit_t* out) noexcept {
    tronch::GcraLimit g;
    g.rate = rate;
    g.burst = burst;
    if (period_s < 1 || __builtin_mul_overflow(period_s, int64_t{1'000'000}, &g.period_us) || !g.valid())
        return TRONCH_EINVAL;
    out->rate = g.rate;
    out->period_us = g.period_us;
    out->burst = g.burst;
    return TRONCH_OK;
}

void tronch_bridge_gcra(int64_t stored_tat_us, int64_t now_us, const tronch_limit_t* limit, int64_t cost,
                        tronch_decision_t* out) noexcept {
    tronch::GcraDecision d = tronch::gcra_check(stored_tat_us, now_us, to_gcra(limit), cost);
    out->allowed = d.allowed ? 1 : 0;
    out->remaining = d.remaining;
    out->retry_after_us = d.retry_after_us;
    out->reset_after_us = d.reset_after_us;
    out->new_tat_us = d.new_tat_us;
}

void tronch_bridge_limit_share(const tronch_limit_t* limit, int64_t nodes, tronch_limit_t* out) noexcept {
    *out = *limit;
    if (nodes <= 1) return;
    out->rate = limit->rate / nodes;
    out->burst = limit->burst / nodes;
    if (out->rate < 1) {
        // fewer requests than nodes per period: one per node, over a longer period
        out->rate = 1;
        out->period_us = limit->period_us * nodes / (limit->rate > 0 ? limit->rate : 1);
    }
}

void tronch_bridge_limit_headers(const tronch_limit_t* limit, const tronch_decision_t* d,
                                 tronch_limit_headers_t* out) noexcept {
    tronch::GcraLimit g = to_gcra(limit);
    tronch::GcraDecision dd = to_decision(d);
    out->policy_len = tronch::format_ratelimit_policy(g, out->policy, sizeof(out->policy));
    out->ratelimit_len = tronch::format_ratelimit(dd, out->ratelimit, sizeof(out->ratelimit));
    out->limit_len = tronch::format_integer(g.capacity(), out->limit, sizeof(out->limit));
    out->remaining_len = tronch::format_integer(dd.remaining, out->remaining, sizeof(out->remaining));
    out->reset_len = tronch::format_integer(tronch::ceil_seconds(dd.reset_after_us), out->reset, sizeof(out->reset));
    out->retry_after_len =
        tronch::format_integer(tronch::retry_after_seconds(dd), out->retry_after, sizeof(out->retry_after));
}

const char* tronch_bridge_usage_pending_key() noexcept {
    static const std::string name(tronch::redis_keys::kUsagePending);
    return name.c_str();
}

int tronch_bridge_usage_field(const char* id, int64_t bucket_start, char counter, char* out, std::size_t out_len,
                              std::size_t* len) noexcept {
    try {
        if (counter != TRONCH_USAGE_REQUESTS && counter != TRONCH_USAGE_ERRORS && counter != TRONCH_USAGE_LAST_USED)
            return TRONCH_EINVAL;
        std::string f = tronch::redis_keys::usage_field(id, bucket_start,
                                                        static_cast<tronch::redis_keys::UsageCounter>(counter));
        if (f.size() > out_len) return TRONCH_ESPACE;
        std::memcpy(out, f.data(), f.size());
        *len = f.size();
        return TRONCH_OK;
    } catch (...) {
        return TRONCH_EINTERNAL;
    }
}

int tronch_bridge_rate_limit_key(const char* id, char* out, std::size_t out_len, std::size_t* len) noexcept {
    try {
        return copy_name(tronch::redis_keys::rate_limit_key(id), out, out_len, len);
    } catch (...) {
        return TRONCH_EINTERNAL;
    }
}

void tronch_bridge_limit_params(const tronch_limit_t* limit, int64_t* interval_us, int64_t* capacity) noexcept {
    tronch::GcraLimit g = to_gcra(limit);
    *interval_us = g.emission_interval_us();
    *capacity = g.capacity();
}

int tronch_bridge_gcra_script_sha1(char out[41]) noexcept {
    return tronch_bridge_detail::script_sha1(tronch::kGcraLuaScript, out);
}

const char* tronch_bridge_gcra_script(std::size_t* len) noexcept {
    *len = tronch::kGcraLuaScript.size();
    return tronch::kGcraLuaScript.data();
}

const char* tronch_bridge_usage_add_script(std::size_t* len) noexcept {
    *len = tronch::redis_keys::kUsageAddLuaScript.size();
    return tronch::redis_keys::kUsageAddLuaScript.data();
}

int tronch_bridge_has_key_marker(const char* text, std::size_t len) noexcept {
    return tronch::contains_key_marker(std::string_view(text, len)) ? 1 : 0;
}

std::size_t tronch_bridge_mask_bound(std::size_t len) noexcept { return tronch::masked_size_bound(len); }

int tronch_bridge_mask_keys(const char* text, std::size_t len, char* out, std::size_t out_len,
                            std::size_t* out_written) noexcept {
    if (out_len < tronch::masked_size_bound(len)) return TRONCH_ESPACE;
    *out_written = tronch::mask_keys(std::string_view(text, len), out, out_len);
    return TRONCH_OK;
}

}  // extern "C"
