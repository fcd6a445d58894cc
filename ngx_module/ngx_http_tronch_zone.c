/*
 * tronch_zone: one shared memory zone, shared by all workers and kept across reloads. Its layout
 * (ngx_http_tronch_shctx_t): the counters, the key cache's tree (ngx_http_tronch_cache.c) and the
 * state table, one node per name (a key id or a client address) holding its GCRA TAT
 * (ngx_http_tronch_limit.c) and its usage counts (ngx_http_tronch_usage.c). Slab allocator +
 * rbtree + LRU, in the manner of limit_req; every tree and queue access is under the slab
 * pool's mutex, counters are atomic. Plain data only.
 *
 * The state table is bounded: when the slab is full, nodes are evicted from the LRU tail, first
 * those whose TAT has passed and that hold no counts (an idle key's state is then the same as no
 * state: a full bucket).
 */
#include "ngx_http_tronch_module.h"


/* The layout's version: bump it whenever ngx_http_tronch_shctx_t or a node changes. */
#define NGX_HTTP_TRONCH_SHM_MAGIC   0x54524e35  /* "TRN5": per-worker counters */
/* The counters, one copy per worker (worker n writes copy n % SHARDS; tronch_status sums them):
 * no cache line written by every worker on every request. Each copy on its own cache lines. */
#define NGX_HTTP_TRONCH_STATS_SHARDS  8

typedef union {
    ngx_http_tronch_stats_t       stats;
    u_char                        pad[ngx_align(sizeof(ngx_http_tronch_stats_t), NGX_CPU_CACHE_LINE)];
} ngx_http_tronch_stats_shard_t;

/* every field is an ngx_atomic_t: the sum adds them word by word */
_Static_assert(sizeof(ngx_http_tronch_stats_t) % sizeof(ngx_atomic_t) == 0, "stats are atomics only");
#define NGX_HTTP_TRONCH_EVICT_SCAN  16


/* magic stays the first field in every version: a reload compares it before anything else. */
typedef struct {
    ngx_uint_t                    magic;
    size_t                        size;         /* sizeof(ngx_http_tronch_shctx_t) */
    ngx_http_tronch_stats_shard_t stats[NGX_HTTP_TRONCH_STATS_SHARDS];
    ngx_http_tronch_cache_sh_t    cache;
    ngx_http_tronch_state_sh_t    state;
} ngx_http_tronch_shctx_t;


/* shm_zone->data; its first two fields keep their places in every version (a reload reads the
 * old cycle's). */
typedef struct {
    ngx_http_tronch_shctx_t      *sh;
    ngx_slab_pool_t              *shpool;
} ngx_http_tronch_zone_ctx_t;


const ngx_msec_t ngx_http_tronch_latency_bounds[NGX_HTTP_TRONCH_LATENCY_BUCKETS - 1] = {
    1, 2, 5, 10, 50, 250
};


/* The insert of every tree in the zone (cache, limiter state, leases): by node.key, a hash,
 * then by the node's name as its type compares them. */
void
ngx_http_tronch_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel, ngx_http_tronch_node_cmp_pt cmp)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {
        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (cmp(node, temp) < 0) ? &temp->left : &temp->right;
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


static ngx_int_t
ngx_http_tronch_state_cmp(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    ngx_http_tronch_state_t  *n = (ngx_http_tronch_state_t *) a, *t = (ngx_http_tronch_state_t *) b;

    return ngx_memn2cmp(n->data, t->data, n->len, t->len);
}


static void
ngx_http_tronch_state_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_http_tronch_rbtree_insert(temp, node, sentinel, ngx_http_tronch_state_cmp);
}


void *
ngx_http_tronch_zone_create_ctx(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_tronch_zone_ctx_t));
}


/* A zone made by another build of the module (across a reload that loaded a new .so): its
 * layout may differ, so it is not used (as limit_req refuses a zone whose key changed). */
static ngx_int_t
ngx_http_tronch_zone_check(ngx_shm_zone_t *shm_zone, ngx_http_tronch_shctx_t *sh)
{
    if (sh->magic == NGX_HTTP_TRONCH_SHM_MAGIC && sh->size == sizeof(ngx_http_tronch_shctx_t)) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "tronch_zone \"%V\" was made by another version of the Tronch module "
                  "(layout %xi, this one is %xi): restart nginx instead of reloading it, "
                  "or give tronch_zone another name", &shm_zone->shm.name,
                  sh->magic, (ngx_uint_t) NGX_HTTP_TRONCH_SHM_MAGIC);
    return NGX_ERROR;
}


