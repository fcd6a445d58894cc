"""tronchd on production-shaped PostgreSQL (issue 11): a multi-host connection string that follows
a fail-over without a restart, a server that turns read-only, and TLS with sslmode=verify-full."""
from __future__ import annotations

import os
import pathlib
import subprocess
import time

import pytest
import requests

import tronch_harness as h
from cp_support import Client
from redis_servers import make_pki


class Standby(h.Postgres):
    """A streaming standby of `primary`, made with pg_basebackup -R (as the postgres user, like
    the harness runs initdb); start() finds PG_VERSION and skips initdb."""

    def __init__(self, primary: h.Postgres):
        super().__init__()
        for d in (self.sockdir, self.data):   # pg_basebackup, as postgres, writes into an empty dir it owns
            d.mkdir(exist_ok=True)
            self._chown(d)
        self.data.chmod(0o700)
        subprocess.run(self._as_owner([str(h.PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                                       "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream", "--checkpoint=fast",
                                       "--no-sync"]),
                       check=True, capture_output=True)

    def promote(self) -> None:
        self.psql_admin("SELECT pg_promote(true, 30)")


def multi_host_url(*servers: h.Postgres) -> str:
    hosts = ",".join("127.0.0.1" for _ in servers)
    ports = ",".join(str(s.port) for s in servers)
    return f"host={hosts} port={ports} dbname=tronch user=postgres target_session_attrs=read-write"


def create(client: Client, name: str, timeout: float = 15) -> requests.Response:
    return client.req("POST", "/api/v1/keys", json_body={"environment": "live", "name": name}, timeout=timeout)


@pytest.fixture
def cluster():
    primary = h.Postgres().start()
    standby = Standby(primary).start()
    yield primary, standby
    standby.stop()
    primary.stop()


@pytest.fixture
def redis_srv():
    srv = h.Redis().start()
    yield srv
    srv.stop()


def test_writes_resume_after_primary_fails_over(cluster, redis_srv):
    primary, standby = cluster
    d = h.Tronchd(primary, redis_srv, extra_env={
        "TRONCH_DATABASE_URL": multi_host_url(primary, standby), "TRONCH_PG_CONNECT_TIMEOUT_S": "2"}).start()
    try:
        client = Client(d)
        before = []
        for i in range(10):
            r = create(client, f"before-{i}")
            assert r.status_code == 201, r.text
            before.append(r.json()["id"])

        switch = time.monotonic()
        primary.stop()   # fast shutdown: the standby receives every committed WAL record first
        standby.promote()
        statuses = []
        deadline = switch + 60
        while True:
            r = create(client, "after")
            statuses.append(r.status_code)
            if r.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        took = time.monotonic() - switch
        print(f"\nPOST /api/v1/keys answered 201 again {took:.2f} s after the primary stopped "
              f"({len(statuses)} attempts: {statuses})")
        assert statuses[-1] == 201, statuses
        assert set(statuses) <= {201, 503}, statuses   # never a 500 in between
        after_id = r.json()["id"]

        for key_id in before + [after_id]:
            got = client.req("GET", f"/api/v1/keys/{key_id}")
            assert got.status_code == 200, (key_id, got.text)
        rows = standby.psql_admin("SELECT count(*) FROM api_keys", db="tronch").strip()
        assert int(rows) == len(before) + 1
        assert d.proc.poll() is None   # the same tronchd, never restarted
    finally:
        d.stop()


def test_read_only_server_is_503_then_recovers(postgres, redis_srv):
    """A write refused with SQLSTATE 25006 (the server turned read-only under open connections) is
    a 503 database_unavailable, not a 500, and writes work again once the server is writable, on
    the same tronchd."""
    d = h.Tronchd(postgres, redis_srv).start()
    try:
        client = Client(d)
        assert create(client, "writable").status_code == 201
        postgres.psql_admin("ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf();")
        time.sleep(0.5)   # the reload reaches every backend at its next command
        r = create(client, "refused")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        postgres.psql_admin("ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf();")
        deadline = time.monotonic() + 10
        while (r := create(client, "writable again")).status_code != 201 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 201, r.text
    finally:
        d.stop()


@pytest.fixture
def tls_postgres():
    pki = make_pki()   # the same openssl-made CA helper as the Redis TLS tests
    cert, key = pki.server_cert, pki.server_key
    pg = h.Postgres().start()
    for f in (cert, key):
        pg._chown(f)   # the server reads them as the postgres user; the key must be 0600
    key.chmod(0o600)
    pg.psql_admin(f"ALTER SYSTEM SET ssl = on; ALTER SYSTEM SET ssl_cert_file = '{cert}'; "
                  f"ALTER SYSTEM SET ssl_key_file = '{key}'; SELECT pg_reload_conf();")
    other = make_pki(ca_name="Another CA")
    yield pg, pki.ca_cert, other.ca_cert
    pg.stop()


def test_tls_verify_full(tls_postgres, redis_srv):
    pg, ca, other_ca = tls_postgres
    url = f"postgresql://postgres@localhost:{pg.port}/tronch?sslmode=verify-full&sslrootcert={ca}"
    d = h.Tronchd(pg, redis_srv, extra_env={"TRONCH_DATABASE_URL": url}).start()
    try:
        client = Client(d)
        r = create(client, "over tls")
        assert r.status_code == 201, r.text
        ssl = pg.psql_admin("SELECT bool_and(s.ssl) AND count(*) > 0 FROM pg_stat_ssl s "
                            "JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tronchd'").strip()
        assert ssl == "t"   # every tronchd connection is encrypted
    finally:
        d.stop()

    # a server whose certificate another CA signed is refused, with libpq's reason
    bad = f"host=localhost port={pg.port} dbname=tronch user=postgres sslmode=verify-full sslrootcert={other_ca}"
    r = subprocess.run([str(h.TRONCHD_BIN), "migrate"], env=dict(os.environ, TRONCH_DATABASE_URL=bad),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "certificate verify failed" in r.stdout + r.stderr, r.stdout + r.stderr


def test_connection_string_settings_are_kept(postgres, redis_srv):
    """The string's own application_name and options reach the server (tronchd adds its timeouts to
    the options instead of replacing them); a malformed string is a clear error."""
    url = (f"host=127.0.0.1 port={postgres.port} dbname=tronch user=postgres application_name=tronchd-eu1 "
           f"options='-c log_statement=all'")
    log = postgres.dir / "postgres.log"
    seen = log.stat().st_size
    d = h.Tronchd(postgres, redis_srv, extra_env={"TRONCH_DATABASE_URL": url}).start()
    try:
        assert create(Client(d), "own options").status_code == 201
        names = postgres.psql_admin("SELECT DISTINCT application_name FROM pg_stat_activity "
                                    "WHERE application_name LIKE 'tronchd%'").split()
        assert names == ["tronchd-eu1"]
        with open(log, "rb") as f:
            f.seek(seen)
            assert b"INSERT INTO api_keys" in f.read()   # log_statement=all: the string's option applied
    finally:
        d.stop()
    r = subprocess.run([str(h.TRONCHD_BIN), "migrate"], env=dict(os.environ, TRONCH_DATABASE_URL="host=x nosuchoption=1"),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "nosuchoption" in r.stdout + r.stderr, r.stdout + r.stderr
