"""tronchd on production-shaped Redis (issue 11): TLS with a CA made here, ACL users (the default
user off), a client certificate, wrong credentials reported clearly, and a Sentinel fail-over."""
from __future__ import annotations

import json
import subprocess
import time

import pytest
import redis
import requests

import tronch_harness as h
from cp_support import EPOCH, Client, Events, redis_key_name, redis_record, wait_until
from redis_servers import MASTER_NAME, TRONCHD_USER, AclUsers, SentinelSet, TlsRedis, make_pki


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture(scope="module")
def users():
    return AclUsers()


@pytest.fixture(scope="module")
def tls_redis(pki, users):
    srv = TlsRedis(pki, users, auth_clients=True).start()   # client certificates required too
    yield srv
    srv.stop()


def tls_env(srv, pki, users, password_file=None, ca=None, host="localhost") -> dict[str, str]:
    return {
        "TRONCH_REDIS_URL": f"rediss://{TRONCHD_USER}@{host}:{srv.port}",
        "TRONCH_REDIS_PASSWORD_FILE": str(password_file or users.password_file(TRONCHD_USER)),
        "TRONCH_REDIS_TLS_CA_FILE": str(ca or pki.ca_cert),
        "TRONCH_REDIS_TLS_CERT_FILE": str(pki.client_cert),
        "TRONCH_REDIS_TLS_KEY_FILE": str(pki.client_key),
    }


def health(d) -> tuple[int, dict]:
    t0 = time.monotonic()
    r = requests.get(d.url("/api/v1/health"), timeout=15)
    assert time.monotonic() - t0 < 10   # a bad Redis never hangs the check
    return r.status_code, r.json()


def test_tls_acl_create_and_revoke_reach_redis(postgres, tls_redis, pki, users):
    d = h.Tronchd(postgres, tls_redis, extra_env=tls_env(tls_redis, pki, users)).start()
    try:
        client = Client(d)
        admin = tls_redis.client()
        status, body = health(d)
        assert status == 200, body
        wait_until(lambda: admin.exists(EPOCH), msg="the mirror mark over TLS")

        events = Events(admin)
        key, _ = client.create(name="over tls")
        record = wait_until(lambda: admin.get(redis_key_name(key["key"])), msg="the key record")
        assert redis_record(record)["id"] == key["id"]
        events.wait_for(lambda m: m.get("id") == key["id"] and m["type"] == "key.changed")

        r = client.req("DELETE", f"/api/v1/keys/{key['id']}")
        assert r.status_code in (200, 204), r.text
        wait_until(lambda: redis_record(admin.get(redis_key_name(key["key"])))["status"] == "revoked",
                   msg="the revoked record")
        events.close()
        # the password is in no log line (the address is logged, redacted)
        log = d.log_text()
        assert users.password(TRONCHD_USER) not in log
        assert f"rediss://{TRONCHD_USER}:***@localhost:{tls_redis.port}" in log
    finally:
        d.stop()


@pytest.mark.parametrize("problem", ["wrong_password", "wrong_ca", "wrong_name"])
def test_bad_credentials_are_a_clear_health_error(postgres, tls_redis, pki, users, problem):
    wrong = "not-the-password-0123456789"
    env = tls_env(tls_redis, pki, users)
    expected = {"wrong_password": "WRONGPASS", "wrong_ca": "certificate verify failed",
                "wrong_name": "certificate verify failed"}[problem]
    if problem == "wrong_password":
        env["TRONCH_REDIS_PASSWORD_FILE"] = str(users.password_file(TRONCHD_USER, password=wrong))
    elif problem == "wrong_ca":
        env["TRONCH_REDIS_TLS_CA_FILE"] = str(make_pki(ca_name="Another CA").ca_cert)
    else:
        env["TRONCH_REDIS_TLS_SERVER_NAME"] = "redis.example.com"   # not in the certificate
    d = h.Tronchd(postgres, tls_redis, extra_env=env).start()
    try:
        status, body = health(d)
        assert status == 503, body
        redis_check = body["checks"]["redis"]
        assert redis_check["status"] == "error"
        # the answer gives a fixed reason; the driver's words go to tronchd's log only
        assert redis_check["message"] == "Redis is unreachable", redis_check
        wait_until(lambda: expected in d.log_text(), msg=f"{expected!r} in tronchd's log")
        assert wrong not in json.dumps(body) and wrong not in d.log_text()
        # keys are still created (Postgres is the truth); the mirror catches up when Redis is fixed
        Client(d).create(name="redis down")
    finally:
        d.stop()


def test_bad_redis_url_stops_start_up_without_the_password(postgres, redis_server):
    d = h.Tronchd(postgres, redis_server, extra_env={"TRONCH_REDIS_URL": "redis://u:hunter2-secret@host:99999"})
    d.start(wait=False)
    assert d.proc.wait(timeout=30) != 0
    log = d.log_text()
    assert "port out of range" in log and "hunter2-secret" not in log, log


@pytest.fixture
def sentinels(users):
    s = SentinelSet(users).start()
    yield s
    s.stop()


