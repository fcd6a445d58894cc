/*
 * The key cache, in the tronch_zone (its layout and life: ngx_http_tronch_zone.c): an rbtree
 * keyed on the SHA-256 digest + an LRU queue, in the manner of limit_req. Every access to the
 * tree and the queue is under the slab pool's mutex; counters are atomic. Plain data only.
 */
#include "ngx_http_tronch_module.h"


typedef struct {
    ngx_rbtree_node_t            node;          /* node.key: first bytes of the digest */
    ngx_queue_t                  queue;         /* LRU, most recent at the head */
    u_char                       digest[TRONCH_DIGEST_LEN];
    ngx_msec_t                   stored;        /* ngx_current_msec (monotonic, system wide) */
    ngx_uint_t                   negative;
    /* signed records: what the zone remembers past the entry's use */
    unsigned                     dropped:1;     /* a tombstone: never served, only remembered */
    unsigned                     warned:1;      /* a refused record was logged for this digest */
    int64_t                      seen_version;  /* highest genuine record version seen */
    tronch_record_t              record;
} ngx_http_tronch_node_t;


/* The cache's view of the zone, for one call. */
typedef struct {
    ngx_http_tronch_cache_sh_t  *sh;
    ngx_slab_pool_t             *shpool;
    ngx_http_tronch_stats_t     *stats;
} ngx_http_tronch_cache_t;


static ngx_inline ngx_http_tronch_cache_t *
ngx_http_tronch_cache(ngx_shm_zone_t *zone, ngx_http_tronch_cache_t *c)
{
    c->sh = ngx_http_tronch_cache_sh(zone, &c->shpool);
    c->stats = ngx_http_tronch_stats(zone);
    return c;
}


static ngx_int_t
ngx_http_tronch_cache_cmp(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    return ngx_memcmp(((ngx_http_tronch_node_t *) a)->digest, ((ngx_http_tronch_node_t *) b)->digest,
                      TRONCH_DIGEST_LEN);
}


static void
ngx_http_tronch_cache_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_http_tronch_rbtree_insert(temp, node, sentinel, ngx_http_tronch_cache_cmp);
}


void
ngx_http_tronch_cache_init_sh(ngx_http_tronch_cache_sh_t *csh)
{
    ngx_rbtree_init(&csh->rbtree, &csh->sentinel, ngx_http_tronch_cache_rbtree_insert);
    ngx_queue_init(&csh->lru);
}


