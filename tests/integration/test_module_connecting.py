"""A cache miss while the worker's Redis link is still connecting (a fresh worker after a start,
a reload or a respawn; a reconnect) waits for the link, bounded by tronch_redis_timeout, instead
of failing at once with 503. To hold the link in its connecting state for a while, Redis asks for
AUTH (ACL user) and is frozen with DEBUG SLEEP while nginx starts: the TCP connection is made by
the kernel, the AUTH reply comes when Redis wakes up."""
from __future__ import annotations

import threading
import time

import pytest
import requests

import redis_servers as rs
import tronch_harness as h
from cp_support import wait_until
from module_support import bearer, flushed_client, http_block, mirrored_keys, new_key, problem

FREEZE_S = 1.5


@pytest.fixture(scope="module")
def acl_redis():
    srv = rs.TlsRedis(rs.make_pki(), rs.AclUsers(), plain=True,
                      extra_args=("--enable-debug-command", "local")).start()
    yield srv
    srv.stop()


@pytest.fixture
def keys(acl_redis):
    return mirrored_keys(flushed_client(acl_redis))


def gateway(nginx_factory, acl_redis, timeout: str):
    block = http_block(f"127.0.0.1:{acl_redis.plain_port}",
                       extra_http=f"tronch_redis_auth {rs.GATEWAY_USER} "
                                  f"{acl_redis.users.password_file(rs.GATEWAY_USER)};")
    block = block.replace("tronch_redis_timeout 200ms;", f"tronch_redis_timeout {timeout};")
    return nginx_factory(block, workers=1)


def frozen(acl_redis) -> threading.Thread:
    """Redis asleep for FREEZE_S from now (the admin connects over TLS before it sleeps)."""
    client = acl_redis.client()
    client.ping()
    t = threading.Thread(target=lambda: client.execute_command("DEBUG", "SLEEP", str(FREEZE_S)))
    t.start()
    time.sleep(0.1)   # the command is in
    return t


def timed_get(url: str, key: str) -> tuple[requests.Response, float]:
    t0 = time.monotonic()
    r = requests.get(url, headers=bearer(key), timeout=10)
    return r, time.monotonic() - t0


def test_miss_waits_for_the_connecting_link(nginx_factory, acl_redis, keys):
    key, digest, key_id = keys.make("live")
    unknown, _ = new_key("live")
    sleeper = frozen(acl_redis)
    ngx = gateway(nginx_factory, acl_redis, "3s")   # the worker's link now waits for AUTH's reply
    try:
        r, elapsed = timed_get(ngx.url("/"), key)
        # before: 503 auth_unavailable at once, as if Redis were down
        assert r.status_code == 200, r.text
        assert r.json()["key_id"] == key_id
        assert elapsed >= 0.3, elapsed   # it did wait for the link (Redis was asleep)
        r, _ = timed_get(ngx.url("/"), unknown)
        assert r.status_code == 401 and problem(r)["code"] == "unknown_key"
    finally:
        sleeper.join()


def test_parked_miss_still_bounded_by_the_timeout(nginx_factory, acl_redis, keys):
    """The request's own timeout ends the wait (503), and does not reset the connecting link:
    once Redis answers, the next miss passes."""
    key, digest, key_id = keys.make("live")
    sleeper = frozen(acl_redis)
    ngx = gateway(nginx_factory, acl_redis, "200ms")
    try:
        r, elapsed = timed_get(ngx.url("/"), key)
        assert r.status_code == 503 and problem(r)["code"] == "auth_unavailable", r.text
        assert h.within(elapsed, 0.5), elapsed
    finally:
        sleeper.join()
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        requests.get(ngx.url("/"), headers=bearer(key), timeout=5)), timeout=10, msg="the link came up")
    assert r.json()["key_id"] == key_id, r.text
