"""Faults under load (issue 12), each with real processes and a figure printed: Redis kill -9 and
restart, Redis FLUSHALL, Redis frozen (DEBUG SLEEP), an nginx worker kill -9. Load is wrk with a
cached key; every figure is in the test output (pytest -s, or ctest --output-on-failure -V)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

import tronch_harness as h
from cp_support import Client, redis_key_name, wait_until
from module_support import RECORD_SIGNING_KEY, bearer, command_calls, http_block, status_metrics

# tronchd signs with the session's test key, the one http_block's tronch_record_key trusts
TRONCHD_ENV = {"TRONCH_USAGE_INTERVAL_MS": "200", "TRONCH_MIRROR_INTERVAL_MS": "200",
               "TRONCH_RECORD_SIGNING_KEY": str(RECORD_SIGNING_KEY)}
REDIS_TIMEOUT = 0.2     # http_block's tronch_redis_timeout


def wrk(url: str, key: str, seconds: int, connections: int = 8) -> dict:
    """wrk against url with the key: requests, non-2xx, socket errors, max latency (s)."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {key}", url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
    lat = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\s", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, sock.groups())) if sock else 0,
            "max_latency": float(lat.group(1)) * units[lat.group(2)], "text": out}


def in_background(fn, *args) -> tuple[threading.Thread, dict]:
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(fn(*args)))
    t.start()
    return t, result


@pytest.fixture
def stack(nginx_factory, tronchd_factory, redis_server, redis_client):
    """tronchd (mirror + usage roll-up every 200 ms) and nginx on the module's Redis; a key,
    cached by nginx."""
    api = Client(tronchd_factory(extra_env=TRONCHD_ENV))
    ngx = nginx_factory(http_block(f"127.0.0.1:{redis_server.port}"), workers=2)
    k, _ = api.create(environment="live", name="faults")
    for _ in range(4):
        assert requests.get(ngx.url("/"), headers=bearer(k["key"]), timeout=5).status_code == 200
    return api, ngx, k


def usage_total(api, key_id) -> int:
    return api.req("GET", f"/api/v1/keys/{key_id}/usage").json()["totals"]["requests"]


def settle_usage(api, key_id, want: int) -> int:
    """The rolled-up count once it stops moving (or reaches want)."""
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = usage_total(api, key_id)
        if now >= want:
            return now
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 3:
            return now
        time.sleep(0.2)
    return last


def mirror_rebuilt(redis_client, plaintext: str) -> bool:
    return redis_client.exists(redis_key_name(plaintext)) == 1


def redis_fault(stack, redis_server, redis_client, fault) -> dict:
    """wrk for 6 s with the cached key; at 2 s the fault; the figures."""
    api, ngx, k = stack
    load, result = in_background(wrk, ngx.url("/"), k["key"], 6)
    time.sleep(2)
    t0 = time.monotonic()
    fault()
    wait_until(lambda: mirror_rebuilt(redis_client, k["key"]), timeout=20, interval=0.05,
               msg="tronchd rebuilt the mirror")
    recovered = time.monotonic() - t0
    load.join()
    counted = settle_usage(api, k["id"], result["requests"] + 4)
    result.update(recovered=recovered, counted=counted, sent=result["requests"] + 4,
                  flush_errors=status_metrics(ngx).get("tronch_usage_flush_errors_total", 0))
    return result


def report(name: str, r: dict) -> None:
    lost = r["sent"] - r["counted"]
    print(f"\n[{name}] requests {r['requests']}, non-2xx {r['non2xx']}, socket errors "
          f"{r['socket_errors']}, longest wait {r['max_latency'] * 1000:.1f} ms, mirror back after "
          f"{r['recovered']:.2f} s, usage counted {r['counted']}/{r['sent']} (lost {lost}, "
          f"flush errors metric {r['flush_errors']:.0f})")


def test_redis_kill9_and_restart_under_load(stack, redis_server, redis_client):
    def kill_and_restart():
        os.kill(redis_server.proc.pid, signal.SIGKILL)
        redis_server.proc.wait()
        time.sleep(1)
        redis_server.start()    # same port and dir, empty (no persistence): tronchd re-mirrors

    r = redis_fault(stack, redis_server, redis_client, kill_and_restart)
    report("redis kill -9", r)
    assert r["non2xx"] == 0 and r["socket_errors"] == 0, r["text"]
    assert r["max_latency"] < 1.0, r["text"]   # cached keys never wait on Redis; generous for 2 busy cores
    assert r["recovered"] < 20
    # Usage: wrk does not count its last in-flight requests (<= 8), so counted may exceed sent.
    # Counts sent in the very EVAL Redis dies under would be lost unmeasured: allow that one flush.
    assert r["counted"] >= r["sent"] - r["requests"] // 5, "usage lost beyond one flush"


