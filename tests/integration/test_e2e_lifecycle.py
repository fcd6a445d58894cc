"""End to end: the key lifecycle through tronchd + nginx (with the module) + PostgreSQL + Redis,
all real. Keys are made by tronchd's REST API only; nginx sees them through the Redis mirror and
the tronch:events channel, never through test shortcuts."""
from __future__ import annotations

import statistics
import threading
import time

import pytest
import requests

import tronch_harness as h
from cp_support import Client, wait_until
from module_support import (RECORD_SIGNING_KEY, bearer, connection_per_worker, hit_every_worker, http_block,
                            problem, until_all_refuse, wait_subscribers)

WORKERS = 2
REVOCATIONS = 50
# The roll-up and the expiry sweep run every interval; short ones keep the test quick.
# Every tronchd signs with the session's test key, the one http_block's gateways trust.
TRONCHD_ENV = {"TRONCH_USAGE_INTERVAL_MS": "200", "TRONCH_MIRROR_INTERVAL_MS": "200",
               "TRONCH_RECORD_SIGNING_KEY": str(RECORD_SIGNING_KEY)}
# A sandbox location that takes test keys only, next to the protected / of http_block.
SANDBOX = """
        location /sandbox/ {
            tronch on;
            tronch_environment test;
            PROTECT
        }
"""


def gateway(nginx_factory, redis_server, workers: int = WORKERS):
    # reuseport: the kernel spreads new connections over all workers, so each can be reached
    return nginx_factory(http_block(f"127.0.0.1:{redis_server.port}", listen_opts="reuseport", locations=SANDBOX),
                         workers=workers)


@pytest.fixture
def api(tronchd_factory, redis_client):  # redis_client: Redis flushed before tronchd mirrors into it
    return Client(tronchd_factory(extra_env=TRONCHD_ENV))


@pytest.fixture
def ngx(nginx_factory, redis_server, redis_client, api):
    ngx = gateway(nginx_factory, redis_server)
    wait_subscribers(redis_client, WORKERS)
    return ngx


def get(ngx, key: str, path: str = "/") -> requests.Response:
    return requests.get(ngx.url(path), headers=bearer(key), timeout=5)


def refused(ngx, key: str, status: int, code: str) -> bool:
    r = get(ngx, key)
    return r.status_code == status and problem(r)["code"] == code


def test_key_lifecycle(api, ngx):
    # create → passes at the gateway, on every worker
    created, _ = api.create(environment="live", name="e2e lifecycle")
    old_key, old_id = created["key"], created["id"]
    hit_every_worker(ngx, old_key, 200)
    r = get(ngx, old_key)
    assert r.json()["key_id"] == old_id and r.json()["env"] == "live"
    assert r.json()["authorization"] == ""          # the key never goes upstream

    # rotate with a grace period → old and new both pass
    r = api.req("POST", f"/api/v1/keys/{old_id}/rotate", json_body={"grace_period_seconds": 2})
    assert r.status_code == 201, r.text
    rotated = r.json()
    new_key, new_id = rotated["key"], rotated["id"]
    assert rotated["previous"]["id"] == old_id and rotated["previous"]["status"] == "rotating"
    hit_every_worker(ngx, old_key, 200)
    hit_every_worker(ngx, new_key, 200)
    assert get(ngx, new_key).json()["key_id"] == new_id

    # after the grace the old one is refused; the new one still passes
    wait_until(lambda: refused(ngx, old_key, 403, "expired_key"), timeout=8, interval=0.1,
               msg="old key refused after the grace period")
    hit_every_worker(ngx, old_key, 403)
    hit_every_worker(ngx, new_key, 200)
    # the module refuses by the record's expires_at; tronchd's sweep then marks it expired
    wait_until(lambda: api.req("GET", f"/api/v1/keys/{old_id}").json()["status"] == "expired", timeout=5,
               msg="old key swept to expired")

    # revoke the new one → refused on every worker
    conns = connection_per_worker(ngx, new_key)
    t0 = time.monotonic()
    r = api.req("DELETE", f"/api/v1/keys/{new_id}")
    assert r.status_code == 204, r.text
    latency = until_all_refuse(conns, new_key, t0)
    assert h.within(latency, 0.100), f"revocation took {latency * 1000:.1f} ms"
    hit_every_worker(ngx, new_key, 403)
    assert problem(get(ngx, new_key))["code"] == "revoked_key"

    # usage: the requests above appear in the API (module counts → Redis → tronchd roll-up)
    def usage():
        u = api.req("GET", f"/api/v1/keys/{new_id}/usage").json()
        # each worker flushes its own counts: wait for all of them, not for the first
        return u if u["totals"]["requests"] >= 2 * WORKERS and u["last_used_at"] else None
    wait_until(usage, timeout=10, msg="usage of the new key rolled up from every worker")
    assert api.req("GET", f"/api/v1/keys/{new_id}").json()["last_used_at"] is not None
    wait_until(lambda: api.req("GET", f"/api/v1/keys/{old_id}/usage").json()["totals"]["requests"] >= 2 * WORKERS,
               timeout=10, msg="usage of the old key rolled up from every worker")


def test_live_key_refused_on_test_only_location(api, ngx):
    live, _ = api.create(environment="live")
    test, _ = api.create(environment="test")
    assert get(ngx, live["key"], "/sandbox/x").status_code == 403
    assert problem(get(ngx, live["key"], "/sandbox/x"))["code"] == "wrong_environment"
    assert get(ngx, test["key"], "/sandbox/x").status_code == 200
    assert get(ngx, live["key"], "/").status_code == 200   # the same live key is fine elsewhere


