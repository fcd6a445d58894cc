/*
 * Tronch: API-key authentication in nginx's access phase.
 *
 * Request path: find the key (a header, never the query string) -> format and checksum check,
 * no I/O -> SHA-256 -> shared-memory cache -> on a miss, one async Redis lookup with the request
 * suspended (resumed like limit_req's delay) -> status, expiry, environment, allowed addresses ->
 * pass (variables set, key header removed) or refuse (application/problem+json).
 */
#include "ngx_http_tronch_module.h"


typedef enum {
    NGX_HTTP_TRONCH_STATE_NEW = 0,
    NGX_HTTP_TRONCH_STATE_WAITING,    /* Redis lookup in flight, request suspended */
    NGX_HTTP_TRONCH_STATE_ANSWERED,   /* lookup finished (or failed): decide */
    NGX_HTTP_TRONCH_STATE_DECIDED
} ngx_http_tronch_state_e;


typedef struct {
    ngx_http_request_t           *request;
    ngx_http_tronch_pending_t    *pending;
    ngx_http_tronch_state_e       state;
    ngx_uint_t                    result;        /* tronch_result_e, once decided */
    unsigned                      decided:1;
    unsigned                      passed:1;
    unsigned                      have_answer:1; /* answer is from the cache or Redis */
    unsigned                      stale:1;       /* answer is a stale cache entry */
    unsigned                      lookup_failed:1;
    unsigned                      headers_cleaned:1;
    unsigned                      counted:1;     /* once per request, not per redirect */
    int                           key_env;
    ngx_atomic_uint_t             generation;
    ngx_table_elt_t              *key_elt;
    u_char                        digest[TRONCH_DIGEST_LEN];
    char                          hex[TRONCH_HEX_LEN];
    ngx_http_tronch_answer_t      answer;
} ngx_http_tronch_ctx_t;


