/*
 * Tronch nginx module: declarations shared by its C files, by concern and nginx phase.
 *   ngx_http_tronch_module.c     the module; the access handler: one decision path per request
 *                                (ctx state, lookup_failed, finish), the suspended request
 *   ngx_http_tronch_variables.c  $tronch_* variables
 *   ngx_http_tronch_conf.c       directives and configuration (create, init, merge)
 *   ngx_http_tronch_headers.c    the key's request header; cleaning what goes upstream
 *   ngx_http_tronch_refuse.c     a refusal's response (problem+json, precomputed bodies)
 *   ngx_http_tronch_filter.c     response headers (rate limit, Retry-After): the header filter
 *   ngx_http_tronch_zone.c       tronch_zone: shared memory layout, stats, the per-name state table
 *   ngx_http_tronch_cache.c      the key cache in the zone (rbtree + LRU of records)
 *   ngx_http_tronch_limit.c      the rate limiter: GCRA for keys (local/redis/degraded) and addresses
 *   ngx_http_tronch_usage.c      usage: counting, the log-phase handler (5xx), collection
 *   ngx_http_tronch_usage_flush.c  usage: each second, the collected counts sent to Redis
 *   ngx_http_tronch_redis.c      the worker's Redis links: lookups and the event subscriber
 *   ngx_http_tronch_rconn.c      one Redis connection on nginx's event/SSL machinery (hiredis parses only)
 *   ngx_http_tronch_redis_conf.c the tronch_redis* directives: addresses, ACL auth, TLS, Sentinel
 *   ngx_http_tronch_redis_limit.c  the GCRA script on Redis (tronch_limit_policy redis)
 *   ngx_http_tronch_lease.c      leases (tronch_limit_policy leased): the lease table, the lease script
 *   ngx_http_tronch_status.c     the tronch_status handler (Prometheus text)
 *   ngx_http_tronch_records.c    signed key records: tronch_record_key, the checks on a miss
 */
#ifndef NGX_HTTP_TRONCH_MODULE_H
#define NGX_HTTP_TRONCH_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "tronch_bridge.h"


#define NGX_HTTP_TRONCH_ENV_LIVE   TRONCH_ENV_LIVE
#define NGX_HTTP_TRONCH_ENV_TEST   TRONCH_ENV_TEST
#define NGX_HTTP_TRONCH_ENV_ANY    2

#define NGX_HTTP_TRONCH_FAIL_CLOSED  0
#define NGX_HTTP_TRONCH_FAIL_OPEN    1

/* Latency histogram buckets (milliseconds), the last is +Inf. */
#define NGX_HTTP_TRONCH_LATENCY_BUCKETS  7
extern const ngx_msec_t ngx_http_tronch_latency_bounds[NGX_HTTP_TRONCH_LATENCY_BUCKETS - 1];


/* Counters in shared memory, updated with atomic adds (no lock needed). */
typedef struct {
    ngx_atomic_t  requests[TRONCH_RESULT_COUNT];
    ngx_atomic_t  fail_open_passes;
    ngx_atomic_t  cache_hits;
    ngx_atomic_t  cache_misses;
    ngx_atomic_t  cache_stale_serves;
    ngx_atomic_t  cache_evictions;
    ngx_atomic_t  cache_entries;
    ngx_atomic_t  redis_lookups;
    ngx_atomic_t  redis_errors;
    ngx_atomic_t  redis_timeouts;
    ngx_atomic_t  redis_latency_ms_sum;
    ngx_atomic_t  redis_latency_buckets[NGX_HTTP_TRONCH_LATENCY_BUCKETS];
    ngx_atomic_t  redis_connects;
    ngx_atomic_t  events_applied;
    ngx_atomic_t  events_invalid;
    ngx_atomic_t  limit_allowed;
    ngx_atomic_t  limit_limited;
    ngx_atomic_t  limit_degraded;
    ngx_atomic_t  limit_script_reloads;
    ngx_atomic_t  limit_address_limited;
    ngx_atomic_t  limit_address_failures;
    ngx_atomic_t  limit_evictions;
    ngx_atomic_t  usage_flushes;
    ngx_atomic_t  usage_flush_errors;
    ngx_atomic_t  usage_dropped;
    ngx_atomic_t  usage_lost;         /* counted requests whose flush Redis never took */
    ngx_atomic_t  records_rejected;   /* records from Redis refused (signature, replay, ...) */
    ngx_atomic_t  lease_requests;     /* lease scripts sent (ngx_http_tronch_lease.c) */
    ngx_atomic_t  lease_granted;      /* requests Redis granted in leases */
    ngx_atomic_t  lease_lapsed;       /* of those, lapsed unspent */
    ngx_atomic_t  lease_local;        /* checks decided from a held lease */
} ngx_http_tronch_stats_t;


