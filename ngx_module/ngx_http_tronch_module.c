/*
 * Tronch: API-key authentication in nginx's access phase.
 *
 * Request path: find the key (a header, never the query string) -> format and checksum check,
 * no I/O -> SHA-256 -> shared-memory cache -> on a miss, one async Redis lookup with the request
 * suspended (resumed like limit_req's delay) -> status, expiry, environment, allowed addresses ->
 * the key's rate limit -> pass (variables set, key header removed) or refuse
 * (application/problem+json).
 *
 * One decision path, in the shape of limit_req: the handler decides, finish() records the
 * verdict once and acts on it. ctx->state (ngx_http_tronch_state_e) is the request's only state:
 * where it waits, and once decided, the verdict. A failed lookup goes through one place,
 * lookup_failed(), where a stale cache entry may stand in for Redis.
 */
#include "ngx_http_tronch_module.h"


static ngx_int_t ngx_http_tronch_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_tronch_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_tronch_init_process(ngx_cycle_t *cycle);
static void ngx_http_tronch_limit_done(void *data, ngx_int_t rc, const tronch_decision_t *d);
static void ngx_http_tronch_suspend(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf);
static void ngx_http_tronch_exit_process(ngx_cycle_t *cycle);


static ngx_http_module_t  ngx_http_tronch_module_ctx = {
    ngx_http_tronch_preconfiguration,      /* preconfiguration */
    ngx_http_tronch_postconfiguration,     /* postconfiguration */

    ngx_http_tronch_create_main_conf,      /* create main configuration */
    ngx_http_tronch_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_tronch_create_loc_conf,       /* create location configuration */
    ngx_http_tronch_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_tronch_module = {
    NGX_MODULE_V1,
    &ngx_http_tronch_module_ctx,           /* module context */
    ngx_http_tronch_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_tronch_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_tronch_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* request context */

static void
ngx_http_tronch_ctx_cleanup(void *data)
{
    ngx_http_tronch_ctx_t  *ctx = data;

    if (ctx->pending) {
        ngx_http_tronch_redis_cancel(ctx->pending);
        ctx->pending = NULL;
    }

    ctx->request = NULL;
}


/* The context, also after an internal redirect (which clears r->ctx): found via the pool. */
ngx_http_tronch_ctx_t *
ngx_http_tronch_get_ctx(ngx_http_request_t *r)
{
    ngx_http_tronch_ctx_t  *ctx;
    ngx_pool_cleanup_t     *cln;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tronch_module);

    if (ctx || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_tronch_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_tronch_module);
            return ctx;
        }
    }

    return NULL;
}


static ngx_http_tronch_ctx_t *
ngx_http_tronch_create_ctx(ngx_http_request_t *r)
{
    ngx_http_tronch_ctx_t  *ctx;
    ngx_pool_cleanup_t     *cln;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_tronch_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_tronch_ctx_t));
    ctx->request = r;

    cln->handler = ngx_http_tronch_ctx_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_tronch_module);

    return ctx;
}


/* the verdict */

/*
 * Records the verdict and acts on it: pass (the key header out of what goes upstream) or
 * refuse. A key that could not be verified passes only under tronch_failure_mode open. The
 * counters move once per request; after an internal redirect the new location's rules decide
 * again, and a refusal there spends from the address's budget again, as any refusal does.
 */
static ngx_int_t
ngx_http_tronch_finish(ngx_http_request_t *r, ngx_http_tronch_ctx_t *ctx, ngx_uint_t result)
{
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_loc_conf_t   *lcf;
    ngx_http_tronch_stats_t      *st;
    ngx_uint_t                    passed;
    ngx_int_t                     status;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_tronch_module);

    passed = (result == TRONCH_RESULT_OK
              || (result == TRONCH_RESULT_AUTH_UNAVAILABLE
                  && lcf->failure_mode == NGX_HTTP_TRONCH_FAIL_OPEN));

    ctx->result = result;
    ctx->state = passed ? NGX_HTTP_TRONCH_PASSED : NGX_HTTP_TRONCH_REFUSED;

    if (!ctx->counted) {
        ctx->counted = 1;
        st = ngx_http_tronch_stats(mcf->shm_zone);
        (void) ngx_atomic_fetch_add(&st->requests[result], 1);

        if (passed && result != TRONCH_RESULT_OK) {
            (void) ngx_atomic_fetch_add(&st->fail_open_passes, 1);
        }
    }

    if (passed) {
        if (result != TRONCH_RESULT_OK) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tronch: key not verifiable (redis unavailable), passed: failure mode open");
        }

        return ngx_http_tronch_clean_headers(r, ctx) == NGX_OK ? NGX_OK
                                                               : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = tronch_bridge_result_status((int) result);

    if (status == NGX_HTTP_UNAUTHORIZED || status == NGX_HTTP_FORBIDDEN) {
        /* a failed authentication spends from the client address's budget, never a key's */
        ngx_http_tronch_limit_address_fail(r, mcf, lcf);
    }

    return ngx_http_tronch_refuse(r, mcf, result);
}


