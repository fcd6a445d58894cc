/*
 * The worker's Redis links, one pair per worker, each an ngx_http_tronch_rconn_t (a connection
 * on nginx's own event/SSL machinery, ngx_http_tronch_rconn.c):
 *   - the command link: pipelined "GET tronch:key:{hash}" + "EXISTS tronch:mirror:epoch"
 *     for each cache miss;
 *   - the subscriber link: SUBSCRIBE tronch:events, applied to the shared cache at once.
 *
 * A link tries the configured addresses in turn (all of a host name's), then backs off
 * (100 ms doubling to 5 s). Timeouts are nginx timers: the connect timer here (connect, TLS and
 * AUTH together), the command timeout on the request (ngx_http_tronch_module.c). Link timers
 * hang off a dummy connection and are cancelable, so graceful shutdown does not wait for them.
 * Requests are never handed to the transport: a lookup's callback data is a per-worker
 * "pending" slot that outlives the request; cancelling detaches it. A lookup made while the
 * command link is still connecting (a new worker after a start or reload, a reconnect) is
 * parked until the link is up, bounded by the request's own tronch_redis_timeout; it fails at
 * once when the link is down and backing off. The limiter's commands on
 * the command link (GCRA script, usage) are in ngx_http_tronch_redis_limit.c.
 */
#include "ngx_http_tronch_redis.h"


#define NGX_HTTP_TRONCH_BACKOFF_MIN   100
#define NGX_HTTP_TRONCH_BACKOFF_MAX   5000




ngx_http_tronch_main_conf_t         *ngx_http_tronch_redis_mcf;
ngx_log_t                           *ngx_http_tronch_redis_log;
ngx_uint_t                           ngx_http_tronch_redis_exiting;
ngx_http_tronch_link_t               ngx_http_tronch_cmd_link;
static ngx_http_tronch_link_t        ngx_http_tronch_sub_link;
static ngx_http_tronch_link_t        ngx_http_tronch_sentinel_link;
static ngx_queue_t                   ngx_http_tronch_free_pending;
static ngx_queue_t                   ngx_http_tronch_parked;


static void ngx_http_tronch_link_connect(ngx_http_tronch_link_t *link);
static void ngx_http_tronch_link_schedule(ngx_http_tronch_link_t *link);
static void ngx_http_tronch_sentinel_reask(void);


/* connect, TLS handshake and AUTH together: at least 1 s, whatever the command timeout */
static ngx_msec_t
ngx_http_tronch_link_connect_timeout(void)
{
    ngx_msec_t  t = ngx_http_tronch_redis_mcf->redis_timeout;

    return t > 1000 ? t : 1000;
}


/* pending lookups */

ngx_http_tronch_pending_t *
ngx_http_tronch_pending_get(void)
{
    ngx_queue_t                *q;
    ngx_http_tronch_pending_t  *p;

    if (!ngx_queue_empty(&ngx_http_tronch_free_pending)) {
        q = ngx_queue_head(&ngx_http_tronch_free_pending);
        ngx_queue_remove(q);
        p = ngx_queue_data(q, ngx_http_tronch_pending_t, queue);

    } else {
        p = ngx_alloc(sizeof(ngx_http_tronch_pending_t), ngx_http_tronch_redis_log);
        if (p == NULL) {
            return NULL;
        }
    }

    ngx_memzero(p, sizeof(ngx_http_tronch_pending_t));
    return p;
}


void
ngx_http_tronch_pending_put(ngx_http_tronch_pending_t *p)
{
    ngx_queue_insert_head(&ngx_http_tronch_free_pending, &p->queue);
}


static void
ngx_http_tronch_count_latency(ngx_msec_t started)
{
    ngx_http_tronch_stats_t  *st;
    ngx_msec_t                ms;
    ngx_uint_t                i;

    st = ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone);
    ms = ngx_current_msec - started;

    (void) ngx_atomic_fetch_add(&st->redis_latency_ms_sum, ms);

    for (i = 0; i < NGX_HTTP_TRONCH_LATENCY_BUCKETS - 1; i++) {
        if (ms <= ngx_http_tronch_latency_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&st->redis_latency_buckets[i], 1);
}


