"""The module against a production-shaped Redis (issue 11): TLS with a CA made here, a client
certificate, and the least-privileged ACL user of shared/redis-acl. Keys pass, revocations arrive,
redis-policy limits hold; a wrong CA or password is one clear [error] line and auth_unavailable for
keys not cached, never a hang; bad files fail `nginx -t` naming the directive; the gateway user
cannot write a key record."""
from __future__ import annotations

import re
import subprocess
import time

import pytest
import redis
import requests

import redis_servers as rs
import tronch_harness as h
from module_support import (bearer, new_key, connection_per_worker, flushed_client, hit_every_worker, http_block,
                            mirrored_keys, problem, until_all_refuse, wait_subscribers)

WORKERS = 2


@pytest.fixture(scope="module")
def pki():
    return rs.make_pki()


@pytest.fixture(scope="module")
def users():
    return rs.AclUsers()


@pytest.fixture(scope="module")
def tls_redis(pki, users):
    srv = rs.TlsRedis(pki, users, auth_clients=True).start()
    yield srv
    srv.stop()


@pytest.fixture
def admin(tls_redis):
    return flushed_client(tls_redis)


@pytest.fixture
def keys(admin):
    return mirrored_keys(admin)


def tls_conf(pki, users, *, ca=None, password_file=None, name=None, client_cert=True, extra="") -> str:
    lines = [
        f"tronch_redis_auth {rs.GATEWAY_USER} {password_file or users.password_file(rs.GATEWAY_USER)};",
        "tronch_redis_tls on;",
        f"tronch_redis_tls_trusted_certificate {ca or pki.ca_cert};",
    ]
    if client_cert:
        lines += [f"tronch_redis_tls_certificate {pki.client_cert};",
                  f"tronch_redis_tls_certificate_key {pki.client_key};"]
    if name:
        lines.append(f"tronch_redis_tls_name {name};")
    return "\n    ".join(lines + [extra])


def error_lines(ngx, pattern: str) -> list[str]:
    text = ngx.error_log.read_text(errors="replace") if ngx.error_log.exists() else ""
    return [l for l in text.splitlines() if re.search(pattern, l)]


def until(cond, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout}s")


def test_keys_revocation_and_redis_limits_over_tls_and_acl(nginx_factory, tls_redis, pki, users, keys, admin):
    ngx = nginx_factory(http_block(tls_redis.address, listen_opts="reuseport",
                                   extra_http=tls_conf(pki, users, extra="tronch_limit_policy redis;")),
                        workers=WORKERS)
    wait_subscribers(admin, WORKERS)

    key, digest, key_id = keys.make("live")
    hit_every_worker(ngx, key, 200)
    unknown, _ = new_key("live")   # never stored: with the mirror mark, refused as unknown
    r = requests.get(ngx.url("/"), headers=bearer(unknown), timeout=5)
    assert r.status_code == 401 and problem(r)["code"] == "unknown_key", r.text

    # revocation: the event over TLS reaches every worker
    conns = connection_per_worker(ngx, key)
    keys.put(key, digest, status="revoked", key_id=key_id)
    t0 = time.monotonic()
    assert keys.changed(digest, key_id) == WORKERS
    until_all_refuse(conns, key, t0, limit=5.0)

    # redis policy: the GCRA script runs as the gateway user (GET/SET on tronch:rl:{..} inside Lua)
    limited, _, limited_id = keys.make("live", limit=(1, 60, 2))
    codes = [requests.get(ngx.url("/"), headers=bearer(limited), timeout=5) for _ in range(5)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429, 429], [c.status_code for c in codes]
    assert all("Tronch-RateLimit-Mode" not in c.headers for c in codes)
    assert admin.exists(f"tronch:rl:{{{limited_id}}}")

    # usage: the flush (EVAL of HINCRBY, HSET) is allowed to the gateway user
    until(lambda: any(f.startswith(limited_id) for f in admin.hkeys("tronch:usage:pending")))
    assert not error_lines(ngx, r"NOPERM|usage flush failed|script failed")
    assert not error_lines(ngx, re.escape(users.password(rs.GATEWAY_USER)))


def test_host_name_resolved_at_load_and_checked_as_dns_name(nginx_factory, tls_redis, pki, users, keys, admin):
    # "localhost" is resolved when nginx loads the config; the certificate's DNS SAN is checked
    ngx = nginx_factory(http_block(f"localhost:{tls_redis.port}", extra_http=tls_conf(pki, users)),
                        workers=1)
    key, _, _ = keys.make("live")
    until(lambda: requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200)


def test_name_mismatch_is_refused(nginx_factory, tls_redis, pki, users, keys):
    ngx = nginx_factory(http_block(tls_redis.address, extra_http=tls_conf(pki, users, name="redis.example.org")),
                        workers=1)
    key, _, _ = keys.make("live")
    r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
    assert r.status_code == 503 and problem(r)["code"] == "auth_unavailable"
    until(lambda: error_lines(ngx, r'\[error\].*does not match "redis.example.org".*tronch_redis_tls_name'))