/* A refusal decided before any lookup; from an address out of failure budget, 429 instead (the
 * budget's answer does not depend on the key, so it tells a guesser nothing). */
static ngx_int_t
ngx_http_tronch_finish_before_lookup(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx, ngx_uint_t result)
{
    if (ngx_http_tronch_limit_address_check(r, mcf, lcf, ctx) != NGX_OK) {
        result = TRONCH_RESULT_RATE_LIMITED;
    }

    return ngx_http_tronch_finish(r, ctx, result);
}


static ngx_uint_t
ngx_http_tronch_address_allowed(ngx_http_request_t *r, const tronch_record_t *rec)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif
    const uint8_t        *addr;
    int                   family;
    ngx_uint_t            i;

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        addr = (const uint8_t *) &sin->sin_addr.s_addr;
        family = 4;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        addr = sin6->sin6_addr.s6_addr;
        family = 6;
        break;
#endif

    default:
        return 0;   /* unix socket: no address to match */
    }

    for (i = 0; i < rec->ncidrs && i < TRONCH_MAX_CIDRS; i++) {
        if (tronch_bridge_cidr_match(&rec->cidrs[i], family, addr)) {
            return 1;
        }
    }

    return 0;
}


/* What the answer says of the key, here: TRONCH_RESULT_OK or why not. */
static ngx_uint_t
ngx_http_tronch_check_answer(ngx_http_request_t *r, ngx_http_tronch_loc_conf_t *lcf,
    ngx_http_tronch_ctx_t *ctx)
{
    const tronch_record_t  *rec = &ctx->answer.record;

    if (ctx->answer.negative) {
        return TRONCH_RESULT_UNKNOWN_KEY;
    }

    if (rec->status == TRONCH_STATUS_REVOKED) {
        return TRONCH_RESULT_REVOKED_KEY;
    }

    if (rec->status == TRONCH_STATUS_EXPIRED
        || (rec->has_expires && rec->expires_at <= (int64_t) ngx_time()))
    {
        return TRONCH_RESULT_EXPIRED_KEY;
    }

    if ((lcf->environment != NGX_HTTP_TRONCH_ENV_ANY && rec->env != lcf->environment)
        || rec->env != ctx->key_env)
    {
        return TRONCH_RESULT_WRONG_ENVIRONMENT;
    }

    if (rec->ncidrs && !ngx_http_tronch_address_allowed(r, rec)) {
        return TRONCH_RESULT_ADDRESS_NOT_ALLOWED;
    }

    return TRONCH_RESULT_OK;
}


/* The answer is in (or there is none to be had): decide. */
static ngx_int_t
ngx_http_tronch_decide(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx)
{
    ngx_uint_t  result;
    ngx_int_t   rc;

    if (!ctx->have_answer) {
        return ngx_http_tronch_finish(r, ctx, TRONCH_RESULT_AUTH_UNAVAILABLE);
    }

    result = ngx_http_tronch_check_answer(r, lcf, ctx);
    if (result != TRONCH_RESULT_OK) {
        return ngx_http_tronch_finish(r, ctx, result);
    }

    /* authenticated and authorised: only now may the key's quota be spent */
    rc = ngx_http_tronch_limit_key(r, mcf, lcf, ctx, ngx_http_tronch_limit_done);

    if (rc == NGX_AGAIN) {
        ctx->state = NGX_HTTP_TRONCH_LIMITING;
        ngx_http_tronch_suspend(r, mcf);
        return NGX_AGAIN;
    }

    return ngx_http_tronch_finish(r, ctx, rc == NGX_OK ? TRONCH_RESULT_OK
                                                       : TRONCH_RESULT_RATE_LIMITED);
}