/* Reply to GET tronch:key:{hash}: decode it now, deliver after the EXISTS reply. */
static void
ngx_http_tronch_get_reply(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *privdata)
{
    ngx_http_tronch_pending_t  *p = privdata;
    char                        err[128];

    (void) rc;

    p->got_get = 1;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        p->failed = 1;
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, ngx_http_tronch_redis_log, 0,
                          "tronch: redis GET failed: %s", reply->str);
        }
        return;
    }

    if (reply->type == REDIS_REPLY_NIL) {
        return;
    }

    if (reply->type != REDIS_REPLY_STRING
        || tronch_bridge_decode_record(reply->str, reply->len, &p->record, err, sizeof(err)) != TRONCH_OK)
    {
        if (reply->type != REDIS_REPLY_STRING) {
            ngx_cpystrn((u_char *) err, (u_char *) "not a string", sizeof(err));
        }
        ngx_log_error(NGX_LOG_ERR, ngx_http_tronch_redis_log, 0,
                      "tronch: undecodable key record in redis: %s", err);
        p->failed = 1;
        return;
    }

    p->have_record = 1;
}


/* Reply to EXISTS tronch:mirror:epoch: the lookup is complete. */
static void
ngx_http_tronch_exists_reply(ngx_http_tronch_rconn_t *conn, redisReply *reply, void *privdata)
{
    ngx_http_tronch_pending_t    *p = privdata;
    ngx_http_tronch_lookup_rc_e   rc;
    ngx_uint_t                    complete;
    ngx_http_tronch_stats_t      *st;

    (void) conn;

    st = ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone);

    complete = (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR || p->failed || !p->got_get) {
        rc = NGX_HTTP_TRONCH_LOOKUP_FAILED;
        (void) ngx_atomic_fetch_add(&st->redis_errors, 1);

    } else {
        rc = p->have_record ? NGX_HTTP_TRONCH_LOOKUP_FOUND : NGX_HTTP_TRONCH_LOOKUP_ABSENT;
        ngx_http_tronch_count_latency(p->started);
    }

    /* on exit (a fast shutdown may leave requests suspended) nothing is resumed */
    if (p->done && !ngx_http_tronch_redis_exiting) {
        p->done(p->data, rc, complete, p->have_record ? &p->record : NULL);
    }

    ngx_http_tronch_pending_put(p);
}


/* Sends GET + EXISTS for p on the command link (up). NGX_ERROR: nothing was sent, p is the
 * caller's; NGX_DECLINED: GET went out but EXISTS did not, p is lost to the GET callback. */
