/*
 * The module's variables: $tronch_result, $tronch_key_id, $tronch_key_env, $tronch_key_prefix
 * (the verdict and the key, once decided) and $tronch_safe_request (the request line with keys
 * masked, for access logs).
 */
#include "ngx_http_tronch_module.h"


typedef enum {
    NGX_HTTP_TRONCH_VAR_RESULT = 0,
    NGX_HTTP_TRONCH_VAR_KEY_ID,
    NGX_HTTP_TRONCH_VAR_KEY_ENV,
    NGX_HTTP_TRONCH_VAR_KEY_PREFIX
} ngx_http_tronch_var_e;


static ngx_str_t  ngx_http_tronch_env_names[] = { ngx_string("live"), ngx_string("test") };


static ngx_int_t
ngx_http_tronch_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_tronch_ctx_t  *ctx;
    const tronch_record_t  *rec;
    size_t                  len;
    const char             *code;

    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx == NULL && r != r->main) {
        ctx = ngx_http_tronch_get_ctx(r->main);   /* subrequests: the main request's key */
    }

    if (ctx == NULL || !ngx_http_tronch_decided(ctx)) {
        v->not_found = 1;
        return NGX_OK;
    }

    rec = &ctx->answer.record;

    switch (data) {

    case NGX_HTTP_TRONCH_VAR_RESULT:
        code = tronch_bridge_result_code((int) ctx->result, &len);
        v->data = (u_char *) code;
        v->len = len;
        break;

    case NGX_HTTP_TRONCH_VAR_KEY_ID:
        if (!ctx->have_answer || ctx->answer.negative || rec->id[0] == '\0') {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = (u_char *) rec->id;
        v->len = ngx_strlen(rec->id);
        break;

    case NGX_HTTP_TRONCH_VAR_KEY_ENV:
        if (!ctx->key_parsed) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = ngx_http_tronch_env_names[ctx->key_env ? 1 : 0].data;
        v->len = ngx_http_tronch_env_names[ctx->key_env ? 1 : 0].len;
        break;

    default: /* NGX_HTTP_TRONCH_VAR_KEY_PREFIX */
        if (!ctx->have_answer || ctx->answer.negative || rec->prefix[0] == '\0') {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = (u_char *) rec->prefix;
        v->len = ngx_strlen(rec->prefix);
        break;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * $tronch_safe_request: $request (the request line) with every key-shaped token masked to its
 * prefix, for access logs. A line without a key marker is used as it is; one with a marker costs
 * one allocation from the request pool (the value is cached for the request).
 */
static ngx_int_t  ngx_http_tronch_request_index = NGX_ERROR;
static ngx_str_t  ngx_http_tronch_request_name = ngx_string("request");

static ngx_int_t
ngx_http_tronch_safe_request_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_http_variable_value_t  *line;
    u_char                     *p;
    size_t                      len;

    line = ngx_http_get_indexed_variable(r, ngx_http_tronch_request_index);

    if (line == NULL || line->not_found) {
        v->not_found = 1;
        return NGX_OK;
    }

    *v = *line;

    if (!tronch_bridge_has_key_marker((const char *) line->data, line->len)) {
        return NGX_OK;
    }

    len = tronch_bridge_mask_bound(line->len);
    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (tronch_bridge_mask_keys((const char *) line->data, line->len, (char *) p, len, &len)
        != TRONCH_OK)
    {
        return NGX_ERROR;
    }

    v->len = len;
    v->data = p;

    return NGX_OK;
}


static ngx_http_variable_t  ngx_http_tronch_vars[] = {

    { ngx_string("tronch_safe_request"), NULL, ngx_http_tronch_safe_request_variable, 0, 0, 0 },


    { ngx_string("tronch_result"), NULL, ngx_http_tronch_variable,
      NGX_HTTP_TRONCH_VAR_RESULT,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tronch_key_id"), NULL, ngx_http_tronch_variable,
      NGX_HTTP_TRONCH_VAR_KEY_ID,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tronch_key_env"), NULL, ngx_http_tronch_variable,
      NGX_HTTP_TRONCH_VAR_KEY_ENV,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tronch_key_prefix"), NULL, ngx_http_tronch_variable,
      NGX_HTTP_TRONCH_VAR_KEY_PREFIX,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_tronch_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_tronch_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* $request, which $tronch_safe_request masks. */
ngx_int_t
ngx_http_tronch_variables_init(ngx_conf_t *cf)
{
    ngx_http_tronch_request_index = ngx_http_get_variable_index(cf, &ngx_http_tronch_request_name);

    return ngx_http_tronch_request_index == NGX_ERROR ? NGX_ERROR : NGX_OK;
}
