/*
 * Usage flush: once a second one worker (the owner, kept in the zone by
 * ngx_http_tronch_usage_collect) takes the keys that have waited longest out of the zone and
 * sends their counts to Redis on the worker's command link, fire and forget: per chunk of keys one
 * EVAL of the core's add script (HINCRBY of each field) and one HSET of the last-used times.
 * tronchd rolls the pending hash up into Postgres.
 */
#include "ngx_http_tronch_redis.h"


#define NGX_HTTP_TRONCH_FLUSH_EVERY    1000   /* ms */
#define NGX_HTTP_TRONCH_FLUSH_MAX      4096   /* keys per flush; the rest wait a second */
#define NGX_HTTP_TRONCH_FLUSH_CHUNK    128    /* keys per Redis command */
#define NGX_HTTP_TRONCH_FIELD_MAX      (TRONCH_ID_MAX + NGX_INT64_LEN + 4)


/* One chunk of a flush as two commands: EVAL of the core's add script over (field, delta)
 * pairs, and one HSET of the last-used times. The strings live in text. */
typedef struct {
    const char                  *add[4 + 4 * NGX_HTTP_TRONCH_FLUSH_CHUNK];
    size_t                       add_len[4 + 4 * NGX_HTTP_TRONCH_FLUSH_CHUNK];
    int                          add_argc;
    const char                  *seen[2 + 2 * NGX_HTTP_TRONCH_FLUSH_CHUNK];
    size_t                       seen_len[2 + 2 * NGX_HTTP_TRONCH_FLUSH_CHUNK];
    int                          seen_argc;
    ngx_uint_t                   requests;   /* the request counts the add command carries */
    u_char                      *free;
    u_char                       text[3 * NGX_HTTP_TRONCH_FLUSH_CHUNK
                                      * (NGX_HTTP_TRONCH_FIELD_MAX + NGX_INT64_LEN)];
} ngx_http_tronch_flush_cmd_t;


static ngx_http_tronch_main_conf_t      *ngx_http_tronch_flush_mcf;
static ngx_event_t                       ngx_http_tronch_flush_timer;
static ngx_connection_t                  ngx_http_tronch_flush_dummy;
static ngx_http_tronch_usage_t          *ngx_http_tronch_flush_buf;
static ngx_http_tronch_flush_cmd_t      *ngx_http_tronch_flush_cmd;


/* sending: fire and forget on the command link */

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


/* One usage command (argv as for redisFormatCommandArgv); a refusal is counted in
 * usage_flush_errors, and the `requests` it carried in usage_lost. */
static ngx_int_t
ngx_http_tronch_usage_send(int argc, const char **argv, const size_t *argvlen, ngx_uint_t requests)
{
    if (!ngx_http_tronch_redis_ready()) {
        return NGX_ERROR;
    }

    /* the command is encoded into the connection's buffer here: argv may be reused at once;
     * the reply callback gets the count it carries, to count it as lost if Redis never takes it */
    return ngx_http_tronch_rconn_command_argv(&ngx_http_tronch_cmd_link.rc, ngx_http_tronch_usage_reply,
                                              (void *) (uintptr_t) requests, argc, argv, argvlen);
}


static void
ngx_http_tronch_flush_cmd_reset(ngx_http_tronch_flush_cmd_t *cmd)
{
    const char  *pending = tronch_bridge_usage_pending_key();

    cmd->add[0] = "EVAL";
    cmd->add_len[0] = 4;
    cmd->add[1] = tronch_bridge_usage_add_script(&cmd->add_len[1]);
    cmd->add[2] = "1";          /* one key: */
    cmd->add_len[2] = 1;
    cmd->add[3] = pending;
    cmd->add_len[3] = ngx_strlen(pending);
    cmd->add_argc = 4;

    cmd->seen[0] = "HSET";
    cmd->seen_len[0] = 4;
    cmd->seen[1] = pending;
    cmd->seen_len[1] = cmd->add_len[3];
    cmd->seen_argc = 2;

    cmd->requests = 0;
    cmd->free = cmd->text;
}


/* Appends (field, value) to the add command, or (last_used) to the HSET. */
static ngx_int_t
ngx_http_tronch_flush_cmd_field(ngx_http_tronch_flush_cmd_t *cmd, const char *id, int64_t bucket,
    char counter, int64_t value)
{
    const char  **argv;
    size_t       *argvlen;
    int          *argc;
    size_t        len;
    u_char       *p;

    if (tronch_bridge_usage_field(id, bucket, counter, (char *) cmd->free, NGX_HTTP_TRONCH_FIELD_MAX,
                                  &len)
        != TRONCH_OK)
    {
        return NGX_ERROR;
    }

    if (counter == TRONCH_USAGE_LAST_USED) {
        argv = cmd->seen;
        argvlen = cmd->seen_len;
        argc = &cmd->seen_argc;

    } else {
        argv = cmd->add;
        argvlen = cmd->add_len;
        argc = &cmd->add_argc;
    }

    argv[*argc] = (const char *) cmd->free;
    argvlen[(*argc)++] = len;
    cmd->free += len;

    p = ngx_sprintf(cmd->free, "%L", value);
    argv[*argc] = (const char *) cmd->free;
    argvlen[(*argc)++] = p - cmd->free;
    cmd->free = p;

    return NGX_OK;
}


