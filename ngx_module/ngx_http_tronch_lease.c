/*
 * Leased cluster-wide limits (tronch_limit_policy leased). The GCRA state of a key stays in Redis,
 * as under the exact `redis` policy, but a node reserves a batch of the key's requests with one
 * atomic script (the lease script: advance the TAT by n emission intervals, never past the burst)
 * and spends them locally, under the zone's mutex, for all its workers. The maths and the
 * bookkeeping are the core's (tronch/lease.hpp, through the bridge); this file keeps one lease
 * per key in the tronch_zone and talks to Redis:
 *   - a request finds a held token: admitted at once; when the tokens run low it starts a
 *     renewal in the background (no request waits for it);
 *   - nothing held: the request asks Redis for the next lease itself and waits for the answer
 *     (a quiet key's lease is 1: exactly the `redis` policy);
 *   - Redis said "not enough" (a partial grant or a refusal): refused locally until enough fit.
 * Redis unreachable with nothing held: the caller falls back to degraded local limits, as for
 * the `redis` policy.
 */
#include "ngx_http_tronch_redis.h"


#define NGX_HTTP_TRONCH_LEASE_EVICT_SCAN  16


typedef struct {
    ngx_rbtree_node_t            node;     /* node.key: murmur hash of the key id */
    ngx_queue_t                  queue;    /* LRU, most recent at the head */
    tronch_lease_t               lease;
    u_char                       len;
    u_char                       id[TRONCH_ID_MAX];
} ngx_http_tronch_lease_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  lru;
} ngx_http_tronch_lease_sh_t;


static char  ngx_http_tronch_lease_sha[41];


static int64_t
ngx_http_tronch_lease_now(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);
    return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}


static ngx_int_t
ngx_http_tronch_lease_cmp(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    ngx_http_tronch_lease_node_t  *n = (ngx_http_tronch_lease_node_t *) a;
    ngx_http_tronch_lease_node_t  *t = (ngx_http_tronch_lease_node_t *) b;

    return ngx_memn2cmp(n->id, t->id, n->len, t->len);
}


static void
ngx_http_tronch_lease_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_http_tronch_rbtree_insert(temp, node, sentinel, ngx_http_tronch_lease_cmp);
}


/* Under the mutex: the lease table, made on first use (the zone's limiter part has a slot). */
static ngx_http_tronch_lease_sh_t *
ngx_http_tronch_lease_table(ngx_http_tronch_state_sh_t *lsh, ngx_slab_pool_t *shpool)
{
    ngx_http_tronch_lease_sh_t  *ls = lsh->lease;

    if (ls == NULL) {
        ls = ngx_slab_alloc_locked(shpool, sizeof(ngx_http_tronch_lease_sh_t));
        if (ls == NULL) {
            return NULL;
        }

        ngx_rbtree_init(&ls->rbtree, &ls->sentinel, ngx_http_tronch_lease_rbtree_insert);
        ngx_queue_init(&ls->lru);
        lsh->lease = ls;
    }

    return ls;
}


