/*
 * The rate limiter (local policy): GCRA state per key id and per client address in the
 * tronch_zone, exact across all workers of the node (every check under the slab mutex).
 * The maths is the core's (tronch_bridge_gcra); this file keeps the state and sets the
 * response headers (a header filter, so they are on passed, refused and proxied answers).
 *
 * State is bounded: when the slab is full, entries are evicted from the LRU tail, first those
 * whose TAT has passed (an idle key's state is then the same as no state: a full bucket).
 *
 * A key's entry also counts its requests and errors until the next usage flush
 * (ngx_http_tronch_usage.c takes them out with ngx_http_tronch_limit_usage_collect).
 */
#include "ngx_http_tronch_module.h"


#define NGX_HTTP_TRONCH_LIMIT_KEY_MAX  48
#define NGX_HTTP_TRONCH_KIND_KEY       'k'
#define NGX_HTTP_TRONCH_KIND_ADDRESS   'a'
#define NGX_HTTP_TRONCH_EVICT_SCAN     16
#define NGX_HTTP_TRONCH_FLUSH_TAKEOVER 3000   /* ms without a flush: another worker takes over */


typedef struct {
    ngx_rbtree_node_t            node;          /* node.key: ngx_http_tronch_limit_hash(data) */
    ngx_queue_t                  queue;
    ngx_queue_t                  dirty;         /* in lsh->dirty iff requests or errors */
    int64_t                      tat;           /* microseconds, unix clock; 0: none */
    int64_t                      last_used;     /* unix seconds (keys) */
    uint32_t                     requests;      /* usage not yet flushed (keys) */
    uint32_t                     errors;
    u_char                       len;
    u_char                       data[NGX_HTTP_TRONCH_LIMIT_KEY_MAX];
} ngx_http_tronch_lnode_t;


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;



