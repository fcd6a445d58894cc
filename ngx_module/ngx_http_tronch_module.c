/*
 * Tronch: API-key authentication in nginx's access phase.
 *
 * Request path: find the key (a header, never the query string) -> format and checksum check,
 * no I/O -> SHA-256 -> shared-memory cache -> on a miss, one async Redis lookup with the request
 * suspended (resumed like limit_req's delay) -> status, expiry, environment, allowed addresses ->
 * pass (variables set, key header removed) or refuse (application/problem+json).
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


static ngx_str_t  ngx_http_tronch_env_names[] = { ngx_string("live"), ngx_string("test") };


/* request context */

static void
ngx_http_tronch_ctx_cleanup(void *data)
{
    ngx_http_tronch_ctx_t  *ctx = data;

    if (ctx->pending) {
        ngx_http_tronch_redis_cancel(ctx->pending, 0);
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


static ngx_int_t
ngx_http_tronch_decide(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx)
{
    const tronch_record_t  *rec;
    ngx_int_t               rc;

    if (!ctx->have_answer) {
        if (lcf->failure_mode == NGX_HTTP_TRONCH_FAIL_OPEN) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tronch: key not verifiable (redis unavailable), passed: failure mode open");
            return ngx_http_tronch_pass(r, mcf, ctx, TRONCH_RESULT_AUTH_UNAVAILABLE);
        }

        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_AUTH_UNAVAILABLE);
    }

    if (ctx->answer.negative) {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_UNKNOWN_KEY);
    }

    rec = &ctx->answer.record;

    if (rec->status == TRONCH_STATUS_REVOKED) {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_REVOKED_KEY);
    }

    if (rec->status == TRONCH_STATUS_EXPIRED
        || (rec->has_expires && rec->expires_at <= (int64_t) ngx_time()))
    {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_EXPIRED_KEY);
    }

    if ((lcf->environment != NGX_HTTP_TRONCH_ENV_ANY && rec->env != lcf->environment)
        || rec->env != ctx->key_env)
    {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_WRONG_ENVIRONMENT);
    }

    if (rec->ncidrs && !ngx_http_tronch_address_allowed(r, rec)) {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_ADDRESS_NOT_ALLOWED);
    }

    /* authenticated and authorised: only now may the key's quota be spent */
    rc = ngx_http_tronch_limit_key(r, mcf, lcf, ctx, ngx_http_tronch_limit_done);

    if (rc == NGX_AGAIN) {
        ctx->state = NGX_HTTP_TRONCH_STATE_LIMIT_WAITING;
        ngx_http_tronch_suspend(r, mcf);
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_RATE_LIMITED);
    }

    return ngx_http_tronch_pass(r, mcf, ctx, TRONCH_RESULT_OK);
}


/* A refusal that needs no lookup; from an address out of failure budget, 429 instead (the
 * budget's answer does not depend on the key, so it tells a guesser nothing). */
static ngx_int_t
ngx_http_tronch_refuse_guarded(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx, ngx_uint_t result)
{
    if (ngx_http_tronch_limit_address_check(r, mcf, lcf, ctx) != NGX_OK) {
        result = TRONCH_RESULT_RATE_LIMITED;
    }

    return ngx_http_tronch_refuse(r, mcf, ctx, result);
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
    ngx_event_t                *wev = r->connection->write;
    ngx_http_tronch_ctx_t      *ctx;
    ngx_http_tronch_pending_t  *p;

    if (wev->delayed) {
        /* not our timer: keep waiting */
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_tronch_module);

    if (ctx && ctx->state == NGX_HTTP_TRONCH_STATE_WAITING) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0, "tronch: redis lookup timed out");

        ctx->state = NGX_HTTP_TRONCH_STATE_ANSWERED;
        ctx->lookup_failed = 1;
        p = ctx->pending;
        ctx->pending = NULL;

        if (p) {
            ngx_http_tronch_redis_cancel(p, 1);
        }

    } else if (ctx && ctx->state == NGX_HTTP_TRONCH_STATE_LIMIT_WAITING) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tronch: redis rate limit check timed out, degraded to local limits");

        p = ctx->pending;
        ctx->pending = NULL;

        if (p) {
            ngx_http_tronch_redis_cancel(p, 1);
        }

        (void) ngx_http_tronch_limit_redis_done(
                   ngx_http_get_module_main_conf(r, ngx_http_tronch_module), ctx, NGX_ERROR, NULL);
        ctx->state = NGX_HTTP_TRONCH_STATE_LIMIT_ANSWERED;
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_tronch_resume(r);
}


