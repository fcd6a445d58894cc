/*
 * One Redis connection on nginx's own event and SSL machinery (ngx_http_tronch_rconn.c):
 * ngx_event_connect_peer, optional TLS (ngx_ssl_*: CA, SNI, name check, client certificate),
 * AUTH as the first command, then RESP commands encoded and replies parsed by hiredis
 * (redisFormatCommand*, redisReader). hiredis does no I/O here.
 *
 * Every reply goes to the callback its command queued, in order; replies with no callback
 * waiting (pub/sub messages after SUBSCRIBE) go to `push`. When the connection closes, each
 * waiting callback runs once with reply NULL.
 */
#ifndef NGX_HTTP_TRONCH_RCONN_H
#define NGX_HTTP_TRONCH_RCONN_H

#include "ngx_http_tronch_module.h"

#include <hiredis/hiredis.h>


typedef struct ngx_http_tronch_rconn_s  ngx_http_tronch_rconn_t;

typedef void (*ngx_http_tronch_reply_pt)(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *data);
/* err is NULL for "ready"; for "failed", why (never holds a password) */
typedef void (*ngx_http_tronch_rconn_event_pt)(ngx_http_tronch_rconn_t *rc, const char *err);


typedef struct ngx_http_tronch_rcb_s  ngx_http_tronch_rcb_t;

struct ngx_http_tronch_rconn_s {
    ngx_peer_connection_t             peer;
    ngx_pool_t                       *pool;        /* per connection: nginx's SSL allocates from it */
    ngx_http_tronch_rconn_conf_t     *conf;
    ngx_http_tronch_raddr_t          *addr;
    redisReader                      *reader;
    u_char                           *out;         /* encoded commands not yet sent */
    size_t                            out_len;
    size_t                            out_sent;
    size_t                            out_size;
    ngx_queue_t                       waiting;     /* ngx_http_tronch_rcb_t, in order sent */
    ngx_queue_t                       free;
    ngx_http_tronch_reply_pt          push;
    ngx_http_tronch_rconn_event_pt    ready;
    ngx_http_tronch_rconn_event_pt    failed;
    void                             *data;
    ngx_log_t                        *log;
    ngx_log_t                         capture;     /* connect/TLS messages, re-logged by the owner */
    ngx_uint_t                        captured_level;
    u_char                            captured[200];
    u_char                            err[320];
    ngx_uint_t                        generation;  /* bumped by each close */
    unsigned                          connecting:1;
    unsigned                          is_ready:1;
};


/* Once per worker, before the first connect. */
void ngx_http_tronch_rconn_init(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_rconn_conf_t *conf,
    ngx_log_t *log, void *data);
/* Starts connecting: NGX_OK, then `ready` or `failed` runs later; NGX_ERROR with the reason
 * in rc->err (nothing runs later). */
ngx_int_t ngx_http_tronch_rconn_connect(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_raddr_t *addr);
/* Queues a command (hiredis format); handler may be NULL (reply dropped). NGX_ERROR: not open. */
ngx_int_t ngx_http_tronch_rconn_command(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_reply_pt handler,
    void *data, const char *fmt, ...);
ngx_int_t ngx_http_tronch_rconn_command_argv(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_reply_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen);
/* Queues a command whose replies all go to rc->push (SUBSCRIBE). */
ngx_int_t ngx_http_tronch_rconn_subscribe(ngx_http_tronch_rconn_t *rc, const char *fmt, ...);
/* Closes (waiting callbacks get NULL); `failed` is not called. Safe on a closed connection. */
void ngx_http_tronch_rconn_close(ngx_http_tronch_rconn_t *rc);
/* Closes and frees what init and use allocated (exit_process). */
void ngx_http_tronch_rconn_destroy(ngx_http_tronch_rconn_t *rc);


#endif /* NGX_HTTP_TRONCH_RCONN_H */
