/*
 * The limiter's Redis commands, on the worker's command link (pipelined with lookups):
 *   - the GCRA script (tronch_limit_policy redis): EVALSHA, and on NOSCRIPT one EVAL;
 *   - usage flushes: one EVAL (HINCRBY of many fields) and one HSET per chunk of keys, fire and forget.
 */
#include "ngx_http_tronch_redis.h"


static char  ngx_http_tronch_gcra_sha[41];


ngx_int_t
ngx_http_tronch_redis_limit_init(void)
{
    return tronch_bridge_gcra_script_sha1(ngx_http_tronch_gcra_sha) == 0 ? NGX_OK : NGX_ERROR;
}


/* usage flushes: fire and forget on the command link */

ngx_uint_t
ngx_http_tronch_redis_ready(void)
{
    return ngx_http_tronch_redis_mcf != NULL && !ngx_http_tronch_redis_exiting
           && ngx_http_tronch_cmd_link.state == NGX_HTTP_TRONCH_LINK_UP;
}


static void
ngx_http_tronch_usage_reply(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *privdata)
{
    ngx_http_tronch_stats_t  *st;

    (void) rc;

    if (ngx_http_tronch_redis_mcf == NULL || ngx_http_tronch_redis_exiting) {
        return;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        /* No reply (the link died, or timed out) or a refusal: the counts the command carried
         * are taken out of shm already, so they are counted as lost. Without a reply this is an
         * upper bound: Redis may have applied the command before the link went. */
        st = ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone);
        (void) ngx_atomic_fetch_add(&st->usage_flush_errors, 1);
        (void) ngx_atomic_fetch_add(&st->usage_lost, (ngx_atomic_int_t) (uintptr_t) privdata);
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, ngx_http_tronch_redis_log, 0,
                          "tronch: redis usage flush failed: %s", reply->str);
        }
    }
}


ngx_int_t
ngx_http_tronch_redis_usage(int argc, const char **argv, const size_t *argvlen,
    ngx_uint_t requests)
{
    if (!ngx_http_tronch_redis_ready()) {
        return NGX_ERROR;
    }

    /* the command is encoded into the connection's buffer here: argv may be reused at once;
     * the reply callback gets the count it carries, to count it as lost if Redis never takes it */
    if (ngx_http_tronch_rconn_command_argv(&ngx_http_tronch_cmd_link.rc, ngx_http_tronch_usage_reply,
                                           (void *) (uintptr_t) requests, argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
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

    if (ngx_http_tronch_cmd_link.inflight) {
        ngx_http_tronch_cmd_link.inflight--;
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

    if (!ngx_http_tronch_redis_ready()) {
        return NULL;
    }

    p = ngx_http_tronch_pending_get();
    if (p == NULL) {
        return NULL;
    }

    p->name_len = tronch_bridge_rate_limit_key(key_id, p->name, sizeof(p->name));
    if (p->name_len == 0) {
        ngx_http_tronch_pending_put(p);
        return NULL;
    }

    tronch_bridge_limit_params(limit, &p->interval, &p->capacity);
    p->gcra_done = done;
    p->data = data;
    p->started = ngx_current_msec;

    if (ngx_http_tronch_rconn_command(&link->rc, ngx_http_tronch_gcra_reply, p,
                                      "EVALSHA %s 1 %b %lld %lld 1",
                                      ngx_http_tronch_gcra_sha, p->name, p->name_len,
                                      (long long) p->interval, (long long) p->capacity) != NGX_OK)
    {
        ngx_http_tronch_pending_put(p);
        return NULL;
    }

    link->inflight++;

    return p;
}