/* Redis answered (or gave up): cache the answer, then resume the request. */
static void
ngx_http_tronch_lookup_done(void *data, ngx_http_tronch_lookup_rc_e rc, ngx_uint_t mirror_complete,
    const tronch_record_t *record)
{
    ngx_http_tronch_ctx_t        *ctx = data;
    ngx_http_request_t           *r = ctx->request;
    ngx_connection_t             *c;
    ngx_http_tronch_main_conf_t  *mcf;

    ctx->pending = NULL;

    if (r == NULL || ctx->state != NGX_HTTP_TRONCH_STATE_WAITING) {
        return;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    ctx->state = NGX_HTTP_TRONCH_STATE_ANSWERED;

    switch (rc) {

    case NGX_HTTP_TRONCH_LOOKUP_FOUND:
        if (ngx_http_tronch_records_accept(r, mcf, ctx, record) != NGX_OK) {
            /* not believable: an unknown key (cached negative by records_accept) */
            ctx->answer.negative = 1;
            ctx->have_answer = 1;
            ctx->stale = 0;
            break;
        }

        ctx->answer.negative = 0;
        ngx_memcpy(&ctx->answer.record, record, sizeof(tronch_record_t));
        ctx->have_answer = 1;
        ctx->stale = 0;
        ngx_http_tronch_cache_store(mcf->shm_zone, ctx->digest, &ctx->answer, ctx->generation);
        break;

    case NGX_HTTP_TRONCH_LOOKUP_ABSENT:
        if (mirror_complete) {
            ctx->answer.negative = 1;
            ctx->have_answer = 1;
            ctx->stale = 0;
            ngx_http_tronch_cache_store(mcf->shm_zone, ctx->digest, &ctx->answer, ctx->generation);
            break;
        }

        /* Without the mirror-complete mark a miss proves nothing: as if Redis were down. */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tronch: key not in redis and the mirror is not complete (no %s)",
                      tronch_bridge_mirror_epoch_key());
        ctx->lookup_failed = 1;
        break;

    default:
        ctx->lookup_failed = 1;
        break;
    }

    if (ctx->lookup_failed && ctx->stale) {
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->cache_stale_serves, 1);
    }

    c = r->connection;
    ngx_http_tronch_resume(r);
    ngx_http_run_posted_requests(c);
}


/* The Redis GCRA check answered (or failed: degraded), then resume the request. */
static void
ngx_http_tronch_limit_done(void *data, ngx_int_t rc, const tronch_decision_t *d)
{
    ngx_http_tronch_ctx_t  *ctx = data;
    ngx_http_request_t     *r = ctx->request;
    ngx_connection_t       *c;

    ctx->pending = NULL;

    if (r == NULL || ctx->state != NGX_HTTP_TRONCH_STATE_LIMIT_WAITING) {
        return;
    }

    (void) ngx_http_tronch_limit_redis_done(ngx_http_get_module_main_conf(r, ngx_http_tronch_module),
                                            ctx, rc, d);
    ctx->state = NGX_HTTP_TRONCH_STATE_LIMIT_ANSWERED;

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


static ngx_int_t
ngx_http_tronch_access_handler(ngx_http_request_t *r)
{
    ngx_http_tronch_loc_conf_t   *lcf;
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_ctx_t        *ctx;
    ngx_http_tronch_stats_t      *st;
    ngx_table_elt_t              *elt;
    ngx_str_t                     key;
    ngx_int_t                     rc;
    ngx_http_tronch_cache_rc_e    crc;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_tronch_module);
    if (!lcf->enable) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    st = ngx_http_tronch_stats(mcf->shm_zone);

    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx) {
        switch (ctx->state) {

        case NGX_HTTP_TRONCH_STATE_WAITING:
        case NGX_HTTP_TRONCH_STATE_LIMIT_WAITING:
            return NGX_AGAIN;

        case NGX_HTTP_TRONCH_STATE_LIMIT_ANSWERED:
            if (ctx->decision.allowed) {
                return ngx_http_tronch_pass(r, mcf, ctx, TRONCH_RESULT_OK);
            }
            return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_RATE_LIMITED);

        case NGX_HTTP_TRONCH_STATE_ANSWERED:
            if (!ctx->have_answer && ctx->stale) {
                ctx->have_answer = 1;   /* the stale entry stands in for Redis */
            }
            return ngx_http_tronch_decide(r, mcf, lcf, ctx);

        case NGX_HTTP_TRONCH_STATE_DECIDED:
            /* an internal redirect: this location's rules, the same key */
            if (ctx->passed && ctx->result == TRONCH_RESULT_OK) {
                return ngx_http_tronch_decide(r, mcf, lcf, ctx);
            }
            return ctx->passed ? NGX_OK : NGX_HTTP_FORBIDDEN;

        default:
            break;
        }

    } else {
        ctx = ngx_http_tronch_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (lcf->require_https) {
#if (NGX_HTTP_SSL)
        if (r->connection->ssl == NULL)
#endif
        {
            return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_HTTPS_REQUIRED);
        }
    }

    elt = NULL;
    rc = ngx_http_tronch_find_key(r, lcf, &key, &elt);

    if (rc != NGX_OK) {
        return ngx_http_tronch_refuse_guarded(r, mcf, lcf, ctx,
                                              rc == NGX_ABORT ? TRONCH_RESULT_AMBIGUOUS_CREDENTIALS
                                                              : TRONCH_RESULT_MISSING_KEY);
    }

    ctx->key_elt = elt;

    if (tronch_bridge_parse_key((const char *) key.data, key.len, &ctx->key_env, ctx->digest) != 0) {
        return ngx_http_tronch_refuse_guarded(r, mcf, lcf, ctx, TRONCH_RESULT_MALFORMED_KEY);
    }

    ctx->key_parsed = 1;

    /* the key says its environment: no lookup needed to refuse it here */
    if (lcf->environment != NGX_HTTP_TRONCH_ENV_ANY
        && (ngx_uint_t) ctx->key_env != lcf->environment)
    {
        return ngx_http_tronch_refuse_guarded(r, mcf, lcf, ctx, TRONCH_RESULT_WRONG_ENVIRONMENT);
    }

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
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_RATE_LIMITED);
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
        ctx->state = NGX_HTTP_TRONCH_STATE_ANSWERED;
        ctx->lookup_failed = 1;

        if (ctx->stale) {
            (void) ngx_atomic_fetch_add(&st->cache_stale_serves, 1);
            ctx->have_answer = 1;
        }

        return ngx_http_tronch_decide(r, mcf, lcf, ctx);
    }

    ctx->state = NGX_HTTP_TRONCH_STATE_WAITING;
    ngx_http_tronch_suspend(r, mcf);

    return NGX_AGAIN;
}