static void
ngx_http_tronch_limit_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t        **p;
    ngx_http_tronch_lnode_t   *n, *t;

    for ( ;; ) {
        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            n = (ngx_http_tronch_lnode_t *) node;
            t = (ngx_http_tronch_lnode_t *) temp;
            p = (ngx_memn2cmp(n->data, t->data, n->len, t->len) < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


void
ngx_http_tronch_limit_init_sh(ngx_http_tronch_limit_sh_t *lsh)
{
    ngx_rbtree_init(&lsh->rbtree, &lsh->sentinel, ngx_http_tronch_limit_rbtree_insert);
    ngx_queue_init(&lsh->lru);
    ngx_queue_init(&lsh->dirty);
}


/* Under the mutex. A key's first count since its last flush queues it at the dirty tail, so
 * the flush takes keys in the order they started waiting, however many are busy. */
static ngx_inline void
ngx_http_tronch_usage_count(ngx_http_tronch_limit_sh_t *lsh, ngx_http_tronch_lnode_t *n,
    uint32_t requests, uint32_t errors)
{
    if (n->requests == 0 && n->errors == 0) {
        ngx_queue_insert_tail(&lsh->dirty, &n->dirty);
    }

    n->requests += requests;
    n->errors += errors;
}


static int64_t
ngx_http_tronch_now_us(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);
    return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}


/* The tree key of a state name. MurmurHash2 reads 4 bytes a step, where ngx_crc32_short
 * goes byte by byte: on a 37-byte name it is ~4x fewer instructions (callgrind), per request. */
static ngx_inline uint32_t
ngx_http_tronch_limit_hash(const u_char *data, size_t len)
{
    return ngx_murmur_hash2((u_char *) data, len);
}


/* Under the mutex. */
static ngx_http_tronch_lnode_t *
ngx_http_tronch_limit_find(ngx_http_tronch_limit_sh_t *lsh, const u_char *data, size_t len,
    uint32_t hash)
{
    ngx_rbtree_node_t        *node, *sentinel;
    ngx_http_tronch_lnode_t  *n;
    ngx_int_t                 rc;

    node = lsh->rbtree.root;
    sentinel = lsh->rbtree.sentinel;

    while (node != sentinel) {
        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        n = (ngx_http_tronch_lnode_t *) node;
        rc = ngx_memn2cmp((u_char *) data, n->data, len, n->len);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* Under the mutex: frees room, idle entries first. */
static void
ngx_http_tronch_limit_evict(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_limit_sh_t *lsh,
    ngx_slab_pool_t *shpool, int64_t now)
{
    ngx_queue_t              *q, *prev;
    ngx_http_tronch_lnode_t  *n;
    ngx_uint_t                i, freed;

    freed = 0;

    for (q = ngx_queue_last(&lsh->lru), i = 0;
         q != ngx_queue_sentinel(&lsh->lru) && i < NGX_HTTP_TRONCH_EVICT_SCAN;
         q = prev, i++)
    {
        prev = ngx_queue_prev(q);
        n = ngx_queue_data(q, ngx_http_tronch_lnode_t, queue);

        if (n->tat <= now && n->requests == 0 && n->errors == 0) {
            ngx_queue_remove(q);
            ngx_rbtree_delete(&lsh->rbtree, &n->node);
            ngx_slab_free_locked(shpool, n);
            freed++;
        }
    }

    if (freed == 0 && !ngx_queue_empty(&lsh->lru)) {
        q = ngx_queue_last(&lsh->lru);
        n = ngx_queue_data(q, ngx_http_tronch_lnode_t, queue);

        if (n->requests || n->errors) {
            /* the zone is too small for the keys in use: these counts are lost, and counted */
            ngx_queue_remove(&n->dirty);
            (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->usage_dropped,
                                        n->requests);
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&lsh->rbtree, &n->node);
        ngx_slab_free_locked(shpool, n);
        freed++;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->limit_evictions, freed);
}


/*
 * One GCRA check on the state named by data (limit NULL: no check, d is given). store 0 only looks
 * (would one more fit?); usage 1 counts the request (and an error if refused) for the flush.
 */
static void
ngx_http_tronch_limit_check(ngx_http_tronch_main_conf_t *mcf, const u_char *data, size_t len,
    const tronch_limit_t *limit, ngx_uint_t store, ngx_uint_t usage, tronch_decision_t *d)
{
    ngx_http_tronch_limit_sh_t  *lsh;
    ngx_slab_pool_t             *shpool;
    ngx_http_tronch_lnode_t     *n;
    uint32_t                     hash;
    int64_t                      now;
    ngx_uint_t                   spend;

    lsh = ngx_http_tronch_limit_sh(mcf->shm_zone, &shpool);
    hash = ngx_http_tronch_limit_hash(data, len);

    ngx_shmtx_lock(&shpool->mutex);

    now = ngx_http_tronch_now_us();
    n = ngx_http_tronch_limit_find(lsh, data, len, hash);

    if (limit) {
        tronch_bridge_gcra(n ? n->tat : 0, now, limit, 1, d);
    }   /* else: d is the caller's (no limit, or Redis decided) */

    spend = (limit && store && d->allowed);

    if (!spend && !usage) {
        if (n) {
            ngx_queue_remove(&n->queue);
            ngx_queue_insert_head(&lsh->lru, &n->queue);
        }
        ngx_shmtx_unlock(&shpool->mutex);
        return;
    }

    if (n == NULL) {
        n = ngx_slab_alloc_locked(shpool, sizeof(ngx_http_tronch_lnode_t));

        if (n == NULL) {
            ngx_http_tronch_limit_evict(mcf, lsh, shpool, now);
            n = ngx_slab_alloc_locked(shpool, sizeof(ngx_http_tronch_lnode_t));
        }

        if (n == NULL) {
            /* no room at all: the decision stands, no state is kept */
            ngx_shmtx_unlock(&shpool->mutex);
            return;
        }

        ngx_memzero(n, sizeof(ngx_http_tronch_lnode_t));
        n->node.key = hash;
        n->len = (u_char) len;
        ngx_memcpy(n->data, data, len);
        ngx_rbtree_insert(&lsh->rbtree, &n->node);

    } else {
        ngx_queue_remove(&n->queue);
    }

    ngx_queue_insert_head(&lsh->lru, &n->queue);

    if (spend) {
        n->tat = d->new_tat_us;
    }

    if (usage) {
        ngx_http_tronch_usage_count(lsh, n, 1, d->allowed ? 0 : 1);
        n->last_used = now / 1000000;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static size_t
ngx_http_tronch_key_name(const tronch_record_t *rec, u_char *data)
{
    size_t  len;

    len = ngx_strlen(rec->id);
    if (len > NGX_HTTP_TRONCH_LIMIT_KEY_MAX - 1) {
        len = NGX_HTTP_TRONCH_LIMIT_KEY_MAX - 1;
    }

    data[0] = NGX_HTTP_TRONCH_KIND_KEY;
    ngx_memcpy(data + 1, rec->id, len);

    return len + 1;
}


static ngx_int_t
ngx_http_tronch_limit_decided(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx)
{
    ngx_http_tronch_stats_t  *st = ngx_http_tronch_stats(mcf->shm_zone);

    ctx->limit_headers = 1;

    if (ctx->decision.allowed) {
        (void) ngx_atomic_fetch_add(&st->limit_allowed, 1);
        return NGX_OK;
    }

    (void) ngx_atomic_fetch_add(&st->limit_limited, 1);
    return NGX_DECLINED;
}


/* The check in this node's shm; degraded: Redis is unreachable under the redis policy, so
 * this node takes its share of the limit (tronch_nodes). */
static ngx_int_t
ngx_http_tronch_limit_local(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    ngx_uint_t degraded)
{
    u_char          data[NGX_HTTP_TRONCH_LIMIT_KEY_MAX];
    size_t          len;
    tronch_limit_t  whole;

    if (degraded) {
        whole = ctx->limit;
        tronch_bridge_limit_share(&whole, mcf->nodes, &ctx->limit);
        ctx->limit_degraded = 1;
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->limit_degraded, 1);
    }

    len = ngx_http_tronch_key_name(&ctx->answer.record, data);
    ngx_http_tronch_limit_check(mcf, data, len, &ctx->limit, 1, 1, &ctx->decision);

    return ngx_http_tronch_limit_decided(mcf, ctx);
}


ngx_int_t
ngx_http_tronch_limit_redis_done(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    ngx_int_t rc, const tronch_decision_t *d)
{
    u_char  data[NGX_HTTP_TRONCH_LIMIT_KEY_MAX];
    size_t  len;

    if (rc != NGX_OK || d == NULL) {
        return ngx_http_tronch_limit_local(mcf, ctx, 1);
    }

    ctx->decision = *d;

    /* usage only: the state is in Redis */
    len = ngx_http_tronch_key_name(&ctx->answer.record, data);
    ngx_http_tronch_limit_check(mcf, data, len, NULL, 0, 1, &ctx->decision);

    return ngx_http_tronch_limit_decided(mcf, ctx);
}


ngx_int_t
ngx_http_tronch_limit_key(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx, ngx_http_tronch_gcra_done_pt done)
{
    const tronch_record_t  *rec = &ctx->answer.record;
    u_char                  data[NGX_HTTP_TRONCH_LIMIT_KEY_MAX];
    size_t                  len;
    tronch_decision_t       d;

    if (ctx->limit_checked) {
        /* an internal redirect: the request was counted once */
        return ctx->decision.allowed ? NGX_OK : NGX_DECLINED;
    }

    ctx->limit_checked = 1;

    if (rec->has_limit) {
        if (tronch_bridge_record_limit(rec->limit_rate, rec->limit_period, rec->limit_burst,
                                       &ctx->limit) != 0)
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tronch: key %s has an unusable limit, tronch_default_limit applies",
                          rec->id);
            ctx->limit = lcf->default_limit;
        }

    } else {
        ctx->limit = lcf->default_limit;
    }

    if (ctx->limit.rate == 0) {
        /* no limit at all: no headers, but the request is counted */
        ngx_memzero(&ctx->decision, sizeof(tronch_decision_t));
        ctx->decision.allowed = 1;
        len = ngx_http_tronch_key_name(rec, data);
        ngx_http_tronch_limit_check(mcf, data, len, NULL, 0, 1, &ctx->decision);
        return NGX_OK;
    }

    if (lcf->limit_policy == NGX_HTTP_TRONCH_POLICY_LEASED) {
        switch (ngx_http_tronch_lease_check(mcf, rec->id, &ctx->limit, lcf->lease_share, &d, done, ctx,
                                            &ctx->pending))
        {
        case NGX_OK:
            return ngx_http_tronch_limit_redis_done(mcf, ctx, NGX_OK, &d);
        case NGX_AGAIN:
            return NGX_AGAIN;
        default:
            return ngx_http_tronch_limit_local(mcf, ctx, 1);
        }
    }

    if (lcf->limit_policy == NGX_HTTP_TRONCH_POLICY_REDIS) {
        ctx->pending = ngx_http_tronch_redis_gcra(rec->id, &ctx->limit, done, ctx);

        if (ctx->pending) {
            return NGX_AGAIN;
        }

        return ngx_http_tronch_limit_local(mcf, ctx, 1);
    }

    return ngx_http_tronch_limit_local(mcf, ctx, 0);
}


/* The client address as state name: 'a', family, address bytes. */
static size_t
ngx_http_tronch_address_name(ngx_http_request_t *r, u_char *data)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    data[0] = NGX_HTTP_TRONCH_KIND_ADDRESS;

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        data[1] = 4;
        ngx_memcpy(data + 2, &sin->sin_addr.s_addr, 4);
        return 6;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        data[1] = 6;
        ngx_memcpy(data + 2, sin6->sin6_addr.s6_addr, 16);
        return 18;
#endif

    default:
        data[1] = 0;   /* unix socket: one shared budget */
        return 2;
    }
}