/* The lookup failed (Redis down, timed out, or no answer to trust): a stale cache entry stands
 * in for Redis, and is counted; without one, decide() finds no answer. The one place for this. */
static void
ngx_http_tronch_lookup_failed(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx)
{
    ctx->state = NGX_HTTP_TRONCH_LOOKED_UP;

    if (ctx->stale) {
        ctx->have_answer = 1;
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->cache_stale_serves, 1);
    }
}


/* The lookup's answer, to use and cache. */
static void
ngx_http_tronch_lookup_answered(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    const tronch_record_t *record)
{
    ctx->state = NGX_HTTP_TRONCH_LOOKED_UP;
    ctx->have_answer = 1;
    ctx->stale = 0;

    if (record == NULL) {
        ctx->answer.negative = 1;

    } else {
        ctx->answer.negative = 0;
        ngx_memcpy(&ctx->answer.record, record, sizeof(tronch_record_t));
    }

    ngx_http_tronch_cache_store(mcf->shm_zone, ctx->digest, &ctx->answer, ctx->generation);
}


/* The Redis GCRA check's answer: ctx->decision is final. */
static void
ngx_http_tronch_limit_answered(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    const tronch_decision_t *d)
{
    (void) ngx_http_tronch_limit_redis_decided(mcf, ctx, d);
    ctx->state = NGX_HTTP_TRONCH_LIMITED;
}


/* The Redis GCRA check failed or timed out: the degraded local check is final. */
static void
ngx_http_tronch_limit_failed(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx)
{
    (void) ngx_http_tronch_limit_redis_failed(mcf, ctx);
    ctx->state = NGX_HTTP_TRONCH_LIMITED;
}


/* the suspended request */

static void
ngx_http_tronch_resume(ngx_http_request_t *r)
{
    ngx_event_t  *wev = r->connection->write;

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    wev->delayed = 0;

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


/* The write event of a suspended request: the Redis timeout (or a spurious event). */
static void
ngx_http_tronch_wait_handler(ngx_http_request_t *r)
{
    ngx_event_t                  *wev = r->connection->write;
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_ctx_t        *ctx;
    ngx_http_tronch_pending_t    *p;

    if (wev->delayed) {
        /* not our timer: keep waiting */
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }
        return;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_tronch_module);

    if (ctx && (ctx->state == NGX_HTTP_TRONCH_LOOKUP || ctx->state == NGX_HTTP_TRONCH_LIMITING)) {
        p = ctx->pending;
        ctx->pending = NULL;

        if (p) {
            ngx_http_tronch_redis_timed_out(p);
        }

        if (ctx->state == NGX_HTTP_TRONCH_LOOKUP) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0, "tronch: redis lookup timed out");
            ngx_http_tronch_lookup_failed(mcf, ctx);

        } else {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tronch: redis rate limit check timed out, degraded to local limits");
            ngx_http_tronch_limit_failed(mcf, ctx);
        }
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_tronch_resume(r);
}


/* Redis answered (or gave up): the answer is used and cached, then the request resumes. */
static void
ngx_http_tronch_lookup_done(void *data, ngx_http_tronch_lookup_rc_e rc, ngx_uint_t mirror_complete,
    const tronch_record_t *record)
{
    ngx_http_tronch_ctx_t        *ctx = data;
    ngx_http_request_t           *r = ctx->request;
    ngx_connection_t             *c;
    ngx_http_tronch_main_conf_t  *mcf;

    ctx->pending = NULL;

    if (r == NULL || ctx->state != NGX_HTTP_TRONCH_LOOKUP) {
        return;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);

    if (rc == NGX_HTTP_TRONCH_LOOKUP_FOUND) {
        if (ngx_http_tronch_records_accept(r, mcf, ctx, record) == NGX_OK) {
            ngx_http_tronch_lookup_answered(mcf, ctx, record);

        } else {
            /* not believable: an unknown key (cached negative by records_accept) */
            ctx->state = NGX_HTTP_TRONCH_LOOKED_UP;
            ctx->answer.negative = 1;
            ctx->have_answer = 1;
            ctx->stale = 0;
        }

    } else if (rc == NGX_HTTP_TRONCH_LOOKUP_ABSENT && mirror_complete) {
        ngx_http_tronch_lookup_answered(mcf, ctx, NULL);

    } else {
        if (rc == NGX_HTTP_TRONCH_LOOKUP_ABSENT) {
            /* Without the mirror-complete mark a miss proves nothing: as if Redis were down. */
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tronch: key not in redis and the mirror is not complete (no %s)",
                          tronch_bridge_mirror_epoch_key());
        }

        ngx_http_tronch_lookup_failed(mcf, ctx);
    }

    c = r->connection;
    ngx_http_tronch_resume(r);
    ngx_http_run_posted_requests(c);
}


