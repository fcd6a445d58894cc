/*
 * Tronch's answers: refusals (application/problem+json, bodies precomputed at start-up) and
 * the pass path's bookkeeping (result counters).
 */
#include "ngx_http_tronch_module.h"


static ngx_str_t  ngx_http_tronch_problem_type = ngx_string("application/problem+json");


static void
ngx_http_tronch_count_result(ngx_http_tronch_main_conf_t *mcf, ngx_http_tronch_ctx_t *ctx,
    ngx_uint_t result)
{
    ngx_http_tronch_stats_t  *st = ngx_http_tronch_stats(mcf->shm_zone);

    if (ctx->counted) {
        return;
    }

    ctx->counted = 1;
    (void) ngx_atomic_fetch_add(&st->requests[result], 1);

    if (result != TRONCH_RESULT_OK && ctx->passed) {
        (void) ngx_atomic_fetch_add(&st->fail_open_passes, 1);
    }
}


ngx_int_t
ngx_http_tronch_refuse(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_ctx_t *ctx, ngx_uint_t result)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;
    const char       *code;
    size_t            len;
    ngx_uint_t        status;

    ctx->decided = 1;
    ctx->passed = 0;
    ctx->result = result;
    ctx->state = NGX_HTTP_TRONCH_STATE_DECIDED;

    ngx_http_tronch_count_result(mcf, ctx, result);

    status = tronch_bridge_result_status((int) result);

    if (status == NGX_HTTP_UNAUTHORIZED || status == NGX_HTTP_FORBIDDEN) {
        /* a failed authentication spends from the client address's budget, never a key's */
        ngx_http_tronch_limit_address_fail(r, mcf,
                                           ngx_http_get_module_loc_conf(r, ngx_http_tronch_module));
    }

    code = tronch_bridge_result_code((int) result, &len);
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "tronch: refused: %*s", len, code);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_tronch_problem_type;
    r->headers_out.content_type_len = ngx_http_tronch_problem_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = mcf->bodies[result].len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        goto error;
    }
    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    if (r->headers_out.status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            goto error;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "Bearer realm=\"tronch\"");
        r->headers_out.www_authenticate = h;

    } else if (r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            goto error;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        goto error;
    }

    b->pos = mcf->bodies[result].data;
    b->last = b->pos + mcf->bodies[result].len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));
    return NGX_DONE;

error:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    return NGX_DONE;
}


ngx_int_t
ngx_http_tronch_pass(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf,
    ngx_http_tronch_ctx_t *ctx, ngx_uint_t result)
{
    ctx->decided = 1;
    ctx->passed = 1;
    ctx->result = result;
    ctx->state = NGX_HTTP_TRONCH_STATE_DECIDED;

    ngx_http_tronch_count_result(mcf, ctx, result);

    if (ngx_http_tronch_clean_headers(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}
