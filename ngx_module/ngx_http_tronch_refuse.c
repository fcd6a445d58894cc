/*
 * A refusal's response: status, application/problem+json body (precomputed at start-up, one
 * per result), Cache-Control and WWW-Authenticate. The verdict is recorded before this, by the
 * decision path (ngx_http_tronch_module.c); Retry-After comes from the header filter
 * (ngx_http_tronch_filter.c).
 */
#include "ngx_http_tronch_module.h"


static ngx_str_t  ngx_http_tronch_problem_type = ngx_string("application/problem+json");


ngx_int_t
ngx_http_tronch_refuse(ngx_http_request_t *r, ngx_http_tronch_main_conf_t *mcf, ngx_uint_t result)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;
    const char       *code;
    size_t            len;
    ngx_uint_t        status;

    status = tronch_bridge_result_status((int) result);

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

