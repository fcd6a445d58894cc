/*
 * The request's headers: finding the key (never in the query string) and, on pass, taking
 * the key and any client-sent X-Tronch-* header out of what goes upstream.
 */
#include "ngx_http_tronch_module.h"


/* Takes one element out of the request's header list. Pointers that other code holds to
 * elements stay valid: the part that held it is copied, not shifted in place. */
static ngx_int_t
ngx_http_tronch_remove_header(ngx_http_request_t *r, ngx_table_elt_t *h)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *elts, *copy;
    ngx_uint_t        i, n;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        elts = part->elts;

        if (h < elts || h >= elts + part->nelts) {
            continue;
        }

        i = h - elts;

        if (i == part->nelts - 1) {
            part->nelts--;
            return NGX_OK;
        }

        copy = ngx_palloc(r->pool, r->headers_in.headers.nalloc * sizeof(ngx_table_elt_t));
        if (copy == NULL) {
            return NGX_ERROR;
        }

        for (i = 0, n = 0; i < part->nelts; i++) {
            if (&elts[i] != h) {
                copy[n++] = elts[i];
            }
        }

        part->elts = copy;
        part->nelts = n;
        return NGX_OK;
    }

    return NGX_OK;
}


/* The key, from Authorization: Bearer (or the configured header); never the query string. */
ngx_int_t
ngx_http_tronch_find_key(ngx_http_request_t *r, ngx_http_tronch_loc_conf_t *lcf,
    ngx_str_t *key, ngx_table_elt_t **elt)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *auth, *api;
    ngx_uint_t        i;
    ngx_str_t        *want;
    u_char           *p, *last;

    auth = NULL;
    api = NULL;
    want = &lcf->key_header;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == 0 || h[i].value.len == 0) {
                continue;
            }

            if (want->len) {
                if (h[i].key.len == want->len
                    && ngx_strncasecmp(h[i].key.data, want->data, want->len) == 0)
                {
                    if (want->len == sizeof("Authorization") - 1
                        && ngx_strncasecmp(want->data, (u_char *) "Authorization", want->len) == 0)
                    {
                        auth = &h[i];
                    } else {
                        api = &h[i];
                    }
                }
                continue;
            }

            if (h[i].key.len == sizeof("Authorization") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Authorization",
                                   sizeof("Authorization") - 1) == 0)
            {
                auth = &h[i];

            } else if (h[i].key.len == sizeof("X-API-Key") - 1
                       && ngx_strncasecmp(h[i].key.data, (u_char *) "X-API-Key",
                                          sizeof("X-API-Key") - 1) == 0)
            {
                api = &h[i];
            }
        }
    }

    if (auth
        && auth->value.len > sizeof("Bearer ") - 1
        && ngx_strncasecmp(auth->value.data, (u_char *) "Bearer ", sizeof("Bearer ") - 1) == 0)
    {
        p = auth->value.data + sizeof("Bearer ") - 1;
        last = auth->value.data + auth->value.len;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        if (p < last) {
            key->data = p;
            key->len = last - p;
            *elt = auth;
            return NGX_OK;
        }
    }

    if (api) {
        p = api->value.data;
        last = p + api->value.len;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        if (p < last) {
            key->data = p;
            key->len = last - p;
            *elt = api;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* On pass: the key leaves the request, and so does anything the client sent that mimics
 * what we hand upstream (X-Tronch-*): upstreams trust only what nginx sets. */
ngx_int_t
ngx_http_tronch_clean_headers(ngx_http_request_t *r, ngx_http_tronch_ctx_t *ctx)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_uint_t        i;
    ngx_uint_t        again;

    if (ctx->headers_cleaned) {
        return NGX_OK;
    }

    ctx->headers_cleaned = 1;

    if (ctx->key_elt) {
        if (r->headers_in.authorization == ctx->key_elt) {
            r->headers_in.authorization = NULL;
        }

        if (ngx_http_tronch_remove_header(r, ctx->key_elt) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->key_elt = NULL;
    }

    do {
        again = 0;

        for (part = &r->headers_in.headers.part; part && !again; part = part->next) {
            h = part->elts;

            for (i = 0; i < part->nelts; i++) {
                if (h[i].key.len >= sizeof("X-Tronch-") - 1
                    && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Tronch-",
                                       sizeof("X-Tronch-") - 1) == 0)
                {
                    if (ngx_http_tronch_remove_header(r, &h[i]) != NGX_OK) {
                        return NGX_ERROR;
                    }
                    again = 1;
                    break;
                }
            }
        }
    } while (again);

    return NGX_OK;
}