/* The key cache's part of the zone (ngx_http_tronch_cache.c); under the slab pool's mutex. */
typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;
    ngx_atomic_t                  generation;   /* bumped by every applied event */
    ngx_msec_t                    valid_after;  /* older entries are revalidated */
} ngx_http_tronch_cache_sh_t;


/* The state table's part of the zone (ngx_http_tronch_zone.c): one node per name (a key id or
 * a client address) with its GCRA TAT (limit.c) and its usage counts (usage.c); every access
 * under the slab pool's mutex. */
typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;          /* most recent at the head */
    ngx_queue_t                   dirty;        /* keys with usage not flushed yet, oldest first */
    ngx_atomic_t                  flush_owner;  /* pid of the worker flushing usage */
    ngx_msec_t                    flush_seen;   /* its last flush */
    void                         *lease;        /* ngx_http_tronch_lease.c, made on first use */
} ngx_http_tronch_state_sh_t;

#define NGX_HTTP_TRONCH_STATE_NAME_MAX  48
#define NGX_HTTP_TRONCH_KIND_KEY        'k'
#define NGX_HTTP_TRONCH_KIND_ADDRESS    'a'

typedef struct {
    ngx_rbtree_node_t             node;         /* node.key: ngx_http_tronch_state_hash(data) */
    ngx_queue_t                   queue;
    ngx_queue_t                   dirty;        /* in dirty iff requests or errors */
    int64_t                       tat;          /* microseconds, unix clock; 0: none */
    int64_t                       last_used;    /* unix seconds (keys) */
    uint32_t                      requests;     /* usage not yet flushed (keys) */
    uint32_t                      errors;
    u_char                        len;
    u_char                        data[NGX_HTTP_TRONCH_STATE_NAME_MAX];
} ngx_http_tronch_state_t;

/* A state name: its bytes and the tree key (hashed once, outside the lock). */
typedef struct {
    size_t                        len;
    uint32_t                      hash;
    u_char                        data[NGX_HTTP_TRONCH_STATE_NAME_MAX];
} ngx_http_tronch_name_t;


typedef enum {
    NGX_HTTP_TRONCH_POLICY_LOCAL = 0,
    NGX_HTTP_TRONCH_POLICY_REDIS,
    NGX_HTTP_TRONCH_POLICY_LEASED
} ngx_http_tronch_policy_e;

#define NGX_HTTP_TRONCH_LEASE_SHARE   50   /* % of the burst all nodes may hold in leases */


/* Outcome of a cache lookup. */
typedef enum {
    NGX_HTTP_TRONCH_CACHE_MISS = 0,    /* absent, or too old to use */
    NGX_HTTP_TRONCH_CACHE_HIT,         /* fresh: use it */
    NGX_HTTP_TRONCH_CACHE_STALE        /* positive but past its TTL: refresh, use if Redis fails */
} ngx_http_tronch_cache_rc_e;


/* One Redis address, resolved at configuration load (never in a worker). */
typedef struct {
    struct sockaddr              *sockaddr;
    socklen_t                     socklen;
    ngx_str_t                     name;         /* address:port, for logs */
    ngx_str_t                     host;         /* as written (TLS name unless tronch_redis_tls_name) */
} ngx_http_tronch_raddr_t;