static ngx_int_t
ngx_http_tronch_lookup_send(ngx_http_tronch_pending_t *p, ngx_log_t *log)
{
    ngx_http_tronch_link_t  *link = &ngx_http_tronch_cmd_link;
    char                     name[TRONCH_REDIS_KEY_MAX];
    size_t                   len;

    if (tronch_bridge_redis_key(p->digest, name, sizeof(name), &len) != TRONCH_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_tronch_rconn_command(&link->rc, ngx_http_tronch_get_reply, p, "GET %b", name, len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* Once GET is queued, EXISTS must be too: the connection answers both or flushes both. */
    if (ngx_http_tronch_rconn_command(&link->rc, ngx_http_tronch_exists_reply, p, "EXISTS %s",
                                      tronch_bridge_mirror_epoch_key()) != NGX_OK)
    {
        /* the GET callback will run (with NULL at worst); nobody completes it: leak one slot
         * rather than risk a double free */
        p->done = NULL;
        ngx_log_error(NGX_LOG_ERR, log, 0, "tronch: redis: cannot queue EXISTS");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_http_tronch_pending_t *
ngx_http_tronch_redis_lookup(const u_char *digest, ngx_http_tronch_lookup_done_pt done, void *data,
    ngx_log_t *log)
{
    ngx_http_tronch_link_state_e  state = ngx_http_tronch_cmd_link.state;
    ngx_http_tronch_pending_t    *p;
    ngx_int_t                     rc;

    if (state == NGX_HTTP_TRONCH_LINK_DOWN) {
        return NULL;   /* backing off: Redis is gone, answer now */
    }

    p = ngx_http_tronch_pending_get();
    if (p == NULL) {
        return NULL;
    }

    p->done = done;
    p->data = data;
    p->started = ngx_current_msec;
    ngx_memcpy(p->digest, digest, TRONCH_DIGEST_LEN);

    if (state == NGX_HTTP_TRONCH_LINK_CONNECTING) {
        p->parked = 1;
        ngx_queue_insert_tail(&ngx_http_tronch_parked, &p->queue);

    } else {
        rc = ngx_http_tronch_lookup_send(p, log);
        if (rc != NGX_OK) {
            if (rc == NGX_ERROR) {
                ngx_http_tronch_pending_put(p);
            }
            return NULL;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->redis_lookups, 1);

    return p;
}


/* The command link is up: the parked lookups go out, in the order they came. */
static void
ngx_http_tronch_parked_send(void)
{
    ngx_queue_t                *q;
    ngx_http_tronch_pending_t  *p;
    ngx_int_t                   rc;

    while (!ngx_queue_empty(&ngx_http_tronch_parked)) {
        q = ngx_queue_head(&ngx_http_tronch_parked);
        ngx_queue_remove(q);
        p = ngx_queue_data(q, ngx_http_tronch_pending_t, queue);
        p->parked = 0;

        rc = ngx_http_tronch_lookup_send(p, ngx_http_tronch_redis_log);
        if (rc == NGX_ERROR) {
            (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->redis_errors, 1);
            p->done(p->data, NGX_HTTP_TRONCH_LOOKUP_FAILED, 0, NULL);
            ngx_http_tronch_pending_put(p);
        }
    }
}


/* The command link gave up this round (backing off now): the parked lookups fail at once. */
static void
ngx_http_tronch_parked_fail(void)
{
    ngx_queue_t                *q;
    ngx_http_tronch_pending_t  *p;

    while (!ngx_queue_empty(&ngx_http_tronch_parked)) {
        q = ngx_queue_head(&ngx_http_tronch_parked);
        ngx_queue_remove(q);
        p = ngx_queue_data(q, ngx_http_tronch_pending_t, queue);
        p->parked = 0;

        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->redis_errors, 1);
        p->done(p->data, NGX_HTTP_TRONCH_LOOKUP_FAILED, 0, NULL);
        ngx_http_tronch_pending_put(p);
    }
}


static void
ngx_http_tronch_link_reset(ngx_http_tronch_link_t *link)
{
    link->state = NGX_HTTP_TRONCH_LINK_DOWN;

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    /* waiting callbacks run now with NULL replies: the link is already down for them */
    ngx_http_tronch_rconn_close(&link->rc);

    link->left = 0;
    ngx_http_tronch_link_schedule(link);
}


void
ngx_http_tronch_redis_cancel(ngx_http_tronch_pending_t *p)
{
    if (ngx_http_tronch_redis_exiting) {
        return;   /* the slots are gone with the worker's Redis state */
    }

    p->done = NULL;
    p->gcra_done = NULL;
    p->data = NULL;

    if (p->parked) {   /* nothing was sent for it: nobody else will free the slot */
        ngx_queue_remove(&p->queue);
        ngx_http_tronch_pending_put(p);
    }
}


void
ngx_http_tronch_redis_timed_out(ngx_http_tronch_pending_t *p)
{
    ngx_uint_t  parked;

    if (ngx_http_tronch_redis_exiting) {
        return;
    }

    parked = p->parked;
    ngx_http_tronch_redis_cancel(p);

    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->redis_timeouts, 1);

    if (parked) {
        return;   /* still connecting: the link's own connect timer deals with that */
    }

    /* Redis is slow or gone: start afresh (with backoff) rather than queue behind it */
    ngx_log_error(NGX_LOG_WARN, ngx_http_tronch_redis_log, 0,
                  "tronch: redis lookup timed out, reconnecting to %V",
                  &ngx_http_tronch_redis_mcf->redis_addr);
    ngx_http_tronch_link_reset(&ngx_http_tronch_cmd_link);
}


/* the subscriber */

static void
ngx_http_tronch_event_message(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *privdata)
{
    redisReply               *kind, *payload;
    ngx_http_tronch_stats_t  *st;
    int                       type;
    uint8_t                   digest[TRONCH_DIGEST_LEN];

    (void) rc;
    (void) privdata;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        return;
    }

    kind = reply->element[0];
    payload = reply->element[2];

    if (kind->type != REDIS_REPLY_STRING) {
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {
        ngx_log_error(NGX_LOG_INFO, ngx_http_tronch_redis_log, 0,
                      "tronch: subscribed to %s", tronch_bridge_events_channel());

        if (ngx_http_tronch_sub_link.was_up) {
            /* events published while we were away are lost: revalidate the cache */
            ngx_http_tronch_cache_revalidate_all(ngx_http_tronch_redis_mcf->shm_zone);
        }

        ngx_http_tronch_sub_link.was_up = 1;
        return;
    }

    if (kind->len != 7 || ngx_strncmp(kind->str, "message", 7) != 0
        || payload->type != REDIS_REPLY_STRING)
    {
        return;
    }

    st = ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone);

    if (tronch_bridge_parse_event(payload->str, payload->len, &type, digest) != TRONCH_OK) {
        (void) ngx_atomic_fetch_add(&st->events_invalid, 1);
        ngx_log_error(NGX_LOG_WARN, ngx_http_tronch_redis_log, 0,
                      "tronch: ignored an invalid event on %s", tronch_bridge_events_channel());
        return;
    }

    if (type == TRONCH_EVENT_KEY_CHANGED) {
        ngx_http_tronch_cache_drop(ngx_http_tronch_redis_mcf->shm_zone, digest);

    } else {
        ngx_http_tronch_cache_drop_negative(ngx_http_tronch_redis_mcf->shm_zone);
    }

    (void) ngx_atomic_fetch_add(&st->events_applied, 1);
}


/* connection management */

/* Debian's default error_log shows [error] and worse. The first failure in a row, and a failure
 * whose reason differs from the last one (Redis back, but now refusing our password), are
 * errors: operators must see them. Retries for the same reason are only info. Call it before
 * ngx_log_error(), a macro that evaluates its level twice. */
static ngx_uint_t
ngx_http_tronch_link_level(ngx_http_tronch_link_t *link, const char *why)
{
    size_t      len;
    ngx_uint_t  changed;

    for (len = 0; why[len] != '\0' && why[len] != ':' && len < sizeof(link->why); len++) {
        /* void */
    }

    changed = (len != link->why_len || ngx_strncmp(link->why, why, len) != 0);
    ngx_memcpy(link->why, why, len);
    link->why_len = len;

    return (link->failures++ == 0 || changed) ? NGX_LOG_ERR : NGX_LOG_INFO;
}


/* Where a link connects: the sentinels; under Sentinel, the master they name (none yet: n 0);
 * else every address of tronch_redis. */
static ngx_http_tronch_raddr_t *
ngx_http_tronch_link_addrs(ngx_http_tronch_link_t *link, ngx_uint_t *n)
{
    ngx_http_tronch_redis_conf_t  *rcf = &ngx_http_tronch_redis_mcf->redis;
    ngx_array_t                   *a;
    ngx_http_tronch_raddr_t       *master;

    if (rcf->sentinel_master.len && !link->sentinel) {
        master = ngx_http_tronch_sentinel_master();
        *n = master ? 1 : 0;
        return master;
    }

    a = link->sentinel ? rcf->sentinel_addrs : rcf->addrs;

    if (a == NULL) {
        *n = 0;
        return NULL;
    }

    *n = a->nelts;
    return a->elts;
}


static void
ngx_http_tronch_link_up(ngx_http_tronch_link_t *link)
{
    ngx_http_tronch_rconn_t  *rc = &link->rc;

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    if (link->subscriber) {
        rc->push = ngx_http_tronch_event_message;
        if (ngx_http_tronch_rconn_subscribe(rc, "SUBSCRIBE %s", tronch_bridge_events_channel())
            != NGX_OK)
        {
            ngx_http_tronch_link_reset(link);
            return;
        }
    }

    if (link->sentinel && ngx_http_tronch_sentinel_ready(rc) != NGX_OK) {
        ngx_http_tronch_link_reset(link);
        return;
    }

    link->state = NGX_HTTP_TRONCH_LINK_UP;
    link->backoff = NGX_HTTP_TRONCH_BACKOFF_MIN;
    link->left = 0;
    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_redis_mcf->shm_zone)->redis_connects, 1);

    /* the recovery is as visible as the failure was */
    ngx_log_error((link->failures ? NGX_LOG_ERR : NGX_LOG_INFO), ngx_http_tronch_redis_log, 0,
                  "tronch: redis %s: connected to %V%s", link->name, &rc->addr->name,
                  link->failures ? " again, Redis is back" : "");

    link->failures = 0;
    link->why_len = 0;

    if (link == &ngx_http_tronch_cmd_link) {
        ngx_http_tronch_parked_send();
    }
}