/* The Redis GCRA check answered (or failed: degraded), then the request resumes. */
static void
ngx_http_tronch_limit_done(void *data, ngx_int_t rc, const tronch_decision_t *d)
{
    ngx_http_tronch_ctx_t        *ctx = data;
    ngx_http_request_t           *r = ctx->request;
    ngx_connection_t             *c;
    ngx_http_tronch_main_conf_t  *mcf;

    ctx->pending = NULL;

    if (r == NULL || ctx->state != NGX_HTTP_TRONCH_LIMITING) {
        return;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);

    if (rc == NGX_OK) {
        ngx_http_tronch_limit_answered(mcf, ctx, d);

    } else {
        ngx_http_tronch_limit_failed(mcf, ctx);
    }

    c = r->connection;
    ngx_http_tronch_resume(r);
    ngx_http_run_posted_requests(c);
}


/* The request waits for Redis (lookup or limit check): nginx timer on its write event. */
static void
ngx_http_tronch_suspend(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf)
{
    ngx_event_t  *wev;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_tronch_wait_handler;

    wev = r->connection->write;
    wev->delayed = 1;
    ngx_add_timer(wev, mcf->redis_timeout);
}


/* the access handler */

/* A new request: the key, the checks that need no lookup, the cache, else a Redis lookup. */
static ngx_int_t
ngx_http_tronch_start(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx)
{
    ngx_http_tronch_stats_t     *st;
    ngx_str_t                    key;
    ngx_int_t                    rc;
    ngx_http_tronch_cache_rc_e   crc;

    if (lcf->require_https) {
#if (NGX_HTTP_SSL)
        if (r->connection->ssl == NULL)
#endif
        {
            return ngx_http_tronch_finish(r, ctx, TRONCH_RESULT_HTTPS_REQUIRED);
        }
    }

    rc = ngx_http_tronch_find_key(r, lcf, &key, &ctx->key_elt);

    if (rc != NGX_OK) {
        return ngx_http_tronch_finish_before_lookup(r, mcf, lcf, ctx,
                   rc == NGX_ABORT ? TRONCH_RESULT_AMBIGUOUS_CREDENTIALS : TRONCH_RESULT_MISSING_KEY);
    }

    if (tronch_bridge_parse_key((const char *) key.data, key.len, &ctx->key_env, ctx->digest) != TRONCH_OK) {
        return ngx_http_tronch_finish_before_lookup(r, mcf, lcf, ctx, TRONCH_RESULT_MALFORMED_KEY);
    }

    ctx->key_parsed = 1;

    /* the key says its environment: no lookup needed to refuse it here */
    if (lcf->environment != NGX_HTTP_TRONCH_ENV_ANY
        && (ngx_uint_t) ctx->key_env != lcf->environment)
    {
        return ngx_http_tronch_finish_before_lookup(r, mcf, lcf, ctx,
                                                    TRONCH_RESULT_WRONG_ENVIRONMENT);
    }

    st = ngx_http_tronch_stats(mcf->shm_zone);
    crc = ngx_http_tronch_cache_lookup(mcf->shm_zone, ctx->digest, lcf, &ctx->answer);

    if (crc == NGX_HTTP_TRONCH_CACHE_HIT && !ctx->answer.negative) {
        /* a known key needs no lookup: served even from an address out of failure budget */
        (void) ngx_atomic_fetch_add(&st->cache_hits, 1);
        ctx->have_answer = 1;
        return ngx_http_tronch_decide(r, mcf, lcf, ctx);
    }

    /* brute-force guard: an address out of failure budget gets no lookup (nor an answer about
     * a key it guessed before) */
    if (ngx_http_tronch_limit_address_check(r, mcf, lcf, ctx) != NGX_OK) {
        return ngx_http_tronch_finish(r, ctx, TRONCH_RESULT_RATE_LIMITED);
    }

    if (crc == NGX_HTTP_TRONCH_CACHE_HIT) {
        (void) ngx_atomic_fetch_add(&st->cache_hits, 1);
        ctx->have_answer = 1;
        return ngx_http_tronch_decide(r, mcf, lcf, ctx);
    }

    (void) ngx_atomic_fetch_add(&st->cache_misses, 1);

    ctx->stale = (crc == NGX_HTTP_TRONCH_CACHE_STALE);
    ctx->generation = ngx_http_tronch_cache_generation(mcf->shm_zone);

    ctx->pending = ngx_http_tronch_redis_lookup(ctx->digest, ngx_http_tronch_lookup_done, ctx,
                                                r->connection->log);

    if (ctx->pending == NULL) {
        /* Redis is down (reconnecting with backoff): answer now, no waiting */
        (void) ngx_atomic_fetch_add(&st->redis_errors, 1);
        ngx_http_tronch_lookup_failed(mcf, ctx);
        return ngx_http_tronch_decide(r, mcf, lcf, ctx);
    }

    ctx->state = NGX_HTTP_TRONCH_LOOKUP;
    ngx_http_tronch_suspend(r, mcf);

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_tronch_access_handler(ngx_http_request_t *r)
{
    ngx_http_tronch_loc_conf_t   *lcf;
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_ctx_t        *ctx;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_tronch_module);
    if (!lcf->enable) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_tronch_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    switch (ctx->state) {

    case NGX_HTTP_TRONCH_NEW:
        return ngx_http_tronch_start(r, mcf, lcf, ctx);

    case NGX_HTTP_TRONCH_LOOKUP:
    case NGX_HTTP_TRONCH_LIMITING:
        return NGX_AGAIN;

    case NGX_HTTP_TRONCH_LOOKED_UP:
        return ngx_http_tronch_decide(r, mcf, lcf, ctx);

    case NGX_HTTP_TRONCH_LIMITED:
        return ngx_http_tronch_finish(r, ctx, ctx->decision.allowed ? TRONCH_RESULT_OK
                                                                    : TRONCH_RESULT_RATE_LIMITED);

    case NGX_HTTP_TRONCH_PASSED:
        /* an internal redirect: this location's rules, the same key */
        if (ctx->result == TRONCH_RESULT_OK) {
            return ngx_http_tronch_decide(r, mcf, lcf, ctx);
        }
        return NGX_OK;

    default: /* NGX_HTTP_TRONCH_REFUSED */
        return NGX_HTTP_FORBIDDEN;
    }
}