/* How to talk to one kind of Redis server (data nodes, or sentinels). */
typedef struct {
#if (NGX_SSL)
    ngx_ssl_t                    *ssl;          /* NULL: plain TCP */
#endif
    ngx_str_t                     tls_name;     /* empty: the address's host */
    ngx_str_t                     user;         /* empty: no AUTH */
    ngx_str_t                     password;     /* read from a file; never logged */
} ngx_http_tronch_rconn_conf_t;


/* The tronch_redis* directives (ngx_http_tronch_redis_conf.c). */
typedef struct {
    ngx_array_t                  *addrs;        /* of ngx_http_tronch_raddr_t (tronch_redis) */
    ngx_http_tronch_rconn_conf_t  node;
    ngx_flag_t                    tls;
    ngx_str_t                     tls_trusted_certificate;
    ngx_str_t                     tls_name;
    ngx_str_t                     tls_certificate;
    ngx_str_t                     tls_certificate_key;
    ngx_str_t                     sentinel_master;   /* tronch_redis_sentinel */
    ngx_array_t                  *sentinel_addrs;    /* of ngx_http_tronch_raddr_t */
    ngx_http_tronch_rconn_conf_t  sentinel;
} ngx_http_tronch_redis_conf_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;     /* tronch_zone */
    ngx_str_t                     redis_addr;   /* as written, for logs; empty: no Redis */
    ngx_str_t                     redis_host;   /* non-empty once tronch_redis(_sentinel) is set */
    ngx_http_tronch_redis_conf_t  redis;
    ngx_msec_t                    redis_timeout;
    /* Precomputed problem+json bodies, one per result: a refusal allocates nothing for them. */
    ngx_str_t                     bodies[TRONCH_RESULT_COUNT];
    ngx_uint_t                    enabled_somewhere;  /* tronch on or tronch_status in a location */
    ngx_int_t                     nodes;          /* tronch_nodes */
    ngx_array_t                  *record_keys;    /* tronch_record_key: bridge handles; NULL: none */
} ngx_http_tronch_main_conf_t;


typedef struct {
    ngx_flag_t                    enable;
    ngx_str_t                     key_header;     /* empty: Authorization: Bearer, then X-API-Key */
    ngx_uint_t                    environment;
    ngx_msec_t                    cache_ttl;
    ngx_msec_t                    negative_ttl;
    ngx_msec_t                    stale_ttl;
    ngx_uint_t                    failure_mode;
    ngx_flag_t                    require_https;
    ngx_flag_t                    status;         /* tronch_status handler */
    ngx_uint_t                    default_limit_set;
    tronch_limit_t                default_limit;  /* rate 0: none */
    ngx_uint_t                    address_limit_set;
    tronch_limit_t                address_limit;  /* rate 0: none */
    ngx_uint_t                    limit_policy;   /* NGX_HTTP_TRONCH_POLICY_* */
    ngx_int_t                     lease_share;    /* leased: % of the burst held in leases */
    ngx_uint_t                    limit_headers;  /* TRONCH_HEADERS_* families sent */
} ngx_http_tronch_loc_conf_t;


/* One cached answer as handed to the request path (a copy out of shared memory). */
typedef struct {
    ngx_uint_t                    negative;       /* Redis said: no such key */
    tronch_record_t               record;
} ngx_http_tronch_answer_t;


extern ngx_module_t  ngx_http_tronch_module;

typedef struct ngx_http_tronch_pending_s  ngx_http_tronch_pending_t;
/* rc NGX_OK with the decision, or NGX_ERROR (Redis failed: go degraded). */
typedef void (*ngx_http_tronch_gcra_done_pt)(void *data, ngx_int_t rc, const tronch_decision_t *d);


/* Where a request is on its one decision path (ngx_http_tronch_module.c). */
typedef enum {
    NGX_HTTP_TRONCH_NEW = 0,
    NGX_HTTP_TRONCH_LOOKUP,           /* Redis lookup in flight, request suspended */
    NGX_HTTP_TRONCH_LOOKED_UP,        /* lookup finished or failed (answer set, or not): decide */
    NGX_HTTP_TRONCH_LIMITING,         /* Redis GCRA check in flight, request suspended */
    NGX_HTTP_TRONCH_LIMITED,          /* ctx->decision is final */
    NGX_HTTP_TRONCH_PASSED,           /* verdict recorded (ctx->result): passed ... */
    NGX_HTTP_TRONCH_REFUSED           /* ... or refused */
} ngx_http_tronch_state_e;