def test_sentinel_fail_over(postgres, sentinels, users, redis_server):
    addrs = ",".join(sentinels.sentinel_addrs())
    d = h.Tronchd(postgres, redis_server, extra_env={
        "TRONCH_REDIS_URL": f"redis-sentinel://{TRONCHD_USER}@{addrs}/{MASTER_NAME}",
        "TRONCH_REDIS_PASSWORD_FILE": str(users.password_file(TRONCHD_USER)),
        "TRONCH_REDIS_TIMEOUT_MS": "500",
    }).start()
    try:
        client = Client(d)
        master = sentinels.client()
        before = [client.create(name=f"before-{i}")[0] for i in range(5)]
        for k in before:
            wait_until(lambda: master.get(redis_key_name(k["key"])), msg="records on the first master")

        old = sentinels.kill_master()
        killed = time.monotonic()
        created = []

        def on_new_master():
            k, _ = client.create(name="after")   # Postgres answers 201 throughout
            created.append(k)
            try:
                return sentinels.client().get(redis_key_name(k["key"])) is not None
            except Exception:
                return False   # the sentinels have not switched yet
        wait_until(on_new_master, timeout=90, interval=0.5, msg="a new key's record on the new master")
        took = time.monotonic() - killed
        print(f"\nRedis Sentinel fail-over: a created key reached the new master {took:.2f} s after kill -9 "
              f"of the old one ({len(created)} keys created meanwhile)")
        new = sentinels.master_port()
        assert new != old
        fresh = sentinels.client()
        wait_until(lambda: fresh.exists(EPOCH), msg="the mirror mark on the new master")
        for k in before + created:   # every key, also those created while no master answered
            wait_until(lambda: fresh.get(redis_key_name(k["key"])), timeout=15, msg=f"record of {k['id']}")
        status, body = health(d)
        assert status == 200, body
        assert "redis master changed" in d.log_text()

        # events and the usage roll-up carry on against the new master
        events = Events(fresh)
        k, _ = client.create(name="event after fail-over")
        events.wait_for(lambda m: m.get("id") == k["id"] and m["type"] == "key.changed", timeout=10)
        events.close()
        now = int(time.time())
        fresh.hset("tronch:usage:pending", mapping={f"{k['id']}|{now - now % 60}|r": 7})
        wait_until(lambda: client.req("GET", f"/api/v1/keys/{k['id']}/usage").json()["totals"]["requests"] == 7,
                   timeout=30, msg="usage rolled up from the new master")
    finally:
        d.stop()


def test_database_number_in_the_url(postgres, redis_server):
    d = h.Tronchd(postgres, redis_server, extra_env={"TRONCH_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/3"})
    d.start()
    try:
        key, _ = Client(d).create(name="in db 3")
        db3 = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3, decode_responses=True)
        wait_until(lambda: db3.get(redis_key_name(key["key"])), msg="the record in database 3")
        assert redis_server.client().get(redis_key_name(key["key"])) is None   # not in database 0
    finally:
        d.stop()


def test_sentinel_over_tls(postgres, pki, users, redis_server):
    """rediss-sentinel://: TLS to the sentinels and to the master they name (an IP, checked against
    the certificate's IP SAN); the sentinels have their own password (TRONCH_REDIS_SENTINEL_PASSWORD_FILE)."""
    sentinel_password = "sentinel-secret-0123456789"
    sset = SentinelSet(users, pki=pki, sentinel_password=sentinel_password).start()
    try:
        pw_file = h.make_temp_dir("tronch-sentinel-pw-") / "sentinel.password"
        pw_file.write_text(sentinel_password + "\n")
        d = h.Tronchd(postgres, redis_server, extra_env={
            "TRONCH_REDIS_SENTINEL_PASSWORD_FILE": str(pw_file),
            "TRONCH_REDIS_URL": f"rediss-sentinel://{TRONCHD_USER}@{','.join(sset.sentinel_addrs())}/{MASTER_NAME}",
            "TRONCH_REDIS_PASSWORD_FILE": str(users.password_file(TRONCHD_USER)),
            "TRONCH_REDIS_TLS_CA_FILE": str(pki.ca_cert),
        }).start()
        try:
            key, _ = Client(d).create(name="sentinel over tls")
            master = sset.client()
            wait_until(lambda: master.get(redis_key_name(key["key"])), msg="the record on the TLS master")
            assert health(d)[0] == 200
            assert sentinel_password not in d.log_text()
        finally:
            d.stop()
    finally:
        sset.stop()


def test_unix_socket_still_works(postgres, redis_server):
    """The old unix:/path form, now through the Asio client."""
    directory = h.make_temp_dir("tronch-redis-unix-")
    sock = directory / "redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(sock.exists, msg="the Redis socket")
        d = h.Tronchd(postgres, redis_server, extra_env={"TRONCH_REDIS_ADDR": f"unix:{sock}"}).start()
        try:
            key, _ = Client(d).create(name="over a unix socket")
            r = redis.Redis(unix_socket_path=str(sock), decode_responses=True)
            wait_until(lambda: r.get(redis_key_name(key["key"])), msg="the record over the socket")
            assert health(d)[0] == 200
        finally:
            d.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_readonly_replica_then_writable_again(postgres, redis_server):
    """The Redis tronchd writes to is turned into a replica (writes get -READONLY): keys are still
    created (201, Postgres is the truth), the mirror is marked incomplete, and once the server is a
    master again the mirror is rebuilt there without a restart."""
    other = h.Redis().start()
    d = h.Tronchd(postgres, redis_server, extra_env={"TRONCH_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}"})
    d.start()
    admin = redis_server.client()
    try:
        client = Client(d)
        wait_until(lambda: admin.exists(EPOCH), msg="the first mirror")
        admin.execute_command("REPLICAOF", "127.0.0.1", str(other.port))
        wait_until(lambda: admin.info("replication").get("master_link_status") == "up", msg="the replica link")
        key, _ = client.create(name="while read-only")
        wait_until(lambda: health(d)[1]["checks"]["redis"].get("mirror_complete") is False, msg="mirror incomplete")
        admin.execute_command("REPLICAOF", "NO", "ONE")
        wait_until(lambda: admin.get(redis_key_name(key["key"])), timeout=15, msg="the record after the switch back")
        assert admin.exists(EPOCH)
    finally:
        d.stop()
        admin.execute_command("REPLICAOF", "NO", "ONE")
        other.stop()