/* Under the mutex. */
static ngx_http_tronch_lease_node_t *
ngx_http_tronch_lease_find(ngx_http_tronch_lease_sh_t *ls, const u_char *id, size_t len,
    uint32_t hash)
{
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_tronch_lease_node_t  *n;
    ngx_int_t                      rc;

    node = ls->rbtree.root;
    sentinel = ls->rbtree.sentinel;

    while (node != sentinel) {
        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        n = (ngx_http_tronch_lease_node_t *) node;
        rc = ngx_memn2cmp((u_char *) id, n->id, len, n->len);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* Under the mutex: frees room from the LRU tail; tokens an evicted lease held are lapsed. */
static void
ngx_http_tronch_lease_evict(ngx_http_tronch_lease_sh_t *ls, ngx_slab_pool_t *shpool,
    ngx_http_tronch_stats_t *st)
{
    ngx_queue_t                   *q;
    ngx_http_tronch_lease_node_t  *n;
    ngx_uint_t                     i;

    for (i = 0; i < NGX_HTTP_TRONCH_LEASE_EVICT_SCAN && !ngx_queue_empty(&ls->lru); i++) {
        q = ngx_queue_last(&ls->lru);
        n = ngx_queue_data(q, ngx_http_tronch_lease_node_t, queue);

        if (n->lease.tokens > 0) {
            (void) ngx_atomic_fetch_add(&st->lease_lapsed, n->lease.tokens);
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&ls->rbtree, &n->node);
        ngx_slab_free_locked(shpool, n);
    }
}


/* Under the mutex: the key's lease, made if absent (NULL: no room at all). */
static ngx_http_tronch_lease_node_t *
ngx_http_tronch_lease_get(ngx_http_tronch_main_conf_t *mcf, const char *id, ngx_uint_t create)
{
    ngx_http_tronch_state_sh_t    *lsh;
    ngx_http_tronch_lease_sh_t    *ls;
    ngx_http_tronch_lease_node_t  *n;
    ngx_slab_pool_t               *shpool;
    size_t                         len;
    uint32_t                       hash;

    lsh = ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);
    ls = create ? ngx_http_tronch_lease_table(lsh, shpool) : lsh->lease;
    if (ls == NULL) {
        return NULL;
    }

    len = ngx_strnlen((u_char *) id, TRONCH_ID_MAX - 1);
    hash = ngx_murmur_hash2((u_char *) id, len);
    n = ngx_http_tronch_lease_find(ls, (const u_char *) id, len, hash);

    if (n) {
        ngx_queue_remove(&n->queue);
        ngx_queue_insert_head(&ls->lru, &n->queue);
        return n;
    }

    if (!create) {
        return NULL;
    }

    n = ngx_slab_alloc_locked(shpool, sizeof(ngx_http_tronch_lease_node_t));
    if (n == NULL) {
        ngx_http_tronch_lease_evict(ls, shpool, ngx_http_tronch_stats(mcf->shm_zone));
        n = ngx_slab_alloc_locked(shpool, sizeof(ngx_http_tronch_lease_node_t));
        if (n == NULL) {
            return NULL;
        }
    }

    ngx_memzero(n, sizeof(ngx_http_tronch_lease_node_t));
    n->node.key = hash;
    n->len = (u_char) len;
    ngx_memcpy(n->id, id, len);
    ngx_rbtree_insert(&ls->rbtree, &n->node);
    ngx_queue_insert_head(&ls->lru, &n->queue);

    return n;
}


/* Redis: the lease script on the command link (EVALSHA; on NOSCRIPT one EVAL) */

static ngx_int_t ngx_http_tronch_lease_send(ngx_http_tronch_pending_t *p);


static ngx_int_t
ngx_http_tronch_lease_parse(redisReply *reply, tronch_lease_grant_t *g)
{
    ngx_uint_t  i;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
        return NGX_ERROR;
    }

    for (i = 0; i < 5; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    g->granted = reply->element[0]->integer;
    g->remaining = reply->element[1]->integer;
    g->retry_after_us = reply->element[2]->integer;
    g->reset_after_us = reply->element[3]->integer;
    g->wait_us = reply->element[4]->integer;
    g->interval_us = 0;   /* the caller's: set from the pending command */

    return NGX_OK;
}


/* The grant into the key's lease (or, on failure, the renewal given up); held is what stays. */
static void
ngx_http_tronch_lease_apply(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_pending_t *p,
    ngx_int_t rc, const tronch_lease_grant_t *g, ngx_uint_t spend, int64_t *held)
{
    ngx_http_tronch_lease_node_t  *n;
    ngx_slab_pool_t               *shpool;
    ngx_http_tronch_stats_t       *st = ngx_http_tronch_stats(mcf->shm_zone);

    *held = 0;
    (void) ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);

    ngx_shmtx_lock(&shpool->mutex);

    n = ngx_http_tronch_lease_get(mcf, p->record.id, rc == NGX_OK);

    if (n && rc == NGX_OK) {
        tronch_bridge_lease_granted(&n->lease, ngx_http_tronch_lease_now(), p->want, spend ? 1 : 0, g,
                                    mcf->nodes);
        *held = n->lease.tokens;

    } else if (n) {
        tronch_bridge_lease_renew_failed(&n->lease, p->want);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (rc == NGX_OK) {
        (void) ngx_atomic_fetch_add(&st->lease_granted, g->granted);
    }
}


static void
ngx_http_tronch_lease_reply(ngx_http_tronch_rconn_t *conn, redisReply *reply, void *privdata)
{
    ngx_http_tronch_pending_t    *p = privdata;
    ngx_http_tronch_main_conf_t  *mcf = ngx_http_tronch_redis_mcf;
    tronch_lease_grant_t          g;
    tronch_decision_t             d;
    ngx_int_t                     rc;
    ngx_uint_t                    spend;
    int64_t                       held;
    size_t                        len;
    const char                   *script;

    (void) conn;

    if (reply && reply->type == REDIS_REPLY_ERROR && !p->reloaded && !ngx_http_tronch_redis_exiting
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        p->reloaded = 1;
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->limit_script_reloads, 1);
        script = tronch_bridge_lease_script(&len);

        if (ngx_http_tronch_rconn_command(&ngx_http_tronch_cmd_link.rc, ngx_http_tronch_lease_reply, p,
                                          "EVAL %b 1 %b %lld %lld %lld", script, len,
                                          p->name, p->name_len, (long long) p->interval,
                                          (long long) p->capacity, (long long) p->want) == NGX_OK)
        {
            return;
        }
    }

    if (mcf == NULL || ngx_http_tronch_redis_exiting) {
        ngx_http_tronch_pending_put(p);
        return;
    }

    ngx_memzero(&g, sizeof(tronch_lease_grant_t));
    rc = ngx_http_tronch_lease_parse(reply, &g);
    g.interval_us = p->interval;

    if (rc != NGX_OK) {
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->redis_errors, 1);
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_http_tronch_redis_log, 0,
                          "tronch: redis lease script failed: %s", reply->str);
        }
    }

    /* the request that asked spends one granted token, unless it went away meanwhile */
    spend = p->for_request && p->gcra_done != NULL;
    ngx_http_tronch_lease_apply(mcf, p, rc, &g, spend, &held);

    if (spend) {
        ngx_memzero(&d, sizeof(tronch_decision_t));
        d.allowed = (g.granted > 0);
        d.remaining = g.remaining + held;
        d.retry_after_us = g.granted > 0 ? 0 : g.retry_after_us;
        d.reset_after_us = g.reset_after_us;
        p->gcra_done(p->data, rc, &d);
    }

    ngx_http_tronch_pending_put(p);
}


