"""The rate limiter, redis policy: the Lua script against the core's maths, two nginx nodes
sharing one Redis (total admitted within 2% of what GCRA allows), NOSCRIPT reloads, and the
degraded mode (Redis stopped: local limits at limit / tronch_nodes, reported)."""
from __future__ import annotations

import concurrent.futures
import time

import requests

import tronch_harness as h
from module_support import Keys, bearer, flood, http_block, problem, status_metrics
from module_support import testkit as kit

POLICY = "tronch_limit_policy redis;"


def test_script_matches_core_maths(redis_client):
    script = kit("gcra-script")
    base = 1_700_000_000_000_000
    nows = [base + d for d in (0, 0, 0, 0, 0, 0, 0, 1, 199_999, 200_000, 200_001, 350_000, 1_000_000,
                               1_000_000, 1_000_000, 5_000_000, 5_000_001, 5_000_002, 5_100_000)]
    lines = kit("gcra-seq", "5", "1", "2", *map(str, nows)).splitlines()
    interval, capacity = lines[0].split()
    want = [list(map(int, line.split())) for line in lines[1:]]
    got = []
    for now in nows:
        got.append(list(map(int, redis_client.eval(script, 1, "tronch:rl:{test}", interval, capacity, 1, now))))
    assert got == want
    assert 0 < redis_client.pttl("tronch:rl:{test}") <= 3_000   # idle state expires
    # and with Redis's own clock
    redis_client.delete("tronch:rl:{test}")
    first = list(map(int, redis_client.eval(script, 1, "tronch:rl:{test}", interval, capacity, 1)))
    assert first == [1, int(capacity) - 1, 0, int(interval)]


def test_two_nodes_share_one_limit(nginx_factory, redis_server, keys, redis_client):
    rate, burst, seconds = 100, 20, 5.0
    block = lambda: http_block(f"127.0.0.1:{redis_server.port}", extra_http=POLICY)
    a = nginx_factory(block(), workers=2)
    b = nginx_factory(block(), workers=2)
    # One state for both nodes: b sees a's request. A slow limit (1 per minute, burst 5) so that
    # nothing refills between the two requests however loaded the machine is.
    shared_key, _, _ = keys.make("live", limit=(1, 60, 5))
    first = requests.get(a.url("/"), headers=bearer(shared_key), timeout=5)
    second = requests.get(b.url("/"), headers=bearer(shared_key), timeout=5)
    assert first.status_code == second.status_code == 200
    assert int(first.headers["X-RateLimit-Remaining"]) == 1 + 5 - 1
    assert int(second.headers["X-RateLimit-Remaining"]) == 1 + 5 - 2
    key, _, key_id = keys.make("live", limit=(rate, 1, burst))
    # warm both caches without spending more than counted: a request each, counted below
    ra = requests.get(a.url("/"), headers=bearer(key), timeout=5)
    rb = requests.get(b.url("/"), headers=bearer(key), timeout=5)
    assert ra.status_code == rb.status_code == 200
    start = time.monotonic()
    stop_at = start + seconds
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fa = ex.submit(flood, a.url("/"), key, stop_at, 4)
        fb = ex.submit(flood, b.url("/"), key, stop_at, 4)
        oa, ob = fa.result(), fb.result()
    assert oa["other"] == ob["other"] == 0
    admitted = oa["ok"] + ob["ok"] + 2
    span = max(oa["times"] + ob["times"]) - start
    expected = rate + burst + rate * span            # GCRA: capacity, then the steady rate
    print(f"two nodes: admitted {admitted}, expected {expected:.1f} over {span:.3f} s "
          f"(a {oa['ok']}/{oa['ok'] + oa['limited']}, b {ob['ok']}/{ob['ok'] + ob['limited']})")
    assert abs(admitted - expected) <= 0.02 * expected, (admitted, expected)
    assert oa["ok"] > 0 and ob["ok"] > 0 and oa["limited"] > 0 and ob["limited"] > 0
    ma, mb = status_metrics(a), status_metrics(b)
    assert ma["tronch_limit_degraded_total"] == mb["tronch_limit_degraded_total"] == 0
    # the two shared-state checks above were admitted too
    assert ma["tronch_limit_allowed_total"] + mb["tronch_limit_allowed_total"] == admitted + 2


def test_noscript_reloads(nginx_factory, redis_server, keys, redis_client):
    ngx = nginx_factory(http_block(f"127.0.0.1:{redis_server.port}", extra_http=POLICY), workers=1)
    key, _, _ = keys.make("live", limit=(5, 60, 0))
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    redis_client.script_flush()
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "3"
    m = status_metrics(ngx)
    assert m["tronch_limit_script_reloads_total"] >= 1
    codes = [requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_degraded_when_redis_is_down(nginx_factory):
    own = h.Redis().start()
    try:
        client = own.client()
        keys = Keys(client)
        keys.mark_mirror_complete()
        ngx = nginx_factory(http_block(f"127.0.0.1:{own.port}",
                                       extra_http=POLICY + " tronch_nodes 2;"), workers=2)
        key, _, _ = keys.make("live", limit=(10, 60, 4))
        # cache the key on both workers' shared cache (one request is enough: the cache is shared)
        r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
        assert r.status_code == 200 and "Tronch-RateLimit-Mode" not in r.headers
        own.stop()
        time.sleep(0.3)
        got = [requests.get(ngx.url("/"), headers=bearer(key), timeout=5) for _ in range(12)]
        # limit / 2 nodes: rate 5, burst 2 -> 7 at once
        assert [g.status_code for g in got] == [200] * 7 + [429] * 5, [g.status_code for g in got]
        for g in got:
            assert g.headers["Tronch-RateLimit-Mode"] == "degraded"
            assert g.headers["X-RateLimit-Limit"] == "7"
        assert problem(got[-1])["code"] == "rate_limited"
        assert status_metrics(ngx)["tronch_limit_degraded_total"] == 12
    finally:
        own.stop()