ngx_int_t
ngx_http_tronch_limit_address_check(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx)
{
    u_char  data[NGX_HTTP_TRONCH_LIMIT_KEY_MAX];
    size_t  len;

    if (lcf->address_limit.rate == 0) {
        return NGX_OK;
    }

    len = ngx_http_tronch_address_name(r, data);

    ngx_http_tronch_limit_check(mcf, data, len, &lcf->address_limit, 0, 0, &ctx->decision);

    if (ctx->decision.allowed) {
        ngx_memzero(&ctx->decision, sizeof(tronch_decision_t));
        return NGX_OK;
    }

    ctx->limit = lcf->address_limit;
    ctx->limit_headers = 1;
    ctx->limit_checked = 1;
    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->limit_address_limited, 1);

    return NGX_DECLINED;
}


void
ngx_http_tronch_limit_address_fail(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf)
{
    u_char             data[NGX_HTTP_TRONCH_LIMIT_KEY_MAX];
    size_t             len;
    tronch_decision_t  d;

    if (lcf->address_limit.rate == 0) {
        return;
    }

    len = ngx_http_tronch_address_name(r, data);
    ngx_http_tronch_limit_check(mcf, data, len, &lcf->address_limit, 1, 0, &d);
    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->limit_address_failures, 1);
}


