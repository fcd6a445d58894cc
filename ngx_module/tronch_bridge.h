/*
 * The one narrow door between the nginx module (C) and libtronch_core (C++).
 *
 * Plain C types only; every function is noexcept on the C++ side and catches everything,
 * so no exception ever crosses into nginx. Nothing here allocates on the caller's behalf:
 * results go into caller buffers or plain structs that may live in shared memory as they are.
 *
 * One return convention:
 *   - a function that can fail returns int: TRONCH_OK (0), or a negative TRONCH_E* code:
 *     TRONCH_EINVAL (the input is not valid), TRONCH_EINTERNAL (memory, crypto),
 *     TRONCH_ESPACE (an output buffer is too small). Its results go into out-parameters, a
 *     text's length into a size_t *len; they are set only on TRONCH_OK.
 *   - a function that cannot fail returns its value: void, a size, a verdict
 *     (tronch_bridge_record_check's TRONCH_REJECT_*, tronch_bridge_result_status), a yes/no
 *     answer as 1 or 0 (tronch_bridge_cidr_match, tronch_bridge_has_key_marker), or a string in
 *     static storage.
 * Every constant below that the core also defines is checked against it by static_assert in
 * tronch_bridge.cpp.
 */
#ifndef TRONCH_BRIDGE_H
#define TRONCH_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define TRONCH_NOEXCEPT noexcept
extern "C" {
#else
#define TRONCH_NOEXCEPT
#endif

#define TRONCH_DIGEST_LEN      32
#define TRONCH_HEX_LEN         64
#define TRONCH_KEY_LEN         64   /* tronch_sk_<env>_ + 43 body + 6 checksum */
#define TRONCH_ID_MAX          40   /* a UUID is 36 characters */
#define TRONCH_PREFIX_MAX      32   /* display prefix: 23 characters */
#define TRONCH_MAX_CIDRS       16
#define TRONCH_REDIS_KEY_MAX   96

/* Return codes (see above). */
#define TRONCH_OK          0
#define TRONCH_EINVAL     -1
#define TRONCH_EINTERNAL  -2
#define TRONCH_ESPACE     -3

/* Key environments (the key prefix and the record). */
#define TRONCH_ENV_LIVE  0
#define TRONCH_ENV_TEST  1

/* Record statuses, as tronch::KeyStatus. */
#define TRONCH_STATUS_ACTIVE    0
#define TRONCH_STATUS_ROTATING  1
#define TRONCH_STATUS_REVOKED   2
#define TRONCH_STATUS_EXPIRED   3

/* Results, in the order of tronch::AuthResult (the refusal table). */
typedef enum {
    TRONCH_RESULT_OK = 0,
    TRONCH_RESULT_MISSING_KEY,
    TRONCH_RESULT_MALFORMED_KEY,
    TRONCH_RESULT_UNKNOWN_KEY,
    TRONCH_RESULT_REVOKED_KEY,
    TRONCH_RESULT_EXPIRED_KEY,
    TRONCH_RESULT_WRONG_ENVIRONMENT,
    TRONCH_RESULT_ADDRESS_NOT_ALLOWED,
    TRONCH_RESULT_HTTPS_REQUIRED,
    TRONCH_RESULT_AUTH_UNAVAILABLE,
    TRONCH_RESULT_RATE_LIMITED,
    TRONCH_RESULT_AMBIGUOUS_CREDENTIALS,
    TRONCH_RESULT_COUNT
} tronch_result_e;

/* Same layout as tronch::Cidr: plain data. */
typedef struct {
    uint8_t  family;         /* 4 or 6 */
    uint8_t  prefix_length;
    uint8_t  address[16];
} tronch_cidr_t;

/* A decoded key record, fixed size, fit for shared memory. */
typedef struct {
    char           id[TRONCH_ID_MAX];          /* NUL terminated */
    char           prefix[TRONCH_PREFIX_MAX];  /* NUL terminated */
    uint8_t        env;                        /* TRONCH_ENV_* */
    uint8_t        status;                     /* TRONCH_STATUS_* */
    uint8_t        has_expires;
    uint8_t        has_limit;
    uint8_t        ncidrs;
    int64_t        expires_at;                 /* unix seconds */
    int64_t        limit_rate;
    int64_t        limit_period;               /* seconds */
    int64_t        limit_burst;
    tronch_cidr_t  cidrs[TRONCH_MAX_CIDRS];
    /* the signed envelope (record_signing.hpp); all zero for an unsigned record */
    uint8_t        signature_ok;               /* verified against a tronch_record_key */
    uint8_t        rejected;                   /* TRONCH_REJECT_*: treat as unknown */
    int64_t        version;                    /* per key, increasing */
    int64_t        valid_until;                /* unix seconds */
    uint8_t        signed_digest[TRONCH_DIGEST_LEN];  /* the key hash the signature names */
} tronch_record_t;

/* Why a record from Redis is refused (tronch_record_t.rejected); 0: not refused. */
#define TRONCH_REJECT_NONE          0
#define TRONCH_REJECT_UNSIGNED      1   /* keys are configured but the record is not signed */
#define TRONCH_REJECT_MALFORMED     2   /* not an envelope, or its record does not decode */
#define TRONCH_REJECT_UNKNOWN_KID   3   /* signed by a key this gateway is not configured with */
#define TRONCH_REJECT_BAD_SIGNATURE 4
#define TRONCH_REJECT_WRONG_KEY     5   /* signed for another key hash (set by the module) */
#define TRONCH_REJECT_OLD_VERSION   6   /* older than a version seen here (set by the module) */
#define TRONCH_REJECT_LAPSED        7   /* its validity has ended (set by the module) */
#define TRONCH_REJECT_COUNT         8

/* Events on the control plane's channel. */
#define TRONCH_EVENT_KEY_CHANGED     0
#define TRONCH_EVENT_MIRROR_REBUILT  1

/*
 * Format and checksum check (no I/O), then SHA-256 of the whole key: env and digest (32 bytes).
 * TRONCH_EINVAL for a malformed key; TRONCH_EINTERNAL if hashing failed.
 * (No hex here: only a cache miss needs the hex name, see tronch_bridge_redis_key.)
 */
int tronch_bridge_parse_key(const char *key, size_t len, int *env,
    uint8_t digest[TRONCH_DIGEST_LEN]) TRONCH_NOEXCEPT;

/*
 * Decodes what Redis holds for a key: a signed envelope, or (only when no record key is in use in
 * this process) a plain record JSON, strictly. TRONCH_EINVAL (and a message in err) if it does not
 * decode. With record keys in use, a record that fails verification is not an error: TRONCH_OK
 * with out->rejected set, so that it is refused as unknown rather than treated as Redis failing.
 * The caller still checks signed_digest, version and valid_until (tronch_bridge_record_check).
 */
int tronch_bridge_decode_record(const char *json, size_t len, tronch_record_t *out,
    char *err, size_t err_len) TRONCH_NOEXCEPT;

/*
 * Record keys (tronch_record_key). load: a PEM Ed25519 public key; a handle into *key and its key
 * id (NUL terminated, kid_len >= 17), or TRONCH_EINVAL and a message in err. use: from now on
 * this process verifies records against these keys (n == 0: none, unsigned records are accepted).
 */
int tronch_bridge_record_key_load(const char *pem, size_t len, void **key, char *kid, size_t kid_len,
    char *err, size_t err_len) TRONCH_NOEXCEPT;
void tronch_bridge_record_key_free(void *key) TRONCH_NOEXCEPT;
int tronch_bridge_record_keys_use(void *const *keys, size_t n) TRONCH_NOEXCEPT;
size_t tronch_bridge_record_keys_in_use(void) TRONCH_NOEXCEPT;
/*
 * The checks that need what the caller knows: the digest it asked for, the highest version it has
 * seen for it (0: none) and the time. Returns TRONCH_REJECT_NONE or the reason (rec->rejected first).
 */
int tronch_bridge_record_check(const tronch_record_t *rec, const uint8_t digest[TRONCH_DIGEST_LEN],
    int64_t seen_version, int64_t now) TRONCH_NOEXCEPT;
/* A reason in words (static storage). */
const char *tronch_bridge_reject_reason(int reason) TRONCH_NOEXCEPT;

/*
 * Parses an event: the type (and, for key.changed, the digest of key_hash);
 * TRONCH_EINVAL if the text is not a valid event.
 */
int tronch_bridge_parse_event(const char *json, size_t len, int *type,
    uint8_t digest[TRONCH_DIGEST_LEN]) TRONCH_NOEXCEPT;

/* family: 4 or 6; address: 4 or 16 bytes, network order. 1 if inside, 0 if not. */
int tronch_bridge_cidr_match(const tronch_cidr_t *cidr, int family, const uint8_t *address) TRONCH_NOEXCEPT;

/* The Redis name of the key record whose SHA-256 is digest, into out (NUL terminated). */
int tronch_bridge_redis_key(const uint8_t digest[TRONCH_DIGEST_LEN], char *out, size_t out_len,
    size_t *len) TRONCH_NOEXCEPT;

/* Fixed names (NUL terminated, static storage). */
const char *tronch_bridge_mirror_epoch_key(void) TRONCH_NOEXCEPT;
const char *tronch_bridge_events_channel(void) TRONCH_NOEXCEPT;

/* The refusal table: stable code (static storage, not terminated), HTTP status, body. */
const char *tronch_bridge_result_code(int result, size_t *len) TRONCH_NOEXCEPT;
int tronch_bridge_result_status(int result) TRONCH_NOEXCEPT;
/* The application/problem+json body (not terminated). */
int tronch_bridge_problem_body(int result, char *out, size_t out_len, size_t *len) TRONCH_NOEXCEPT;

/* Rate limiting (tronch/gcra.hpp, tronch/rate_limit.hpp). Plain data, fit for shared memory. */
typedef struct {
    int64_t  rate;        /* requests per period, 0: no limit */
    int64_t  period_us;
    int64_t  burst;
} tronch_limit_t;

typedef struct {
    int      allowed;
    int64_t  remaining;
    int64_t  retry_after_us;
    int64_t  reset_after_us;
    int64_t  new_tat_us;
} tronch_decision_t;

#define TRONCH_HEADER_VALUE_MAX  64

/* Response header values, each with its length (not NUL terminated). */
typedef struct {
    size_t  policy_len, ratelimit_len, limit_len, remaining_len, reset_len, retry_after_len;
    char    policy[TRONCH_HEADER_VALUE_MAX];       /* RateLimit-Policy */
    char    ratelimit[TRONCH_HEADER_VALUE_MAX];    /* RateLimit */
    char    limit[24];                             /* X-RateLimit-Limit */
    char    remaining[24];                         /* X-RateLimit-Remaining */
    char    reset[24];                             /* X-RateLimit-Reset */
    char    retry_after[24];                       /* Retry-After (refusals) */
} tronch_limit_headers_t;

/* "rate=100r/s burst=20": the limit; TRONCH_EINVAL and a message in err. */
int tronch_bridge_parse_limit(const char *text, size_t len, tronch_limit_t *out,
    char *err, size_t err_len) TRONCH_NOEXCEPT;
/* The record's limit (period in seconds) as a limit; TRONCH_EINVAL if it is unusable. */
int tronch_bridge_record_limit(int64_t rate, int64_t period_s, int64_t burst, tronch_limit_t *out) TRONCH_NOEXCEPT;
/* GCRA: stored TAT (0: none), now (us), cost. */
void tronch_bridge_gcra(int64_t stored_tat_us, int64_t now_us, const tronch_limit_t *limit,
    int64_t cost, tronch_decision_t *out) TRONCH_NOEXCEPT;
/* The limit divided among n nodes: rate / n and burst / n, at least 1 request in all. */
void tronch_bridge_limit_share(const tronch_limit_t *limit, int64_t nodes, tronch_limit_t *out) TRONCH_NOEXCEPT;
void tronch_bridge_limit_headers(const tronch_limit_t *limit, const tronch_decision_t *d,
    tronch_limit_headers_t *out) TRONCH_NOEXCEPT;
/* Usage: the pending hash's name (static, NUL terminated), and a field of it (not terminated):
 * counter TRONCH_USAGE_REQUESTS, _ERRORS, or _LAST_USED (bucket 0). */
#define TRONCH_USAGE_REQUESTS        'r'
#define TRONCH_USAGE_ERRORS          'e'
#define TRONCH_USAGE_LAST_USED       'l'
#define TRONCH_USAGE_BUCKET_SECONDS  60
const char *tronch_bridge_usage_pending_key(void) TRONCH_NOEXCEPT;
int tronch_bridge_usage_field(const char *id, int64_t bucket_start, char counter,
    char *out, size_t out_len, size_t *len) TRONCH_NOEXCEPT;
/* The Redis name of a key's GCRA state (NUL terminated). */
int tronch_bridge_rate_limit_key(const char *id, char *out, size_t out_len, size_t *len) TRONCH_NOEXCEPT;
/* The script's arguments for a limit: emission interval (us) and capacity. */
void tronch_bridge_limit_params(const tronch_limit_t *limit, int64_t *interval_us,
    int64_t *capacity) TRONCH_NOEXCEPT;
/* SHA-1 of the script in hex (40 characters + NUL), for EVALSHA. */
int tronch_bridge_gcra_script_sha1(char out[41]) TRONCH_NOEXCEPT;
/* The Redis GCRA Lua script (static storage). */
const char *tronch_bridge_gcra_script(size_t *len) TRONCH_NOEXCEPT;
/* The Lua script that adds usage counts (field, delta pairs) to the pending hash (static storage). */
const char *tronch_bridge_usage_add_script(size_t *len) TRONCH_NOEXCEPT;

/* Key-shaped tokens in text bound for logs ($tronch_safe_request, tronch/key_mask.hpp):
 * whether text holds a key marker (plain or percent-encoded); the output size mask_keys needs
 * for len bytes; the copy with every token masked to its prefix ("tronch_sk_live_***") and its
 * length (TRONCH_ESPACE if out_len is below the bound). */
int tronch_bridge_has_key_marker(const char *text, size_t len) TRONCH_NOEXCEPT;
size_t tronch_bridge_mask_bound(size_t len) TRONCH_NOEXCEPT;
int tronch_bridge_mask_keys(const char *text, size_t len, char *out, size_t out_len,
    size_t *out_written) TRONCH_NOEXCEPT;

/* Leased GCRA (tronch/lease.hpp; tronch_bridge_limit.cpp). One node's state for one key, plain
 * data for shared memory (the fields of tronch::LeaseState). */
typedef struct {
    int64_t  tokens, expires_us, closed_until_us, inflight_until_us, starved_until_us, asking;
    int64_t  window_start_us, window_count, last_window_count;
    int64_t  remaining, reset_at_us, lapsed;
} tronch_lease_t;

#define TRONCH_LEASE_ADMIT   0   /* a held token was spent; renew > 0: renew in the background */
#define TRONCH_LEASE_REFUSE  1   /* Redis said not enough, until retry_after_us */
#define TRONCH_LEASE_ASK     2   /* nothing held: ask Redis for `ask` now, the request waits */

typedef struct {
    int      action;
    int64_t  ask, renew, remaining, retry_after_us, reset_after_us;
} tronch_lease_take_t;

/* The lease script's answer: {granted, remaining, retry_after_us, reset_after_us, wait_us}. */
typedef struct {
    int64_t  granted, remaining, retry_after_us, reset_after_us, wait_us;
    int64_t  interval_us;   /* the limit's emission interval (not in the script's answer) */
} tronch_lease_grant_t;

/* The rate-limit headers of the families asked for (tronch_limit_headers), and Retry-After only
 * on a refusal: nothing is formatted to be thrown away; what is not formatted has length 0. */
#define TRONCH_HEADERS_DRAFT   1u   /* RateLimit-Policy, RateLimit */
#define TRONCH_HEADERS_LEGACY  2u   /* X-RateLimit-Limit, -Remaining, -Reset */
void tronch_bridge_limit_headers_of(const tronch_limit_t *limit, const tronch_decision_t *d, unsigned families,
    tronch_limit_headers_t *out) TRONCH_NOEXCEPT;
int64_t tronch_bridge_lease_cap(const tronch_limit_t *limit, int64_t nodes, int64_t share_percent) TRONCH_NOEXCEPT;
void tronch_bridge_lease_take(tronch_lease_t *s, int64_t now_us, int64_t cap,
    tronch_lease_take_t *out) TRONCH_NOEXCEPT;
void tronch_bridge_lease_granted(tronch_lease_t *s, int64_t now_us, int64_t asked, int for_request,
    const tronch_lease_grant_t *g, int64_t nodes) TRONCH_NOEXCEPT;
void tronch_bridge_lease_renew_failed(tronch_lease_t *s, int64_t asked) TRONCH_NOEXCEPT;
int tronch_bridge_lease_script_sha1(char out[41]) TRONCH_NOEXCEPT;
const char *tronch_bridge_lease_script(size_t *len) TRONCH_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* TRONCH_BRIDGE_H */
