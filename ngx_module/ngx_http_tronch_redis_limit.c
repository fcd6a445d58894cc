/*
 * The limiter's Redis command (tronch_limit_policy redis), on the worker's command link
 * (pipelined with lookups): the GCRA script, EVALSHA, and on NOSCRIPT one EVAL.
 * (Usage is sent by ngx_http_tronch_usage_flush.c on the same link.)
 */
#include "ngx_http_tronch_redis.h"


static char  ngx_http_tronch_gcra_sha[41];


ngx_int_t
ngx_http_tronch_redis_limit_init(void)
{
    return tronch_bridge_gcra_script_sha1(ngx_http_tronch_gcra_sha) == TRONCH_OK ? NGX_OK : NGX_ERROR;
}


/* Whether the command link is up (usage flushes and GCRA checks wait for it). */
ngx_uint_t
ngx_http_tronch_redis_ready(void)
{
    return ngx_http_tronch_redis_mcf != NULL && !ngx_http_tronch_redis_exiting
           && ngx_http_tronch_cmd_link.state == NGX_HTTP_TRONCH_LINK_UP;
}


/* A pending slot for a limiter command on a key's rate-limit state (GCRA check or lease): its
 * Redis key name, the limit's parameters, the waiting request; NULL when Redis is not ready. */
ngx_http_tronch_pending_t *
ngx_http_tronch_redis_limit_pending(const char *key_id, const tronch_limit_t *limit,
    ngx_http_tronch_gcra_done_pt done, void *data)
{
    ngx_http_tronch_pending_t  *p;

    if (!ngx_http_tronch_redis_ready()) {
        return NULL;
    }

    p = ngx_http_tronch_pending_get();
    if (p == NULL) {
        return NULL;
    }

    if (tronch_bridge_rate_limit_key(key_id, p->name, sizeof(p->name), &p->name_len) != TRONCH_OK) {
        ngx_http_tronch_pending_put(p);
        return NULL;
    }

    tronch_bridge_limit_params(limit, &p->interval, &p->capacity);
    p->gcra_done = done;
    p->data = data;
    p->started = ngx_current_msec;

    return p;
}


/* GCRA checks (tronch_limit_policy redis): EVALSHA, and on NOSCRIPT one EVAL (which also
 * loads the script for the next ones). */

static void
ngx_http_tronch_gcra_reply(ngx_http_tronch_rconn_t *conn, redisReply *reply, void *privdata)
{
    ngx_http_tronch_pending_t  *p = privdata;
    tronch_decision_t           d;
    ngx_int_t                   rc;
    size_t                      len;
    const char                 *script;
    ngx_uint_t                  i;

    if (reply && reply->type == REDIS_REPLY_ERROR && !p->reloaded && !ngx_http_tronch_redis_exiting
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        p->reloaded = 1;
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->limit_script_reloads, 1);
        script = tronch_bridge_gcra_script(&len);

        if (ngx_http_tronch_rconn_command(conn, ngx_http_tronch_gcra_reply, p, "EVAL %b 1 %b %lld %lld 1",
                                          script, len, p->name, p->name_len,
                                          (long long) p->interval, (long long) p->capacity) == NGX_OK)
        {
            return;
        }
    }


    ngx_memzero(&d, sizeof(tronch_decision_t));
    rc = NGX_ERROR;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4) {
        for (i = 0; i < 4; i++) {
            if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
                break;
            }
        }

        if (i == 4) {
            d.allowed = reply->element[0]->integer ? 1 : 0;
            d.remaining = reply->element[1]->integer;
            d.retry_after_us = reply->element[2]->integer;
            d.reset_after_us = reply->element[3]->integer;
            rc = NGX_OK;
        }

    } else if (reply && reply->type == REDIS_REPLY_ERROR && ngx_http_tronch_redis_mcf) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_tronch_redis_log, 0,
                      "tronch: redis GCRA script failed: %s", reply->str);
    }

    if (rc != NGX_OK && ngx_http_tronch_redis_mcf && !ngx_http_tronch_redis_exiting) {
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->redis_errors, 1);
    }

    if (p->gcra_done && !ngx_http_tronch_redis_exiting) {
        p->gcra_done(p->data, rc, &d);
    }

    ngx_http_tronch_pending_put(p);
}


ngx_http_tronch_pending_t *
ngx_http_tronch_redis_gcra(const char *key_id, const tronch_limit_t *limit,
    ngx_http_tronch_gcra_done_pt done, void *data)
{
    ngx_http_tronch_link_t     *link = &ngx_http_tronch_cmd_link;
    ngx_http_tronch_pending_t  *p;

    p = ngx_http_tronch_redis_limit_pending(key_id, limit, done, data);
    if (p == NULL) {
        return NULL;
    }

    if (ngx_http_tronch_rconn_command(&link->rc, ngx_http_tronch_gcra_reply, p,
                                      "EVALSHA %s 1 %b %lld %lld 1",
                                      ngx_http_tronch_gcra_sha, p->name, p->name_len,
                                      (long long) p->interval, (long long) p->capacity) != NGX_OK)
    {
        ngx_http_tronch_pending_put(p);
        return NULL;
    }


    return p;
}