/* Under Sentinel, a data link is up only once its node says it is the master. */
static void
ngx_http_tronch_role_reply(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *data)
{
    ngx_http_tronch_link_t  *link = data;
    ngx_uint_t               level;

    if (reply == NULL || ngx_http_tronch_redis_exiting) {
        return;   /* closing: on_failed or a reset deals with it */
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
        && reply->element[0]->type == REDIS_REPLY_STRING && reply->element[0]->len == 6
        && ngx_strncmp(reply->element[0]->str, "master", 6) == 0)
    {
        ngx_http_tronch_link_up(link);
        return;
    }

    level = ngx_http_tronch_link_level(link, "not the master");
    ngx_log_error(level, ngx_http_tronch_redis_log, 0,
                  "tronch: redis %s: %V is not the master (ROLE: %s), asking the sentinels again",
                  link->name, &rc->addr->name,
                  reply->type == REDIS_REPLY_ERROR ? reply->str
                  : (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
                     && reply->element[0]->type == REDIS_REPLY_STRING) ? reply->element[0]->str : "?");

    ngx_http_tronch_link_reset(link);
    ngx_http_tronch_sentinel_reask();
}


static void
ngx_http_tronch_on_ready(ngx_http_tronch_rconn_t *rc, const char *err)
{
    ngx_http_tronch_link_t  *link = rc->data;

    (void) err;

    if (ngx_http_tronch_redis_mcf->redis.sentinel_master.len && !link->sentinel) {
        /* still CONNECTING: the connect timer bounds ROLE too */
        if (ngx_http_tronch_rconn_command(rc, ngx_http_tronch_role_reply, link, "ROLE") != NGX_OK) {
            ngx_http_tronch_link_reset(link);
        }
        return;
    }

    ngx_http_tronch_link_up(link);
}


