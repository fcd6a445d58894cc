"""The module behind Redis Sentinel (issue 11): one master, one replica, three sentinels on loopback.
Under wrk load with a cached key, kill -9 the master: no failed request for the cached key; the
redis limiter goes degraded and comes back by itself on the new master; a revocation made on the
new master is refused by every worker. The two delays are measured and printed (bounded
generously: this machine is shared)."""
from __future__ import annotations

import re
import subprocess
import time

import pytest
import requests

import redis_servers as rs
from module_support import (Keys, bearer, connection_per_worker, hit_every_worker, http_block, new_key, problem,
                            until_all_refuse, wait_subscribers)

WORKERS = 2
BOUND = 60.0   # seconds; measured figures are printed


@pytest.fixture(scope="module")
def users():
    return rs.AclUsers()


@pytest.fixture
def sentinels(users):
    s = rs.SentinelSet(users).start()
    yield s
    s.stop()


def sentinel_conf(sentinels, users) -> str:
    return (f"tronch_redis_sentinel {rs.MASTER_NAME} {' '.join(sentinels.sentinel_addrs())};\n"
            f"    tronch_redis_auth {rs.GATEWAY_USER} {users.password_file(rs.GATEWAY_USER)};\n"
            "    tronch_limit_policy redis;")


def sentinel_block(sentinels, users) -> str:
    # tronch_redis_sentinel replaces tronch_redis in the shared helper's block
    return re.sub(r"tronch_redis [^;]*;\n", "", http_block("127.0.0.1:1", listen_opts="reuseport",
                                                           extra_http=sentinel_conf(sentinels, users)), count=1)


def degraded(resp) -> bool:
    return resp.headers.get("Tronch-RateLimit-Mode") == "degraded"


def test_follows_the_master_named_by_the_sentinels(nginx_factory, sentinels, users):
    admin = sentinels.client()
    keys = Keys(admin)
    keys.mark_mirror_complete()
    ngx = nginx_factory(sentinel_block(sentinels, users), workers=WORKERS)
    wait_subscribers(admin, WORKERS)
    key, _, _ = keys.make("live", limit=(1000, 1, 1000))
    hit_every_worker(ngx, key, 200)
    r = requests.get(ngx.url("/"), headers=bearer(new_key("live")[0]), timeout=5)
    assert r.status_code == 401 and problem(r)["code"] == "unknown_key"
    assert not degraded(requests.get(ngx.url("/"), headers=bearer(key), timeout=5))


