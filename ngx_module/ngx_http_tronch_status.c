/*
 * tronch_status: the shared counters as Prometheus text, like stub_status.
 */
#include "ngx_http_tronch_module.h"


#define NGX_HTTP_TRONCH_STATUS_MAX  8192


ngx_int_t
ngx_http_tronch_status_handler(ngx_http_request_t *r)
{
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_stats_t      *st;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;
    ngx_uint_t                    i;
    ngx_atomic_uint_t             cumulative;
    const char                   *code;
    size_t                        len;
    u_char                       *p;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    st = ngx_http_tronch_stats(mcf->shm_zone);

    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    b = ngx_create_temp_buf(r->pool, NGX_HTTP_TRONCH_STATUS_MAX);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    p = ngx_sprintf(p, "# HELP tronch_requests_total Requests checked, by result.\n"
                       "# TYPE tronch_requests_total counter\n");
    for (i = 0; i < TRONCH_RESULT_COUNT; i++) {
        code = tronch_bridge_result_code((int) i, &len);
        p = ngx_sprintf(p, "tronch_requests_total{result=\"%*s\"} %uA\n", len, code, st->requests[i]);
    }

    p = ngx_sprintf(p,
        "# HELP tronch_fail_open_passes_total Requests let through unverified (failure mode open).\n"
        "# TYPE tronch_fail_open_passes_total counter\n"
        "tronch_fail_open_passes_total %uA\n"
        "# HELP tronch_cache_hits_total Key lookups answered by the shared cache.\n"
        "# TYPE tronch_cache_hits_total counter\n"
        "tronch_cache_hits_total %uA\n"
        "# HELP tronch_cache_misses_total Key lookups the cache could not answer fresh.\n"
        "# TYPE tronch_cache_misses_total counter\n"
        "tronch_cache_misses_total %uA\n"
        "# HELP tronch_cache_stale_serves_total Stale entries used because Redis failed.\n"
        "# TYPE tronch_cache_stale_serves_total counter\n"
        "tronch_cache_stale_serves_total %uA\n"
        "# HELP tronch_cache_entries Entries in the shared cache.\n"
        "# TYPE tronch_cache_entries gauge\n"
        "tronch_cache_entries %uA\n"
        "# HELP tronch_cache_evictions_total Entries evicted to make room.\n"
        "# TYPE tronch_cache_evictions_total counter\n"
        "tronch_cache_evictions_total %uA\n"
        "# HELP tronch_redis_lookups_total Key lookups sent to Redis.\n"
        "# TYPE tronch_redis_lookups_total counter\n"
        "tronch_redis_lookups_total %uA\n"
        "# HELP tronch_redis_errors_total Lookups Redis could not answer (down, error, bad record).\n"
        "# TYPE tronch_redis_errors_total counter\n"
        "tronch_redis_errors_total %uA\n"
        "# HELP tronch_redis_timeouts_total Lookups that hit tronch_redis_timeout.\n"
        "# TYPE tronch_redis_timeouts_total counter\n"
        "tronch_redis_timeouts_total %uA\n"
        "# HELP tronch_redis_connects_total Connections established to Redis.\n"
        "# TYPE tronch_redis_connects_total counter\n"
        "tronch_redis_connects_total %uA\n"
        "# HELP tronch_events_applied_total Control-plane events applied to the cache.\n"
        "# TYPE tronch_events_applied_total counter\n"
        "tronch_events_applied_total %uA\n"
        "# HELP tronch_events_invalid_total Messages on the event channel that were not events.\n"
        "# TYPE tronch_events_invalid_total counter\n"
        "tronch_events_invalid_total %uA\n",
        st->fail_open_passes, st->cache_hits, st->cache_misses, st->cache_stale_serves,
        st->cache_entries, st->cache_evictions, st->redis_lookups, st->redis_errors,
        st->redis_timeouts, st->redis_connects, st->events_applied, st->events_invalid);

    p = ngx_sprintf(p,
        "# HELP tronch_limit_allowed_total Requests the rate limiter admitted.\n"
        "# TYPE tronch_limit_allowed_total counter\n"
        "tronch_limit_allowed_total %uA\n"
        "# HELP tronch_limit_limited_total Requests refused over a key's rate limit (429).\n"
        "# TYPE tronch_limit_limited_total counter\n"
        "tronch_limit_limited_total %uA\n"
        "# HELP tronch_limit_degraded_total Checks made locally because Redis was unreachable.\n"
        "# TYPE tronch_limit_degraded_total counter\n"
        "tronch_limit_degraded_total %uA\n"
        "# HELP tronch_limit_script_reloads_total NOSCRIPT answers: the GCRA script was loaded again.\n"
        "# TYPE tronch_limit_script_reloads_total counter\n"
        "tronch_limit_script_reloads_total %uA\n"
        "# HELP tronch_limit_address_limited_total Requests refused because their address ran out of failure budget.\n"
        "# TYPE tronch_limit_address_limited_total counter\n"
        "tronch_limit_address_limited_total %uA\n"
        "# HELP tronch_limit_address_failures_total Failed authentications charged to an address.\n"
        "# TYPE tronch_limit_address_failures_total counter\n"
        "tronch_limit_address_failures_total %uA\n"
        "# HELP tronch_limit_evictions_total Limiter states evicted to make room.\n"
        "# TYPE tronch_limit_evictions_total counter\n"
        "tronch_limit_evictions_total %uA\n"
        "# HELP tronch_usage_flushes_total Usage deltas flushed to Redis.\n"
        "# TYPE tronch_usage_flushes_total counter\n"
        "tronch_usage_flushes_total %uA\n"
        "# HELP tronch_usage_flush_errors_total Usage flushes Redis did not accept.\n"
        "# TYPE tronch_usage_flush_errors_total counter\n"
        "tronch_usage_flush_errors_total %uA\n"
        "# HELP tronch_usage_dropped_total Counted requests lost because their state was evicted before a flush (zone too small).\n"
        "# TYPE tronch_usage_dropped_total counter\n"
        "tronch_usage_dropped_total %uA\n"
        "# HELP tronch_usage_lost_total Counted requests whose flush Redis never took (it failed, refused it, or died before answering: an upper bound).\n"
        "# TYPE tronch_usage_lost_total counter\n"
        "tronch_usage_lost_total %uA\n",
        st->limit_allowed, st->limit_limited, st->limit_degraded, st->limit_script_reloads,
        st->limit_address_limited, st->limit_address_failures, st->limit_evictions,
        st->usage_flushes, st->usage_flush_errors, st->usage_dropped, st->usage_lost);

    p = ngx_sprintf(p,
        "# HELP tronch_records_rejected_total Key records from Redis refused: unsigned, bad signature, unknown signing key, wrong key, replayed or lapsed.\n"
        "# TYPE tronch_records_rejected_total counter\n"
        "tronch_records_rejected_total %uA\n",
        st->records_rejected);

    p = ngx_http_tronch_lease_status(st, p);

    p = ngx_sprintf(p, "# HELP tronch_redis_latency_seconds Redis lookup round trips.\n"
                       "# TYPE tronch_redis_latency_seconds histogram\n");
    cumulative = 0;
    for (i = 0; i < NGX_HTTP_TRONCH_LATENCY_BUCKETS - 1; i++) {
        cumulative += st->redis_latency_buckets[i];
        p = ngx_sprintf(p, "tronch_redis_latency_seconds_bucket{le=\"%ui.%03ui\"} %uA\n",
                        ngx_http_tronch_latency_bounds[i] / 1000,
                        ngx_http_tronch_latency_bounds[i] % 1000, cumulative);
    }
    cumulative += st->redis_latency_buckets[i];
    p = ngx_sprintf(p, "tronch_redis_latency_seconds_bucket{le=\"+Inf\"} %uA\n"
                       "tronch_redis_latency_seconds_sum %uA.%03uA\n"
                       "tronch_redis_latency_seconds_count %uA\n",
                    cumulative, st->redis_latency_ms_sum / 1000, st->redis_latency_ms_sum % 1000,
                    cumulative);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