/* The next address, at once while this round has some left; else back off. */
static void
ngx_http_tronch_link_next(ngx_http_tronch_link_t *link)
{
    ngx_uint_t  n;

    link->state = NGX_HTTP_TRONCH_LINK_DOWN;
    (void) ngx_http_tronch_link_addrs(link, &n);
    link->next = n ? (link->next + 1) % n : 0;

    if (!link->sentinel) {
        ngx_http_tronch_sentinel_reask();   /* the master may have moved */
    }

    if (link->left > 1) {
        link->left--;
        ngx_http_tronch_link_connect(link);
        return;
    }

    link->left = 0;
    ngx_http_tronch_link_schedule(link);
}


static void
ngx_http_tronch_on_failed(ngx_http_tronch_rconn_t *rc, const char *err)
{
    ngx_http_tronch_link_t  *link = rc->data;
    ngx_uint_t               level;

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    if (link->state == NGX_HTTP_TRONCH_LINK_UP) {
        level = ngx_http_tronch_link_level(link, err);
        ngx_log_error(level, ngx_http_tronch_redis_log, 0,
                      "tronch: redis %s: lost connection to %V: %s", link->name, &rc->addr->name, err);
        link->state = NGX_HTTP_TRONCH_LINK_DOWN;
        link->left = 0;
        ngx_http_tronch_link_schedule(link);
        return;
    }

    level = ngx_http_tronch_link_level(link, err);

    ngx_log_error(level, ngx_http_tronch_redis_log, 0,
                  "tronch: redis %s: cannot connect to %V: %s", link->name, &rc->addr->name, err);

    ngx_http_tronch_link_next(link);
}