static ngx_int_t
ngx_http_tronch_lease_send(ngx_http_tronch_pending_t *p)
{
    if (ngx_http_tronch_lease_sha[0] == '\0'
        && tronch_bridge_lease_script_sha1(ngx_http_tronch_lease_sha) != TRONCH_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_tronch_rconn_command(&ngx_http_tronch_cmd_link.rc, ngx_http_tronch_lease_reply, p,
                                      "EVALSHA %s 1 %b %lld %lld %lld", ngx_http_tronch_lease_sha,
                                      p->name, p->name_len, (long long) p->interval,
                                      (long long) p->capacity, (long long) p->want) != NGX_OK)
    {
        return NGX_ERROR;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->lease_requests, 1);

    return NGX_OK;
}


/* A lease command for want tokens: for a waiting request (done, data) or in the background. */
static ngx_http_tronch_pending_t *
ngx_http_tronch_lease_start(const char *id, const tronch_limit_t *limit, int64_t want,
    ngx_http_tronch_gcra_done_pt done, void *data)
{
    ngx_http_tronch_pending_t  *p;

    p = ngx_http_tronch_redis_limit_pending(id, limit, done, data);
    if (p == NULL) {
        return NULL;
    }

    /* the key id, to find its lease when the answer comes (the record slot is unused here) */
    (void) ngx_cpystrn((u_char *) p->record.id, (u_char *) id, TRONCH_ID_MAX);
    p->want = want;
    p->for_request = (done != NULL);

    if (ngx_http_tronch_lease_send(p) != NGX_OK) {
        ngx_http_tronch_pending_put(p);
        return NULL;
    }

    return p;
}