static ngx_int_t
ngx_http_tronch_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_tronch_add_variables(cf);
}


static ngx_int_t
ngx_http_tronch_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt          *h;
    ngx_http_core_main_conf_t    *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_tronch_access_handler;

    ngx_http_tronch_records_postconf(cf, ngx_http_conf_get_module_main_conf(cf, ngx_http_tronch_module));

    if (ngx_http_tronch_variables_init(cf) != NGX_OK
        || ngx_http_tronch_filter_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_tronch_usage_init(cf);
}



/* processes */

static ngx_http_tronch_main_conf_t *
ngx_http_tronch_cycle_main_conf(ngx_cycle_t *cycle)
{
    if (cycle->conf_ctx == NULL || cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NULL;
    }

    return ngx_http_cycle_get_module_main_conf(cycle, ngx_http_tronch_module);
}


static ngx_int_t
ngx_http_tronch_init_process(ngx_cycle_t *cycle)
{
    ngx_http_tronch_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    mcf = ngx_http_tronch_cycle_main_conf(cycle);
    if (mcf == NULL || mcf->shm_zone == NULL || mcf->redis_host.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_tronch_records_init_process(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_tronch_redis_init_process(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_tronch_usage_init_process(cycle, mcf);

    return NGX_OK;
}


static void
ngx_http_tronch_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_tronch_usage_exit_process(cycle);
    ngx_http_tronch_redis_exit_process(cycle);
}