def _assert_unavailable_without_hang(ngx, keys, seconds: float = 3.0) -> None:
    key, _, _ = keys.make("live")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t = time.monotonic()
        r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
        assert time.monotonic() - t < 2.0
        assert r.status_code == 503 and problem(r)["code"] == "auth_unavailable", r.text
        time.sleep(0.2)


def test_wrong_ca_is_one_clear_error_and_auth_unavailable(nginx_factory, tls_redis, pki, users, keys):
    other = rs.make_pki(ca_name="Some other CA")
    ngx = nginx_factory(http_block(tls_redis.address, extra_http=tls_conf(pki, users, ca=other.ca_cert)),
                        workers=WORKERS)
    _assert_unavailable_without_hang(ngx, keys)
    errors = error_lines(ngx, r"\[error\].*certificate verify error.*tronch_redis_tls_trusted_certificate")
    assert errors
    # the first failure of each link is an error; the retries (backoff 100 ms, 200 ms, ...) are info
    assert len(errors) <= 2 * WORKERS, errors
    assert error_lines(ngx, r"\[info\].*certificate verify error")


def test_wrong_password_is_one_clear_error_never_the_password(nginx_factory, tls_redis, pki, users, keys):
    wrong = "not-the-password-" + "x" * 8
    pw = users.password_file(rs.GATEWAY_USER, password=wrong)
    ngx = nginx_factory(http_block(tls_redis.address, extra_http=tls_conf(pki, users, password_file=pw)),
                        workers=WORKERS)
    _assert_unavailable_without_hang(ngx, keys)
    errors = error_lines(ngx, r'\[error\].*authentication failed for user "tronch-gateway"')
    assert errors and len(errors) <= 2 * WORKERS, errors
    assert not error_lines(ngx, wrong)


def test_password_changed_at_run_time_cached_keys_keep_passing(nginx_factory, tls_redis, pki, users, keys, admin):
    ngx = nginx_factory(http_block(tls_redis.address, extra_http=tls_conf(pki, users)), workers=1)
    wait_subscribers(admin, 1)
    cached, _, _ = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(cached), timeout=5).status_code == 200
    try:
        admin.execute_command("ACL", "SETUSER", rs.GATEWAY_USER, "resetpass", ">rotated-elsewhere")
        admin.execute_command("CLIENT", "KILL", "USER", rs.GATEWAY_USER)
        until(lambda: error_lines(ngx, r'\[error\].*authentication failed for user "tronch-gateway"'))
        _assert_unavailable_without_hang(ngx, keys, seconds=1.0)
        for _ in range(5):
            assert requests.get(ngx.url("/"), headers=bearer(cached), timeout=5).status_code == 200
    finally:
        admin.execute_command("ACL", "SETUSER", rs.GATEWAY_USER, "resetpass",
                              ">" + users.password(rs.GATEWAY_USER))
    # and back: the recovery is logged where the failure was
    fresh, _, _ = keys.make("live")
    until(lambda: requests.get(ngx.url("/"), headers=bearer(fresh), timeout=5).status_code == 200)
    assert error_lines(ngx, r"\[error\].*connected to .* again")
    assert not error_lines(ngx, "rotated-elsewhere")


@pytest.mark.parametrize("case,directive,words", [
    ("missing password file", "tronch_redis_auth", "cannot open the password file"),
    ("missing CA", "tronch_redis_tls_trusted_certificate", "cannot open"),
    ("no CA", "tronch_redis_tls_trusted_certificate", "is set"),
    ("missing client key", "tronch_redis_tls_certificate_key", "cannot open"),
    ("cert without key", "tronch_redis_tls_certificate_key", "set both or neither"),
    ("unresolvable host", "tronch_redis", "invalid address"),
])
def test_bad_files_fail_nginx_t_naming_the_directive(pki, users, case, directive, words):
    addr = "127.0.0.1:6379"
    if case == "missing password file":
        conf = tls_conf(pki, users, password_file="/nonexistent/tronch.password")
    elif case == "missing CA":
        conf = tls_conf(pki, users, ca="/nonexistent/ca.pem")
    elif case == "no CA":
        conf = tls_conf(pki, users).replace(f"tronch_redis_tls_trusted_certificate {pki.ca_cert};", "")
    elif case == "missing client key":
        conf = tls_conf(pki, users).replace(str(pki.client_key), "/nonexistent/client.key")
    elif case == "cert without key":
        conf = tls_conf(pki, users).replace(f"tronch_redis_tls_certificate_key {pki.client_key};", "")
    else:
        conf, addr = tls_conf(pki, users), "no-such-host.invalid:6379"
    ngx = h.Nginx(http_block(addr, extra_http=conf))
    try:
        r = ngx.test_config()
    finally:
        ngx.cleanup()
    assert r.returncode != 0, r.stderr
    assert "[emerg]" in r.stderr and f'"{directive}"' in r.stderr and words in r.stderr, r.stderr
    assert users.password(rs.GATEWAY_USER) not in r.stderr