def test_revocation_p99_under_100ms(api, ngx):
    """For each of 50 keys: warm it on every worker, DELETE it through the API, and time from
    sending the DELETE until every worker refuses it."""
    latencies = []
    for i in range(REVOCATIONS):
        k, _ = api.create(environment="live", name=f"revoke-{i}")
        conns = connection_per_worker(ngx, k["key"])   # one pinned connection per worker; each saw 200
        assert len(conns) == WORKERS
        t0 = time.monotonic()
        r = api.req("DELETE", f"/api/v1/keys/{k['id']}")
        assert r.status_code == 204, r.text
        latencies.append(until_all_refuse(conns, k["key"], t0))
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * len(ms))) - 1)]
    report = (f"revocation via tronchd → every one of {WORKERS} workers refuses, over {REVOCATIONS} keys: "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms\n")
    print(report)
    (h.BUILD_DIR / "e2e_revocation_latency.txt").write_text(report)
    assert h.within(p99 / 1000, 0.100), report


def test_two_nodes_share_keys_and_revocations(nginx_factory, redis_server, redis_client, tronchd_factory):
    """Two nginx nodes and two tronchd instances on one Redis and one Postgres."""
    api_a = Client(tronchd_factory(extra_env=TRONCHD_ENV))
    api_b = Client(tronchd_factory(extra_env=TRONCHD_ENV))
    node1 = gateway(nginx_factory, redis_server)
    node2 = gateway(nginx_factory, redis_server)
    wait_subscribers(redis_client, 2 * WORKERS)

    k, _ = api_a.create(environment="live", name="two nodes")
    for node in (node1, node2):
        hit_every_worker(node, k["key"], 200)
    # the other control plane sees it too, and its revocation reaches both nodes
    assert api_b.req("GET", f"/api/v1/keys/{k['id']}").json()["status"] == "active"
    c1, c2 = connection_per_worker(node1, k["key"]), connection_per_worker(node2, k["key"])
    t0 = time.monotonic()
    assert api_b.req("DELETE", f"/api/v1/keys/{k['id']}").status_code == 204
    latency = max(until_all_refuse(c1, k["key"], t0), until_all_refuse(c2, k["key"], t0))
    assert h.within(latency, 0.5), latency
    for node in (node1, node2):
        hit_every_worker(node, k["key"], 403)
    # a key created on B after the revocation passes on both nodes
    k2, _ = api_b.create(environment="test")
    for node in (node1, node2):
        hit_every_worker(node, k2["key"], 200)


def test_reload_during_traffic_fails_nothing(api, ngx):
    """nginx -s reload (SIGHUP) three times under continuous traffic, while the control plane
    issues and revokes keys: no request fails, and the changes apply across the reloads."""
    steady, _ = api.create(environment="live", name="steady")
    assert get(ngx, steady["key"]).status_code == 200
    stop = threading.Event()
    sent, failed = [0], []

    def traffic(keep_alive: bool) -> None:
        session = requests.Session() if keep_alive else requests
        headers = bearer(steady["key"]) if keep_alive else {**bearer(steady["key"]), "Connection": "close"}
        while not stop.is_set():
            try:
                r = session.get(ngx.url("/"), headers=headers, timeout=5)
                if r.status_code != 200:
                    failed.append(f"{r.status_code} {r.text[:120]}")
            except requests.RequestException as e:
                failed.append(repr(e))
            sent[0] += 1

    # new connections for every request: what a reload must never refuse
    threads = [threading.Thread(target=traffic, args=(False,)) for _ in range(3)]
    for t in threads:
        t.start()
    old_workers = set(ngx.worker_pids())
    fresh, revoked = [], []
    try:
        for _ in range(3):
            time.sleep(0.3)
            ngx.reload()
            k, _ = api.create(environment="live", name="during reload")
            fresh.append(k["key"])
            gone, _ = api.create(environment="live", name="revoked during reload")
            assert get(ngx, gone["key"]).status_code == 200
            assert api.req("DELETE", f"/api/v1/keys/{gone['id']}").status_code == 204
            revoked.append(gone["key"])
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert sent[0] > 50, sent
    assert not failed, f"{len(failed)} of {sent[0]} requests failed: {failed[:5]}"
    wait_until(lambda: not set(ngx.worker_pids()) & old_workers, timeout=10, msg="old workers gone")
    for key in fresh:
        assert get(ngx, key).status_code == 200
    for key in revoked:
        assert problem(get(ngx, key))["code"] == "revoked_key"


def test_usage_and_last_used_reach_the_api(api, ngx):
    """The module counts each request per key and flushes to tronch:usage:pending every second;
    tronchd rolls that up into key_usage and last_used_at."""
    k, _ = api.create(environment="live", name="usage")
    before = api.req("GET", f"/api/v1/keys/{k['id']}").json()
    assert before["last_used_at"] is None
    for _ in range(7):
        assert get(ngx, k["key"]).status_code == 200
    u = wait_until(lambda: (lambda u: u if u["totals"]["requests"] >= 7 else None)(
        api.req("GET", f"/api/v1/keys/{k['id']}/usage").json()), timeout=10, msg="usage rolled up")
    assert u["totals"]["requests"] == 7
    assert api.req("GET", f"/api/v1/keys/{k['id']}").json()["last_used_at"] is not None
