/*
 * Tronch configuration: the directives, their parsers, and the main/location
 * configuration (create, init, merge).
 */
#include "ngx_http_tronch_module.h"


#define ngx_http_tronch_isalnum(c)                                           \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')                \
     || ((c) >= '0' && (c) <= '9'))


static char *ngx_http_tronch_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_key_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_environment(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_failure_mode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_positive_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_limit_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


ngx_command_t  ngx_http_tronch_commands[] = {

    { ngx_string("tronch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, enable),
      NULL },

    { ngx_string("tronch_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_tronch_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_record_key"),        /* ngx_http_tronch_records.c */
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_record_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_positive_msec,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("tronch_key_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_key_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_environment"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_environment,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_positive_msec,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, cache_ttl),
      NULL },

    { ngx_string("tronch_negative_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_positive_msec,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, negative_ttl),
      NULL },

    { ngx_string("tronch_stale_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, stale_ttl),
      NULL },

    { ngx_string("tronch_failure_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_failure_mode,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_require_https"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, require_https),
      NULL },

    { ngx_string("tronch_status"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tronch_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_limit_policy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_limit_policy,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_nodes"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, nodes),
      NULL },

    { ngx_string("tronch_default_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_tronch_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, default_limit),
      NULL },

    { ngx_string("tronch_address_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_tronch_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, address_limit),
      NULL },

      ngx_null_command
};


void *
ngx_http_tronch_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_tronch_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tronch_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    mcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    mcf->limit_policy = NGX_CONF_UNSET_UINT;
    mcf->nodes = NGX_CONF_UNSET;

    return mcf;
}


char *
ngx_http_tronch_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_uint_t                    i;
    u_char                        buf[1024];
    size_t                        len;

    ngx_conf_init_msec_value(mcf->redis_timeout, 250);
    ngx_conf_init_uint_value(mcf->limit_policy, NGX_HTTP_TRONCH_POLICY_LOCAL);
    ngx_conf_init_value(mcf->nodes, 1);

    if (mcf->nodes < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_nodes\" directive: invalid value %i, it must be 1 or more",
                           mcf->nodes);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < TRONCH_RESULT_COUNT; i++) {
        len = tronch_bridge_problem_body((int) i, (char *) buf, sizeof(buf));
        if (len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "tronch: cannot build the problem body %ui", i);
            return NGX_CONF_ERROR;
        }

        mcf->bodies[i].data = ngx_pnalloc(cf->pool, len);
        if (mcf->bodies[i].data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(mcf->bodies[i].data, buf, len);
        mcf->bodies[i].len = len;
    }

    return NGX_CONF_OK;
}


void *
ngx_http_tronch_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_tronch_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tronch_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /* lcf->key_header = { 0, NULL }: unset */
    lcf->enable = NGX_CONF_UNSET;
    lcf->environment = NGX_CONF_UNSET_UINT;
    lcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    lcf->negative_ttl = NGX_CONF_UNSET_MSEC;
    lcf->stale_ttl = NGX_CONF_UNSET_MSEC;
    lcf->failure_mode = NGX_CONF_UNSET_UINT;
    lcf->require_https = NGX_CONF_UNSET;

    return lcf;
}


char *
ngx_http_tronch_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_tronch_loc_conf_t   *prev = parent;
    ngx_http_tronch_loc_conf_t   *conf = child;
    ngx_http_tronch_main_conf_t  *mcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->key_header, prev->key_header, "");
    ngx_conf_merge_uint_value(conf->environment, prev->environment, NGX_HTTP_TRONCH_ENV_ANY);
    ngx_conf_merge_msec_value(conf->cache_ttl, prev->cache_ttl, 60000);
    ngx_conf_merge_msec_value(conf->negative_ttl, prev->negative_ttl, 10000);
    ngx_conf_merge_msec_value(conf->stale_ttl, prev->stale_ttl, 300000);
    ngx_conf_merge_uint_value(conf->failure_mode, prev->failure_mode, NGX_HTTP_TRONCH_FAIL_CLOSED);
    ngx_conf_merge_value(conf->require_https, prev->require_https, 0);

    if (!conf->default_limit_set) {
        conf->default_limit_set = prev->default_limit_set;
        conf->default_limit = prev->default_limit;
    }

    if (!conf->address_limit_set) {
        conf->address_limit_set = prev->address_limit_set;
        conf->address_limit = prev->address_limit;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tronch_module);

    if (conf->enable || conf->status) {
        if (mcf->shm_zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%s\" needs a \"tronch_zone\" in the http block",
                               conf->enable ? "tronch" : "tronch_status");
            return NGX_CONF_ERROR;
        }

        mcf->enabled_somewhere = 1;
    }

    if (conf->enable && mcf->redis_host.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch\" needs a \"tronch_redis\" address in the http block");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tronch_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value;
    ssize_t                       size;
    ngx_uint_t                    i;

    (void) cmd;

    if (mcf->shm_zone) {
        return "is duplicate: one tronch_zone per http block";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "needs a zone name";
    }

    for (i = 0; i < value[1].len; i++) {
        if (!(ngx_http_tronch_isalnum(value[1].data[i]) || ngx_http_tronch_isalnum(value[1].data[i])
              || value[1].data[i] == '_' || value[1].data[i] == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tronch_zone\" directive: invalid zone name \"%V\" "
                               "(letters, digits, \"_\" and \"-\")", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_zone\" directive: invalid size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (16 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_zone\" directive: zone \"%V\" is too small (%V), "
                           "it needs at least %uzk", &value[1], &value[2],
                           (size_t) (16 * ngx_pagesize) / 1024);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone = ngx_shared_memory_add(cf, &value[1], size, &ngx_http_tronch_module);
    if (mcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_zone\" directive: zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone->init = ngx_http_tronch_cache_init_zone;
    mcf->shm_zone->data = ngx_http_tronch_cache_create_ctx(cf);
    if (mcf->shm_zone->data == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* IP:port, [IPv6]:port or unix:/path, parsed here: nothing is resolved on the request path. */
static char *
ngx_http_tronch_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value, host, port;
    u_char                       *colon;
    ngx_int_t                     n;
#if (NGX_HAVE_INET6)
    u_char                        inaddr6[16];
#endif

    (void) cmd;

    if (mcf->redis_host.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    mcf->redis_addr = value[1];

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        host.data = value[1].data + 5;
        host.len = value[1].len - 5;

        if (host.data[0] != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tronch_redis\" directive: invalid address \"%V\": "
                               "a unix socket path must be absolute", &value[1]);
            return NGX_CONF_ERROR;
        }

        mcf->redis_port = 0;
        goto done;
    }

    colon = NULL;
    for (n = value[1].len - 1; n >= 0; n--) {
        if (value[1].data[n] == ':') {
            colon = &value[1].data[n];
            break;
        }
    }

    if (colon == NULL) {
        goto invalid;
    }

    host.data = value[1].data;
    host.len = colon - value[1].data;
    port.data = colon + 1;
    port.len = value[1].data + value[1].len - port.data;

    n = ngx_atoi(port.data, port.len);
    if (n < 1 || n > 65535) {
        goto invalid;
    }

    mcf->redis_port = n;

    if (host.len > 2 && host.data[0] == '[' && host.data[host.len - 1] == ']') {
        host.data++;
        host.len -= 2;
#if (NGX_HAVE_INET6)
        if (ngx_inet6_addr(host.data, host.len, inaddr6) == NGX_OK) {
            goto done;
        }
#endif
        goto invalid;
    }

    if (ngx_inet_addr(host.data, host.len) == INADDR_NONE) {
        goto invalid;
    }

done:

    mcf->redis_host.data = ngx_pnalloc(cf->pool, host.len + 1);
    if (mcf->redis_host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(mcf->redis_host.data, host.data, host.len);
    mcf->redis_host.data[host.len] = '\0';
    mcf->redis_host.len = host.len;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tronch_redis\" directive: invalid address \"%V\": expected IP:port, "
                       "[IPv6]:port or unix:/path (host names are not resolved)", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_tronch_key_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_str_t                   *value;
    ngx_uint_t                   i;
    u_char                       ch;

    (void) cmd;

    if (lcf->key_header.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        ch = value[1].data[i];
        if (!(ngx_http_tronch_isalnum(ch) || ngx_http_tronch_isalnum(ch) || ch == '-' || ch == '_')) {
            goto invalid;
        }
    }

    lcf->key_header = value[1];
    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tronch_key_header\" directive: invalid header name \"%V\" "
                       "(e.g. Authorization or X-API-Key)", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_tronch_environment(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_str_t                   *value;

    (void) cmd;

    if (lcf->environment != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "live") == 0) {
        lcf->environment = NGX_HTTP_TRONCH_ENV_LIVE;
    } else if (ngx_strcmp(value[1].data, "test") == 0) {
        lcf->environment = NGX_HTTP_TRONCH_ENV_TEST;
    } else if (ngx_strcmp(value[1].data, "any") == 0) {
        lcf->environment = NGX_HTTP_TRONCH_ENV_ANY;
    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_environment\" directive: invalid value \"%V\", "
                           "it must be \"live\", \"test\" or \"any\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tronch_failure_mode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_str_t                   *value;

    (void) cmd;

    if (lcf->failure_mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "closed") == 0) {
        lcf->failure_mode = NGX_HTTP_TRONCH_FAIL_CLOSED;
    } else if (ngx_strcmp(value[1].data, "open") == 0) {
        lcf->failure_mode = NGX_HTTP_TRONCH_FAIL_OPEN;
    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_failure_mode\" directive: invalid value \"%V\", "
                           "it must be \"closed\" or \"open\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* A time that must be more than zero: "invalid value" names the directive and the value. */
static char *
ngx_http_tronch_positive_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *rv;
    ngx_msec_t  *ms;
    ngx_str_t   *value;

    value = cf->args->elts;

    rv = ngx_conf_set_msec_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        ms = (ngx_msec_t *) ((char *) conf + cmd->offset);
        if (*ms > 0) {
            return NGX_CONF_OK;
        }
    } else if (rv != NGX_CONF_ERROR && ngx_strcmp(rv, "is duplicate") == 0) {
        return rv;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" directive: invalid time \"%V\", it must be more than zero "
                       "(e.g. 250ms, 30s, 5m)", &cmd->name, &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_tronch_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_http_core_loc_conf_t    *clcf;

    (void) cmd;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_tronch_status_handler;
    lcf->status = 1;

    return NGX_CONF_OK;
}



static char *
ngx_http_tronch_limit_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_main_conf_t  *mcf = conf;
    ngx_str_t                    *value;

    (void) cmd;

    if (mcf->limit_policy != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "local") == 0) {
        mcf->limit_policy = NGX_HTTP_TRONCH_POLICY_LOCAL;

    } else if (ngx_strcmp(value[1].data, "redis") == 0) {
        mcf->limit_policy = NGX_HTTP_TRONCH_POLICY_REDIS;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_limit_policy\" directive: invalid value \"%V\", "
                           "it must be \"local\" or \"redis\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* tronch_default_limit / tronch_address_limit rate=100r/s [burst=20] | off */
static char *
ngx_http_tronch_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    tronch_limit_t              *limit;
    ngx_uint_t                  *set;
    ngx_str_t                   *value;
    ngx_uint_t                   i;
    u_char                       text[256], *p;
    char                         err[160];

    limit = (tronch_limit_t *) ((char *) conf + cmd->offset);
    set = (limit == &lcf->default_limit) ? &lcf->default_limit_set : &lcf->address_limit_set;

    if (*set) {
        return "is duplicate";
    }

    value = cf->args->elts;
    *set = 1;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        ngx_memzero(limit, sizeof(tronch_limit_t));
        return NGX_CONF_OK;
    }

    p = text;
    for (i = 1; i < cf->args->nelts; i++) {
        if ((size_t) (text + sizeof(text) - p) < value[i].len + 1) {
            return "has too long a value";
        }
        if (i > 1) {
            *p++ = ' ';
        }
        p = ngx_cpymem(p, value[i].data, value[i].len);
    }

    if (tronch_bridge_parse_limit((const char *) text, p - text, limit, err, sizeof(err)) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: %s", &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