def test_gateway_user_can_do_its_job_but_not_write_key_records(tls_redis, admin):
    gw = tls_redis.client(user=rs.GATEWAY_USER)
    admin.set("tronch:key:{abc}", "record")
    assert gw.get("tronch:key:{abc}") == "record"
    with pytest.raises(redis.exceptions.NoPermissionError):
        gw.set("tronch:key:{abc}", "minted")
    with pytest.raises(redis.exceptions.ResponseError, match="(?i)no permissions|NOPERM"):
        gw.eval("return redis.call('SET', KEYS[1], 'minted')", 1, "tronch:key:{abc}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        gw.delete("tronch:key:{abc}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        gw.set("tronch:mirror:epoch", "1")
    assert admin.get("tronch:key:{abc}") == "record"
    # what the module needs
    gw.exists("tronch:mirror:epoch")
    gw.eval("redis.call('TIME'); return redis.call('SET', KEYS[1], '1', 'PX', 1000)", 1, "tronch:rl:{id}")
    gw.eval("return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])", 1, "tronch:usage:pending", "f", 1)
    gw.hset("tronch:usage:pending", "l", 1)
    p = gw.pubsub()
    p.subscribe("tronch:events")
    p.close()
    with pytest.raises(redis.exceptions.NoPermissionError):
        gw.publish("tronch:events", "forged")
    with pytest.raises(redis.exceptions.NoPermissionError):
        gw.execute_command("FLUSHALL")


def test_redis_down_and_back_are_logged_at_error(nginx_factory):
    # issue 20: Debian's default error_log level is "error": the first failure and the recovery
    # must show there; the retries in between must not flood it
    srv = h.Redis().start()
    try:
        ngx = nginx_factory(http_block(f"127.0.0.1:{srv.port}"), workers=1)
        until(lambda: error_lines(ngx, r"\[info\].*redis lookup: connected to"))
        srv.stop()
        until(lambda: error_lines(ngx, r"\[error\].*redis lookup: lost connection"))
        time.sleep(1.5)   # a few retries (backoff 100, 200, 400, 800 ms)
        assert error_lines(ngx, r"\[info\].*redis lookup: cannot connect")
        assert len(error_lines(ngx, r"\[error\].*redis lookup")) <= 2, error_lines(ngx, r"\[error\]")
        srv.start()
        until(lambda: error_lines(ngx, r"\[error\].*redis lookup: connected to .* again, Redis is back"))
    finally:
        srv.stop()


def test_unix_socket(nginx_factory):
    # AF_UNIX connects at once: the connection carries on from the event loop
    d = h.make_temp_dir("tronch-redis-unix-")
    sock = d / "redis.sock"
    srv = h.Redis(workdir=d)
    srv.proc = subprocess.Popen(
        ["redis-server", "--port", str(srv.port), "--bind", "127.0.0.1", "--unixsocket", str(sock),
         "--unixsocketperm", "777", "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    h.wait_for_port(srv.port, proc=srv.proc)
    try:
        k = mirrored_keys(srv.client())
        ngx = nginx_factory(http_block(f"unix:{sock}"), workers=1)
        key, _, _ = k.make("live")
        until(lambda: requests.get(ngx.url("/"), headers=bearer(key), timeout=5).status_code == 200)
        r = requests.get(ngx.url("/"), headers=bearer(new_key("live")[0]), timeout=5)
        assert r.status_code == 401 and problem(r)["code"] == "unknown_key"
    finally:
        srv.stop()


def test_reload_keeps_working_over_tls(nginx_factory, tls_redis, pki, users, keys, admin):
    # the SSL context is rebuilt by each configuration load; old workers close their links on exit
    ngx = nginx_factory(http_block(tls_redis.address, extra_http=tls_conf(pki, users)), workers=WORKERS)
    wait_subscribers(admin, WORKERS)
    key, _, _ = keys.make("live")
    hit_every_worker(ngx, key, 200)
    old = set(ngx.worker_pids())
    ngx.reload()
    until(lambda: not (set(ngx.worker_pids()) & old) and len(ngx.worker_pids()) == WORKERS)
    wait_subscribers(admin, WORKERS)
    fresh, _, _ = keys.make("live")
    hit_every_worker(ngx, fresh, 200)
    assert not error_lines(ngx, r"open socket|\[alert\]|\[crit\]")


def test_links_use_tcp_keepalive(nginx_factory, tls_redis, pki, users, admin):
    # a vanished peer (no FIN, no RST) would otherwise leave the subscriber waiting forever
    ngx = nginx_factory(http_block(tls_redis.address, extra_http=tls_conf(pki, users)), workers=1)
    wait_subscribers(admin, 1)
    def nginx_links():
        out = subprocess.run(["ss", "-tnopH", "state", "established", "dst", f"127.0.0.1:{tls_redis.port}"],
                             capture_output=True, text=True).stdout
        return [l for l in out.splitlines() if '"nginx"' in l]
    lines = until(lambda: len(nginx_links()) == 2 and nginx_links())   # lookup + events
    assert all("timer:(keepalive" in l for l in lines), lines