/* A renewal could not be sent: another may start at once. */
static void
ngx_http_tronch_lease_renew_failed(ngx_http_tronch_main_conf_t *mcf, const char *id, int64_t asked)
{
    ngx_http_tronch_lease_node_t  *n;
    ngx_slab_pool_t               *shpool;

    (void) ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);

    ngx_shmtx_lock(&shpool->mutex);
    n = ngx_http_tronch_lease_get(mcf, id, 0);
    if (n) {
        tronch_bridge_lease_renew_failed(&n->lease, asked);
    }
    ngx_shmtx_unlock(&shpool->mutex);
}


ngx_int_t
ngx_http_tronch_lease_check(ngx_http_tronch_main_conf_t *mcf, const char *id,
    const tronch_limit_t *limit, ngx_int_t share, tronch_decision_t *d,
    ngx_http_tronch_gcra_done_pt done, void *data, ngx_http_tronch_pending_t **pending)
{
    ngx_http_tronch_lease_node_t  *n;
    ngx_http_tronch_stats_t       *st = ngx_http_tronch_stats(mcf->shm_zone);
    ngx_slab_pool_t               *shpool;
    tronch_lease_take_t            t;
    int64_t                        cap, lapsed;

    cap = tronch_bridge_lease_cap(limit, mcf->nodes, share);
    (void) ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);

    ngx_shmtx_lock(&shpool->mutex);

    n = ngx_http_tronch_lease_get(mcf, id, 1);
    if (n == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        t.action = TRONCH_LEASE_ASK;
        t.ask = 1;
        lapsed = 0;

    } else {
        tronch_bridge_lease_take(&n->lease, ngx_http_tronch_lease_now(), cap, &t);
        lapsed = n->lease.lapsed;
        n->lease.lapsed = 0;
        ngx_shmtx_unlock(&shpool->mutex);
    }

    if (lapsed) {
        (void) ngx_atomic_fetch_add(&st->lease_lapsed, lapsed);
    }

    ngx_memzero(d, sizeof(tronch_decision_t));

    switch (t.action) {

    case TRONCH_LEASE_ADMIT:
        d->allowed = 1;
        d->remaining = ngx_min(t.remaining, limit->rate + limit->burst - 1);
        d->reset_after_us = t.reset_after_us;
        (void) ngx_atomic_fetch_add(&st->lease_local, 1);

        if (t.renew > 0 && ngx_http_tronch_lease_start(id, limit, t.renew, NULL, NULL) == NULL) {
            ngx_http_tronch_lease_renew_failed(mcf, id, t.renew);
        }

        return NGX_OK;

    case TRONCH_LEASE_REFUSE:
        d->allowed = 0;
        d->retry_after_us = t.retry_after_us;
        d->reset_after_us = t.reset_after_us;
        (void) ngx_atomic_fetch_add(&st->lease_local, 1);
        return NGX_OK;

    default:   /* ask Redis now; the request waits */
        *pending = ngx_http_tronch_lease_start(id, limit, t.ask, done, data);
        if (*pending == NULL) {
            ngx_http_tronch_lease_renew_failed(mcf, id, t.ask);
            return NGX_DECLINED;
        }
        return NGX_AGAIN;
    }
}

