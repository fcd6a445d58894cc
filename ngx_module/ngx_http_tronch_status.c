/*
 * tronch_status: the shared counters as Prometheus text, like stub_status.
 */
#include "ngx_http_tronch_module.h"


#define NGX_HTTP_TRONCH_STATUS_MAX  8192


/* One counter or gauge of the zone's stats. */
typedef struct {
    ngx_str_t                     name;
    char                         *type;
    char                         *help;
    size_t                        offset;       /* in ngx_http_tronch_stats_t */
} ngx_http_tronch_metric_t;


static ngx_http_tronch_metric_t  ngx_http_tronch_metrics[] = {
    { ngx_string("tronch_fail_open_passes_total"), "counter",
      "Requests let through unverified (failure mode open).",
      offsetof(ngx_http_tronch_stats_t, fail_open_passes) },
    { ngx_string("tronch_cache_hits_total"), "counter",
      "Key lookups answered by the shared cache.",
      offsetof(ngx_http_tronch_stats_t, cache_hits) },
    { ngx_string("tronch_cache_misses_total"), "counter",
      "Key lookups the cache could not answer fresh.",
      offsetof(ngx_http_tronch_stats_t, cache_misses) },
    { ngx_string("tronch_cache_stale_serves_total"), "counter",
      "Stale entries used because Redis failed.",
      offsetof(ngx_http_tronch_stats_t, cache_stale_serves) },
    { ngx_string("tronch_cache_entries"), "gauge",
      "Entries in the shared cache.",
      offsetof(ngx_http_tronch_stats_t, cache_entries) },
    { ngx_string("tronch_cache_evictions_total"), "counter",
      "Entries evicted to make room.",
      offsetof(ngx_http_tronch_stats_t, cache_evictions) },
    { ngx_string("tronch_redis_lookups_total"), "counter",
      "Key lookups sent to Redis.",
      offsetof(ngx_http_tronch_stats_t, redis_lookups) },
    { ngx_string("tronch_redis_errors_total"), "counter",
      "Lookups Redis could not answer (down, error, bad record).",
      offsetof(ngx_http_tronch_stats_t, redis_errors) },
    { ngx_string("tronch_redis_timeouts_total"), "counter",
      "Lookups that hit tronch_redis_timeout.",
      offsetof(ngx_http_tronch_stats_t, redis_timeouts) },
    { ngx_string("tronch_redis_connects_total"), "counter",
      "Connections established to Redis.",
      offsetof(ngx_http_tronch_stats_t, redis_connects) },
    { ngx_string("tronch_events_applied_total"), "counter",
      "Control-plane events applied to the cache.",
      offsetof(ngx_http_tronch_stats_t, events_applied) },
    { ngx_string("tronch_events_invalid_total"), "counter",
      "Messages on the event channel that were not events.",
      offsetof(ngx_http_tronch_stats_t, events_invalid) },
    { ngx_string("tronch_limit_allowed_total"), "counter",
      "Requests the rate limiter admitted.",
      offsetof(ngx_http_tronch_stats_t, limit_allowed) },
    { ngx_string("tronch_limit_limited_total"), "counter",
      "Requests refused over a key's rate limit (429).",
      offsetof(ngx_http_tronch_stats_t, limit_limited) },
    { ngx_string("tronch_limit_degraded_total"), "counter",
      "Checks made locally because Redis was unreachable.",
      offsetof(ngx_http_tronch_stats_t, limit_degraded) },
    { ngx_string("tronch_limit_script_reloads_total"), "counter",
      "NOSCRIPT answers: the GCRA script was loaded again.",
      offsetof(ngx_http_tronch_stats_t, limit_script_reloads) },
    { ngx_string("tronch_limit_address_limited_total"), "counter",
      "Requests refused because their address ran out of failure budget.",
      offsetof(ngx_http_tronch_stats_t, limit_address_limited) },
    { ngx_string("tronch_limit_address_failures_total"), "counter",
      "Failed authentications charged to an address.",
      offsetof(ngx_http_tronch_stats_t, limit_address_failures) },
    { ngx_string("tronch_limit_evictions_total"), "counter",
      "Limiter states evicted to make room.",
      offsetof(ngx_http_tronch_stats_t, limit_evictions) },
    { ngx_string("tronch_usage_flushes_total"), "counter",
      "Usage deltas flushed to Redis.",
      offsetof(ngx_http_tronch_stats_t, usage_flushes) },
    { ngx_string("tronch_usage_flush_errors_total"), "counter",
      "Usage flushes Redis did not accept.",
      offsetof(ngx_http_tronch_stats_t, usage_flush_errors) },
    { ngx_string("tronch_usage_dropped_total"), "counter",
      "Counted requests lost because their state was evicted before a flush (zone too small).",
      offsetof(ngx_http_tronch_stats_t, usage_dropped) },
    { ngx_string("tronch_usage_lost_total"), "counter",
      "Counted requests whose flush Redis never took (it failed, refused it, or died before answering: an upper bound).",
      offsetof(ngx_http_tronch_stats_t, usage_lost) },
    { ngx_string("tronch_records_rejected_total"), "counter",
      "Key records from Redis refused: unsigned, bad signature, unknown signing key, wrong key, replayed or lapsed.",
      offsetof(ngx_http_tronch_stats_t, records_rejected) },
    { ngx_string("tronch_limit_lease_requests_total"), "counter",
      "Lease scripts sent to Redis (leased policy).",
      offsetof(ngx_http_tronch_stats_t, lease_requests) },
    { ngx_string("tronch_limit_lease_granted_total"), "counter",
      "Requests granted by Redis in leases.",
      offsetof(ngx_http_tronch_stats_t, lease_granted) },
    { ngx_string("tronch_limit_lease_lapsed_total"), "counter",
      "Leased requests that lapsed unspent (the shortfall).",
      offsetof(ngx_http_tronch_stats_t, lease_lapsed) },
    { ngx_string("tronch_limit_lease_local_total"), "counter",
      "Checks decided from a held lease, without Redis.",
      offsetof(ngx_http_tronch_stats_t, lease_local) },
    { ngx_null_string, NULL, NULL, 0 }
};