/* variables */

static ngx_int_t
ngx_http_tronch_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_tronch_ctx_t  *ctx;
    const tronch_record_t  *rec;
    size_t                  len;
    const char             *code;

    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx == NULL && r != r->main) {
        ctx = ngx_http_tronch_get_ctx(r->main);   /* subrequests: the main request's key */
    }

    if (ctx == NULL || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }

    rec = &ctx->answer.record;

    switch (data) {

    case 0:  /* $tronch_result */
        code = tronch_bridge_result_code((int) ctx->result, &len);
        v->data = (u_char *) code;
        v->len = len;
        break;

    case 1:  /* $tronch_key_id */
        if (!ctx->have_answer || ctx->answer.negative || rec->id[0] == '\0') {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = (u_char *) rec->id;
        v->len = ngx_strlen(rec->id);
        break;

    case 2:  /* $tronch_key_env */
        if (!ctx->key_parsed) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = ngx_http_tronch_env_names[ctx->key_env ? 1 : 0].data;
        v->len = ngx_http_tronch_env_names[ctx->key_env ? 1 : 0].len;
        break;

    default: /* $tronch_key_prefix */
        if (!ctx->have_answer || ctx->answer.negative || rec->prefix[0] == '\0') {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = (u_char *) rec->prefix;
        v->len = ngx_strlen(rec->prefix);
        break;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * $tronch_safe_request: $request (the request line) with every key-shaped token masked to its
 * prefix, for access logs. A line without a key marker is used as it is; one with a marker costs
 * one allocation from the request pool (the value is cached for the request).
 */
static ngx_int_t  ngx_http_tronch_request_index = NGX_ERROR;
static ngx_str_t  ngx_http_tronch_request_name = ngx_string("request");

static ngx_int_t
ngx_http_tronch_safe_request_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_http_variable_value_t  *line;
    u_char                     *p;
    size_t                      len;

    line = ngx_http_get_indexed_variable(r, ngx_http_tronch_request_index);

    if (line == NULL || line->not_found) {
        v->not_found = 1;
        return NGX_OK;
    }

    *v = *line;

    if (!tronch_bridge_has_key_marker((const char *) line->data, line->len)) {
        return NGX_OK;
    }

    len = tronch_bridge_mask_bound(line->len);
    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = tronch_bridge_mask_keys((const char *) line->data, line->len, (char *) p, len);
    v->data = p;

    return NGX_OK;
}


static ngx_http_variable_t  ngx_http_tronch_vars[] = {

    { ngx_string("tronch_safe_request"), NULL, ngx_http_tronch_safe_request_variable, 0, 0, 0 },

    { ngx_string("tronch_result"), NULL, ngx_http_tronch_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tronch_key_id"), NULL, ngx_http_tronch_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tronch_key_env"), NULL, ngx_http_tronch_variable, 2,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tronch_key_prefix"), NULL, ngx_http_tronch_variable, 3,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_tronch_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_tronch_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
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

    ngx_http_tronch_request_index = ngx_http_get_variable_index(cf, &ngx_http_tronch_request_name);
    if (ngx_http_tronch_request_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    return ngx_http_tronch_limit_init(cf);
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
