/*
 * Signed key records (Redis is not trusted): the tronch_record_key directive, and the checks a
 * record from Redis must pass on a cache miss before it is believed. The signature itself is
 * verified in the C++ core as the record is decoded (tronch_bridge_decode_record); here are the
 * checks that need the request's digest, the zone's memory of versions, and the clock.
 *
 * A cache hit never comes here: verification costs only on a miss.
 */
#include "ngx_http_tronch_module.h"


#define NGX_HTTP_TRONCH_RECORD_KEY_MAX  8192    /* a PEM public key is ~113 bytes */


static void
ngx_http_tronch_record_key_cleanup(void *data)
{
    tronch_bridge_record_key_free(data);
}


static ngx_int_t
ngx_http_tronch_read_small_file(ngx_conf_t *cf, ngx_str_t *path, u_char *buf, size_t size,
    size_t *len)
{
    ngx_fd_t     fd;
    ssize_t      n;
    ngx_file_t   file;

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "tronch_record_key: cannot open \"%V\"", path);
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = *path;
    file.log = cf->log;

    n = ngx_read_file(&file, buf, size, 0);

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, ngx_errno, "tronch_record_key: close \"%V\"", path);
    }

    if (n == NGX_ERROR || (size_t) n >= size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tronch_record_key: cannot read \"%V\" (or larger than a PEM public key)",
                           path);
        return NGX_ERROR;
    }

    *len = (size_t) n;
    return NGX_OK;
}


/* tronch_record_key /path/records.pub;  (http level, may be repeated: signing-key rotation) */
char *
ngx_http_tronch_record_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value, path;
    ngx_pool_cleanup_t           *cln;
    void                        **slot, *key;
    u_char                        pem[NGX_HTTP_TRONCH_RECORD_KEY_MAX];
    size_t                        len;
    char                          kid[32], err[128];

    (void) cmd;

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_tronch_read_small_file(cf, &path, pem, sizeof(pem), &len) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (tronch_bridge_record_key_load((const char *) pem, len, &key, kid, sizeof(kid), err, sizeof(err))
        != TRONCH_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tronch_record_key: \"%V\" is not usable: %s; it must be the PEM Ed25519 "
                           "public key tronchd wrote beside its signing key (tronchctl records-key)",
                           &path, err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        tronch_bridge_record_key_free(key);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_tronch_record_key_cleanup;
    cln->data = key;

    if (mcf->record_keys == NULL) {
        mcf->record_keys = ngx_array_create(cf->pool, 2, sizeof(void *));
        if (mcf->record_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    slot = ngx_array_push(mcf->record_keys);
    if (slot == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = key;

    ngx_conf_log_error(NGX_LOG_INFO, cf, 0, "tronch_record_key: \"%V\", key id %s", &path, kid);

    return NGX_CONF_OK;
}


/* After the configuration is read: say so if records will not be verified. */
void
ngx_http_tronch_records_postconf(ngx_conf_t *cf, ngx_http_tronch_main_conf_t *mcf)
{
    if (mcf->enabled_somewhere && mcf->record_keys == NULL) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "tronch: no tronch_record_key: key records read from redis are NOT "
                           "verified, anyone who can write to redis can add keys");
    }
}


/* In each worker: its configuration's keys become the ones records are verified against. */
ngx_int_t
ngx_http_tronch_records_init_process(ngx_cycle_t *cycle, ngx_http_tronch_main_conf_t *mcf)
{
    void  **keys = NULL;
    size_t  n = 0;

    if (mcf->record_keys) {
        keys = mcf->record_keys->elts;
        n = mcf->record_keys->nelts;
    }

    if (tronch_bridge_record_keys_use(keys, n) != TRONCH_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "tronch: cannot install the record keys");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A record Redis returned for ctx->digest: NGX_OK if it may be used. Else it is refused as an
 * unknown key (whatever tronch_failure_mode says: Redis answered, and what it said is not
 * believable), remembered as a negative entry, counted, and logged once per key hash.
 */
ngx_int_t
ngx_http_tronch_records_accept(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_ctx_t *ctx, const tronch_record_t *record)
{
    int64_t   seen;
    int       reason;
    u_char    hex[8];

    seen = ngx_http_tronch_cache_seen_version(mcf->shm_zone, ctx->digest);

    reason = tronch_bridge_record_check(record, ctx->digest, seen, (int64_t) ngx_time());
    if (reason == TRONCH_REJECT_NONE) {
        return NGX_OK;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_tronch_stats(mcf->shm_zone)->records_rejected, 1);

    if (ngx_http_tronch_cache_reject(mcf->shm_zone, ctx->digest, ctx->generation)) {
        /* the first 4 bytes of the key's SHA-256: enough to find it, nothing of the key */
        ngx_hex_dump(hex, ctx->digest, 4);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tronch: key record in redis refused for key hash %*s...: %s "
                      "(further refusals for this hash are counted, not logged)",
                      (size_t) 8, hex, tronch_bridge_reject_reason(reason));
    }

    return NGX_DECLINED;
}