static void
ngx_http_tronch_link_timer(ngx_event_t *ev)
{
    ngx_http_tronch_link_t  *link = ev->data == NULL ? NULL
                              : ((ngx_connection_t *) ev->data)->data;
    ngx_uint_t               level;

    if (link == NULL || ngx_http_tronch_redis_exiting || ngx_exiting || ngx_quit) {
        return;
    }

    if (link->state == NGX_HTTP_TRONCH_LINK_CONNECTING) {
        level = ngx_http_tronch_link_level(link, "timed out");
        ngx_log_error(level, ngx_http_tronch_redis_log, 0,
                      "tronch: redis %s: connecting to %V timed out (connect, TLS handshake and "
                      "AUTH must finish within %M ms)", link->name, &link->rc.addr->name,
                      ngx_http_tronch_link_connect_timeout());
        ngx_http_tronch_rconn_close(&link->rc);
        ngx_http_tronch_link_next(link);
        return;
    }

    if (link->state == NGX_HTTP_TRONCH_LINK_DOWN) {
        ngx_http_tronch_link_connect(link);
    }
}


static void
ngx_http_tronch_link_schedule(ngx_http_tronch_link_t *link)
{
    if (ngx_http_tronch_redis_exiting) {
        return;
    }

    if (link == &ngx_http_tronch_cmd_link) {
        ngx_http_tronch_parked_fail();
    }

    if (ngx_exiting || ngx_quit) {
        return;
    }

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    ngx_add_timer(&link->timer, link->backoff);

    link->backoff *= 2;
    if (link->backoff > NGX_HTTP_TRONCH_BACKOFF_MAX) {
        link->backoff = NGX_HTTP_TRONCH_BACKOFF_MAX;
    }
}


static void
ngx_http_tronch_link_connect(ngx_http_tronch_link_t *link)
{
    ngx_http_tronch_raddr_t  *addrs;
    ngx_uint_t                n, level;

    addrs = ngx_http_tronch_link_addrs(link, &n);
    if (n == 0) {
        link->state = NGX_HTTP_TRONCH_LINK_DOWN;
        ngx_http_tronch_link_schedule(link);   /* Sentinel has not named a master yet */
        return;
    }

    for ( ;; ) {
        if (link->left == 0) {
            link->left = n;   /* a new round over every address */
        }

        if (link->next >= n) {
            link->next = 0;
        }

        if (ngx_http_tronch_rconn_connect(&link->rc, &addrs[link->next]) == NGX_OK) {
            break;
        }

        level = ngx_http_tronch_link_level(link, (const char *) link->rc.err);

        ngx_log_error(level, ngx_http_tronch_redis_log, 0,
                      "tronch: redis %s: cannot connect to %V: %s", link->name,
                      &addrs[link->next].name, link->rc.err);

        link->next = (link->next + 1) % n;

        if (--link->left == 0) {
            link->state = NGX_HTTP_TRONCH_LINK_DOWN;
            ngx_http_tronch_link_schedule(link);
            return;
        }
    }

    link->state = NGX_HTTP_TRONCH_LINK_CONNECTING;

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }
    ngx_add_timer(&link->timer, ngx_http_tronch_link_connect_timeout());
}


static void
ngx_http_tronch_link_init(ngx_http_tronch_link_t *link, const char *name, ngx_uint_t subscriber,
    ngx_uint_t sentinel)
{
    ngx_http_tronch_redis_conf_t  *rcf = &ngx_http_tronch_redis_mcf->redis;

    ngx_memzero(link, sizeof(ngx_http_tronch_link_t));

    link->name = name;
    link->subscriber = subscriber;
    link->sentinel = sentinel;
    link->backoff = NGX_HTTP_TRONCH_BACKOFF_MIN;
    link->dummy.fd = (ngx_socket_t) -1;
    link->dummy.data = link;
    link->dummy.log = ngx_http_tronch_redis_log;
    link->timer.data = &link->dummy;
    link->timer.handler = ngx_http_tronch_link_timer;
    link->timer.log = ngx_http_tronch_redis_log;
    link->timer.cancelable = 1;

    ngx_http_tronch_rconn_init(&link->rc, sentinel ? &rcf->sentinel : &rcf->node,
                               ngx_http_tronch_redis_log, link);
    link->rc.ready = ngx_http_tronch_on_ready;
    link->rc.failed = ngx_http_tronch_on_failed;
}


