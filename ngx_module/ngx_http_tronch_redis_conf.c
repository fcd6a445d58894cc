/*
 * The tronch_redis* directives: where Redis is (addresses, or Sentinel), how to authenticate
 * (ACL user, password from a file) and TLS (CA, server name, client certificate).
 *
 * Everything that can fail is checked here, at configuration load, so that `nginx -t` names
 * the directive: host names are resolved now (in the master: a worker never resolves), files
 * are read now (the password stays in memory, never in a log), the SSL context is built now.
 */
#include "ngx_http_tronch_module.h"


#define NGX_HTTP_TRONCH_REDIS_PORT      6379
#define NGX_HTTP_TRONCH_SENTINEL_PORT   26379
#define NGX_HTTP_TRONCH_PASSWORD_MAX    512


/* Resolves one address into `out` (every address the name has). */
static char *
ngx_http_tronch_redis_resolve(ngx_conf_t *cf, ngx_str_t *directive, ngx_str_t *text, in_port_t port,
    ngx_array_t **out)
{
    ngx_url_t                 u;
    ngx_uint_t                i;
    ngx_http_tronch_raddr_t  *a;
    ngx_str_t                 host;

    if (text->len > 5 && ngx_strncmp(text->data, "unix:", 5) == 0 && text->data[5] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid address \"%V\": "
                           "a unix socket path must be absolute", directive, text);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = *text;
    u.default_port = port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid address \"%V\": %s "
                           "(expected host:port, IP:port, [IPv6]:port or unix:/path; host names "
                           "are resolved when nginx loads its configuration)", directive, text,
                           u.err ? u.err : "no address");
        return NGX_CONF_ERROR;
    }

    if (u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid address \"%V\": "
                           "no path after the port", directive, text);
        return NGX_CONF_ERROR;
    }

    if (*out == NULL) {
        *out = ngx_array_create(cf->pool, 4, sizeof(ngx_http_tronch_raddr_t));
        if (*out == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    host = u.host;
    if (host.len > 2 && host.data[0] == '[' && host.data[host.len - 1] == ']') {
        host.data++;
        host.len -= 2;
    }

    for (i = 0; i < u.naddrs; i++) {
        a = ngx_array_push(*out);
        if (a == NULL) {
            return NGX_CONF_ERROR;
        }

        a->sockaddr = u.addrs[i].sockaddr;
        a->socklen = u.addrs[i].socklen;
        a->name = u.addrs[i].name;
        a->host = host;
    }

    return NGX_CONF_OK;
}


/* tronch_redis <address> */
char *
ngx_http_tronch_redis_addr(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value = cf->args->elts;

    if (mcf->redis_host.len) {
        return mcf->redis.sentinel_master.len ? "cannot be combined with \"tronch_redis_sentinel\""
                                              : "is duplicate";
    }

    if (ngx_http_tronch_redis_resolve(cf, &cmd->name, &value[1], NGX_HTTP_TRONCH_REDIS_PORT,
                                      &mcf->redis.addrs)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    mcf->redis_addr = value[1];
    mcf->redis_host = value[1];

    return NGX_CONF_OK;
}


/* tronch_redis_sentinel <master name> <address>... */
char *
ngx_http_tronch_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value = cf->args->elts;
    ngx_uint_t                    i;

    if (mcf->redis_host.len) {
        return mcf->redis.sentinel_master.len ? "is duplicate"
                                              : "cannot be combined with \"tronch_redis\"";
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid master name \"%V\"",
                               &cmd->name, &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_tronch_redis_resolve(cf, &cmd->name, &value[i], NGX_HTTP_TRONCH_SENTINEL_PORT,
                                          &mcf->redis.sentinel_addrs)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    mcf->redis.sentinel_master = value[1];
    mcf->redis_addr = value[1];
    mcf->redis_host = value[1];

    return NGX_CONF_OK;
}


/* The password: the file's first line (without its line end), like ssl_password_file. */
static char *
ngx_http_tronch_redis_password(ngx_conf_t *cf, ngx_str_t *directive, ngx_str_t *file, ngx_str_t *out)
{
    ngx_fd_t   fd;
    ssize_t    n;
    u_char     buf[NGX_HTTP_TRONCH_PASSWORD_MAX + 2], *p, *end;
    ngx_err_t  err;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, err, "\"%V\" directive: cannot open the password file "
                           "\"%V\" (it must exist and be readable by nginx's master process)",
                           directive, file);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));
    err = ngx_errno;
    (void) ngx_close_file(fd);

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, err, "\"%V\" directive: cannot read the password "
                           "file \"%V\"", directive, file);
        return NGX_CONF_ERROR;
    }

    end = buf + n;
    for (p = buf; p < end && *p != '\n' && *p != '\r'; p++) { /* void */ }

    if (p == buf || p - buf > NGX_HTTP_TRONCH_PASSWORD_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: the password file \"%V\" must "
                           "hold the password (1 to %d bytes) on its first line", directive, file,
                           NGX_HTTP_TRONCH_PASSWORD_MAX);
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_CONF_ERROR;
    }

    out->len = p - buf;
    out->data = ngx_pnalloc(cf->pool, out->len);
    if (out->data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(out->data, buf, out->len);
    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_CONF_OK;
}