def test_failover_under_load(nginx_factory, sentinels, users):
    admin = sentinels.client()
    keys = Keys(admin)
    keys.mark_mirror_complete()
    ngx = nginx_factory(sentinel_block(sentinels, users), workers=WORKERS)
    wait_subscribers(admin, WORKERS)

    cached, _, _ = keys.make("live")                              # wrk's key: no limit
    limited, _, _ = keys.make("live", limit=(100000, 1, 100000))  # the redis limiter's probe
    revoked, revoked_digest, revoked_id = keys.make("live")
    for k in (cached, limited, revoked):
        hit_every_worker(ngx, k, 200)
    assert not degraded(requests.get(ngx.url("/"), headers=bearer(limited), timeout=5))
    probes = connection_per_worker(ngx, limited)

    wrk = subprocess.Popen(["wrk", "-t1", "-c4", "-d25s", "-H", f"Authorization: Bearer {cached}", ngx.url("/")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)
        old = sentinels.kill_master()
        killed = time.monotonic()

        # the redis limiter: degraded (local shares) while there is no master, then back by itself
        seen_degraded, back = False, {}
        while len(back) < len(probes) and time.monotonic() < killed + BOUND:
            for pid, c in probes.items():
                c.request("GET", "/", headers=bearer(limited))
                r = c.getresponse()
                r.read()
                assert r.status == 200, r.status
                if r.getheader("Tronch-RateLimit-Mode") == "degraded":
                    seen_degraded = True
                    back.pop(pid, None)
                elif seen_degraded and pid not in back:
                    back[pid] = time.monotonic() - killed
            time.sleep(0.05)
        assert seen_degraded
        assert len(back) == len(probes), f"still degraded after {BOUND}s: {back}"
        degraded_s = max(back.values())

        # a revocation made on the new master after the fail-over
        new = sentinels.wait_new_master(old, timeout=BOUND)
        assert new != old
        keys = Keys(sentinels.client())
        conns = connection_per_worker(ngx, revoked)
        keys.put(revoked, revoked_digest, status="revoked", key_id=revoked_id)
        t0 = time.monotonic()
        keys.changed(revoked_digest, revoked_id)
        revocation_s = until_all_refuse(conns, revoked, t0, limit=BOUND)
    finally:
        out, _ = wrk.communicate(timeout=60)

    print(f"\nfail-over: redis limiter degraded for {degraded_s:.2f} s after kill -9 of the master; "
          f"a revocation on the new master refused by all {WORKERS} workers after {revocation_s * 1000:.0f} ms")
    print(out)
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    assert requests_done > 0, out
    assert "Non-2xx" not in out, out          # 0 failed requests for the cached key
    assert "Socket errors" not in out, out
    assert degraded_s < BOUND and revocation_s < BOUND
    # the fail-over is in the log where operators look
    log = ngx.error_log.read_text(errors="replace")
    assert re.search(r"\[notice\].*master of \"tronch-master\" is 127\.0\.0\.1:%d \(fail-over\)" % new, log)
    assert re.search(r"\[error\].*redis lookup: connected to 127\.0\.0\.1:%d again" % new, log)


def test_sentinels_and_master_over_tls(nginx_factory, users):
    # every node, the sentinels too, TLS only: the sentinel link and the data links use
    # tronch_redis_tls*, the master's certificate checked against its IP address
    pki = rs.make_pki()
    sset = rs.SentinelSet(users, pki=pki).start()
    try:
        admin = sset.client()
        keys = Keys(admin)
        keys.mark_mirror_complete()
        tls = (f"tronch_redis_tls on;\n    tronch_redis_tls_trusted_certificate {pki.ca_cert};")
        block = sentinel_block(sset, users).replace("tronch_limit_policy redis;", "tronch_limit_policy redis;\n    " + tls)
        ngx = nginx_factory(block, workers=1)
        wait_subscribers(admin, 1)
        key, _, _ = keys.make("live", limit=(1000, 1, 1000))
        r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
        assert r.status_code == 200 and not degraded(r), r.text
    finally:
        sset.stop()


def test_sentinels_with_a_password(nginx_factory, users):
    sset = rs.SentinelSet(users, sentinel_password="sentinel-secret-1").start()
    try:
        admin = sset.client()
        keys = Keys(admin)
        keys.mark_mirror_complete()
        good = users.password_file("default", password="sentinel-secret-1")
        auth = f"tronch_limit_policy redis;\n    tronch_redis_sentinel_auth default {good};"
        ngx = nginx_factory(sentinel_block(sset, users).replace("tronch_limit_policy redis;", auth), workers=1)
        key, _, _ = keys.make("live")
        deadline = time.monotonic() + 15
        while requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "no master found through password-protected sentinels"
            time.sleep(0.1)

        # a wrong sentinel password: one clear error, unknown keys get the failure mode, no hang
        bad = users.password_file("default", password="wrong-sentinel-secret")
        ngx2 = nginx_factory(sentinel_block(sset, users).replace(
            "tronch_limit_policy redis;", f"tronch_limit_policy redis;\n    tronch_redis_sentinel_auth default {bad};"),
            workers=1)
        t = time.monotonic()
        r = requests.get(ngx2.url("/"), headers=bearer(key), timeout=5)
        assert time.monotonic() - t < 2 and r.status_code == 503 and problem(r)["code"] == "auth_unavailable"
        deadline = time.monotonic() + 10
        log = ""
        while 'authentication failed for user "default"' not in log and time.monotonic() < deadline:
            time.sleep(0.1)
            log = ngx2.error_log.read_text(errors="replace")
        assert re.search(r'\[error\].*redis sentinel: cannot connect .*authentication failed for user "default"', log), log[-2000:]
        assert "wrong-sentinel-secret" not in log
    finally:
        sset.stop()


@pytest.mark.parametrize("conf,directive,words", [
    ("tronch_redis 127.0.0.1:6379;\n    tronch_redis_sentinel m 127.0.0.1:26379;", "tronch_redis_sentinel",
     "cannot be combined"),
    ("tronch_redis_sentinel m 127.0.0.1:26379;\n    tronch_redis 127.0.0.1:6379;", "tronch_redis", "cannot be combined"),
    ("tronch_redis_sentinel m no-such-host.invalid:26379;", "tronch_redis_sentinel", "invalid address"),
    ("tronch_redis 127.0.0.1:6379;\n    tronch_redis_sentinel_auth default /nonexistent;", "tronch_redis_sentinel_auth",
     "cannot open the password file"),
])
def test_bad_sentinel_config_fails_nginx_t(conf, directive, words):
    import tronch_harness as h
    block = re.sub(r"tronch_redis [^;]*;\n", conf.replace("\\", "\\\\") + "\n", http_block("127.0.0.1:1"), count=1)
    ngx = h.Nginx(block)
    try:
        r = ngx.test_config()
    finally:
        ngx.cleanup()
    assert r.returncode != 0 and "[emerg]" in r.stderr, r.stderr
    assert f'"{directive}"' in r.stderr and words in r.stderr, r.stderr