/* Sends what the chunk holds; returns the number of commands not sent. The counts of an add
 * command that could not be sent are lost (they left shm): counted in usage_lost. */
static ngx_uint_t
ngx_http_tronch_flush_cmd_send(ngx_http_tronch_flush_cmd_t *cmd)
{
    ngx_uint_t  failed = 0;

    if (cmd->add_argc > 4
        && ngx_http_tronch_usage_send(cmd->add_argc, cmd->add, cmd->add_len, cmd->requests)
           != NGX_OK)
    {
        failed++;
        (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(ngx_http_tronch_flush_mcf->shm_zone)->usage_lost,
                                    cmd->requests);
    }

    if (cmd->seen_argc > 2) {
        failed += (ngx_http_tronch_usage_send(cmd->seen_argc, cmd->seen, cmd->seen_len, 0)
                   != NGX_OK);
    }

    return failed;
}


static void
ngx_http_tronch_flush_handler(ngx_event_t *ev)
{
    ngx_http_tronch_main_conf_t  *mcf = ngx_http_tronch_flush_mcf;
    ngx_http_tronch_flush_cmd_t  *cmd = ngx_http_tronch_flush_cmd;
    ngx_http_tronch_usage_t      *u;
    ngx_uint_t                    i, count, failed;
    int64_t                       bucket;

    if (mcf == NULL || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    /* with Redis down the counts stay in shm until it is back */
    if (ngx_http_tronch_redis_ready()) {
        count = ngx_http_tronch_usage_collect(mcf, ngx_http_tronch_flush_buf,
                                                    NGX_HTTP_TRONCH_FLUSH_MAX);
        bucket = (int64_t) ngx_time();
        bucket -= bucket % TRONCH_USAGE_BUCKET_SECONDS;
        failed = 0;

        for (i = 0; i < count; i++) {
            if (i % NGX_HTTP_TRONCH_FLUSH_CHUNK == 0) {
                if (i) {
                    failed += ngx_http_tronch_flush_cmd_send(cmd);
                }
                ngx_http_tronch_flush_cmd_reset(cmd);
            }

            u = &ngx_http_tronch_flush_buf[i];

            if (u->requests) {
                if (ngx_http_tronch_flush_cmd_field(cmd, u->id, bucket, TRONCH_USAGE_REQUESTS, u->requests) == NGX_OK) {
                    cmd->requests += u->requests;
                } else {
                    failed++;
                }
            }

            if (u->errors) {
                failed += (ngx_http_tronch_flush_cmd_field(cmd, u->id, bucket, TRONCH_USAGE_ERRORS, u->errors)
                           != NGX_OK);
            }

            failed += (ngx_http_tronch_flush_cmd_field(cmd, u->id, 0, TRONCH_USAGE_LAST_USED,
                                                       u->last_used) != NGX_OK);
        }

        if (count) {
            failed += ngx_http_tronch_flush_cmd_send(cmd);
            (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->usage_flushes, 1);
        }

        if (failed) {
            (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->usage_flush_errors,
                                        failed);
        }
    }

    ngx_add_timer(ev, NGX_HTTP_TRONCH_FLUSH_EVERY);
}


void
ngx_http_tronch_usage_init_process(ngx_cycle_t *cycle, ngx_http_tronch_main_conf_t *mcf)
{
    ngx_http_tronch_flush_buf = ngx_alloc(NGX_HTTP_TRONCH_FLUSH_MAX * sizeof(ngx_http_tronch_usage_t),
                                          cycle->log);
    ngx_http_tronch_flush_cmd = ngx_alloc(sizeof(ngx_http_tronch_flush_cmd_t), cycle->log);

    if (ngx_http_tronch_flush_buf == NULL || ngx_http_tronch_flush_cmd == NULL) {
        return;
    }

    ngx_http_tronch_flush_mcf = mcf;

    ngx_memzero(&ngx_http_tronch_flush_dummy, sizeof(ngx_connection_t));
    ngx_memzero(&ngx_http_tronch_flush_timer, sizeof(ngx_event_t));
    ngx_http_tronch_flush_dummy.fd = (ngx_socket_t) -1;
    ngx_http_tronch_flush_dummy.log = cycle->log;
    ngx_http_tronch_flush_timer.data = &ngx_http_tronch_flush_dummy;
    ngx_http_tronch_flush_timer.handler = ngx_http_tronch_flush_handler;
    ngx_http_tronch_flush_timer.log = cycle->log;
    ngx_http_tronch_flush_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_tronch_flush_timer, NGX_HTTP_TRONCH_FLUSH_EVERY);
}


void
ngx_http_tronch_usage_exit_process(ngx_cycle_t *cycle)
{
    (void) cycle;

    if (ngx_http_tronch_flush_timer.timer_set) {
        ngx_del_timer(&ngx_http_tronch_flush_timer);
    }

    if (ngx_http_tronch_flush_buf) {
        ngx_free(ngx_http_tronch_flush_buf);
        ngx_http_tronch_flush_buf = NULL;
    }

    if (ngx_http_tronch_flush_cmd) {
        ngx_free(ngx_http_tronch_flush_cmd);
        ngx_http_tronch_flush_cmd = NULL;
    }

    ngx_http_tronch_flush_mcf = NULL;
}