ngx_int_t
ngx_http_tronch_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_tronch_zone_ctx_t  *octx = data;
    ngx_http_tronch_zone_ctx_t  *ctx;
    size_t                       len;

    ctx = shm_zone->data;

    if (octx) {
        /* reload: the old cycle's zone, same name and size: keep its contents */
        if (ngx_http_tronch_zone_check(shm_zone, octx->sh) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return ngx_http_tronch_zone_check(shm_zone, ctx->sh);
    }

    ctx->sh = ngx_slab_calloc(ctx->shpool, sizeof(ngx_http_tronch_shctx_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;
    ctx->sh->magic = NGX_HTTP_TRONCH_SHM_MAGIC;
    ctx->sh->size = sizeof(ngx_http_tronch_shctx_t);

    ngx_http_tronch_cache_init_sh(&ctx->sh->cache);

    ngx_rbtree_init(&ctx->sh->state.rbtree, &ctx->sh->state.sentinel,
                    ngx_http_tronch_state_rbtree_insert);
    ngx_queue_init(&ctx->sh->state.lru);
    ngx_queue_init(&ctx->sh->state.dirty);

    len = sizeof(" in tronch_zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in tronch_zone \"%V\"%Z", &shm_zone->shm.name);

    ctx->shpool->log_nomem = 0;   /* a full cache evicts; it is not an error */

    return NGX_OK;
}


ngx_http_tronch_stats_t *
ngx_http_tronch_stats(ngx_shm_zone_t *zone)
{
    ngx_http_tronch_zone_ctx_t  *ctx = zone->data;

    return &ctx->sh->stats[ngx_worker % NGX_HTTP_TRONCH_STATS_SHARDS].stats;
}


void
ngx_http_tronch_stats_sum(ngx_shm_zone_t *zone, ngx_http_tronch_stats_t *out)
{
    ngx_http_tronch_zone_ctx_t  *ctx = zone->data;
    ngx_atomic_uint_t           *sum, *one;
    ngx_uint_t                   s, i, n;

    ngx_memzero(out, sizeof(ngx_http_tronch_stats_t));
    sum = (ngx_atomic_uint_t *) out;
    n = sizeof(ngx_http_tronch_stats_t) / sizeof(ngx_atomic_t);

    for (s = 0; s < NGX_HTTP_TRONCH_STATS_SHARDS; s++) {
        one = (ngx_atomic_uint_t *) &ctx->sh->stats[s].stats;
        for (i = 0; i < n; i++) {
            sum[i] += one[i];   /* unsigned: a gauge's -1 in one copy and +1 in another cancel */
        }
    }
}


ngx_http_tronch_cache_sh_t *
ngx_http_tronch_cache_sh(ngx_shm_zone_t *zone, ngx_slab_pool_t **shpool)
{
    ngx_http_tronch_zone_ctx_t  *ctx = zone->data;

    *shpool = ctx->shpool;
    return &ctx->sh->cache;
}


ngx_http_tronch_state_sh_t *
ngx_http_tronch_state_sh(ngx_shm_zone_t *zone, ngx_slab_pool_t **shpool)
{
    ngx_http_tronch_zone_ctx_t  *ctx = zone->data;

    *shpool = ctx->shpool;
    return &ctx->sh->state;
}


/* state names */

int64_t
ngx_http_tronch_now_us(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);
    return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}


/* The tree key of a state name. MurmurHash2 reads 4 bytes a step, where ngx_crc32_short
 * goes byte by byte: on a 37-byte name it is ~4x fewer instructions (callgrind), per request. */
static ngx_inline void
ngx_http_tronch_name_hash(ngx_http_tronch_name_t *name)
{
    name->hash = ngx_murmur_hash2(name->data, name->len);
}


void
ngx_http_tronch_key_name(const tronch_record_t *rec, ngx_http_tronch_name_t *name)
{
    size_t  len;

    len = ngx_strlen(rec->id);
    if (len > NGX_HTTP_TRONCH_STATE_NAME_MAX - 1) {
        len = NGX_HTTP_TRONCH_STATE_NAME_MAX - 1;
    }

    name->data[0] = NGX_HTTP_TRONCH_KIND_KEY;
    ngx_memcpy(name->data + 1, rec->id, len);
    name->len = len + 1;
    ngx_http_tronch_name_hash(name);
}


void
ngx_http_tronch_address_name(ngx_http_request_t *r, ngx_http_tronch_name_t *name)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    name->data[0] = NGX_HTTP_TRONCH_KIND_ADDRESS;

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        name->data[1] = 4;
        ngx_memcpy(name->data + 2, &sin->sin_addr.s_addr, 4);
        name->len = 6;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        name->data[1] = 6;
        ngx_memcpy(name->data + 2, sin6->sin6_addr.s6_addr, 16);
        name->len = 18;
        break;
#endif

    default:
        name->data[1] = 0;   /* unix socket: one shared budget */
        name->len = 2;
        break;
    }

    ngx_http_tronch_name_hash(name);
}


