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


/* The value with blanks trimmed, or NGX_DECLINED if nothing is left. */
static ngx_int_t
ngx_http_tronch_trimmed(u_char *p, u_char *last, ngx_str_t *out)
{
    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    out->data = p;
    out->len = last - p;
    return NGX_OK;
}


static ngx_int_t
ngx_http_tronch_bearer(ngx_table_elt_t *auth, ngx_str_t *key)
{
    if (auth == NULL
        || auth->value.len <= sizeof("Bearer ") - 1
        || ngx_strncasecmp(auth->value.data, (u_char *) "Bearer ", sizeof("Bearer ") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    return ngx_http_tronch_trimmed(auth->value.data + sizeof("Bearer ") - 1,
                                   auth->value.data + auth->value.len, key);
}


/* The last request header with this name (case-insensitive) and a non-blank value, or NULL;
 * n: how many such headers the request has. */
static ngx_table_elt_t *
ngx_http_tronch_find_header(ngx_http_request_t *r, ngx_str_t *name, ngx_uint_t *n)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;
    ngx_uint_t        i;
    ngx_str_t         value;

    found = NULL;
    *n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == name->len
                && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0
                && ngx_http_tronch_trimmed(h[i].value.data, h[i].value.data + h[i].value.len,
                                           &value) == NGX_OK)
            {
                found = &h[i];
                (*n)++;
            }
        }
    }

    return found;
}


/*
 * The key, from Authorization: Bearer, else X-API-Key (or only the configured header); never
 * the query string. nginx's header parser has already found Authorization
 * (r->headers_in.authorization; a second one is its own 400), so with no X-API-Key the usual
 * request costs one scan of its headers for a second key.
 *
 * NGX_ABORT: more than one header carrying a key (Bearer and X-API-Key, or the key header
 * twice). Only one is taken out on pass, so guessing would send the other upstream: refused.
 */
ngx_int_t
ngx_http_tronch_find_key(ngx_http_request_t *r, ngx_http_tronch_loc_conf_t *lcf,
    ngx_str_t *key, ngx_table_elt_t **elt)
{
    static ngx_str_t   api_key = ngx_string("X-API-Key");
    ngx_str_t         *want;
    ngx_table_elt_t   *h, *bearer;
    ngx_uint_t         n;

    want = &lcf->key_header;
    bearer = NULL;

    if (want->len == 0
        || (want->len == sizeof("Authorization") - 1
            && ngx_strncasecmp(want->data, (u_char *) "Authorization", want->len) == 0))
    {
        h = r->headers_in.authorization;

        if (ngx_http_tronch_bearer(h, key) == NGX_OK) {
            bearer = h;
        }

        if (want->len) {
            if (bearer == NULL) {
                return NGX_DECLINED;
            }
            *elt = bearer;
            return NGX_OK;
        }

        want = &api_key;
    }

    h = ngx_http_tronch_find_header(r, want, &n);

    if (n > 1 || (n == 1 && bearer)) {
        return NGX_ABORT;
    }

    if (bearer) {
        *elt = bearer;
        return NGX_OK;
    }

    if (h == NULL || ngx_http_tronch_trimmed(h->value.data, h->value.data + h->value.len, key) != NGX_OK) {
        return NGX_DECLINED;
    }

    *elt = h;
    return NGX_OK;
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