static ngx_http_tronch_node_t *
ngx_http_tronch_find(ngx_http_tronch_cache_sh_t *sh, const u_char *digest)
{
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_http_tronch_node_t  *n;
    ngx_rbtree_key_t         key;
    ngx_int_t                rc;

    ngx_memcpy(&key, digest, sizeof(key));

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        n = (ngx_http_tronch_node_t *) node;
        rc = ngx_memcmp(digest, n->digest, TRONCH_DIGEST_LEN);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_tronch_remove(ngx_http_tronch_cache_t *ctx, ngx_http_tronch_node_t *n)
{
    ngx_queue_remove(&n->queue);
    ngx_rbtree_delete(&ctx->sh->rbtree, &n->node);
    ngx_slab_free_locked(ctx->shpool, n);
    (void) ngx_atomic_fetch_add(&ctx->stats->cache_entries, (ngx_atomic_int_t) -1);
}


/*
 * An event says the entry is out of date. If the node remembers a signed record's version (or a
 * logged refusal), it stays as a tombstone so a replayed older record is still recognised;
 * otherwise it goes. Tombstones are ordinary LRU entries: memory pressure evicts them.
 */
static void
ngx_http_tronch_forget(ngx_http_tronch_cache_t *ctx, ngx_http_tronch_node_t *n)
{
    if (n->seen_version == 0 && !n->warned) {
        ngx_http_tronch_remove(ctx, n);
        return;
    }

    n->dropped = 1;
    n->negative = 0;
    ngx_memzero(&n->record, sizeof(tronch_record_t));
}


ngx_http_tronch_cache_rc_e
ngx_http_tronch_cache_lookup(ngx_shm_zone_t *zone, const u_char *digest,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_answer_t *out)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);
    ngx_http_tronch_node_t      *n;
    ngx_http_tronch_cache_rc_e   rc;
    ngx_msec_int_t               age;
    ngx_uint_t                   revalidate;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    n = ngx_http_tronch_find(ctx->sh, digest);

    if (n == NULL || n->dropped) {
        rc = NGX_HTTP_TRONCH_CACHE_MISS;
        goto done;
    }

    age = (ngx_msec_int_t) (ngx_current_msec - n->stored);
    if (age < 0) {
        age = 0;
    }

    /* stored before a subscriber reconnect: events may have been missed since, so use it
     * only if Redis cannot answer */
    revalidate = ((ngx_msec_int_t) (n->stored - ctx->sh->valid_after) < 0);

    if (n->negative) {
        rc = (!revalidate && (ngx_msec_t) age < lcf->negative_ttl) ? NGX_HTTP_TRONCH_CACHE_HIT
                                                                    : NGX_HTTP_TRONCH_CACHE_MISS;
    } else if (!revalidate && (ngx_msec_t) age < lcf->cache_ttl) {
        rc = NGX_HTTP_TRONCH_CACHE_HIT;

    } else if ((ngx_msec_t) age < lcf->cache_ttl + lcf->stale_ttl) {
        rc = NGX_HTTP_TRONCH_CACHE_STALE;

    } else {
        rc = NGX_HTTP_TRONCH_CACHE_MISS;
    }

    if (rc != NGX_HTTP_TRONCH_CACHE_MISS) {
        out->negative = n->negative;
        ngx_memcpy(&out->record, &n->record, sizeof(tronch_record_t));
        ngx_queue_remove(&n->queue);
        ngx_queue_insert_head(&ctx->sh->lru, &n->queue);
    }

done:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


ngx_atomic_uint_t
ngx_http_tronch_cache_generation(ngx_shm_zone_t *zone)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);

    return ctx->sh->generation;
}


/* Frees the least recently used entries; n == 0: only those older than any TTL could allow. */
static void
ngx_http_tronch_evict(ngx_http_tronch_cache_t *ctx, ngx_uint_t n, ngx_msec_t max_age)
{
    ngx_queue_t             *q;
    ngx_http_tronch_node_t  *node;
    ngx_uint_t               i;

    for (i = 0; i < 3 || n; i++) {

        if (ngx_queue_empty(&ctx->sh->lru)) {
            return;
        }

        q = ngx_queue_last(&ctx->sh->lru);
        node = ngx_queue_data(q, ngx_http_tronch_node_t, queue);

        if (n) {
            n--;
            (void) ngx_atomic_fetch_add(&ctx->stats->cache_evictions, 1);

        } else if ((ngx_msec_t) (ngx_current_msec - node->stored) <= max_age) {
            return;
        }

        ngx_http_tronch_remove(ctx, node);
    }
}


/* The digest's node, made (and put at the LRU head) if there is none; NULL if no room. Locked. */
static ngx_http_tronch_node_t *
ngx_http_tronch_node_get(ngx_http_tronch_cache_t *ctx, const u_char *digest)
{
    ngx_http_tronch_node_t      *n;

    n = ngx_http_tronch_find(ctx->sh, digest);

    if (n == NULL) {
        /* expire a few entries nobody could use any more (a day is past any sane TTL) */
        ngx_http_tronch_evict(ctx, 0, 86400000);

        n = ngx_slab_alloc_locked(ctx->shpool, sizeof(ngx_http_tronch_node_t));
        if (n == NULL) {
            ngx_http_tronch_evict(ctx, 1, 0);
            n = ngx_slab_alloc_locked(ctx->shpool, sizeof(ngx_http_tronch_node_t));
            if (n == NULL) {
                ngx_http_tronch_evict(ctx, 8, 0);
                n = ngx_slab_alloc_locked(ctx->shpool, sizeof(ngx_http_tronch_node_t));
                if (n == NULL) {
                    return NULL;
                }
            }
        }

        ngx_memzero(n, sizeof(ngx_http_tronch_node_t));
        ngx_memcpy(n->digest, digest, TRONCH_DIGEST_LEN);
        ngx_memcpy(&n->node.key, digest, sizeof(n->node.key));
        ngx_rbtree_insert(&ctx->sh->rbtree, &n->node);
        (void) ngx_atomic_fetch_add(&ctx->stats->cache_entries, 1);

    } else {
        ngx_queue_remove(&n->queue);
    }

    ngx_queue_insert_head(&ctx->sh->lru, &n->queue);

    return n;
}


