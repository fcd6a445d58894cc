"""Instant revocation: the control plane's events on tronch:events reach every worker's
subscriber and change the shared cache at once."""
from __future__ import annotations

import time

import pytest
import requests

import tronch_harness as h

from module_support import (bearer, connection_per_worker, hit_every_worker, http_block, new_key, problem,
                            status_metrics, until_all_refuse, wait_subscribers)

WORKERS = 3


@pytest.fixture
def ngx(nginx_factory, redis_server, redis_client):
    # reuseport: the kernel spreads new connections over all workers
    ngx = nginx_factory(http_block(f"127.0.0.1:{redis_server.port}", listen_opts="reuseport"),
                        workers=WORKERS)
    wait_subscribers(redis_client, WORKERS)
    return ngx


def test_one_subscriber_per_worker(ngx, redis_client):
    assert len(ngx.worker_pids()) == WORKERS
    assert dict(redis_client.pubsub_numsub("tronch:events"))["tronch:events"] == WORKERS


def test_revocation_reaches_every_worker_within_100ms(ngx, keys):
    key, digest, key_id = keys.make("live")
    hit_every_worker(ngx, key, 200)
    conns = connection_per_worker(ngx, key)   # the key passes on every worker

    keys.put(key, digest, status="revoked", key_id=key_id)  # tronchd: new record, then event
    t0 = time.monotonic()
    assert keys.changed(digest, key_id) == WORKERS
    latency = until_all_refuse(conns, key, t0)
    print(f"revocation seen by all {WORKERS} workers after {latency * 1000:.1f} ms")
    assert h.within(latency, 0.100), latency
    # and it stays refused, on every worker
    for _ in range(20):
        assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 403


def test_key_change_refreshes_entry(ngx, keys):
    key, digest, key_id = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    keys.put(key, digest, cidrs=("10.0.0.0/8",), key_id=key_id)
    # without an event the cache answers (TTL is the backstop)
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    keys.changed(digest, key_id)
    time.sleep(0.05)
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "address_not_allowed"


def test_mirror_rebuilt_drops_negative_entries(ngx, keys):
    key, digest = new_key("live")
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 401 and problem(r)["code"] == "unknown_key"
    keys.put(key, digest)
    # negatively cached (tronch_negative_ttl 10s by default)
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 401
    keys.rebuilt()
    time.sleep(0.05)
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200


def test_invalid_events_are_ignored(ngx, keys, redis_client):
    key, _, _ = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    before = status_metrics(ngx)
    for junk in ("not json", '{"v":1,"type":"key.changed"}', '{"v":99,"type":"mirror.rebuilt"}'):
        redis_client.publish("tronch:events", junk)
    time.sleep(0.1)
    after = status_metrics(ngx)
    assert after["tronch_events_invalid_total"] - before["tronch_events_invalid_total"] == 3 * WORKERS
    assert after["tronch_events_applied_total"] == before["tronch_events_applied_total"]
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