#define ngx_http_tronch_decided(ctx)  ((ctx)->state >= NGX_HTTP_TRONCH_PASSED)


typedef struct {
    ngx_http_request_t           *request;
    ngx_http_tronch_pending_t    *pending;
    ngx_http_tronch_state_e       state;
    ngx_uint_t                    result;        /* tronch_result_e, once decided */
    unsigned                      have_answer:1; /* answer is from the cache or Redis */
    unsigned                      stale:1;       /* answer is a stale cache entry */
    unsigned                      headers_cleaned:1;
    unsigned                      counted:1;     /* once per request, not per redirect */
    unsigned                      key_parsed:1;  /* key_env and digest are set */
    unsigned                      limit_checked:1;  /* the key's limit was applied */
    unsigned                      limit_headers:1;  /* send the rate-limit headers */
    unsigned                      limit_degraded:1;
    int                           key_env;
    ngx_atomic_uint_t             generation;
    ngx_table_elt_t              *key_elt;
    u_char                        digest[TRONCH_DIGEST_LEN];
    ngx_http_tronch_answer_t      answer;
    tronch_limit_t                limit;
    tronch_decision_t             decision;
} ngx_http_tronch_ctx_t;

/* ngx_http_tronch_module.c */
ngx_http_tronch_ctx_t *ngx_http_tronch_get_ctx(ngx_http_request_t *r);

/* ngx_http_tronch_variables.c */
ngx_int_t ngx_http_tronch_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_tronch_variables_init(ngx_conf_t *cf);

/* ngx_http_tronch_conf.c */
extern ngx_command_t  ngx_http_tronch_commands[];
void *ngx_http_tronch_create_main_conf(ngx_conf_t *cf);
char *ngx_http_tronch_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_tronch_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_tronch_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);

/* ngx_http_tronch_headers.c */
ngx_int_t ngx_http_tronch_find_key(ngx_http_request_t *r, ngx_http_tronch_loc_conf_t *lcf,
    ngx_str_t *key, ngx_table_elt_t **elt);
ngx_int_t ngx_http_tronch_clean_headers(ngx_http_request_t *r, ngx_http_tronch_ctx_t *ctx);

/* ngx_http_tronch_refuse.c: sends the refusal (status, problem+json body); always NGX_DONE. */
ngx_int_t ngx_http_tronch_refuse(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_uint_t result);

/* ngx_http_tronch_filter.c */
ngx_int_t ngx_http_tronch_filter_init(ngx_conf_t *cf);

/* ngx_http_tronch_zone.c */
typedef ngx_int_t (*ngx_http_tronch_node_cmp_pt)(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b);

void *ngx_http_tronch_zone_create_ctx(ngx_conf_t *cf);
void ngx_http_tronch_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel, ngx_http_tronch_node_cmp_pt cmp);
ngx_int_t ngx_http_tronch_zone_init(ngx_shm_zone_t *shm_zone, void *data);
ngx_http_tronch_stats_t *ngx_http_tronch_stats(ngx_shm_zone_t *zone);
/* The counters of all workers added up (tronch_status). */
void ngx_http_tronch_stats_sum(ngx_shm_zone_t *zone, ngx_http_tronch_stats_t *out);
ngx_http_tronch_cache_sh_t *ngx_http_tronch_cache_sh(ngx_shm_zone_t *zone, ngx_slab_pool_t **shpool);
ngx_http_tronch_state_sh_t *ngx_http_tronch_state_sh(ngx_shm_zone_t *zone, ngx_slab_pool_t **shpool);
/* State names: a key's ('k' + id), a client address's ('a' + family + bytes). */
void ngx_http_tronch_key_name(const tronch_record_t *rec, ngx_http_tronch_name_t *name);
void ngx_http_tronch_address_name(ngx_http_request_t *r, ngx_http_tronch_name_t *name);
/* Under the mutex: the name's node, or NULL. */
ngx_http_tronch_state_t *ngx_http_tronch_state_find(ngx_http_tronch_state_sh_t *ssh,
    const ngx_http_tronch_name_t *name);
