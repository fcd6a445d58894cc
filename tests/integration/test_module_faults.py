"""Faults: Redis down or hung, reconnects, reload under load, graceful shutdown. Each test runs
its own Redis so it can stop it."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

import tronch_harness as h
from module_support import Keys, bearer, command_calls, http_block, new_key, problem, status_metrics

LOCATIONS = """
        location /open/ { tronch on; tronch_failure_mode open; PROTECT }
        location /short/ { tronch on; tronch_cache_ttl 1s; tronch_stale_ttl 60s; PROTECT }
        location /nostale/ { tronch on; tronch_cache_ttl 1s; tronch_stale_ttl 0; PROTECT }
"""


@pytest.fixture
def own_redis():
    srv = h.Redis().start()
    yield srv
    if srv.proc and srv.proc.poll() is None:
        os.kill(srv.proc.pid, signal.SIGCONT)
    srv.stop()


@pytest.fixture
def keys(own_redis):
    k = Keys(own_redis.client())
    k.mark_mirror_complete()
    return k


@pytest.fixture
def ngx(nginx_factory, own_redis):
    return nginx_factory(http_block(f"127.0.0.1:{own_redis.port}", locations=LOCATIONS))


def timed_get(url, **kw):
    t0 = time.monotonic()
    r = requests.get(url, timeout=5, **kw)
    return r, time.monotonic() - t0


def test_redis_down_cached_key_passes_unknown_refused_closed(ngx, keys, own_redis):
    key, _, key_id = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    own_redis.stop()
    for _ in range(6):
        r, elapsed = timed_get(ngx.url("/"), headers=bearer(key))
        assert r.status_code == 200 and r.json()["key_id"] == key_id
    unknown, _ = new_key("live")
    for _ in range(6):
        r, elapsed = timed_get(ngx.url("/"), headers=bearer(unknown))
        assert r.status_code == 503, r.text
        assert problem(r)["code"] == "auth_unavailable"
        assert r.headers["Retry-After"] == "1"
        assert h.within(elapsed, 0.5)  # never waits much longer than the timeout (200ms)


def test_redis_down_unknown_key_passes_in_open_mode(ngx, keys, own_redis):
    own_redis.stop()
    unknown, _ = new_key("live")
    r = requests.get(ngx.url("/open/"), headers=bearer(unknown), timeout=5)
    assert r.status_code == 200
    assert r.json()["authorization"] == ""   # the key still does not go upstream
    assert r.json()["key_id"] == ""
    assert r.json()["result"] == "auth_unavailable"
    # open mode does not open the door to malformed or missing keys
    assert requests.get(ngx.url("/open/"), timeout=5).status_code == 401
    assert requests.get(ngx.url("/open/"), headers=bearer("tronch_sk_live_x"), timeout=5).status_code == 401
    assert status_metrics(ngx)["tronch_fail_open_passes_total"] >= 1


def test_stale_entry_served_while_redis_down(ngx, keys, own_redis):
    key, _, key_id = keys.make("live")
    assert requests.get(ngx.url("/short/"), headers=bearer(key), timeout=5).status_code == 200
    assert requests.get(ngx.url("/nostale/"), headers=bearer(key), timeout=5).status_code == 200
    time.sleep(1.3)  # past tronch_cache_ttl
    own_redis.stop()
    r = requests.get(ngx.url("/short/"), headers=bearer(key), timeout=5)
    assert r.status_code == 200 and r.json()["key_id"] == key_id
    assert status_metrics(ngx)["tronch_cache_stale_serves_total"] >= 1
    r = requests.get(ngx.url("/nostale/"), headers=bearer(key), timeout=5)
    assert r.status_code == 503 and problem(r)["code"] == "auth_unavailable"


def test_stale_entry_served_when_redis_lookup_times_out(ngx, keys, own_redis):
    """Redis hangs (SIGSTOP: connected, never answers): the lookup of a key whose entry is past
    tronch_cache_ttl but inside tronch_stale_ttl times out, and the stale entry is served and
    counted, as when Redis is down (issue 13: the timeout path served it without counting)."""
    key, _, key_id = keys.make("live")
    assert requests.get(ngx.url("/short/"), headers=bearer(key), timeout=5).status_code == 200
    time.sleep(1.3)  # past tronch_cache_ttl 1s, well inside tronch_stale_ttl 60s
    before = status_metrics(ngx)
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        r = requests.get(ngx.url("/short/"), headers=bearer(key), timeout=5)
        after = status_metrics(ngx)
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert r.status_code == 200 and r.json()["key_id"] == key_id, r.text
    assert after["tronch_redis_timeouts_total"] >= before["tronch_redis_timeouts_total"] + 1
    assert after["tronch_cache_stale_serves_total"] == before["tronch_cache_stale_serves_total"] + 1


def test_hung_redis_times_out_then_recovers(ngx, keys, own_redis):
    known, _, _ = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(known), timeout=5).status_code == 200
    fresh, _, _ = keys.make("live")
    os.kill(own_redis.proc.pid, signal.SIGSTOP)   # Redis hangs: connected, never answers
    try:
        unknown, _ = new_key("live")
        r, elapsed = timed_get(ngx.url("/"), headers=bearer(unknown))
        assert r.status_code == 503 and problem(r)["code"] == "auth_unavailable"
        assert 0.15 <= elapsed and h.within(elapsed, 0.6), elapsed  # tronch_redis_timeout 200ms
        timeouts = status_metrics(ngx)["tronch_redis_timeouts_total"]
        r, elapsed = timed_get(ngx.url("/"), headers=bearer(known))
        assert r.status_code == 200 and h.within(elapsed, 0.1)  # cached: no Redis involved
        assert status_metrics(ngx)["tronch_redis_timeouts_total"] == timeouts
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert status_metrics(ngx)["tronch_redis_timeouts_total"] >= 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if requests.get(ngx.url("/"), headers=bearer(fresh), timeout=5).status_code == 200:
            break
        time.sleep(0.1)
    else:
        pytest.fail("no recovery after Redis came back")


def test_reconnects_after_redis_restart(ngx, keys, own_redis):
    key, digest, key_id = keys.make("live")
    own_redis.stop()
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 503
    time.sleep(1.0)
    own_redis.proc = h.Redis(port=own_redis.port, workdir=own_redis.dir).start().proc  # empty; the fixture stops it
    restarted = own_redis.client()
    k = Keys(restarted)
    k.put(key, digest, key_id=key_id)
    k.mark_mirror_complete()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
        if r.status_code == 200:
            break
        time.sleep(0.1)
    else:
        pytest.fail("did not reconnect")
    # the subscriber is back too: a revocation still works
    wait = time.monotonic() + 10
    while dict(restarted.pubsub_numsub("tronch:events")).get("tronch:events", 0) < 2:
        assert time.monotonic() < wait, "subscribers did not come back"
        time.sleep(0.1)
    k.put(key, digest, status="revoked", key_id=key_id)
    k.changed(digest, key_id)
    time.sleep(0.05)
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 403


def test_reload_during_traffic_loses_nothing_and_keeps_cache(ngx, keys, own_redis):
    client = own_redis.client()
    key, _, _ = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    client.config_resetstat()

    stop = threading.Event()
    failures: list[str] = []
    counts = [0]

    def stream():
        s = requests.Session()
        while not stop.is_set():
            try:
                r = requests.get(ngx.url("/"), headers={**bearer(key), "Connection": "close"}, timeout=5)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:100]}")
                counts[0] += 1
            except requests.RequestException as e:
                failures.append(repr(e))
        s.close()

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    old = set(ngx.worker_pids())
    for _ in range(3):
        time.sleep(0.4)
        ngx.reload()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert counts[0] > 50
    assert not failures, failures[:5]
    # new workers, and the cache survived: the key was never looked up again
    deadline = time.monotonic() + 10
    while set(ngx.worker_pids()) & old and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(ngx.worker_pids()) & old
    assert command_calls(client).get("get", 0) == 0
    # old workers closed their Redis connections: one subscriber per current worker
    deadline = time.monotonic() + 10
    while dict(client.pubsub_numsub("tronch:events"))["tronch:events"] != 2:
        assert time.monotonic() < deadline, client.pubsub_numsub("tronch:events")
        time.sleep(0.1)
    log = ngx.error_log.read_text()
    assert "open socket" not in log and "[alert]" not in log


def test_graceful_shutdown_not_held_up(nginx_factory, keys, own_redis):
    ngx = nginx_factory(http_block(f"127.0.0.1:{own_redis.port}"))
    key, _, _ = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    own_redis.stop()   # workers now sit in reconnect backoff timers
    requests.get(ngx.url("/"), headers=bearer(new_key()[0]), timeout=5)
    t0 = time.monotonic()
    ngx.stop()
    assert time.monotonic() - t0 < 2.0
    assert not ngx.log_problems()


def test_events_missed_while_disconnected_are_caught_up(ngx, keys, own_redis):
    """The key is revoked while Redis (and so the event channel) is away: once the
    subscribers are back, cached entries are revalidated instead of trusted until their TTL."""
    key, digest, key_id = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    own_redis.stop()
    own_redis.proc = h.Redis(port=own_redis.port, workdir=own_redis.dir).start().proc  # fixture stops it
    restarted = own_redis.client()
    k = Keys(restarted)
    k.put(key, digest, status="revoked", key_id=key_id)   # re-mirrored, already revoked
    k.mark_mirror_complete()
    deadline = time.monotonic() + 10
    while dict(restarted.pubsub_numsub("tronch:events")).get("tronch:events", 0) < 2:
        assert time.monotonic() < deadline, "subscribers did not come back"
        time.sleep(0.05)
    time.sleep(0.05)
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "revoked_key"