def test_redis_flushall_under_load(stack, redis_server, redis_client):
    r = redis_fault(stack, redis_server, redis_client, lambda: redis_client.flushall())
    report("redis FLUSHALL", r)
    assert r["non2xx"] == 0 and r["socket_errors"] == 0, r["text"]
    assert r["max_latency"] < 1.0, r["text"]
    # FLUSHALL also wipes the counts Redis holds for tronchd's next roll-up: one module flush (1 s)
    # and one roll-up (0.2 s) of traffic, more when two busy cores delay the roll-up. Bound: 2.5 s of
    # the 6 s run; nothing else may go.
    assert r["counted"] >= r["sent"] - r["requests"] * 2.5 / 6, "usage lost beyond what Redis held"


def test_redis_frozen_cached_keys_stay_fast(stack, redis_server, redis_client):
    api, ngx, k = stack
    load, result = in_background(wrk, ngx.url("/"), k["key"], 5)
    time.sleep(1.5)
    froze: dict = {}
    frozen = threading.Thread(target=lambda: froze.update(
        reply=redis_server.client().execute_command("DEBUG", "SLEEP", "2")))
    frozen.start()
    load.join()
    frozen.join()
    assert froze.get("reply") in (True, "OK", b"OK"), "Redis was not frozen (DEBUG SLEEP refused?)"
    print(f"\n[redis DEBUG SLEEP 2] requests {result['requests']}, non-2xx {result['non2xx']}, "
          f"longest wait {result['max_latency'] * 1000:.1f} ms")
    assert result["non2xx"] == 0 and result["socket_errors"] == 0, result["text"]
    assert result["max_latency"] < 1.0, result["text"]   # Redis frozen for 2 s: nobody waited for it


def test_nginx_worker_kill9_under_load(redis_server, keys, redis_client):
    """The master respawns the worker; the shared zone survives (the key stays cached: no lookup,
    counters keep counting); the one [alert] is the killed worker's exit. The protected location serves
    a file: behind proxy_pass to a server of the same nginx, a request whose upstream side the killed
    worker was serving would get a 502 from the surviving worker, a fault of the test's set-up."""
    static = "location = /small.txt { tronch on; root {prefix}/html; }"
    ngx = h.Nginx(http_block(f"127.0.0.1:{redis_server.port}", locations=static), workers=2).start()
    try:
        key, _, _ = keys.make("live")
        assert requests.get(ngx.url("/small.txt"), headers=bearer(key), timeout=5).status_code == 200
        before = status_metrics(ngx)['tronch_requests_total{result="ok"}']
        redis_client.config_resetstat()
        old = set(ngx.worker_pids())
        load, result = in_background(wrk, ngx.url("/small.txt"), key, 5)
        time.sleep(1.5)
        victim = sorted(old)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(set(ngx.worker_pids()) - old) == 1 and len(ngx.worker_pids()) == 2,
                   timeout=10, msg="worker respawned")
        load.join()
        t0 = time.monotonic()
        for _ in range(20):
            assert requests.get(ngx.url("/small.txt"), headers=bearer(key), timeout=5).status_code == 200
        after = status_metrics(ngx)['tronch_requests_total{result="ok"}']
        lookups = command_calls(redis_client).get("get", 0)
        print(f"\n[nginx worker kill -9] requests {result['requests']}, non-2xx {result['non2xx']}, "
              f"socket errors {result['socket_errors']} (connections of the killed worker), longest "
              f"wait {result['max_latency'] * 1000:.1f} ms, respawned, ok counter {before:.0f} -> "
              f"{after:.0f}, Redis lookups after {lookups}, 20 requests in {time.monotonic() - t0:.2f} s")
        assert result["non2xx"] == 0, result["text"]
        assert after >= before + result["requests"] - result["socket_errors"] - 10   # zone counters kept
        assert lookups == 0      # the cache in the zone survived: no lookup for the cached key
    finally:
        ngx.stop()
    alerts = ngx.log_problems()
    ngx.cleanup()
    assert len(alerts) == 1 and f"worker process {victim} exited on signal 9" in alerts[0], alerts
