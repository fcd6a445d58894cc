/*
 * Usage: each key's requests and errors, counted on its node of the zone's state table
 * (ngx_http_tronch_zone.c) until the next flush: counted by the limiter's check (or here, when
 * the limit was decided by Redis or there is none), an upstream 5xx by the log-phase handler,
 * collected by the flush owner (ngx_http_tronch_usage_flush.c sends them to Redis).
 */
#include "ngx_http_tronch_module.h"


#define NGX_HTTP_TRONCH_FLUSH_TAKEOVER 3000   /* ms without a flush: another worker takes over */


/* Under the mutex. A key's first count since its last flush queues it at the dirty tail, so
 * the flush takes keys in the order they started waiting, however many are busy. */
void
ngx_http_tronch_usage_add(ngx_http_tronch_state_sh_t *ssh, ngx_http_tronch_state_t *n,
    uint32_t requests, uint32_t errors, int64_t now_us)
{
    if (n->requests == 0 && n->errors == 0) {
        ngx_queue_insert_tail(&ssh->dirty, &n->dirty);
    }

    n->requests += requests;
    n->errors += errors;

    if (requests) {
        n->last_used = now_us / 1000000;
    }
}


void
ngx_http_tronch_usage_count(ngx_http_tronch_main_conf_t *mcf, const tronch_record_t *rec,
    ngx_uint_t refused)
{
    ngx_http_tronch_state_sh_t  *ssh;
    ngx_slab_pool_t             *shpool;
    ngx_http_tronch_state_t     *n;
    ngx_http_tronch_name_t       name;
    int64_t                      now;

    ngx_http_tronch_key_name(rec, &name);
    ssh = ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);

    ngx_shmtx_lock(&shpool->mutex);

    now = ngx_http_tronch_now_us();
    n = ngx_http_tronch_state_get(mcf, ssh, shpool, &name, now);

    if (n) {   /* else no room at all: not counted */
        ngx_http_tronch_usage_add(ssh, n, 1, refused ? 1 : 0, now);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* An upstream 5xx on an authenticated request is an error of its key. */
static ngx_int_t
ngx_http_tronch_usage_log_handler(ngx_http_request_t *r)
{
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_ctx_t        *ctx;
    ngx_http_tronch_state_sh_t   *ssh;
    ngx_slab_pool_t              *shpool;
    ngx_http_tronch_state_t      *n;
    ngx_http_tronch_name_t        name;

    if (r != r->main || r->headers_out.status < 500) {
        return NGX_OK;
    }

    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx == NULL || ctx->state != NGX_HTTP_TRONCH_PASSED || ctx->result != TRONCH_RESULT_OK
        || !ctx->limit_checked || ctx->answer.record.id[0] == '\0')
    {
        return NGX_OK;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    ssh = ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);
    ngx_http_tronch_key_name(&ctx->answer.record, &name);

    ngx_shmtx_lock(&shpool->mutex);
    n = ngx_http_tronch_state_find(ssh, &name);
    if (n) {
        ngx_http_tronch_usage_add(ssh, n, 0, 1, 0);
    }
    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


ngx_uint_t
ngx_http_tronch_usage_collect(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_usage_t *buf,
    ngx_uint_t max)
{
    ngx_http_tronch_state_sh_t  *ssh;
    ngx_slab_pool_t             *shpool;
    ngx_queue_t                 *q;
    ngx_http_tronch_state_t     *n;
    ngx_http_tronch_usage_t     *u;
    ngx_uint_t                   count;
    ngx_atomic_uint_t            pid;

    ssh = ngx_http_tronch_state_sh(mcf->shm_zone, &shpool);
    pid = (ngx_atomic_uint_t) ngx_pid;
    count = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (ssh->flush_owner != pid) {
        if (ssh->flush_owner != 0
            && ngx_current_msec - ssh->flush_seen < NGX_HTTP_TRONCH_FLUSH_TAKEOVER)
        {
            ngx_shmtx_unlock(&shpool->mutex);
            return 0;   /* another worker flushes */
        }
        ssh->flush_owner = pid;
    }

    ssh->flush_seen = ngx_current_msec;

    while (!ngx_queue_empty(&ssh->dirty) && count < max) {
        q = ngx_queue_head(&ssh->dirty);
        n = ngx_queue_data(q, ngx_http_tronch_state_t, dirty);
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
ngx_http_tronch_usage_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_tronch_usage_log_handler;

    return NGX_OK;
}