/* Reconnects the sentinel link (to the next sentinel), which asks for the master again; not
 * more than once a second. */
static void
ngx_http_tronch_sentinel_reask(void)
{
    ngx_http_tronch_link_t  *link = &ngx_http_tronch_sentinel_link;

    if (ngx_http_tronch_redis_mcf->redis.sentinel_master.len == 0 || ngx_http_tronch_redis_exiting
        || link->state != NGX_HTTP_TRONCH_LINK_UP || !ngx_http_tronch_sentinel_should_ask())
    {
        return;
    }

    link->next++;
    ngx_http_tronch_link_reset(link);
}


void
ngx_http_tronch_redis_master_changed(void)
{
    ngx_http_tronch_link_t  *links[2];
    ngx_uint_t               i;

    if (ngx_http_tronch_redis_exiting || ngx_exiting || ngx_quit) {
        return;   /* shutting down: no new connections */
    }

    links[0] = &ngx_http_tronch_cmd_link;
    links[1] = &ngx_http_tronch_sub_link;

    for (i = 0; i < 2; i++) {
        if (links[i]->timer.timer_set) {
            ngx_del_timer(&links[i]->timer);
        }

        links[i]->state = NGX_HTTP_TRONCH_LINK_DOWN;
        ngx_http_tronch_rconn_close(&links[i]->rc);   /* waiting lookups fail now */

        links[i]->backoff = NGX_HTTP_TRONCH_BACKOFF_MIN;
        links[i]->left = 0;
        links[i]->next = 0;
        ngx_http_tronch_link_connect(links[i]);
    }
}


ngx_int_t
ngx_http_tronch_redis_init_process(ngx_cycle_t *cycle, ngx_http_tronch_main_conf_t *mcf)
{
    ngx_http_tronch_redis_mcf = mcf;
    ngx_http_tronch_redis_log = cycle->log;
    ngx_http_tronch_redis_exiting = 0;
    ngx_queue_init(&ngx_http_tronch_free_pending);
    ngx_queue_init(&ngx_http_tronch_parked);
    ngx_http_tronch_sentinel_reset();

    if (ngx_http_tronch_redis_limit_init() != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "tronch: cannot hash the GCRA script");
        return NGX_ERROR;
    }

    ngx_http_tronch_link_init(&ngx_http_tronch_cmd_link, "lookup", 0, 0);
    ngx_http_tronch_link_init(&ngx_http_tronch_sub_link, "events", 1, 0);
    ngx_http_tronch_link_init(&ngx_http_tronch_sentinel_link, "sentinel", 0, 1);

    if (mcf->redis.sentinel_master.len) {
        ngx_http_tronch_link_connect(&ngx_http_tronch_sentinel_link);
    }

    ngx_http_tronch_link_connect(&ngx_http_tronch_cmd_link);
    ngx_http_tronch_link_connect(&ngx_http_tronch_sub_link);

    return NGX_OK;
}


void
ngx_http_tronch_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                *q;
    ngx_http_tronch_link_t     *links[3];
    ngx_uint_t                  i;

    (void) cycle;

    if (ngx_http_tronch_redis_mcf == NULL) {
        return;
    }

    ngx_http_tronch_redis_exiting = 1;

    links[0] = &ngx_http_tronch_cmd_link;
    links[1] = &ngx_http_tronch_sub_link;
    links[2] = &ngx_http_tronch_sentinel_link;

    for (i = 0; i < 3; i++) {
        if (links[i]->timer.timer_set) {
            ngx_del_timer(&links[i]->timer);
        }

        links[i]->state = NGX_HTTP_TRONCH_LINK_DOWN;
        ngx_http_tronch_rconn_destroy(&links[i]->rc);
    }

    while (!ngx_queue_empty(&ngx_http_tronch_free_pending)) {
        q = ngx_queue_head(&ngx_http_tronch_free_pending);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_tronch_pending_t, queue));
    }

    ngx_http_tronch_redis_mcf = NULL;
}