/* tronch_redis_auth / tronch_redis_sentinel_auth <user> <password file> */
char *
ngx_http_tronch_redis_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_rconn_conf_t  *rcf = (ngx_http_tronch_rconn_conf_t *) ((u_char *) conf + cmd->offset);
    ngx_str_t                     *value = cf->args->elts;
    ngx_uint_t                     i;

    if (rcf->user.len) {
        return "is duplicate";
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] == 0x7f) {
            break;
        }
    }

    if (value[1].len == 0 || i < value[1].len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid user name \"%V\"",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    rcf->user = value[1];

    return ngx_http_tronch_redis_password(cf, &cmd->name, &value[2], &rcf->password);
}


void
ngx_http_tronch_redis_create_conf(ngx_http_tronch_redis_conf_t *rcf)
{
    rcf->tls = NGX_CONF_UNSET;
}


#if (NGX_SSL)

/* A file the directive names must be readable now: say which directive, and what to do. */
static char *
ngx_http_tronch_redis_file(ngx_conf_t *cf, const char *directive, ngx_str_t *file)
{
    ngx_fd_t   fd;
    ngx_err_t  err;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, err, "\"%s\" directive: cannot open \"%V\" (give a "
                           "PEM file readable by nginx's master process)", directive, file);
        return NGX_CONF_ERROR;
    }

    (void) ngx_close_file(fd);
    return NGX_CONF_OK;
}


static char *
ngx_http_tronch_redis_ssl(ngx_conf_t *cf, ngx_http_tronch_redis_conf_t *rcf)
{
    ngx_pool_cleanup_t  *cln;
    ngx_ssl_t           *ssl;

    if (rcf->tls_trusted_certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"tronch_redis_tls\" is on but no "
                           "\"tronch_redis_tls_trusted_certificate\" is set: name the CA file that "
                           "signs Redis's certificate (e.g. /etc/ssl/certs/ca-certificates.crt)");
        return NGX_CONF_ERROR;
    }

    if ((rcf->tls_certificate.len == 0) != (rcf->tls_certificate_key.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"tronch_redis_tls_certificate\" and "
                           "\"tronch_redis_tls_certificate_key\" go together: set both or neither");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_tronch_redis_file(cf, "tronch_redis_tls_trusted_certificate",
                                   &rcf->tls_trusted_certificate) != NGX_CONF_OK
        || (rcf->tls_certificate.len
            && (ngx_http_tronch_redis_file(cf, "tronch_redis_tls_certificate",
                                           &rcf->tls_certificate) != NGX_CONF_OK
                || ngx_http_tronch_redis_file(cf, "tronch_redis_tls_certificate_key",
                                              &rcf->tls_certificate_key) != NGX_CONF_OK)))
    {
        return NGX_CONF_ERROR;
    }

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (ngx_ssl_trusted_certificate(cf, ssl, &rcf->tls_trusted_certificate, 9) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"tronch_redis_tls_trusted_certificate\" "
                           "directive: \"%V\" holds no usable PEM certificate",
                           &rcf->tls_trusted_certificate);
        return NGX_CONF_ERROR;
    }

    if (rcf->tls_certificate.len
        && ngx_ssl_certificate(cf, ssl, &rcf->tls_certificate, &rcf->tls_certificate_key, NULL)
           != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"tronch_redis_tls_certificate\" directive: "
                           "cannot use \"%V\" with the key \"%V\" (PEM, unencrypted key, matching pair)",
                           &rcf->tls_certificate, &rcf->tls_certificate_key);
        return NGX_CONF_ERROR;
    }

    rcf->node.ssl = ssl;
    rcf->sentinel.ssl = ssl;

    return NGX_CONF_OK;
}

#endif


static ngx_uint_t
ngx_http_tronch_redis_has_unix(ngx_array_t *addrs)
{
    ngx_http_tronch_raddr_t  *a;
    ngx_uint_t                i;

    if (addrs == NULL) {
        return 0;
    }

    a = addrs->elts;
    for (i = 0; i < addrs->nelts; i++) {
        if (a[i].host.len == 0) {
            return 1;
        }
    }

    return 0;
}


char *
ngx_http_tronch_redis_init_conf(ngx_conf_t *cf, ngx_http_tronch_main_conf_t *mcf)
{
    ngx_http_tronch_redis_conf_t  *rcf = &mcf->redis;

    ngx_conf_init_value(rcf->tls, 0);

    if (rcf->sentinel.user.len && rcf->sentinel_master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"tronch_redis_sentinel_auth\" needs "
                           "\"tronch_redis_sentinel\"");
        return NGX_CONF_ERROR;
    }

    if (!rcf->tls) {
        if (rcf->tls_trusted_certificate.len || rcf->tls_certificate.len || rcf->tls_name.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "the \"tronch_redis_tls_*\" settings need "
                               "\"tronch_redis_tls on\"");
            return NGX_CONF_ERROR;
        }
        return NGX_CONF_OK;
    }

#if (NGX_SSL)
    if (rcf->tls_name.len == 0 && ngx_http_tronch_redis_has_unix(rcf->addrs)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"tronch_redis_tls\" to a unix socket needs "
                           "\"tronch_redis_tls_name\" (the name its certificate holds)");
        return NGX_CONF_ERROR;
    }

    rcf->node.tls_name = rcf->tls_name;
    rcf->sentinel.tls_name = rcf->tls_name;

    return ngx_http_tronch_redis_ssl(cf, rcf);
#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"tronch_redis_tls\" needs nginx built with OpenSSL");
    return NGX_CONF_ERROR;
#endif
}