static u_char *
ngx_http_tronch_status_requests(u_char *p, ngx_http_tronch_stats_t *st)
{
    ngx_uint_t   i;
    const char  *code;
    size_t       len;

    p = ngx_sprintf(p, "# HELP tronch_requests_total Requests checked, by result.\n"
                       "# TYPE tronch_requests_total counter\n");
    for (i = 0; i < TRONCH_RESULT_COUNT; i++) {
        code = tronch_bridge_result_code((int) i, &len);
        p = ngx_sprintf(p, "tronch_requests_total{result=\"%*s\"} %uA\n", len, code, st->requests[i]);
    }

    return p;
}


static u_char *
ngx_http_tronch_status_metrics(u_char *p, ngx_http_tronch_stats_t *st)
{
    ngx_http_tronch_metric_t  *m;
    ngx_atomic_t              *value;

    for (m = ngx_http_tronch_metrics; m->name.len; m++) {
        value = (ngx_atomic_t *) ((u_char *) st + m->offset);
        p = ngx_sprintf(p, "# HELP %V %s\n# TYPE %V %s\n%V %uA\n",
                        &m->name, m->help, &m->name, m->type, &m->name, *value);
    }

    return p;
}


static u_char *
ngx_http_tronch_status_latency(u_char *p, ngx_http_tronch_stats_t *st)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  cumulative;

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

    return p;
}


ngx_int_t
ngx_http_tronch_status_handler(ngx_http_request_t *r)
{
    ngx_http_tronch_main_conf_t  *mcf;
    ngx_http_tronch_stats_t      *st;
    ngx_http_tronch_stats_t       sum;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_tronch_module);
    ngx_http_tronch_stats_sum(mcf->shm_zone, &sum);
    st = &sum;

    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    b = ngx_create_temp_buf(r->pool, NGX_HTTP_TRONCH_STATUS_MAX);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_http_tronch_status_requests(b->last, st);
    b->last = ngx_http_tronch_status_metrics(b->last, st);
    b->last = ngx_http_tronch_status_latency(b->last, st);
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