/* Under the mutex: the name's node, made if there is none (evicting the LRU tail, idle entries
 * first), at the LRU head; NULL if there is no room at all. */
ngx_http_tronch_state_t *ngx_http_tronch_state_get(ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_state_sh_t *ssh, ngx_slab_pool_t *shpool, const ngx_http_tronch_name_t *name,
    int64_t now_us);
int64_t ngx_http_tronch_now_us(void);

/* ngx_http_tronch_cache.c */
void ngx_http_tronch_cache_init_sh(ngx_http_tronch_cache_sh_t *csh);
ngx_http_tronch_cache_rc_e ngx_http_tronch_cache_lookup(ngx_shm_zone_t *zone, const u_char *digest,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_answer_t *out);
ngx_atomic_uint_t ngx_http_tronch_cache_generation(ngx_shm_zone_t *zone);
void ngx_http_tronch_cache_store(ngx_shm_zone_t *zone, const u_char *digest,
    const ngx_http_tronch_answer_t *answer, ngx_atomic_uint_t generation);
void ngx_http_tronch_cache_drop(ngx_shm_zone_t *zone, const u_char *digest);
void ngx_http_tronch_cache_drop_negative(ngx_shm_zone_t *zone);
/* The highest record version this zone has seen for the digest (0: none). It outlives the
 * entry's use: an event turns the entry into a tombstone that keeps it (until evicted). */
int64_t ngx_http_tronch_cache_seen_version(ngx_shm_zone_t *zone, const u_char *digest);
/* A refused record: cache a negative answer (unless an event came since generation); returns 1
 * if this is the first refusal noted for the digest (log it), else 0. */
ngx_uint_t ngx_http_tronch_cache_reject(ngx_shm_zone_t *zone, const u_char *digest,
    ngx_atomic_uint_t generation);
/* Events may have been missed (the subscriber reconnected): every entry is refreshed from
 * Redis on its next use, and served as stale only if Redis cannot answer. */
void ngx_http_tronch_cache_revalidate_all(ngx_shm_zone_t *zone);

/* ngx_http_tronch_limit.c */
/* The key's limit (record, else tronch_default_limit), spent and the request counted:
 * NGX_OK allowed or no limit, NGX_DECLINED over the limit (ctx->decision says by how much),
 * NGX_AGAIN the Redis check is under way (done is called, unless cancelled). */
ngx_int_t ngx_http_tronch_limit_key(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx, ngx_http_tronch_gcra_done_pt done);
/* The Redis check's answer; or its failure (a degraded local check): NGX_OK or NGX_DECLINED. */
ngx_int_t ngx_http_tronch_limit_redis_decided(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    const tronch_decision_t *d);
ngx_int_t ngx_http_tronch_limit_redis_failed(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx);
/* Peek: NGX_DECLINED if the client address has no failure budget left (ctx filled for headers). */
ngx_int_t ngx_http_tronch_limit_address_check(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx);
/* Spend: a failed authentication from this address takes one from its budget. */
void ngx_http_tronch_limit_address_fail(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf);

/* ngx_http_tronch_usage.c */
/* A key's usage counts, taken out of the zone for a flush. */
typedef struct {
    char                         id[TRONCH_ID_MAX];
    uint32_t                     requests;
    uint32_t                     errors;
    int64_t                      last_used;
} ngx_http_tronch_usage_t;
/* Under the mutex: count requests and errors on the key's node. */
void ngx_http_tronch_usage_add(ngx_http_tronch_state_sh_t *ssh, ngx_http_tronch_state_t *n,
    uint32_t requests, uint32_t errors, int64_t now_us);
/* One request of the key (an error if refused), its limit decided elsewhere (Redis) or none. */
void ngx_http_tronch_usage_count(ngx_http_tronch_main_conf_t *mcf, const tronch_record_t *rec,
    ngx_uint_t refused);
