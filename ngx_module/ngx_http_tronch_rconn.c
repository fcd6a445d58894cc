/*
 * One Redis connection driven by nginx itself (see ngx_http_tronch_rconn.h):
 *
 *   ngx_event_connect_peer -> [TLS: ngx_ssl_create_connection, SNI, ngx_ssl_handshake, then the
 *   certificate's verify result and its name] -> [AUTH user password] -> ready.
 *
 * Why not hiredis' own async connection: Debian's hiredis 0.14 has no TLS, resolves names with
 * a blocking getaddrinfo and owns the socket. Here the socket, its events and TLS are nginx's,
 * as for any upstream, and hiredis only encodes commands and parses replies.
 *
 * Until the connection is ready, nginx's own messages about it (connect() refused, SSL
 * handshake errors) go to a capturing log: the owner logs one line with the reason at the level
 * it chooses (the first failure at [error], retries at [info]), rather than nginx logging each
 * retry at [error] or [crit].
 */
#include "ngx_http_tronch_rconn.h"


#define NGX_HTTP_TRONCH_RCONN_OUT_MAX   (16 * 1024 * 1024)   /* Redis stuck: stop queueing */


struct ngx_http_tronch_rcb_s {
    ngx_queue_t                 queue;
    ngx_http_tronch_reply_pt    handler;
    void                       *data;
};


static void ngx_http_tronch_rconn_fail(ngx_http_tronch_rconn_t *rc, const char *fmt, ...);
static void ngx_http_tronch_rconn_read_handler(ngx_event_t *rev);
static void ngx_http_tronch_rconn_write_handler(ngx_event_t *wev);
static void ngx_http_tronch_rconn_transport_ready(ngx_http_tronch_rconn_t *rc);


/* the capturing log: keeps the most severe message, without nginx's time/pid prefix */
static void
ngx_http_tronch_rconn_capture(ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len)
{
    ngx_http_tronch_rconn_t  *rc = log->wdata;
    u_char                   *p, *last;

    if (level <= NGX_LOG_ALERT) {
        /* not about Redis being away: say it now, where it belongs */
        ngx_log_error(level, rc->log, 0, "tronch: redis: %*s", len, buf);
    }

    if (rc->captured[0] != '\0' && level >= rc->captured_level) {
        return;
    }

    last = buf + len;
    p = ngx_strlchr(buf, last, '#');            /* "<time> [level] <pid>#<tid>: message" */
    if (p != NULL) {
        p = ngx_strlchr(p, last, ':');
    }
    p = (p != NULL && p + 2 <= last) ? p + 2 : buf;

    rc->captured_level = level;
    len = ngx_min((size_t) (last - p), sizeof(rc->captured) - 1);
    ngx_memcpy(rc->captured, p, len);
    rc->captured[len] = '\0';
}


void
ngx_http_tronch_rconn_init(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_rconn_conf_t *conf,
    ngx_log_t *log, void *data)
{
    ngx_memzero(rc, sizeof(ngx_http_tronch_rconn_t));

    rc->conf = conf;
    rc->log = log;
    rc->data = data;
    ngx_queue_init(&rc->waiting);
    ngx_queue_init(&rc->free);

    rc->capture.log_level = NGX_LOG_INFO;
    rc->capture.writer = ngx_http_tronch_rconn_capture;
    rc->capture.wdata = rc;
}


/* output */

static ngx_int_t
ngx_http_tronch_rconn_append(ngx_http_tronch_rconn_t *rc, const char *cmd, size_t len)
{
    u_char  *out;
    size_t   size;

    if (rc->out_sent && rc->out_sent == rc->out_len) {
        rc->out_sent = rc->out_len = 0;
    }

    if (rc->out_len + len > rc->out_size) {
        if (rc->out_sent) {
            ngx_memmove(rc->out, rc->out + rc->out_sent, rc->out_len - rc->out_sent);
            rc->out_len -= rc->out_sent;
            rc->out_sent = 0;
        }

        if (rc->out_len + len > rc->out_size) {
            size = ngx_max(rc->out_size * 2, rc->out_len + len);
            size = ngx_max(size, 4096);
            if (size > NGX_HTTP_TRONCH_RCONN_OUT_MAX) {
                return NGX_ERROR;
            }

            out = realloc(rc->out, size);
            if (out == NULL) {
                return NGX_ERROR;
            }

            rc->out = out;
            rc->out_size = size;
        }
    }

    ngx_memcpy(rc->out + rc->out_len, cmd, len);
    rc->out_len += len;

    return NGX_OK;
}