static ngx_int_t ngx_http_tronch_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_tronch_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_tronch_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_tronch_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_tronch_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_tronch_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static ngx_int_t ngx_http_tronch_init_process(ngx_cycle_t *cycle);
static void ngx_http_tronch_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_tronch_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_key_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_environment(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_failure_mode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_positive_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


static ngx_command_t  ngx_http_tronch_commands[] = {

    { ngx_string("tronch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, enable),
      NULL },

    { ngx_string("tronch_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_tronch_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_positive_msec,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("tronch_key_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_key_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_environment"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_environment,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_positive_msec,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, cache_ttl),
      NULL },

    { ngx_string("tronch_negative_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_positive_msec,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, negative_ttl),
      NULL },

    { ngx_string("tronch_stale_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, stale_ttl),
      NULL },

    { ngx_string("tronch_failure_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_failure_mode,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_require_https"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, require_https),
      NULL },

    { ngx_string("tronch_status"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tronch_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


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


#define ngx_http_tronch_isalnum(c)                                           \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')                \
     || ((c) >= '0' && (c) <= '9'))


static ngx_str_t  ngx_http_tronch_problem_type = ngx_string("application/problem+json");
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
static ngx_http_tronch_ctx_t *
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


/* headers */

/* Takes one element out of the request's header list. Pointers that other code holds to
 * elements stay valid: the part that held it is copied, not shifted in place. */
static ngx_int_t
ngx_http_tronch_remove_header(ngx_http_request_t *r, ngx_table_elt_t *h)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *elts, *copy;
    ngx_uint_t        i, n;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        elts = part->elts;

        if (h < elts || h >= elts + part->nelts) {
            continue;
        }

        i = h - elts;

        if (i == part->nelts - 1) {
            part->nelts--;
            return NGX_OK;
        }

        copy = ngx_palloc(r->pool, r->headers_in.headers.nalloc * sizeof(ngx_table_elt_t));
        if (copy == NULL) {
            return NGX_ERROR;
        }

        for (i = 0, n = 0; i < part->nelts; i++) {
            if (&elts[i] != h) {
                copy[n++] = elts[i];
            }
        }

        part->elts = copy;
        part->nelts = n;
        return NGX_OK;
    }

    return NGX_OK;
}


/* The key, from Authorization: Bearer (or the configured header); never the query string. */
static ngx_int_t
ngx_http_tronch_find_key(ngx_http_request_t *r, ngx_http_tronch_loc_conf_t *lcf,
    ngx_str_t *key, ngx_table_elt_t **elt)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *auth, *api;
    ngx_uint_t        i;
    ngx_str_t        *want;
    u_char           *p, *last;

    auth = NULL;
    api = NULL;
    want = &lcf->key_header;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == 0 || h[i].value.len == 0) {
                continue;
            }

            if (want->len) {
                if (h[i].key.len == want->len
                    && ngx_strncasecmp(h[i].key.data, want->data, want->len) == 0)
                {
                    if (want->len == sizeof("Authorization") - 1
                        && ngx_strncasecmp(want->data, (u_char *) "Authorization", want->len) == 0)
                    {
                        auth = &h[i];
                    } else {
                        api = &h[i];
                    }
                }
                continue;
            }

            if (h[i].key.len == sizeof("Authorization") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Authorization",
                                   sizeof("Authorization") - 1) == 0)
            {
                auth = &h[i];

            } else if (h[i].key.len == sizeof("X-API-Key") - 1
                       && ngx_strncasecmp(h[i].key.data, (u_char *) "X-API-Key",
                                          sizeof("X-API-Key") - 1) == 0)
            {
                api = &h[i];
            }
        }
    }

    if (auth
        && auth->value.len > sizeof("Bearer ") - 1
        && ngx_strncasecmp(auth->value.data, (u_char *) "Bearer ", sizeof("Bearer ") - 1) == 0)
    {
        p = auth->value.data + sizeof("Bearer ") - 1;
        last = auth->value.data + auth->value.len;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        if (p < last) {
            key->data = p;
            key->len = last - p;
            *elt = auth;
            return NGX_OK;
        }
    }

    if (api) {
        p = api->value.data;
        last = p + api->value.len;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        if (p < last) {
            key->data = p;
            key->len = last - p;
            *elt = api;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* On pass: the key leaves the request, and so does anything the client sent that mimics
 * what we hand upstream (X-Tronch-*): upstreams trust only what nginx sets. */
static ngx_int_t
ngx_http_tronch_clean_headers(ngx_http_request_t *r, ngx_http_tronch_ctx_t *ctx)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_uint_t        i;
    ngx_uint_t        again;

    if (ctx->headers_cleaned) {
        return NGX_OK;
    }

    ctx->headers_cleaned = 1;

    if (ctx->key_elt) {
        if (r->headers_in.authorization == ctx->key_elt) {
            r->headers_in.authorization = NULL;
        }

        if (ngx_http_tronch_remove_header(r, ctx->key_elt) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->key_elt = NULL;
    }

    do {
        again = 0;

        for (part = &r->headers_in.headers.part; part && !again; part = part->next) {
            h = part->elts;

            for (i = 0; i < part->nelts; i++) {
                if (h[i].key.len >= sizeof("X-Tronch-") - 1
                    && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Tronch-",
                                       sizeof("X-Tronch-") - 1) == 0)
                {
                    if (ngx_http_tronch_remove_header(r, &h[i]) != NGX_OK) {
                        return NGX_ERROR;
                    }
                    again = 1;
                    break;
                }
            }
        }
    } while (again);

    return NGX_OK;
}


/* decisions */

static void
ngx_http_tronch_count_result(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    ngx_uint_t result)
{
    ngx_http_tronch_stats_t  *st = ngx_http_tronch_stats(mcf->shm_zone);

    if (ctx->counted) {
        return;
    }

    ctx->counted = 1;
    (void) ngx_atomic_fetch_add(&st->requests[result], 1);

    if (result != TRONCH_RESULT_OK && ctx->passed) {
        (void) ngx_atomic_fetch_add(&st->fail_open_passes, 1);
    }
}


static ngx_int_t
ngx_http_tronch_refuse(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_ctx_t *ctx, ngx_uint_t result)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;
    const char       *code;
    size_t            len;

    ctx->decided = 1;
    ctx->passed = 0;
    ctx->result = result;
    ctx->state = NGX_HTTP_TRONCH_STATE_DECIDED;

    ngx_http_tronch_count_result(mcf, ctx, result);

    code = tronch_bridge_result_code((int) result, &len);
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "tronch: refused: %*s", len, code);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = tronch_bridge_result_status((int) result);
    r->headers_out.content_type = ngx_http_tronch_problem_type;
    r->headers_out.content_type_len = ngx_http_tronch_problem_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = mcf->bodies[result].len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        goto error;
    }
    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    if (r->headers_out.status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            goto error;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "Bearer realm=\"tronch\"");
        r->headers_out.www_authenticate = h;

    } else if (r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            goto error;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        goto error;
    }

    b->pos = mcf->bodies[result].data;
    b->last = b->pos + mcf->bodies[result].len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));
    return NGX_DONE;

error:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    return NGX_DONE;
}


static ngx_int_t
ngx_http_tronch_pass(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_ctx_t *ctx, ngx_uint_t result)
{
    ctx->decided = 1;
    ctx->passed = 1;
    ctx->result = result;
    ctx->state = NGX_HTTP_TRONCH_STATE_DECIDED;

    ngx_http_tronch_count_result(mcf, ctx, result);

    if (ngx_http_tronch_clean_headers(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
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

    return ngx_http_tronch_pass(r, mcf, ctx, TRONCH_RESULT_OK);
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


static ngx_int_t
ngx_http_tronch_access_handler(ngx_http_request_t *r)
{
    ngx_http_tronch_loc_conf_t   *lcf;
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_ctx_t        *ctx;
    ngx_http_tronch_stats_t      *st;
    ngx_table_elt_t              *elt;
    ngx_str_t                     key;
    ngx_http_tronch_cache_rc_e    crc;
    ngx_event_t                  *wev;

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
            return NGX_AGAIN;

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
    if (ngx_http_tronch_find_key(r, lcf, &key, &elt) != NGX_OK) {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_MISSING_KEY);
    }

    ctx->key_elt = elt;

    if (tronch_bridge_parse_key((const char *) key.data, key.len, &ctx->key_env, ctx->digest,
                                ctx->hex) != 0)
    {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_MALFORMED_KEY);
    }

    /* the key says its environment: no lookup needed to refuse it here */
    if (lcf->environment != NGX_HTTP_TRONCH_ENV_ANY
        && (ngx_uint_t) ctx->key_env != lcf->environment)
    {
        return ngx_http_tronch_refuse(r, mcf, ctx, TRONCH_RESULT_WRONG_ENVIRONMENT);
    }

    crc = ngx_http_tronch_cache_lookup(mcf->shm_zone, ctx->digest, lcf, &ctx->answer);

    if (crc == NGX_HTTP_TRONCH_CACHE_HIT) {
        (void) ngx_atomic_fetch_add(&st->cache_hits, 1);
        ctx->have_answer = 1;
        return ngx_http_tronch_decide(r, mcf, lcf, ctx);
    }

    (void) ngx_atomic_fetch_add(&st->cache_misses, 1);

    ctx->stale = (crc == NGX_HTTP_TRONCH_CACHE_STALE);
    ctx->generation = ngx_http_tronch_cache_generation(mcf->shm_zone);

    ctx->pending = ngx_http_tronch_redis_lookup(ctx->hex, ngx_http_tronch_lookup_done, ctx,
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

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_tronch_wait_handler;

    wev = r->connection->write;
    wev->delayed = 1;
    ngx_add_timer(wev, mcf->redis_timeout);

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
        if (ctx->hex[0] == '\0') {
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


static ngx_http_variable_t  ngx_http_tronch_vars[] = {

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

    return NGX_OK;
}


/* configuration */

static void *
ngx_http_tronch_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_tronch_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tronch_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    mcf->redis_timeout = NGX_CONF_UNSET_MSEC;

    return mcf;
}


static char *
ngx_http_tronch_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_uint_t                    i;
    u_char                        buf[1024];
    size_t                        len;

    ngx_conf_init_msec_value(mcf->redis_timeout, 250);

    for (i = 0; i < TRONCH_RESULT_COUNT; i++) {
        len = tronch_bridge_problem_body((int) i, (char *) buf, sizeof(buf));
        if (len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "tronch: cannot build the problem body %ui", i);
            return NGX_CONF_ERROR;
        }

        mcf->bodies[i].data = ngx_pnalloc(cf->pool, len);
        if (mcf->bodies[i].data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(mcf->bodies[i].data, buf, len);
        mcf->bodies[i].len = len;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_tronch_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_tronch_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tronch_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /* lcf->key_header = { 0, NULL }: unset */
    lcf->enable = NGX_CONF_UNSET;
    lcf->environment = NGX_CONF_UNSET_UINT;
    lcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    lcf->negative_ttl = NGX_CONF_UNSET_MSEC;
    lcf->stale_ttl = NGX_CONF_UNSET_MSEC;
    lcf->failure_mode = NGX_CONF_UNSET_UINT;
    lcf->require_https = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_http_tronch_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_tronch_loc_conf_t   *prev = parent;
    ngx_http_tronch_loc_conf_t   *conf = child;
    ngx_http_tronch_main_conf_t  *mcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->key_header, prev->key_header, "");
    ngx_conf_merge_uint_value(conf->environment, prev->environment, NGX_HTTP_TRONCH_ENV_ANY);
    ngx_conf_merge_msec_value(conf->cache_ttl, prev->cache_ttl, 60000);
    ngx_conf_merge_msec_value(conf->negative_ttl, prev->negative_ttl, 10000);
    ngx_conf_merge_msec_value(conf->stale_ttl, prev->stale_ttl, 300000);
    ngx_conf_merge_uint_value(conf->failure_mode, prev->failure_mode, NGX_HTTP_TRONCH_FAIL_CLOSED);
    ngx_conf_merge_value(conf->require_https, prev->require_https, 0);

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tronch_module);

    if (conf->enable || conf->status) {
        if (mcf->shm_zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%s\" needs a \"tronch_zone\" in the http block",
                               conf->enable ? "tronch" : "tronch_status");
            return NGX_CONF_ERROR;
        }

        mcf->enabled_somewhere = 1;
    }

    if (conf->enable && mcf->redis_host.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch\" needs a \"tronch_redis\" address in the http block");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tronch_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value;
    ssize_t                       size;
    ngx_uint_t                    i;

    (void) cmd;

    if (mcf->shm_zone) {
        return "is duplicate: one tronch_zone per http block";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "needs a zone name";
    }

    for (i = 0; i < value[1].len; i++) {
        if (!(ngx_http_tronch_isalnum(value[1].data[i]) || ngx_http_tronch_isalnum(value[1].data[i])
              || value[1].data[i] == '_' || value[1].data[i] == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tronch_zone\" directive: invalid zone name \"%V\" "
                               "(letters, digits, \"_\" and \"-\")", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_zone\" directive: invalid size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (16 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_zone\" directive: zone \"%V\" is too small (%V), "
                           "it needs at least %uzk", &value[1], &value[2],
                           (size_t) (16 * ngx_pagesize) / 1024);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone = ngx_shared_memory_add(cf, &value[1], size, &ngx_http_tronch_module);
    if (mcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_zone\" directive: zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone->init = ngx_http_tronch_cache_init_zone;
    mcf->shm_zone->data = ngx_http_tronch_cache_create_ctx(cf);
    if (mcf->shm_zone->data == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* IP:port, [IPv6]:port or unix:/path, parsed here: nothing is resolved on the request path. */
static char *
ngx_http_tronch_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value, host, port;
    u_char                       *colon;
    ngx_int_t                     n;
#if (NGX_HAVE_INET6)
    u_char                        inaddr6[16];
#endif

    (void) cmd;

    if (mcf->redis_host.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    mcf->redis_addr = value[1];

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        host.data = value[1].data + 5;
        host.len = value[1].len - 5;

        if (host.data[0] != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tronch_redis\" directive: invalid address \"%V\": "
                               "a unix socket path must be absolute", &value[1]);
            return NGX_CONF_ERROR;
        }

        mcf->redis_port = 0;
        goto done;
    }

    colon = NULL;
    for (n = value[1].len - 1; n >= 0; n--) {
        if (value[1].data[n] == ':') {
            colon = &value[1].data[n];
            break;
        }
    }

    if (colon == NULL) {
        goto invalid;
    }

    host.data = value[1].data;
    host.len = colon - value[1].data;
    port.data = colon + 1;
    port.len = value[1].data + value[1].len - port.data;

    n = ngx_atoi(port.data, port.len);
    if (n < 1 || n > 65535) {
        goto invalid;
    }

    mcf->redis_port = n;

    if (host.len > 2 && host.data[0] == '[' && host.data[host.len - 1] == ']') {
        host.data++;
        host.len -= 2;
#if (NGX_HAVE_INET6)
        if (ngx_inet6_addr(host.data, host.len, inaddr6) == NGX_OK) {
            goto done;
        }
#endif
        goto invalid;
    }

    if (ngx_inet_addr(host.data, host.len) == INADDR_NONE) {
        goto invalid;
    }

done:

    mcf->redis_host.data = ngx_pnalloc(cf->pool, host.len + 1);
    if (mcf->redis_host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(mcf->redis_host.data, host.data, host.len);
    mcf->redis_host.data[host.len] = '\0';
    mcf->redis_host.len = host.len;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tronch_redis\" directive: invalid address \"%V\": expected IP:port, "
                       "[IPv6]:port or unix:/path (host names are not resolved)", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_tronch_key_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_str_t                   *value;
    ngx_uint_t                   i;
    u_char                       ch;

    (void) cmd;

    if (lcf->key_header.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        ch = value[1].data[i];
        if (!(ngx_http_tronch_isalnum(ch) || ngx_http_tronch_isalnum(ch) || ch == '-' || ch == '_')) {
            goto invalid;
        }
    }

    lcf->key_header = value[1];
    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tronch_key_header\" directive: invalid header name \"%V\" "
                       "(e.g. Authorization or X-API-Key)", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_tronch_environment(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_str_t                   *value;

    (void) cmd;

    if (lcf->environment != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "live") == 0) {
        lcf->environment = NGX_HTTP_TRONCH_ENV_LIVE;
    } else if (ngx_strcmp(value[1].data, "test") == 0) {
        lcf->environment = NGX_HTTP_TRONCH_ENV_TEST;
    } else if (ngx_strcmp(value[1].data, "any") == 0) {
        lcf->environment = NGX_HTTP_TRONCH_ENV_ANY;
    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_environment\" directive: invalid value \"%V\", "
                           "it must be \"live\", \"test\" or \"any\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tronch_failure_mode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_str_t                   *value;

    (void) cmd;

    if (lcf->failure_mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "closed") == 0) {
        lcf->failure_mode = NGX_HTTP_TRONCH_FAIL_CLOSED;
    } else if (ngx_strcmp(value[1].data, "open") == 0) {
        lcf->failure_mode = NGX_HTTP_TRONCH_FAIL_OPEN;
    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_failure_mode\" directive: invalid value \"%V\", "
                           "it must be \"closed\" or \"open\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* A time that must be more than zero: "invalid value" names the directive and the value. */
static char *
ngx_http_tronch_positive_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *rv;
    ngx_msec_t  *ms;
    ngx_str_t   *value;

    value = cf->args->elts;

    rv = ngx_conf_set_msec_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        ms = (ngx_msec_t *) ((char *) conf + cmd->offset);
        if (*ms > 0) {
            return NGX_CONF_OK;
        }
    } else if (rv != NGX_CONF_ERROR && ngx_strcmp(rv, "is duplicate") == 0) {
        return rv;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" directive: invalid time \"%V\", it must be more than zero "
                       "(e.g. 250ms, 30s, 5m)", &cmd->name, &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_tronch_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_http_core_loc_conf_t    *clcf;

    (void) cmd;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_tronch_status_handler;
    lcf->status = 1;

    return NGX_CONF_OK;
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

    return ngx_http_tronch_redis_init_process(cycle, mcf);
}


static void
ngx_http_tronch_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_tronch_redis_exit_process(cycle);
}
