/*
 * Tronch configuration: the directives, their parsers, and the main/location
 * configuration (create, init, merge).
 */
#include "ngx_http_tronch_module.h"


#define ngx_http_tronch_isalnum(c)                                           \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')                \
     || ((c) >= '0' && (c) <= '9'))


static char *ngx_http_tronch_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_key_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_enum_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_limit_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_time_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_check_time(ngx_conf_t *cf, void *post, void *data);
static char *ngx_http_tronch_check_num(ngx_conf_t *cf, void *post, void *data);
static char *ngx_http_tronch_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_tronch_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static void ngx_http_tronch_where(ngx_conf_t *cf, u_char *buf, size_t len);
static ngx_uint_t ngx_http_tronch_has_return(ngx_conf_t *cf);


/* The values of the enum directives (ngx_conf_set_enum_slot, through ngx_http_tronch_enum_slot). */
static ngx_conf_enum_t  ngx_http_tronch_environments[] = {
    { ngx_string("live"), NGX_HTTP_TRONCH_ENV_LIVE },
    { ngx_string("test"), NGX_HTTP_TRONCH_ENV_TEST },
    { ngx_string("any"), NGX_HTTP_TRONCH_ENV_ANY },
    { ngx_null_string, 0 }
};

static ngx_conf_enum_t  ngx_http_tronch_failure_modes[] = {
    { ngx_string("closed"), NGX_HTTP_TRONCH_FAIL_CLOSED },
    { ngx_string("open"), NGX_HTTP_TRONCH_FAIL_OPEN },
    { ngx_null_string, 0 }
};

static ngx_conf_enum_t  ngx_http_tronch_limit_header_families[] = {
    { ngx_string("all"), TRONCH_HEADERS_DRAFT | TRONCH_HEADERS_LEGACY },
    { ngx_string("draft"), TRONCH_HEADERS_DRAFT },
    { ngx_string("legacy"), TRONCH_HEADERS_LEGACY },
    { ngx_string("off"), 0 },
    { ngx_null_string, 0 }
};

static ngx_conf_enum_t  ngx_http_tronch_limit_policies[] = {
    { ngx_string("local"), NGX_HTTP_TRONCH_POLICY_LOCAL },
    { ngx_string("redis"), NGX_HTTP_TRONCH_POLICY_REDIS },
    { ngx_string("leased"), NGX_HTTP_TRONCH_POLICY_LEASED },
    { ngx_null_string, 0 }
};


/* A time directive's bounds (the post handler of ngx_conf_set_msec_slot) and what to say about a
 * value that is not a time. */
typedef struct {
    ngx_conf_post_handler_pt      post_handler;
    ngx_msec_t                    min;
    ngx_msec_t                    max;          /* 0: none */
    char                         *hint;
} ngx_http_tronch_time_bounds_t;

#define NGX_HTTP_TRONCH_POSITIVE_HINT  "it must be more than zero (e.g. 250ms, 30s, 5m)"

static ngx_http_tronch_time_bounds_t  ngx_http_tronch_positive_time = {
    ngx_http_tronch_check_time, 1, 0, NGX_HTTP_TRONCH_POSITIVE_HINT
};

/* At most 60s: nginx reads a bare number as seconds, so "250" meant 250 seconds, not ms. */
static ngx_http_tronch_time_bounds_t  ngx_http_tronch_redis_timeout_bounds = {
    ngx_http_tronch_check_time, 1, 60000, NGX_HTTP_TRONCH_POSITIVE_HINT
};

/* 0 is allowed: never serve an expired entry, even while Redis is down. */
static ngx_http_tronch_time_bounds_t  ngx_http_tronch_stale_time = {
    ngx_http_tronch_check_time, 0, 0,
    "expected e.g. 30s, 5m or 1h, or 0 to never serve an expired entry while Redis is down"
};