void
ngx_http_tronch_cache_store(ngx_shm_zone_t *zone, const u_char *digest,
    const ngx_http_tronch_answer_t *answer, ngx_atomic_uint_t generation)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);
    ngx_http_tronch_node_t      *n;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* An event arrived while this answer was on its way: it may be the old record. */
    if (ctx->sh->generation != generation) {
        goto done;
    }

    n = ngx_http_tronch_node_get(ctx, digest);
    if (n == NULL) {
        goto done;
    }

    n->stored = ngx_current_msec;
    n->negative = answer->negative;
    n->dropped = 0;
    ngx_memcpy(&n->record, &answer->record, sizeof(tronch_record_t));

    if (!answer->negative) {
        n->warned = 0;
        if (answer->record.version > n->seen_version) {
            n->seen_version = answer->record.version;
        }
    }

done:

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


int64_t
ngx_http_tronch_cache_seen_version(ngx_shm_zone_t *zone, const u_char *digest)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);
    ngx_http_tronch_node_t      *n;
    int64_t                      seen;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    n = ngx_http_tronch_find(ctx->sh, digest);
    seen = n ? n->seen_version : 0;
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return seen;
}


ngx_uint_t
ngx_http_tronch_cache_reject(ngx_shm_zone_t *zone, const u_char *digest, ngx_atomic_uint_t generation)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);
    ngx_http_tronch_node_t      *n;
    ngx_uint_t                   first;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    n = ngx_http_tronch_node_get(ctx, digest);
    if (n == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return 1;   /* no room to remember: log it rather than never */
    }

    first = !n->warned;
    n->warned = 1;

    /* a fresh node (seen_version 0, stored 0) or no event since the lookup: cache the refusal */
    if (ctx->sh->generation == generation || n->stored == 0) {
        n->stored = ngx_current_msec;
        n->negative = 1;
        n->dropped = (ctx->sh->generation != generation);
        ngx_memzero(&n->record, sizeof(tronch_record_t));
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return first;
}


void
ngx_http_tronch_cache_drop(ngx_shm_zone_t *zone, const u_char *digest)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);
    ngx_http_tronch_node_t      *n;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ctx->sh->generation++;

    n = ngx_http_tronch_find(ctx->sh, digest);
    if (n) {
        ngx_http_tronch_forget(ctx, n);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


void
ngx_http_tronch_cache_revalidate_all(ngx_shm_zone_t *zone)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ctx->sh->generation++;
    ctx->sh->valid_after = ngx_current_msec + 1;

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


void
ngx_http_tronch_cache_drop_negative(ngx_shm_zone_t *zone)
{
    ngx_http_tronch_cache_t      c, *ctx = ngx_http_tronch_cache(zone, &c);
    ngx_queue_t                 *q, *next;
    ngx_http_tronch_node_t      *n;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ctx->sh->generation++;

    for (q = ngx_queue_head(&ctx->sh->lru);
         q != ngx_queue_sentinel(&ctx->sh->lru);
         q = next)
    {
        next = ngx_queue_next(q);
        n = ngx_queue_data(q, ngx_http_tronch_node_t, queue);
        if (n->negative) {
            ngx_http_tronch_forget(ctx, n);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}
