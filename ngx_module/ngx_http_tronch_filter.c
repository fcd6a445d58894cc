/*
 * Response headers, in a header filter so that they are on passed, refused and proxied answers
 * alike: the rate-limit headers of the limit that was applied (a key's, or an address's
 * failure budget), Tronch-RateLimit-Mode when degraded, and Retry-After (the one place it is
 * set: a limit's wait, or 1 second for a refusal because Redis could not answer).
 */
#include "ngx_http_tronch_module.h"


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* Adds a response header; name is static, the value is copied. An empty value adds nothing. */
static ngx_int_t
ngx_http_tronch_add_header(ngx_http_request_t *r, const char *name, size_t name_len,
    const char *value, size_t value_len)
{
    ngx_table_elt_t  *h;
    u_char           *p;

    if (value_len == 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, value_len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, value, value_len);

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = name_len;
    h->value.data = p;
    h->value.len = value_len;

    return NGX_OK;
}


/* A header whose name is a string literal. */
#define ngx_http_tronch_add_literal_header(r, name, v, l)                     \
    ngx_http_tronch_add_header(r, name, sizeof(name) - 1, v, l)


static ngx_int_t
ngx_http_tronch_limit_headers(ngx_http_request_t *r, ngx_http_tronch_ctx_t *ctx,
    tronch_limit_headers_t *hv)
{
    ngx_http_tronch_loc_conf_t  *lcf;

    /* only the families tronch_limit_headers asks for are formatted (an empty value adds nothing) */
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_tronch_module);
    tronch_bridge_limit_headers_of(&ctx->limit, &ctx->decision, (unsigned) lcf->limit_headers, hv);

    if (ngx_http_tronch_add_literal_header(r, "RateLimit-Policy", hv->policy, hv->policy_len)
           != NGX_OK
        || ngx_http_tronch_add_literal_header(r, "RateLimit", hv->ratelimit, hv->ratelimit_len)
           != NGX_OK
        || ngx_http_tronch_add_literal_header(r, "X-RateLimit-Limit", hv->limit, hv->limit_len)
           != NGX_OK
        || ngx_http_tronch_add_literal_header(r, "X-RateLimit-Remaining", hv->remaining,
                                              hv->remaining_len) != NGX_OK
        || ngx_http_tronch_add_literal_header(r, "X-RateLimit-Reset", hv->reset, hv->reset_len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->limit_degraded
        && ngx_http_tronch_add_literal_header(r, "Tronch-RateLimit-Mode", "degraded", 8) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_tronch_header_filter(ngx_http_request_t *r)
{
    ngx_http_tronch_ctx_t   *ctx;
    tronch_limit_headers_t   hv;
    ngx_uint_t               limited;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_tronch_get_ctx(r);

    if (ctx == NULL) {
        return ngx_http_next_header_filter(r);
    }

    limited = 0;

    if (ctx->limit_headers && ctx->limit.rate != 0) {
        ctx->limit_headers = 0;   /* once */

        if (ngx_http_tronch_limit_headers(r, ctx, &hv) != NGX_OK) {
            return NGX_ERROR;
        }

        limited = !ctx->decision.allowed;
    }

    if (limited) {
        if (ngx_http_tronch_add_literal_header(r, "Retry-After", hv.retry_after, hv.retry_after_len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (ctx->state == NGX_HTTP_TRONCH_REFUSED && ctx->result == TRONCH_RESULT_AUTH_UNAVAILABLE
               && r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE)
    {
        if (ngx_http_tronch_add_literal_header(r, "Retry-After", "1", 1) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


ngx_int_t
ngx_http_tronch_filter_init(ngx_conf_t *cf)
{
    (void) cf;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_tronch_header_filter;

    return NGX_OK;
}