/* headers */

static ngx_int_t
ngx_http_tronch_add_header(ngx_http_request_t *r, const char *name, size_t name_len,
    const char *value, size_t value_len)
{
    ngx_table_elt_t  *h;
    u_char           *p;

    if (value_len == 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, value_len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, value, value_len);

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = name_len;
    h->value.data = p;
    h->value.len = value_len;

    return NGX_OK;
}


#define ngx_http_tronch_header(r, name, v, l)                                 \
    ngx_http_tronch_add_header(r, name, sizeof(name) - 1, v, l)


static ngx_int_t
ngx_http_tronch_limit_header_filter(ngx_http_request_t *r)
{
    ngx_http_tronch_ctx_t   *ctx;
    tronch_limit_headers_t   hv;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx == NULL || !ctx->limit_headers || ctx->limit.rate == 0) {
        return ngx_http_next_header_filter(r);
    }

    ctx->limit_headers = 0;   /* once */

    tronch_bridge_limit_headers(&ctx->limit, &ctx->decision, &hv);

    if (ngx_http_tronch_header(r, "RateLimit-Policy", hv.policy, hv.policy_len) != NGX_OK
        || ngx_http_tronch_header(r, "RateLimit", hv.ratelimit, hv.ratelimit_len) != NGX_OK
        || ngx_http_tronch_header(r, "X-RateLimit-Limit", hv.limit, hv.limit_len) != NGX_OK
        || ngx_http_tronch_header(r, "X-RateLimit-Remaining", hv.remaining, hv.remaining_len) != NGX_OK
        || ngx_http_tronch_header(r, "X-RateLimit-Reset", hv.reset, hv.reset_len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!ctx->decision.allowed
        && ngx_http_tronch_header(r, "Retry-After", hv.retry_after, hv.retry_after_len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->limit_degraded
        && ngx_http_tronch_header(r, "Tronch-RateLimit-Mode", "degraded", 8) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* usage: an upstream 5xx on an authenticated request is an error of its key */

static ngx_int_t
ngx_http_tronch_limit_log_handler(ngx_http_request_t *r)
{
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_ctx_t        *ctx;
    ngx_http_tronch_limit_sh_t   *lsh;
    ngx_slab_pool_t              *shpool;
    ngx_http_tronch_lnode_t      *n;
    u_char                        data[NGX_HTTP_TRONCH_LIMIT_KEY_MAX];
    size_t                        len;

    if (r != r->main || r->headers_out.status < 500) {
        return NGX_OK;
    }

    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx == NULL || !ctx->passed || ctx->result != TRONCH_RESULT_OK || !ctx->limit_checked
        || ctx->answer.record.id[0] == '\0')
    {
        return NGX_OK;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    lsh = ngx_http_tronch_limit_sh(mcf->shm_zone, &shpool);
    len = ngx_http_tronch_key_name(&ctx->answer.record, data);

    ngx_shmtx_lock(&shpool->mutex);
    n = ngx_http_tronch_limit_find(lsh, data, len, ngx_http_tronch_limit_hash(data, len));
    if (n) {
        ngx_http_tronch_usage_count(lsh, n, 0, 1);
    }
    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/* usage flush: the counts the owner worker takes out of the zone (ngx_http_tronch_usage.c
 * sends them) */

ngx_uint_t
ngx_http_tronch_limit_usage_collect(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_usage_t *buf,
    ngx_uint_t max)
{
    ngx_http_tronch_limit_sh_t  *lsh;
    ngx_slab_pool_t             *shpool;
    ngx_queue_t                 *q;
    ngx_http_tronch_lnode_t     *n;
    ngx_http_tronch_usage_t     *u;
    ngx_uint_t                   count;
    ngx_atomic_uint_t            pid;

    lsh = ngx_http_tronch_limit_sh(mcf->shm_zone, &shpool);
    pid = (ngx_atomic_uint_t) ngx_pid;
    count = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (lsh->flush_owner != pid) {
        if (lsh->flush_owner != 0
            && ngx_current_msec - lsh->flush_seen < NGX_HTTP_TRONCH_FLUSH_TAKEOVER)
        {
            ngx_shmtx_unlock(&shpool->mutex);
            return 0;   /* another worker flushes */
        }
        lsh->flush_owner = pid;
    }

    lsh->flush_seen = ngx_current_msec;

    while (!ngx_queue_empty(&lsh->dirty) && count < max) {
        q = ngx_queue_head(&lsh->dirty);
        n = ngx_queue_data(q, ngx_http_tronch_lnode_t, dirty);
        ngx_queue_remove(q);

        if (n->data[0] == NGX_HTTP_TRONCH_KIND_KEY) {
            u = &buf[count++];
            ngx_memcpy(u->id, n->data + 1, n->len - 1);
            u->id[n->len - 1] = '\0';
            u->requests = n->requests;
            u->errors = n->errors;
            u->last_used = n->last_used;
        }

        n->requests = 0;
        n->errors = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return count;
}


ngx_int_t
ngx_http_tronch_limit_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_tronch_limit_header_filter;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_tronch_limit_log_handler;

    return NGX_OK;
}
