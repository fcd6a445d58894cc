/*
 * Redis Sentinel (tronch_redis_sentinel): which node is the master, per worker.
 *
 * The worker's sentinel link (a link of ngx_http_tronch_redis.c, trying the sentinels in turn)
 * asks "SENTINEL get-master-addr-by-name <name>" once connected and subscribes to
 * +switch-master; the data links (lookup, events) connect to the master it names, check it
 * answers ROLE as master, and are reset at once when a fail-over names another. When a data link
 * cannot connect, the sentinels are asked again, at most once a second (a +switch-master may
 * have been missed while the sentinel link was itself reconnecting).
 */
#include "ngx_http_tronch_redis.h"


#define NGX_HTTP_TRONCH_SENTINEL_ASK_MIN   1000   /* ms between two questions to the sentinels */


static ngx_http_tronch_raddr_t  ngx_http_tronch_master;
static ngx_sockaddr_t           ngx_http_tronch_master_sockaddr;
static u_char                   ngx_http_tronch_master_name[NGX_SOCKADDR_STRLEN];
static u_char                   ngx_http_tronch_master_host[NGX_SOCKADDR_STRLEN];
static ngx_uint_t               ngx_http_tronch_master_known;
static ngx_msec_t               ngx_http_tronch_sentinel_asked;


ngx_http_tronch_raddr_t *
ngx_http_tronch_sentinel_master(void)
{
    return ngx_http_tronch_master_known ? &ngx_http_tronch_master : NULL;
}


void
ngx_http_tronch_sentinel_reset(void)
{
    ngx_http_tronch_master_known = 0;
    ngx_http_tronch_sentinel_asked = 0;
}


/* The master is ip:port (Sentinel gives addresses unless resolve-hostnames is on; a name is
 * refused here rather than resolved in a worker). */
static void
ngx_http_tronch_sentinel_set_master(u_char *ip, size_t ip_len, u_char *port_text, size_t port_len)
{
    ngx_sockaddr_t   sa;
    socklen_t        len;
    ngx_int_t        port;
    in_addr_t        inaddr;
    u_char           name[NGX_SOCKADDR_STRLEN];
    size_t           name_len;
#if (NGX_HAVE_INET6)
    u_char           inaddr6[16];
#endif

    port = ngx_atoi(port_text, port_len);
    ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

    inaddr = ngx_inet_addr(ip, ip_len);

    if (inaddr != INADDR_NONE) {
        sa.sockaddr_in.sin_family = AF_INET;
        sa.sockaddr_in.sin_addr.s_addr = inaddr;
        len = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(ip, ip_len, inaddr6) == NGX_OK) {
        sa.sockaddr_in6.sin6_family = AF_INET6;
        ngx_memcpy(sa.sockaddr_in6.sin6_addr.s6_addr, inaddr6, 16);
        len = sizeof(struct sockaddr_in6);
#endif

    } else {
        port = NGX_ERROR;
        len = 0;
    }

    if (port < 1 || port > 65535 || ip_len >= sizeof(ngx_http_tronch_master_host)) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_tronch_redis_log, 0,
                      "tronch: redis sentinel: unusable master address \"%*s:%*s\" for \"%V\" "
                      "(an IP address is needed: set \"sentinel resolve-hostnames no\")",
                      ip_len, ip, port_len, port_text, &ngx_http_tronch_redis_mcf->redis.sentinel_master);
        return;
    }

    ngx_inet_set_port(&sa.sockaddr, (in_port_t) port);
    name_len = ngx_sock_ntop(&sa.sockaddr, len, name, sizeof(name), 1);

    if (ngx_http_tronch_master_known && name_len == ngx_http_tronch_master.name.len
        && ngx_memcmp(name, ngx_http_tronch_master_name, name_len) == 0)
    {
        return;   /* the same master */
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_http_tronch_redis_log, 0,
                  "tronch: redis sentinel: the master of \"%V\" is %*s%s%V",
                  &ngx_http_tronch_redis_mcf->redis.sentinel_master, name_len, name,
                  ngx_http_tronch_master_known ? " (fail-over), was " : "",
                  ngx_http_tronch_master_known ? &ngx_http_tronch_master.name : &ngx_http_tronch_master.host);

    ngx_http_tronch_master_sockaddr = sa;
    ngx_memcpy(ngx_http_tronch_master_name, name, name_len);
    ngx_memcpy(ngx_http_tronch_master_host, ip, ip_len);

    ngx_http_tronch_master.sockaddr = &ngx_http_tronch_master_sockaddr.sockaddr;
    ngx_http_tronch_master.socklen = len;
    ngx_http_tronch_master.name.data = ngx_http_tronch_master_name;
    ngx_http_tronch_master.name.len = name_len;
    ngx_http_tronch_master.host.data = ngx_http_tronch_master_host;
    ngx_http_tronch_master.host.len = ip_len;
    ngx_http_tronch_master_known = 1;

    ngx_http_tronch_redis_master_changed();
}


