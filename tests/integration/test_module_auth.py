"""The module's request path against real nginx and real Redis: the pass path and its
variables, every refusal code, the cache (Redis command counts), the key never upstream."""
from __future__ import annotations

import time

import pytest
import requests

from module_support import (bearer, command_calls, http_block, new_key, problem,
                            status_metrics)


LOCATIONS = """
        location /live/ { tronch on; tronch_environment live; PROTECT }
        location /https/ { tronch on; tronch_require_https on; PROTECT }
        location /xkey/ { tronch on; tronch_key_header X-API-Key; PROTECT }
        location /open/ { tronch off; PROTECT }
        location /tf/ { tronch on; try_files /nonexistent @named; }
        location @named { tronch on; PROTECT }
"""


@pytest.fixture
def ngx(nginx_factory, redis_server):
    return nginx_factory(http_block(f"127.0.0.1:{redis_server.port}", locations=LOCATIONS))


def test_pass_sets_variables_and_removes_key(ngx, keys):
    key, digest, key_id = keys.make("live")
    r = requests.get(ngx.url("/hello?x=1"), headers={**bearer(key), "X-Tronch-Key-Id": "forged",
                                                    "X-Tronch-Spoof": "evil"}, timeout=5)
    assert r.status_code == 200, r.text
    echoed = r.json()
    assert echoed["authorization"] == ""           # the key never goes upstream
    assert echoed["key_id"] == key_id              # ours, not the client's "forged"
    assert echoed["env"] == "live"
    assert echoed["prefix"] == key[:23]
    assert echoed["result"] == "ok"
    assert echoed["spoof"] == ""                   # client X-Tronch-* headers are dropped
    assert r.headers["X-Tronch-Result"] == "ok"
    log_path = ngx.prefix / "logs" / "tronch.log"
    deadline = time.monotonic() + 5   # the log line is written just after the response
    while f" 200 ok {key_id}" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.02)


