/*
 * The rate limiter: GCRA, for a key (its record's limit, else tronch_default_limit) and for a
 * client address (tronch_address_limit, the failure budget). The maths is the core's
 * (tronch_bridge_gcra); the TATs are in the zone's state table (ngx_http_tronch_zone.c), exact
 * across the node's workers (every check under the slab mutex). Under tronch_limit_policy redis
 * a key's check is the GCRA script on Redis (ngx_http_tronch_redis_limit.c); under leased, a
 * lease held by the node or asked for (ngx_http_tronch_lease.c); with Redis unreachable, the
 * local check on this node's share of the limit (degraded). The policy is per location.
 *
 * Three operations, each one locked section: peek (would one more fit?), spend (decide, and
 * keep the new TAT if allowed), and for a key spend and count its usage together.
 * The response headers are ngx_http_tronch_filter.c's.
 */
#include "ngx_http_tronch_module.h"


/* Would one more fit? Nothing is stored (the node, if any, becomes the most recent). */
static void
ngx_http_tronch_gcra_peek(ngx_http_tronch_main_conf_t *mcf, const ngx_http_tronch_name_t *name,
    const tronch_limit_t *limit, tronch_decision_t *d)
{
    ngx_http_tronch_state_sh_t  *ssh;
    ngx_slab_pool_t             *shpool;
    ngx_http_tronch_state_t     *n;

    ssh = ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);

    ngx_shmtx_lock(&shpool->mutex);

    n = ngx_http_tronch_state_find(ssh, name);
    tronch_bridge_gcra(n ? n->tat : 0, ngx_http_tronch_now_us(), limit, 1, d);

    if (n) {
        ngx_queue_remove(&n->queue);
        ngx_queue_insert_head(&ssh->lru, &n->queue);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* Decides and, if allowed, keeps the new TAT (an address's failure budget). */
static void
ngx_http_tronch_gcra_spend(ngx_http_tronch_main_conf_t *mcf, const ngx_http_tronch_name_t *name,
    const tronch_limit_t *limit, tronch_decision_t *d)
{
    ngx_http_tronch_state_sh_t  *ssh;
    ngx_slab_pool_t             *shpool;
    ngx_http_tronch_state_t     *n;
    int64_t                      now;

    ssh = ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);

    ngx_shmtx_lock(&shpool->mutex);

    now = ngx_http_tronch_now_us();
    n = ngx_http_tronch_state_find(ssh, name);
    tronch_bridge_gcra(n ? n->tat : 0, now, limit, 1, d);

    if (!d->allowed) {
        if (n) {
            ngx_queue_remove(&n->queue);
            ngx_queue_insert_head(&ssh->lru, &n->queue);
        }

    } else {
        n = ngx_http_tronch_state_get(mcf, ssh, shpool, name, now);
        if (n) {   /* else no room at all: the decision stands, no state is kept */
            n->tat = d->new_tat_us;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* A key's check: decides, keeps the new TAT if allowed, and counts the request (an error if
 * refused), in one locked section. */
static void
ngx_http_tronch_gcra_spend_counted(ngx_http_tronch_main_conf_t *mcf,
    const ngx_http_tronch_name_t *name, const tronch_limit_t *limit, tronch_decision_t *d)
{
    ngx_http_tronch_state_sh_t  *ssh;
    ngx_slab_pool_t             *shpool;
    ngx_http_tronch_state_t     *n;
    int64_t                      now;

    ssh = ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);

    ngx_shmtx_lock(&shpool->mutex);

    now = ngx_http_tronch_now_us();
    n = ngx_http_tronch_state_get(mcf, ssh, shpool, name, now);   /* a new node: tat 0, none */
    tronch_bridge_gcra(n ? n->tat : 0, now, limit, 1, d);

    if (n) {   /* else no room at all: the decision stands, no state is kept */
        if (d->allowed) {
            n->tat = d->new_tat_us;
        }

        ngx_http_tronch_usage_add(ssh, n, 1, d->allowed ? 0 : 1, now);
    }

    ngx_shmtx_unlock(&shpool->mutex);
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


/* The check in this node's shm. */
static ngx_int_t
ngx_http_tronch_limit_local(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx)
{
    ngx_http_tronch_name_t  name;

    ngx_http_tronch_key_name(&ctx->answer.record, &name);
    ngx_http_tronch_gcra_spend_counted(mcf, &name, &ctx->limit, &ctx->decision);

    return ngx_http_tronch_limit_decided(mcf, ctx);
}


/* Redis is unreachable under the redis policy: this node takes its share of the limit
 * (tronch_nodes), reported as degraded. */
static ngx_int_t
ngx_http_tronch_limit_degraded(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx)
{
    tronch_limit_t  whole;

    whole = ctx->limit;
    tronch_bridge_limit_share(&whole, mcf->nodes, &ctx->limit);
    ctx->limit_degraded = 1;
    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->limit_degraded, 1);

    return ngx_http_tronch_limit_local(mcf, ctx);
}


ngx_int_t
ngx_http_tronch_limit_redis_failed(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx)
{
    return ngx_http_tronch_limit_degraded(mcf, ctx);
}


ngx_int_t
ngx_http_tronch_limit_redis_decided(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    const tronch_decision_t *d)
{
    ctx->decision = *d;

    /* the state is in Redis: here only the usage */
    ngx_http_tronch_usage_count(mcf, &ctx->answer.record, !d->allowed);

    return ngx_http_tronch_limit_decided(mcf, ctx);
}


/* The record's limit, else the location's default. */
static void
ngx_http_tronch_limit_of(ngx_http_request_t *r, ngx_http_tronch_loc_conf_t *lcf,
    const tronch_record_t *rec, tronch_limit_t *limit)
{
    if (!rec->has_limit) {
        *limit = lcf->default_limit;
        return;
    }

    if (tronch_bridge_record_limit(rec->limit_rate, rec->limit_period, rec->limit_burst, limit)
        != TRONCH_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tronch: key %s has an unusable limit, tronch_default_limit applies", rec->id);
        *limit = lcf->default_limit;
    }
}


ngx_int_t
ngx_http_tronch_limit_key(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx, ngx_http_tronch_gcra_done_pt done)
{
    const tronch_record_t  *rec = &ctx->answer.record;
    tronch_decision_t       d;

    if (ctx->limit_checked) {
        /* an internal redirect: the request was counted once */
        return ctx->decision.allowed ? NGX_OK : NGX_DECLINED;
    }

    ctx->limit_checked = 1;

    ngx_http_tronch_limit_of(r, lcf, rec, &ctx->limit);

    if (ctx->limit.rate == 0) {
        /* no limit at all: no headers, but the request is counted */
        ngx_memzero(&ctx->decision, sizeof(tronch_decision_t));
        ctx->decision.allowed = 1;
        ngx_http_tronch_usage_count(mcf, rec, 0);
        return NGX_OK;
    }

    if (lcf->limit_policy == NGX_HTTP_TRONCH_POLICY_LOCAL) {
        return ngx_http_tronch_limit_local(mcf, ctx);
    }

    if (lcf->limit_policy == NGX_HTTP_TRONCH_POLICY_LEASED) {
        switch (ngx_http_tronch_lease_check(mcf, rec->id, &ctx->limit, lcf->lease_share, &d, done, ctx,
                                            &ctx->pending))
        {
        case NGX_OK:      /* decided from a held lease */
            return ngx_http_tronch_limit_redis_decided(mcf, ctx, &d);
        case NGX_AGAIN:   /* a lease was asked for: done gets the decision */
            return NGX_AGAIN;
        default:
            return ngx_http_tronch_limit_degraded(mcf, ctx);
        }
    }

    ctx->pending = ngx_http_tronch_redis_gcra(rec->id, &ctx->limit, done, ctx);

    if (ctx->pending) {
        return NGX_AGAIN;
    }

    return ngx_http_tronch_limit_degraded(mcf, ctx);
}


ngx_int_t
ngx_http_tronch_limit_address_check(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_loc_conf_t *lcf, ngx_http_tronch_ctx_t *ctx)
{
    ngx_http_tronch_name_t  name;

    if (lcf->address_limit.rate == 0) {
        return NGX_OK;
    }

    ngx_http_tronch_address_name(r, &name);
    ngx_http_tronch_gcra_peek(mcf, &name, &lcf->address_limit, &ctx->decision);

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
    ngx_http_tronch_name_t  name;
    tronch_decision_t       d;

    if (lcf->address_limit.rate == 0) {
        return;
    }

    ngx_http_tronch_address_name(r, &name);
    ngx_http_tronch_gcra_spend(mcf, &name, &lcf->address_limit, &d);
    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->limit_address_failures, 1);
}