/* Sends what it can now; the rest when the socket is writable again. */
static void
ngx_http_tronch_rconn_flush(ngx_http_tronch_rconn_t *rc)
{
    ngx_connection_t  *c = rc->peer.connection;
    ssize_t            n;

    if (c == NULL || rc->connecting) {
        return;
    }

    while (rc->out_sent < rc->out_len) {
        n = c->send(c, rc->out + rc->out_sent, rc->out_len - rc->out_sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_tronch_rconn_fail(rc, "cannot add a write event");
            }
            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_tronch_rconn_fail(rc, "send failed");
            return;
        }

        rc->out_sent += n;
    }

    rc->out_sent = rc->out_len = 0;
}


static ngx_int_t
ngx_http_tronch_rconn_queue(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_reply_pt handler, void *data,
    ngx_uint_t push, char *cmd, int len)
{
    ngx_queue_t            *q;
    ngx_http_tronch_rcb_t  *cb;
    ngx_connection_t       *c;

    if (len < 0) {
        return NGX_ERROR;
    }

    cb = NULL;

    if (!push) {
        if (!ngx_queue_empty(&rc->free)) {
            q = ngx_queue_head(&rc->free);
            ngx_queue_remove(q);
            cb = ngx_queue_data(q, ngx_http_tronch_rcb_t, queue);

        } else {
            cb = ngx_alloc(sizeof(ngx_http_tronch_rcb_t), rc->log);
            if (cb == NULL) {
                free(cmd);
                return NGX_ERROR;
            }
        }
    }

    if (ngx_http_tronch_rconn_append(rc, cmd, (size_t) len) != NGX_OK) {
        free(cmd);
        if (cb) {
            ngx_queue_insert_head(&rc->free, &cb->queue);
        }
        return NGX_ERROR;
    }

    free(cmd);

    if (cb) {
        cb->handler = handler;
        cb->data = data;
        ngx_queue_insert_tail(&rc->waiting, &cb->queue);
    }

    /* Sent from the event loop, never from here: a send error would run the callback (with
     * NULL) before the caller has its handle. Commands queued in one turn go out together. */
    c = rc->peer.connection;
    if (!rc->connecting && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


/* Formats a printf-style command (hiredis' format) and queues it; shared by command and subscribe. */
static ngx_int_t
ngx_http_tronch_rconn_vcommand(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_reply_pt handler, void *data,
    ngx_uint_t push, const char *fmt, va_list ap)
{
    char  *cmd;
    int    len;

    if (rc->peer.connection == NULL) {
        return NGX_ERROR;
    }

    len = redisvFormatCommand(&cmd, fmt, ap);

    return ngx_http_tronch_rconn_queue(rc, handler, data, push, cmd, len);
}


ngx_int_t
ngx_http_tronch_rconn_command(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_reply_pt handler, void *data,
    const char *fmt, ...)
{
    va_list    ap;
    ngx_int_t  rv;

    va_start(ap, fmt);
    rv = ngx_http_tronch_rconn_vcommand(rc, handler, data, 0, fmt, ap);
    va_end(ap);

    return rv;
}


ngx_int_t
ngx_http_tronch_rconn_command_argv(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_reply_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen)
{
    char  *cmd;
    int    len;

    if (rc->peer.connection == NULL) {
        return NGX_ERROR;
    }

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

    return ngx_http_tronch_rconn_queue(rc, handler, data, 0, cmd, len);
}


ngx_int_t
ngx_http_tronch_rconn_subscribe(ngx_http_tronch_rconn_t *rc, const char *fmt, ...)
{
    va_list    ap;
    ngx_int_t  rv;

    va_start(ap, fmt);
    rv = ngx_http_tronch_rconn_vcommand(rc, NULL, NULL, 1, fmt, ap);
    va_end(ap);

    return rv;
}


/* input */

/* Answers the oldest waiting command with reply (NULL: no reply). Its slot is freed before the
 * handler runs, so the handler may queue a command that reuses it. */
static void
ngx_http_tronch_rconn_answer(ngx_http_tronch_rconn_t *rc, redisReply *reply)
{
    ngx_queue_t              *q;
    ngx_http_tronch_rcb_t    *cb;
    ngx_http_tronch_reply_pt  handler;
    void                     *data;

    q = ngx_queue_head(&rc->waiting);
    ngx_queue_remove(q);
    cb = ngx_queue_data(q, ngx_http_tronch_rcb_t, queue);
    handler = cb->handler;
    data = cb->data;
    ngx_queue_insert_head(&rc->free, &cb->queue);

    if (handler) {
        handler(rc, reply, data);
    }
}


/* Hands one reply to its callback (or to push). NGX_DONE if the connection closed meanwhile. */
static ngx_int_t
ngx_http_tronch_rconn_dispatch(ngx_http_tronch_rconn_t *rc, redisReply *reply)
{
    ngx_uint_t  generation = rc->generation;

    if (ngx_queue_empty(&rc->waiting)) {
        if (rc->push) {
            rc->push(rc, reply, rc->data);
        }

    } else {
        ngx_http_tronch_rconn_answer(rc, reply);
    }

    return rc->generation == generation ? NGX_OK : NGX_DONE;
}


static void
ngx_http_tronch_rconn_read_handler(ngx_event_t *rev)
{
    ngx_connection_t         *c = rev->data;
    ngx_http_tronch_rconn_t  *rc = c->data;
    u_char                    buf[16384];
    ssize_t                   n;
    void                     *reply;
    ngx_int_t                 rv;

    if (rc->connecting) {
        ngx_http_tronch_rconn_write_handler(c->write);   /* a connect error shows as readable */
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_tronch_rconn_fail(rc, "connection closed by the server");
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_tronch_rconn_fail(rc, "read failed");
            return;
        }

        if (redisReaderFeed(rc->reader, (const char *) buf, (size_t) n) != REDIS_OK) {
            ngx_http_tronch_rconn_fail(rc, "out of memory");
            return;
        }

        for ( ;; ) {
            if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
                ngx_http_tronch_rconn_fail(rc, "protocol error: %s", rc->reader->errstr);
                return;
            }

            if (reply == NULL) {
                break;
            }

            rv = ngx_http_tronch_rconn_dispatch(rc, reply);
            freeReplyObject(reply);

            if (rv == NGX_DONE) {
                return;   /* closed by a callback: rc may already hold a new connection */
            }
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_tronch_rconn_fail(rc, "cannot add a read event");
    }
}


/* connecting */

static ngx_int_t
ngx_http_tronch_rconn_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


#if (NGX_SSL)

static ngx_uint_t
ngx_http_tronch_rconn_is_ip(ngx_str_t *name)
{
#if (NGX_HAVE_INET6)
    u_char  inaddr6[16];

    if (ngx_inet6_addr(name->data, name->len, inaddr6) == NGX_OK) {
        return 1;
    }
#endif

    return ngx_inet_addr(name->data, name->len) != INADDR_NONE;
}


static ngx_str_t *
ngx_http_tronch_rconn_tls_name(ngx_http_tronch_rconn_t *rc)
{
    return rc->conf->tls_name.len ? &rc->conf->tls_name : &rc->addr->host;
}


/* The certificate must be signed by the trusted CA and name the server: a DNS name through
 * nginx's own check, an IP address (which ngx_ssl_check_host does not match) through OpenSSL's. */
static ngx_int_t
ngx_http_tronch_rconn_verify(ngx_http_tronch_rconn_t *rc, ngx_connection_t *c)
{
    long        v;
    X509       *cert;
    ngx_str_t  *name;
    int         ok;
    u_char      text[NGX_SOCKADDR_STRLEN + 1];

    v = SSL_get_verify_result(c->ssl->connection);
    if (v != X509_V_OK) {
        ngx_http_tronch_rconn_fail(rc, "TLS certificate verify error: (%l:%s); is "
                                   "tronch_redis_tls_trusted_certificate the CA that signed it?",
                                   v, X509_verify_cert_error_string(v));
        return NGX_ERROR;
    }

    name = ngx_http_tronch_rconn_tls_name(rc);

    if (!ngx_http_tronch_rconn_is_ip(name)) {
        ok = (ngx_ssl_check_host(c, name) == NGX_OK);

    } else {
        cert = SSL_get_peer_certificate(c->ssl->connection);
        ok = 0;
        if (cert != NULL && name->len < sizeof(text)) {
            ngx_cpystrn(text, name->data, name->len + 1);
            ok = (X509_check_ip_asc(cert, (const char *) text, 0) == 1);
        }
        if (cert != NULL) {
            X509_free(cert);
        }
    }

    if (!ok) {
        ngx_http_tronch_rconn_fail(rc, "TLS certificate does not match \"%V\" "
                                   "(set tronch_redis_tls_name to a name it holds)", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_tronch_rconn_handshake_done(ngx_connection_t *c)
{
    ngx_http_tronch_rconn_t  *rc = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_tronch_rconn_fail(rc, "TLS handshake failed");
        return;
    }

    if (ngx_http_tronch_rconn_verify(rc, c) != NGX_OK) {
        return;
    }

    c->read->handler = ngx_http_tronch_rconn_read_handler;
    c->write->handler = ngx_http_tronch_rconn_write_handler;

    ngx_http_tronch_rconn_transport_ready(rc);
}


static void
ngx_http_tronch_rconn_tls_start(ngx_http_tronch_rconn_t *rc, ngx_connection_t *c)
{
    ngx_str_t  *name;
    u_char      host[256];
    ngx_int_t   rv;

    if (ngx_ssl_create_connection(rc->conf->ssl, c, NGX_SSL_BUFFER|NGX_SSL_CLIENT) != NGX_OK) {
        ngx_http_tronch_rconn_fail(rc, "cannot create a TLS connection");
        return;
    }

    name = ngx_http_tronch_rconn_tls_name(rc);

    /* SNI carries host names only (RFC 6066) */
    if (!ngx_http_tronch_rconn_is_ip(name) && name->len > 0 && name->len < sizeof(host)) {
        ngx_cpystrn(host, name->data, name->len + 1);
        if (SSL_set_tlsext_host_name(c->ssl->connection, (char *) host) == 0) {
            ngx_http_tronch_rconn_fail(rc, "cannot set the TLS server name \"%V\"", name);
            return;
        }
    }

    rv = ngx_ssl_handshake(c);

    if (rv == NGX_AGAIN) {
        c->ssl->handler = ngx_http_tronch_rconn_handshake_done;
        return;
    }

    ngx_http_tronch_rconn_handshake_done(c);
}

#endif


static void
ngx_http_tronch_rconn_auth_reply(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *data)
{
    (void) data;

    if (reply == NULL) {
        return;   /* closing */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* Redis's answer (WRONGPASS ...) never repeats the password */
        ngx_http_tronch_rconn_fail(rc, "authentication failed for user \"%V\": %s "
                                   "(check tronch_redis_auth and its password file)",
                                   &rc->conf->user, reply->str);
        return;
    }

    rc->is_ready = 1;
    rc->peer.connection->log = rc->log;
    rc->peer.connection->read->log = rc->log;
    rc->peer.connection->write->log = rc->log;

    rc->ready(rc, NULL);
}


/* TCP (and TLS) are up: authenticate first, or be ready now. */
static void
ngx_http_tronch_rconn_transport_ready(ngx_http_tronch_rconn_t *rc)
{
    ngx_connection_t  *c = rc->peer.connection;
    ngx_str_t         *user = &rc->conf->user, *pass = &rc->conf->password;

    if (user->len) {
        if (ngx_http_tronch_rconn_command(rc, ngx_http_tronch_rconn_auth_reply, NULL, "AUTH %b %b",
                                          user->data, user->len, pass->data, pass->len)
            != NGX_OK)
        {
            if (rc->peer.connection) {
                ngx_http_tronch_rconn_fail(rc, "cannot queue AUTH");
            }
            return;
        }

    } else {
        rc->is_ready = 1;
        c->log = rc->log;
        c->read->log = rc->log;
        c->write->log = rc->log;
        rc->ready(rc, NULL);
    }

    c = rc->peer.connection;
    if (c != NULL && c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


static void
ngx_http_tronch_rconn_write_handler(ngx_event_t *wev)
{
    ngx_connection_t         *c = wev->data;
    ngx_http_tronch_rconn_t  *rc = c->data;

    if (!rc->connecting) {
        ngx_http_tronch_rconn_flush(rc);
        return;
    }

    if (ngx_http_tronch_rconn_test_connect(c) != NGX_OK) {
        ngx_http_tronch_rconn_fail(rc, "cannot connect");
        return;
    }

    rc->connecting = 0;

#if (NGX_SSL)
    if (rc->conf->ssl) {
        ngx_http_tronch_rconn_tls_start(rc, c);
        return;
    }
#endif

    ngx_http_tronch_rconn_transport_ready(rc);
}


/* The subscriber may wait for hours without a byte: TCP keepalive finds a peer that vanished
 * (a partition, a host gone) in about 25 s, where nothing else would. Best effort. */
static void
ngx_http_tronch_rconn_keepalive(ngx_connection_t *c, ngx_http_tronch_raddr_t *addr)
{
    int  on = 1;

    if (addr->sockaddr->sa_family == AF_UNIX) {
        return;
    }

    (void) setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, (const void *) &on, sizeof(int));

#if (NGX_HAVE_KEEPALIVE_TUNABLE)
    {
        int  idle = 10, intvl = 5, cnt = 3;

        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, (const void *) &idle, sizeof(int));
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, (const void *) &intvl, sizeof(int));
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, (const void *) &cnt, sizeof(int));
    }
#endif
}


ngx_int_t
ngx_http_tronch_rconn_connect(ngx_http_tronch_rconn_t *rc, ngx_http_tronch_raddr_t *addr)
{
    ngx_peer_connection_t  *pc = &rc->peer;
    ngx_connection_t       *c;
    ngx_int_t               rv;

    ngx_http_tronch_rconn_close(rc);

    rc->addr = addr;
    rc->err[0] = '\0';
    rc->captured[0] = '\0';

    rc->reader = redisReaderCreate();
    rc->pool = ngx_create_pool(2048, rc->log);

    if (rc->reader == NULL || rc->pool == NULL) {
        ngx_cpystrn(rc->err, (u_char *) "out of memory", sizeof(rc->err));
        ngx_http_tronch_rconn_close(rc);
        return NGX_ERROR;
    }

    ngx_memzero(pc, sizeof(ngx_peer_connection_t));
    pc->sockaddr = addr->sockaddr;
    pc->socklen = addr->socklen;
    pc->name = &addr->name;
    pc->get = ngx_event_get_peer;
    pc->log = &rc->capture;
    pc->log_error = NGX_ERROR_ERR;

    rv = ngx_event_connect_peer(pc);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED || pc->connection == NULL) {
        pc->connection = NULL;
        ngx_snprintf(rc->err, sizeof(rc->err) - 1, "%s%Z",
                     rc->captured[0] ? (char *) rc->captured : "connect() failed");
        ngx_http_tronch_rconn_close(rc);
        return NGX_ERROR;
    }

    c = pc->connection;
    c->data = rc;
    c->pool = rc->pool;
    ngx_http_tronch_rconn_keepalive(c, addr);
    c->read->handler = ngx_http_tronch_rconn_read_handler;
    c->write->handler = ngx_http_tronch_rconn_write_handler;
    rc->connecting = 1;

    if (rv == NGX_OK) {
        /* connected at once (a unix socket): carry on from the event loop, not from here */
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


/* closing */

void
ngx_http_tronch_rconn_close(ngx_http_tronch_rconn_t *rc)
{
    ngx_connection_t  *c = rc->peer.connection;

    rc->peer.connection = NULL;
    rc->connecting = 0;
    rc->is_ready = 0;
    rc->generation++;

    if (c != NULL) {
#if (NGX_SSL)
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
#endif
        ngx_close_connection(c);
    }

    if (rc->pool) {
        ngx_destroy_pool(rc->pool);
        rc->pool = NULL;
    }

    if (rc->reader) {
        redisReaderFree(rc->reader);
        rc->reader = NULL;
    }

    rc->out_len = rc->out_sent = 0;

    /* every waiting command hears "no reply" once; a handler may queue nothing (we are closed) */
    while (!ngx_queue_empty(&rc->waiting)) {
        ngx_http_tronch_rconn_answer(rc, NULL);
    }
}


/* Closes on an error, then tells the owner why (which may reconnect at once). */
static void
ngx_http_tronch_rconn_fail(ngx_http_tronch_rconn_t *rc, const char *fmt, ...)
{
    va_list   ap;
    u_char   *p, *last;

    last = rc->err + sizeof(rc->err) - 1;

    va_start(ap, fmt);
    p = ngx_vslprintf(rc->err, last, fmt, ap);
    va_end(ap);

    if (rc->captured[0] != '\0' && !rc->is_ready) {
        p = ngx_slprintf(p, last, ": %s", rc->captured);
    }

    *p = '\0';

    ngx_http_tronch_rconn_close(rc);

    if (rc->failed) {
        rc->failed(rc, (const char *) rc->err);
    }
}


void
ngx_http_tronch_rconn_destroy(ngx_http_tronch_rconn_t *rc)
{
    ngx_queue_t  *q;

    ngx_http_tronch_rconn_close(rc);

    while (!ngx_queue_empty(&rc->free)) {
        q = ngx_queue_head(&rc->free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_tronch_rcb_t, queue));
    }

    free(rc->out);
    rc->out = NULL;
    rc->out_size = 0;
}