ngx_int_t ngx_http_tronch_usage_init(ngx_conf_t *cf);   /* the log-phase handler */
/* Up to max keys with counts, longest waiting first (their counts are zeroed), if this worker
 * is the flush owner (it becomes one if the owner has been silent); else 0. */
ngx_uint_t ngx_http_tronch_usage_collect(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_usage_t *buf,
    ngx_uint_t max);

/* ngx_http_tronch_usage_flush.c */
void ngx_http_tronch_usage_init_process(ngx_cycle_t *cycle, ngx_http_tronch_main_conf_t *mcf);
void ngx_http_tronch_usage_exit_process(ngx_cycle_t *cycle);

/* ngx_http_tronch_redis.c */
typedef enum {
    NGX_HTTP_TRONCH_LOOKUP_FOUND = 0,     /* answer holds the record */
    NGX_HTTP_TRONCH_LOOKUP_ABSENT,        /* no record; negative caching allowed if mirror_complete */
    NGX_HTTP_TRONCH_LOOKUP_FAILED         /* Redis down, slow, or an undecodable answer */
} ngx_http_tronch_lookup_rc_e;

/* Called once per lookup that was started, unless cancelled first. */
typedef void (*ngx_http_tronch_lookup_done_pt)(void *data, ngx_http_tronch_lookup_rc_e rc,
    ngx_uint_t mirror_complete, const tronch_record_t *record);

ngx_int_t ngx_http_tronch_redis_init_process(ngx_cycle_t *cycle, ngx_http_tronch_main_conf_t *mcf);
void ngx_http_tronch_redis_exit_process(ngx_cycle_t *cycle);
/* Starts a lookup; returns the pending handle, or NULL if Redis is not available now. */
ngx_http_tronch_pending_t *ngx_http_tronch_redis_lookup(const u_char *digest,
    ngx_http_tronch_lookup_done_pt done, void *data, ngx_log_t *log);
/* The caller no longer wants the answer (the request is gone). */
void ngx_http_tronch_redis_cancel(ngx_http_tronch_pending_t *p);
/* The caller waited tronch_redis_timeout: cancelled, counted, and the command link restarted. */
void ngx_http_tronch_redis_timed_out(ngx_http_tronch_pending_t *p);

ngx_uint_t ngx_http_tronch_redis_ready(void);
ngx_http_tronch_pending_t *ngx_http_tronch_redis_gcra(const char *key_id, const tronch_limit_t *limit,
    ngx_http_tronch_gcra_done_pt done, void *data);

/* ngx_http_tronch_redis_conf.c */
char *ngx_http_tronch_redis_addr(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_tronch_redis_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_tronch_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_tronch_redis_create_conf(ngx_http_tronch_redis_conf_t *rcf);
char *ngx_http_tronch_redis_init_conf(ngx_conf_t *cf, ngx_http_tronch_main_conf_t *mcf);

/* ngx_http_tronch_records.c */
char *ngx_http_tronch_record_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_tronch_records_postconf(ngx_conf_t *cf, ngx_http_tronch_main_conf_t *mcf);
ngx_int_t ngx_http_tronch_records_init_process(ngx_cycle_t *cycle, ngx_http_tronch_main_conf_t *mcf);
/* NGX_OK: the record may be used; NGX_DECLINED: refused as unknown (counted, logged once). */
ngx_int_t ngx_http_tronch_records_accept(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_ctx_t *ctx, const tronch_record_t *record);

/* ngx_http_tronch_lease.c (tronch_limit_policy leased): NGX_OK decided from a held lease (d),
 * NGX_AGAIN a lease was asked for and `done` will get the decision (*pending set), NGX_DECLINED
 * Redis is unreachable and nothing is held (degraded local check). */
ngx_int_t ngx_http_tronch_lease_check(ngx_http_tronch_main_conf_t *mcf, const char *id,
    const tronch_limit_t *limit, ngx_int_t share, tronch_decision_t *d,
    ngx_http_tronch_gcra_done_pt done, void *data, ngx_http_tronch_pending_t **pending);

/* ngx_http_tronch_status.c */
ngx_int_t ngx_http_tronch_status_handler(ngx_http_request_t *r);

#endif /* NGX_HTTP_TRONCH_MODULE_H */