static ngx_conf_num_bounds_t  ngx_http_tronch_nodes_bounds = {
    ngx_http_tronch_check_num, 1, -1
};


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
      ngx_http_tronch_redis_addr,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /* the other tronch_redis_* directives: ngx_http_tronch_redis_conf.c */
    { ngx_string("tronch_redis_auth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_tronch_redis_auth,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis.node),
      NULL },

    { ngx_string("tronch_redis_tls"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis.tls),
      NULL },

    { ngx_string("tronch_redis_tls_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis.tls_trusted_certificate),
      NULL },

    { ngx_string("tronch_redis_tls_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis.tls_name),
      NULL },

    { ngx_string("tronch_redis_tls_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis.tls_certificate),
      NULL },

    { ngx_string("tronch_redis_tls_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis.tls_certificate_key),
      NULL },

    { ngx_string("tronch_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_tronch_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_record_key"),        /* ngx_http_tronch_records.c */
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_record_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_redis_sentinel_auth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_tronch_redis_auth,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis.sentinel),
      NULL },

    { ngx_string("tronch_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_time_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, redis_timeout),
      &ngx_http_tronch_redis_timeout_bounds },

    { ngx_string("tronch_key_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_key_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tronch_environment"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, environment),
      ngx_http_tronch_environments },

    { ngx_string("tronch_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_time_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, cache_ttl),
      &ngx_http_tronch_positive_time },

    { ngx_string("tronch_negative_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_time_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, negative_ttl),
      &ngx_http_tronch_positive_time },

    { ngx_string("tronch_stale_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_time_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, stale_ttl),
      &ngx_http_tronch_stale_time },

    { ngx_string("tronch_failure_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, failure_mode),
      ngx_http_tronch_failure_modes },

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
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_tronch_limit_policy,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, limit_policy),
      ngx_http_tronch_limit_policies },

    { ngx_string("tronch_limit_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tronch_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, limit_headers),
      ngx_http_tronch_limit_header_families },

    { ngx_string("tronch_nodes"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tronch_main_conf_t, nodes),
      &ngx_http_tronch_nodes_bounds },

    { ngx_string("tronch_default_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_tronch_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tronch_loc_conf_t, default_limit),
      NULL },

    { ngx_string("tronch_address_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
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
    mcf->nodes = NGX_CONF_UNSET;
    ngx_http_tronch_redis_create_conf(&mcf->redis);

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
    ngx_conf_init_value(mcf->nodes, 1);

    if (ngx_http_tronch_redis_init_conf(cf, mcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < TRONCH_RESULT_COUNT; i++) {
        if (tronch_bridge_problem_body((int) i, (char *) buf, sizeof(buf), &len) != TRONCH_OK) {
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
    lcf->limit_policy = NGX_CONF_UNSET_UINT;
    lcf->lease_share = NGX_CONF_UNSET;
    lcf->limit_headers = NGX_CONF_UNSET_UINT;

    return lcf;
}


char *
ngx_http_tronch_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_tronch_loc_conf_t   *prev = parent;
    ngx_http_tronch_loc_conf_t   *conf = child;
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_core_loc_conf_t     *clcf;
    u_char                        where[256];

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->key_header, prev->key_header, "");
    ngx_conf_merge_uint_value(conf->environment, prev->environment, NGX_HTTP_TRONCH_ENV_ANY);
    ngx_conf_merge_msec_value(conf->cache_ttl, prev->cache_ttl, 60000);
    ngx_conf_merge_msec_value(conf->negative_ttl, prev->negative_ttl, 10000);
    ngx_conf_merge_msec_value(conf->stale_ttl, prev->stale_ttl, 300000);
    ngx_conf_merge_uint_value(conf->failure_mode, prev->failure_mode, NGX_HTTP_TRONCH_FAIL_CLOSED);
    ngx_conf_merge_value(conf->require_https, prev->require_https, 0);
    ngx_conf_merge_uint_value(conf->limit_policy, prev->limit_policy, NGX_HTTP_TRONCH_POLICY_LOCAL);
    ngx_conf_merge_value(conf->lease_share, prev->lease_share, NGX_HTTP_TRONCH_LEASE_SHARE);
    ngx_conf_merge_uint_value(conf->limit_headers, prev->limit_headers,
                              TRONCH_HEADERS_DRAFT | TRONCH_HEADERS_LEGACY);

    if (!conf->default_limit_set) {
        conf->default_limit_set = prev->default_limit_set;
        conf->default_limit = prev->default_limit;
    }

    if (!conf->address_limit_set) {
        conf->address_limit_set = prev->address_limit_set;
        conf->address_limit = prev->address_limit;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tronch_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* Merging runs at the http block's closing brace, so the messages name the location. */
    where[0] = '\0';

    if (conf->enable || conf->status) {
        ngx_http_tronch_where(cf, where, sizeof(where));

        if (mcf->shm_zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%s\" %s needs a \"tronch_zone\" in the http block",
                               conf->enable ? "tronch on" : "tronch_status", where);
            return NGX_CONF_ERROR;
        }

        mcf->enabled_somewhere = 1;
    }

    if (conf->enable && mcf->redis_host.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch on\" %s needs a \"tronch_redis\" address in the http block",
                           where);
        return NGX_CONF_ERROR;
    }

    /* proxy_pass & co. after tronch_status replace its handler: it would silently proxy. */
    if (conf->status && clcf->handler != ngx_http_tronch_status_handler) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_status\" %s shares it with another content handler "
                           "(proxy_pass, fastcgi_pass, ...), which would answer instead: "
                           "give tronch_status a location of its own", where);
        return NGX_CONF_ERROR;
    }

    /* A warning, not an error: a conditional return (CORS preflight in an `if`) is legitimate
     * and compiles into the same rewrite program as an unconditional one. */
    if (conf->enable && ngx_http_tronch_has_return(cf)) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"tronch on\" %s also has \"return\", which answers in the rewrite "
                           "phase, before any key check: such responses need no key", where);
    }

    return NGX_CONF_OK;
}


/* "in location \"/api/\"" for a location's conf, else where the merge is. */
static void
ngx_http_tronch_where(ngx_conf_t *cf, u_char *buf, size_t len)
{
    ngx_http_core_loc_conf_t  *clcf;
    u_char                    *p;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->name.len) {
        p = ngx_snprintf(buf, len - 1, "in location \"%V\"", &clcf->name);
    } else {
        p = ngx_snprintf(buf, len - 1, "at server or http level");
    }

    *p = '\0';
}


/*
 * Whether the current location's rewrite program holds a `return`. The rewrite module's loc
 * conf is private, but it starts with `ngx_array_t *codes` (the compiled program, an array of
 * bytes made of code structs whose first word is the code's function); `return` compiles to
 * ngx_http_script_return_code (exported by nginx), and an `if` block's codes go into the
 * enclosing location's program. Looking the module up by name keeps nginx builds without the
 * rewrite module loadable.
 */
static ngx_uint_t
ngx_http_tronch_has_return(ngx_conf_t *cf)
{
    ngx_uint_t     i;
    ngx_module_t  *m;
    ngx_array_t   *codes;
    void          *rlcf;
    uintptr_t      word, target;
    size_t         off, size;

    m = NULL;
    for (i = 0; cf->cycle->modules[i]; i++) {
        if (ngx_strcmp(cf->cycle->modules[i]->name, "ngx_http_rewrite_module") == 0) {
            m = cf->cycle->modules[i];
            break;
        }
    }

    if (m == NULL) {
        return 0;
    }

    rlcf = ((ngx_http_conf_ctx_t *) cf->ctx)->loc_conf[m->ctx_index];
    codes = rlcf ? *(ngx_array_t **) rlcf : NULL;
    if (codes == NULL) {
        return 0;
    }

    target = (uintptr_t) ngx_http_script_return_code;
    size = codes->nelts * codes->size;

    for (off = 0; off + sizeof(uintptr_t) <= size; off += sizeof(uintptr_t)) {
        ngx_memcpy(&word, (u_char *) codes->elts + off, sizeof(uintptr_t));
        if (word == target) {
            return 1;
        }
    }

    return 0;
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
        return "is duplicate: one tronch_zone per http block (is tronch.conf both in "
               "conf.d/ and included by hand?)";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "needs a zone name";
    }

    for (i = 0; i < value[1].len; i++) {
        if (!(ngx_http_tronch_isalnum(value[1].data[i])
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

    mcf->shm_zone->init = ngx_http_tronch_zone_init;
    mcf->shm_zone->data = ngx_http_tronch_zone_create_ctx(cf);
    if (mcf->shm_zone->data == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
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
        if (!(ngx_http_tronch_isalnum(ch) || ch == '-' || ch == '_')) {
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
ngx_http_tronch_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_http_core_loc_conf_t    *clcf;

    (void) cmd;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    if (clcf->handler != NULL && clcf->handler != ngx_http_tronch_status_handler) {
        return "is in a location that already has a content handler (proxy_pass, "
               "fastcgi_pass, ...): give tronch_status a location of its own";
    }

    clcf->handler = ngx_http_tronch_status_handler;
    lcf->status = 1;

    return NGX_CONF_OK;
}



/* tronch_limit_policy local | redis | leased [share=N%] (http, server or location): the policy
 * through the enum slot, then leased's share of the burst. */
static char *
ngx_http_tronch_limit_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_loc_conf_t  *lcf = conf;
    ngx_str_t                   *value;
    ngx_int_t                    share;
    char                        *rv;

    rv = ngx_http_tronch_enum_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK || cf->args->nelts < 3) {
        return rv;
    }

    value = cf->args->elts;
    share = NGX_ERROR;

    if (lcf->limit_policy == NGX_HTTP_TRONCH_POLICY_LEASED
        && value[2].len > 7 && ngx_strncmp(value[2].data, "share=", 6) == 0
        && value[2].data[value[2].len - 1] == '%')
    {
        share = ngx_atoi(value[2].data + 6, value[2].len - 7);
    }

    if (share == NGX_ERROR || share > 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tronch_limit_policy\" directive: invalid parameter \"%V\", "
                           "only \"leased\" takes one: share=N%% with N from 0 to 100 "
                           "(the part of the burst all nodes may hold in leases)", &value[2]);
        return NGX_CONF_ERROR;
    }

    lcf->lease_share = share;

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

    if (tronch_bridge_parse_limit((const char *) text, p - text, limit, err, sizeof(err)) != TRONCH_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: %s", &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ngx_conf_set_enum_slot, with a message that names the directive and the values it takes. */
static char *
ngx_http_tronch_enum_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_conf_enum_t  *e = cmd->post;
    ngx_str_t        *value = cf->args->elts;
    u_char            list[128], *p, *last;
    ngx_uint_t        i;

    for (i = 0; e[i].name.len; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strncmp(e[i].name.data, value[1].data, value[1].len) == 0)
        {
            return ngx_conf_set_enum_slot(cf, cmd, conf);
        }
    }

    p = list;
    last = list + sizeof(list);

    for (i = 0; e[i].name.len; i++) {
        p = ngx_slprintf(p, last, "%s\"%V\"", i == 0 ? "" : (e[i + 1].name.len ? ", " : " or "),
                         &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid value \"%V\", it must be %*s",
                       &cmd->name, &value[1], p - list, list);
    return NGX_CONF_ERROR;
}


/* ngx_conf_set_msec_slot (its post handler checks the bounds), with a message for a value
 * that is not a time. */
static char *
ngx_http_tronch_time_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tronch_time_bounds_t  *bounds = cmd->post;
    ngx_str_t                      *value = cf->args->elts;
    char                           *rv;

    rv = ngx_conf_set_msec_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK || rv == NGX_CONF_ERROR || ngx_strcmp(rv, "invalid value") != 0) {
        return rv;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid time \"%V\", %s",
                       &cmd->name, &value[1], bounds->hint);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_tronch_check_time(ngx_conf_t *cf, void *post, void *data)
{
    ngx_http_tronch_time_bounds_t  *bounds = post;
    ngx_msec_t                     *ms = data;
    ngx_str_t                      *value = cf->args->elts;

    if (*ms < bounds->min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: invalid time \"%V\", %s",
                           &value[0], &value[1], bounds->hint);
        return NGX_CONF_ERROR;
    }

    if (bounds->max && *ms > bounds->max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: \"%V\" is %M ms, more than the %Ms maximum "
                           "(a number without a unit is seconds: write e.g. 250ms)",
                           &value[0], &value[1], *ms, bounds->max / 1000);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ngx_conf_check_num_bounds, with a message that names the directive and the value. */
static char *
ngx_http_tronch_check_num(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;
    ngx_str_t              *value = cf->args->elts;

    if (*np >= bounds->low && (bounds->high == -1 || *np <= bounds->high)) {
        return NGX_CONF_OK;
    }

    if (bounds->high == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: invalid value %i, it must be %i or more",
                           &value[0], *np, bounds->low);
    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: invalid value %i, it must be from %i to %i",
                           &value[0], *np, bounds->low, bounds->high);
    }

    return NGX_CONF_ERROR;
}