/* Reply to SENTINEL get-master-addr-by-name: [ip, port], or nil for a name it does not know. */
static void
ngx_http_tronch_sentinel_master_reply(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *data)
{
    (void) rc;
    (void) data;

    if (reply == NULL || ngx_http_tronch_redis_exiting) {
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        ngx_http_tronch_sentinel_set_master((u_char *) reply->element[0]->str, reply->element[0]->len,
                                            (u_char *) reply->element[1]->str, reply->element[1]->len);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_http_tronch_redis_log, 0,
                  "tronch: redis sentinel %V: no master for \"%V\": %s", &rc->addr->name,
                  &ngx_http_tronch_redis_mcf->redis.sentinel_master,
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "unknown master name");
}


/* +switch-master: "<name> <old ip> <old port> <new ip> <new port>" */
static void
ngx_http_tronch_sentinel_message(ngx_http_tronch_rconn_t *rc, redisReply *reply, void *data)
{
    redisReply  *payload;
    u_char      *p, *last, *field[5];
    size_t       len[5];
    ngx_uint_t   n;
    ngx_str_t   *master = &ngx_http_tronch_redis_mcf->redis.sentinel_master;

    (void) rc;
    (void) data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING || reply->element[0]->len != 7
        || ngx_strncmp(reply->element[0]->str, "message", 7) != 0
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;   /* the subscribe confirmation, or not for us */
    }

    payload = reply->element[2];
    p = (u_char *) payload->str;
    last = p + payload->len;

    for (n = 0; n < 5 && p < last; n++) {
        field[n] = p;
        while (p < last && *p != ' ') {
            p++;
        }
        len[n] = p - field[n];
        p++;
    }

    if (n != 5 || len[0] != master->len || ngx_strncmp(field[0], master->data, master->len) != 0) {
        return;
    }

    ngx_http_tronch_sentinel_set_master(field[3], len[3], field[4], len[4]);
}


/* The sentinel link is up: ask for the master, follow its changes. */
ngx_int_t
ngx_http_tronch_sentinel_ready(ngx_http_tronch_rconn_t *rc)
{
    ngx_str_t  *master = &ngx_http_tronch_redis_mcf->redis.sentinel_master;

    rc->push = ngx_http_tronch_sentinel_message;
    ngx_http_tronch_sentinel_asked = ngx_current_msec;

    if (ngx_http_tronch_rconn_command(rc, ngx_http_tronch_sentinel_master_reply, NULL,
                                      "SENTINEL get-master-addr-by-name %b", master->data, master->len)
        != NGX_OK
        || ngx_http_tronch_rconn_subscribe(rc, "SUBSCRIBE +switch-master") != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* A data link cannot reach the master it was given: time to ask the sentinels again? (Not
 * more than once a second. The sentinel link is subscribed, where RESP2 allows no other
 * command: asking again means reconnecting it, to the next sentinel.) */
ngx_uint_t
ngx_http_tronch_sentinel_should_ask(void)
{
    if (ngx_current_msec - ngx_http_tronch_sentinel_asked < NGX_HTTP_TRONCH_SENTINEL_ASK_MIN) {
        return 0;
    }

    ngx_http_tronch_sentinel_asked = ngx_current_msec;
    return 1;
}