/* the state table */

ngx_http_tronch_state_t *
ngx_http_tronch_state_find(ngx_http_tronch_state_sh_t *ssh, const ngx_http_tronch_name_t *name)
{
    ngx_rbtree_node_t        *node, *sentinel;
    ngx_http_tronch_state_t  *n;
    ngx_int_t                 rc;

    node = ssh->rbtree.root;
    sentinel = ssh->rbtree.sentinel;

    while (node != sentinel) {
        if (name->hash < node->key) {
            node = node->left;
            continue;
        }

        if (name->hash > node->key) {
            node = node->right;
            continue;
        }

        n = (ngx_http_tronch_state_t *) node;
        rc = ngx_memn2cmp((u_char *) name->data, n->data, name->len, n->len);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_tronch_state_free(ngx_http_tronch_state_sh_t *ssh, ngx_slab_pool_t *shpool,
    ngx_http_tronch_state_t *n)
{
    ngx_queue_remove(&n->queue);
    ngx_rbtree_delete(&ssh->rbtree, &n->node);
    ngx_slab_free_locked(shpool, n);
}


/* Under the mutex: frees room, idle entries first. */
static void
ngx_http_tronch_state_evict(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_state_sh_t *ssh,
    ngx_slab_pool_t *shpool, int64_t now)
{
    ngx_queue_t              *q, *prev;
    ngx_http_tronch_state_t  *n;
    ngx_http_tronch_stats_t  *st = ngx_http_tronch_stats(mcf->shm_zone);
    ngx_uint_t                i, freed;

    freed = 0;

    for (q = ngx_queue_last(&ssh->lru), i = 0;
         q != ngx_queue_sentinel(&ssh->lru) && i < NGX_HTTP_TRONCH_EVICT_SCAN;
         q = prev, i++)
    {
        prev = ngx_queue_prev(q);
        n = ngx_queue_data(q, ngx_http_tronch_state_t, queue);

        if (n->tat <= now && n->requests == 0 && n->errors == 0) {
            ngx_http_tronch_state_free(ssh, shpool, n);
            freed++;
        }
    }

    if (freed == 0 && !ngx_queue_empty(&ssh->lru)) {
        n = ngx_queue_data(ngx_queue_last(&ssh->lru), ngx_http_tronch_state_t, queue);

        if (n->requests || n->errors) {
            /* the zone is too small for the keys in use: these counts are lost, and counted */
            ngx_queue_remove(&n->dirty);
            (void) ngx_atomic_fetch_add(&st->usage_dropped, n->requests);
        }

        ngx_http_tronch_state_free(ssh, shpool, n);
        freed++;
    }

    (void) ngx_atomic_fetch_add(&st->limit_evictions, freed);
}


ngx_http_tronch_state_t *
ngx_http_tronch_state_get(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_state_sh_t *ssh,
    ngx_slab_pool_t *shpool, const ngx_http_tronch_name_t *name, int64_t now_us)
{
    ngx_http_tronch_state_t  *n;

    n = ngx_http_tronch_state_find(ssh, name);

    if (n) {
        ngx_queue_remove(&n->queue);
        ngx_queue_insert_head(&ssh->lru, &n->queue);
        return n;
    }

    n = ngx_slab_alloc_locked(shpool, sizeof(ngx_http_tronch_state_t));

    if (n == NULL) {
        ngx_http_tronch_state_evict(mcf, ssh, shpool, now_us);
        n = ngx_slab_alloc_locked(shpool, sizeof(ngx_http_tronch_state_t));
    }

    if (n == NULL) {
        return NULL;
    }

    ngx_memzero(n, sizeof(ngx_http_tronch_state_t));
    n->node.key = name->hash;
    n->len = (u_char) name->len;
    ngx_memcpy(n->data, name->data, name->len);
    ngx_rbtree_insert(&ssh->rbtree, &n->node);
    ngx_queue_insert_head(&ssh->lru, &n->queue);

    return n;
}
