/*
 * Internals shared by ngx_http_tronch_redis.c (links, lookups, subscriber) and
 * ngx_http_tronch_redis_limit.c (GCRA script and usage commands on the command link).
 */
#ifndef NGX_HTTP_TRONCH_REDIS_H
#define NGX_HTTP_TRONCH_REDIS_H

#include "ngx_http_tronch_module.h"

#include "ngx_http_tronch_rconn.h"


typedef enum {
    NGX_HTTP_TRONCH_LINK_DOWN = 0,
    NGX_HTTP_TRONCH_LINK_CONNECTING,
    NGX_HTTP_TRONCH_LINK_UP
} ngx_http_tronch_link_state_e;


typedef struct {
    const char                   *name;
    ngx_uint_t                    subscriber;
    ngx_uint_t                    sentinel;  /* the link to the sentinels */
    ngx_http_tronch_rconn_t       rc;
    ngx_http_tronch_link_state_e  state;
    ngx_event_t                   timer;     /* connect timeout, or reconnect backoff */
    ngx_connection_t              dummy;     /* timer.data (debug builds log through it) */
    ngx_msec_t                    backoff;
    ngx_uint_t                    failures;  /* connect failures in a row */
    ngx_uint_t                    was_up;    /* has been connected before in this worker */
    ngx_uint_t                    next;      /* the address to try next */
    ngx_uint_t                    left;      /* addresses left to try before backing off */
    size_t                        why_len;   /* the last failure's reason (up to its first ':') */
    u_char                        why[48];
} ngx_http_tronch_link_t;


struct ngx_http_tronch_pending_s {
    ngx_queue_t                       queue;    /* free list, or the lookups parked for the link */
    ngx_http_tronch_lookup_done_pt    done;     /* NULL once cancelled */
    ngx_uint_t                        parked;   /* waits for the command link to come up */
    u_char                            digest[TRONCH_DIGEST_LEN];
    void                             *data;
    ngx_msec_t                        started;
    ngx_uint_t                        have_record;
    ngx_uint_t                        failed;
    ngx_uint_t                        got_get;
    tronch_record_t                   record;
    /* a GCRA check (tronch_limit_policy redis) */
    ngx_http_tronch_gcra_done_pt      gcra_done;
    ngx_uint_t                        reloaded;   /* NOSCRIPT was answered once */
    int64_t                           interval;
    int64_t                           capacity;
    size_t                            name_len;
    char                              name[TRONCH_REDIS_KEY_MAX];
    /* a lease (tronch_limit_policy leased; the key id is in record.id) */
    int64_t                           want;
    ngx_uint_t                        for_request;
};


extern ngx_http_tronch_main_conf_t  *ngx_http_tronch_redis_mcf;
extern ngx_log_t                    *ngx_http_tronch_redis_log;
extern ngx_uint_t                    ngx_http_tronch_redis_exiting;
extern ngx_http_tronch_link_t        ngx_http_tronch_cmd_link;

ngx_http_tronch_pending_t *ngx_http_tronch_pending_get(void);
void ngx_http_tronch_pending_put(ngx_http_tronch_pending_t *p);
ngx_http_tronch_pending_t *ngx_http_tronch_redis_limit_pending(const char *key_id,
    const tronch_limit_t *limit, ngx_http_tronch_gcra_done_pt done, void *data);
ngx_int_t ngx_http_tronch_redis_limit_init(void);
/* Sentinel named another master: the data links reconnect at once. */
void ngx_http_tronch_redis_master_changed(void);

/* ngx_http_tronch_sentinel.c */
ngx_http_tronch_raddr_t *ngx_http_tronch_sentinel_master(void);
void ngx_http_tronch_sentinel_reset(void);
ngx_int_t ngx_http_tronch_sentinel_ready(ngx_http_tronch_rconn_t *rc);
ngx_uint_t ngx_http_tronch_sentinel_should_ask(void);

#endif /* NGX_HTTP_TRONCH_REDIS_H */