def test_x_api_key_header_by_default_and_removed(ngx, keys):
    key, _, key_id = keys.make("test")
    r = requests.get(ngx.url("/"), headers={"X-API-Key": key}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["x_api_key"] == ""
    assert r.json()["key_id"] == key_id
    assert r.json()["env"] == "test"


def test_configured_key_header_only(ngx, keys):
    key, _, key_id = keys.make("live")
    r = requests.get(ngx.url("/xkey/"), headers={"X-API-Key": key}, timeout=5)
    assert r.status_code == 200 and r.json()["key_id"] == key_id
    r = requests.get(ngx.url("/xkey/"), headers=bearer(key), timeout=5)
    assert r.status_code == 401 and problem(r)["code"] == "missing_key"


def test_missing_key(ngx, keys):
    r = requests.get(ngx.url("/"), timeout=5)
    assert r.status_code == 401
    body = problem(r)
    assert body["code"] == "missing_key"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.headers["Cache-Control"] == "no-store"
    # a Basic header is not a key either
    r = requests.get(ngx.url("/"), headers={"Authorization": "Basic dXNlcjpwYXNz"}, timeout=5)
    assert r.status_code == 401 and problem(r)["code"] == "missing_key"


def test_key_in_query_string_is_ignored(ngx, keys):
    key, _, _ = keys.make("live")
    for q in (f"/?key={key}", f"/?api_key={key}", f"/?access_token={key}"):
        r = requests.get(ngx.url(q), timeout=5)
        assert r.status_code == 401 and problem(r)["code"] == "missing_key"


def test_malformed_key_costs_no_redis_command(ngx, keys, redis_client):
    key, _ = new_key("live")
    bad_checksum = key[:-1] + ("A" if key[-1] != "A" else "B")
    redis_client.config_resetstat()
    for bad in (bad_checksum, "tronch_sk_live_short", "sk_live_" + key[15:], key + "x", key[:-3] + "!@#"):
        r = requests.get(ngx.url("/"), headers=bearer(bad), timeout=5)
        assert r.status_code == 401, bad
        assert problem(r)["code"] == "malformed_key"
    calls = command_calls(redis_client)
    assert calls.get("get", 0) == 0 and calls.get("exists", 0) == 0, calls


def test_miss_costs_one_lookup_then_cached(ngx, keys, redis_client):
    key, _, _ = keys.make("live")
    redis_client.config_resetstat()
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    calls = command_calls(redis_client)
    assert calls.get("get") == 1, calls
    for _ in range(10):  # every worker: the cache is shared
        assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200
    assert command_calls(redis_client).get("get") == 1


def test_unknown_key_cached_negative_only_with_mirror_mark(ngx, keys, redis_client):
    key, _ = new_key("live")
    redis_client.config_resetstat()
    for _ in range(5):
        r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
        assert r.status_code == 401 and problem(r)["code"] == "unknown_key"
    assert command_calls(redis_client).get("get") == 1

    # Without tronch:mirror:epoch a miss proves nothing: not cached, and not "unknown".
    redis_client.delete("tronch:mirror:epoch")
    other, _ = new_key("live")
    redis_client.config_resetstat()
    for _ in range(3):
        r = requests.get(ngx.url("/"), headers=bearer(other), timeout=5)
        assert r.status_code == 503 and problem(r)["code"] == "auth_unavailable"
    assert command_calls(redis_client).get("get") == 3


def test_revoked_key(ngx, keys):
    key, _, _ = keys.make("live", status="revoked")
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "revoked_key"
    assert r.headers["X-Tronch-Result"] == "revoked_key"


def test_expired_key(ngx, keys):
    key, _, _ = keys.make("live", expires_at=int(time.time()) - 10)
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "expired_key"
    key, _, _ = keys.make("live", status="expired")
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "expired_key"
    # a rotating key still inside its grace period works
    key, _, _ = keys.make("live", status="rotating", expires_at=int(time.time()) + 3600)
    assert requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200


def test_wrong_environment(ngx, keys, redis_client):
    key, _, _ = keys.make("test")
    redis_client.config_resetstat()
    r = requests.get(ngx.url("/live/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "wrong_environment"
    assert command_calls(redis_client).get("get", 0) == 0  # the prefix says it: no lookup
    live, _, _ = keys.make("live")
    assert requests.get(ngx.url("/live/"), headers=bearer(live), timeout=5).status_code == 200


def test_address_not_allowed(ngx, keys):
    key, _, _ = keys.make("live", cidrs=("10.0.0.0/8", "2001:db8::/32"))
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "address_not_allowed"
    ok, _, _ = keys.make("live", cidrs=("10.0.0.0/8", "127.0.0.0/8"))
    assert requests.get(ngx.url("/"), headers=bearer(ok), timeout=5).status_code == 200


def test_https_required(ngx, keys):
    key, _, _ = keys.make("live")
    r = requests.get(ngx.url("/https/"), headers=bearer(key), timeout=5)
    assert r.status_code == 403 and problem(r)["code"] == "https_required"


def test_off_location_untouched(ngx, keys):
    r = requests.get(ngx.url("/open/"), headers={"Authorization": "Bearer whatever"}, timeout=5)
    assert r.status_code == 200
    assert r.json()["authorization"] == "Bearer whatever"


def test_problem_bodies_are_stable(ngx, keys):
    r = requests.get(ngx.url("/"), timeout=5)
    body = problem(r)
    assert set(body) >= {"type", "title", "status", "detail", "code"}
    assert body["type"].endswith("missing_key")
    assert int(r.headers["Content-Length"]) == len(r.content)


def test_head_and_post_refused_cleanly(ngx, keys):
    r = requests.head(ngx.url("/"), timeout=5)
    assert r.status_code == 401
    r = requests.post(ngx.url("/"), data=b"x" * 100000, timeout=5)
    assert r.status_code == 401 and problem(r)["code"] == "missing_key"


def test_status_counters(ngx, keys):
    key, _, _ = keys.make("live")
    before = status_metrics(ngx)
    requests.get(ngx.url("/"), timeout=5)
    requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    after = status_metrics(ngx)
    delta = lambda name: after.get(name, 0) - before.get(name, 0)
    assert delta('tronch_requests_total{result="missing_key"}') == 1
    assert delta('tronch_requests_total{result="ok"}') == 2
    assert delta("tronch_cache_misses_total") == 1
    assert delta("tronch_cache_hits_total") == 1
    assert delta("tronch_redis_lookups_total") == 1
    assert delta("tronch_redis_latency_seconds_count") == 1
    assert after["tronch_cache_entries"] >= 1
    assert after["tronch_redis_connects_total"] >= 2


def test_internal_redirect_keeps_the_decision(ngx, keys):
    """try_files -> @named runs the access phase again, after the key header was removed."""
    key, _, key_id = keys.make("live")
    before = status_metrics(ngx)
    r = requests.get(ngx.url("/tf/x"), headers=bearer(key), timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["key_id"] == key_id and r.json()["authorization"] == ""
    after = status_metrics(ngx)
    assert after['tronch_requests_total{result="ok"}'] - before['tronch_requests_total{result="ok"}'] == 1
    r = requests.get(ngx.url("/tf/x"), timeout=5)
    assert r.status_code == 401 and problem(r)["code"] == "missing_key"
