"""Control-plane faults with real processes (issue 12): tronchd `kill -9` in the middle of creates and
rotations (after a restart every change is whole or absent: key rows, audit rows and the Redis
mirror agree), and PostgreSQL `kill -9` (tronchd answers 503 database_unavailable within a bound,
then recovers by itself once PostgreSQL is back). Each test prints its figures."""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import tronch_harness as h
from cp_support import Client, redis_record, wait_until

ENV = {"TRONCH_MIRROR_INTERVAL_MS": "200", "TRONCH_PG_CONNECT_TIMEOUT_S": "2"}


@pytest.fixture
def stack(tronchd_factory):
    pg = h.Postgres().start()
    # The harness runs PostgreSQL with synchronous_commit=off for speed; a kill -9 would then lose
    # the last commits (even the schema). Durable commits for this database, as in production.
    pg.psql_admin(f"ALTER DATABASE {pg.dbname} SET synchronous_commit = on")
    rd = h.Redis().start()
    made = []

    def tronchd(extra=None):
        d = tronchd_factory(start=False, extra_env={**ENV, **(extra or {})})
        d.postgres, d.redis = pg, rd
        made.append(d)
        return d.start()

    yield pg, rd, tronchd
    for d in made:
        d.stop()
    pg.stop()
    rd.stop()


def sql(pg, query):
    return pg.psql_admin(query, db=pg.dbname).strip()


def kill9(d):
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(timeout=10)


# Every check returns the number of rows that break it; all must be 0.
INVARIANTS = {
    "key rows without exactly one create audit row":
        "SELECT count(*) FROM api_keys k WHERE (SELECT count(*) FROM audit_log a WHERE a.key_id = k.id "
        "AND a.action = 'create') <> 1",
    "create audit rows without their key row":
        "SELECT count(*) FROM audit_log a WHERE a.action = 'create' AND NOT EXISTS "
        "(SELECT 1 FROM api_keys k WHERE k.id = a.key_id)",
    "rotate audit rows without exactly one successor key":
        "SELECT count(*) FROM audit_log a WHERE a.action = 'rotate' AND "
        "(SELECT count(*) FROM api_keys k WHERE k.rotated_from = a.key_id) <> 1",
    "successor keys without a rotate audit row for the old key":
        "SELECT count(*) FROM api_keys k WHERE k.rotated_from IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM audit_log a WHERE a.key_id = k.rotated_from AND a.action = 'rotate')",
    "rotating keys without a successor":
        "SELECT count(*) FROM api_keys o WHERE o.status = 'rotating' AND NOT EXISTS "
        "(SELECT 1 FROM api_keys n WHERE n.rotated_from = o.id)",
    "old keys still active although a successor exists":
        "SELECT count(*) FROM api_keys n JOIN api_keys o ON o.id = n.rotated_from WHERE o.status = 'active'",
    "keys whose latest audit row shows another version or status":
        "SELECT count(*) FROM api_keys k WHERE (SELECT (a.after->>'version')::bigint || (a.after->>'status') "
        "FROM audit_log a WHERE a.key_id = k.id ORDER BY a.id DESC LIMIT 1) <> k.version || k.status",
}


def broken_invariants(pg):
    return {name: n for name, q in INVARIANTS.items() if (n := int(sql(pg, q))) != 0}


def mirror_disagreements(pg, rd):
    """Keys whose Redis record is missing or differs from PostgreSQL, plus Redis records of no key."""
    rows = sql(pg, "SELECT id || ' ' || key_hash || ' ' || status FROM api_keys").splitlines()
    r = rd.client()
    bad, hashes = [], set()
    for row in rows:
        kid, digest, status = row.split()
        hashes.add(digest)
        raw = r.get("tronch:key:{" + digest + "}")
        rec = redis_record(raw) if raw else None
        if not rec or rec.get("id") != kid or rec.get("status") != status:
            bad.append((kid, status, rec and rec.get("status")))
    for name in r.scan_iter("tronch:key:*"):
        if name[len("tronch:key:{"):-1] not in hashes:
            bad.append(("orphan", name, None))
    return bad


def storm(api, base_ids, results, stop, worker):
    """Creates and rotations until `stop`; records each 201 the client saw."""
    rng = random.Random(worker)
    s = requests.Session()
    while not stop.is_set():
        try:
            if base_ids and rng.random() < 0.5:
                kid = base_ids.pop()
                r = s.post(api.d.url(f"/api/v1/keys/{kid}/rotate"), json={"grace_period_seconds": 3600},
                           headers=api.d.headers(), timeout=30)
                if r.status_code == 201:
                    results.append(("rotate", kid, r.json()["id"]))
            else:
                r = s.post(api.d.url("/api/v1/keys"), json={"environment": "live", "name": f"storm-{worker}"},
                           headers=api.d.headers(), timeout=30)
                if r.status_code == 201:
                    results.append(("create", None, r.json()["id"]))
        except requests.RequestException:
            return  # tronchd is gone


def check_acknowledged(pg, results):
    """Every change a client was told succeeded is in PostgreSQL."""
    status = dict(line.split("|") for line in sql(pg, "SELECT id, status FROM api_keys").splitlines())
    for kind, old, new in results:
        assert status.get(new) == "active", (kind, new)
        if kind == "rotate":
            assert status.get(old) == "rotating", (kind, old)


def restart_and_converge(d, pg, rd):
    t0 = time.monotonic()
    d.start()
    api = Client(d)
    wait_until(lambda: api.req("GET", "/api/v1/health", auth=False).status_code == 200, timeout=30, msg="healthy")
    wait_until(lambda: not mirror_disagreements(pg, rd), timeout=30, msg="Redis agrees with PostgreSQL")
    return time.monotonic() - t0


def test_kill9_mid_transaction_then_mid_storm(stack):
    pg, rd, start = stack
    # Room for every blocked request on its own connection, and no statement timeout in the window.
    d = start({"TRONCH_PG_POOL_SIZE": "16", "TRONCH_PG_STATEMENT_TIMEOUT_MS": "120000"})
    api = Client(d)
    base = [api.create(name=f"base-{i}")[0]["id"] for i in range(60)]

    # 1. Deterministic: audit_log locked, so every create and rotation stops inside its
    #    transaction (key row written, audit row waiting); tronchd is killed there.
    import psycopg2
    locker = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname=pg.dbname)
    cur = locker.cursor()
    cur.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")
    keys_before = int(sql(pg, "SELECT count(*) FROM api_keys"))
    inflight = 12
    pool = ThreadPoolExecutor(inflight)
    targets = base[:inflight // 2]
    del base[:inflight // 2]

    def one(i):
        try:
            if i < len(targets):
                return api.req("POST", f"/api/v1/keys/{targets[i]}/rotate", json_body={"grace_period_seconds": 3600},
                               timeout=60).status_code
            return api.req("POST", "/api/v1/keys", json_body={"environment": "live", "name": "locked"},
                           timeout=60).status_code
        except requests.RequestException:
            return "connection lost"
    futures = [pool.submit(one, i) for i in range(inflight)]
    # A transaction id means it has written (the key row, or locked the old one); most wait on the
    # audit row, a few on a mirror stripe held by another blocked request.
    cur.execute("SELECT pg_backend_pid()")
    locker_pid = cur.fetchone()[0]
    writing = lambda: int(sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  f"AND backend_xid IS NOT NULL AND pid <> {locker_pid}"))
    wait_until(lambda: writing() >= inflight, timeout=30, msg="every request inside its transaction")
    kill9(d)
    answers = [f.result(timeout=60) for f in futures]
    locker.rollback()
    locker.close()
    pool.shutdown()
    assert all(a == "connection lost" for a in answers), answers
    secs1 = restart_and_converge(d, pg, rd)
    assert broken_invariants(pg) == {}
    committed = int(sql(pg, "SELECT count(*) FROM api_keys")) - keys_before
    print(f"\ntronchd kill -9 with {inflight} creates/rotations blocked mid-transaction: {committed} keys committed "
          f"whole, {inflight - committed} rolled back whole, 0 half; Redis agreed {secs1:.1f} s after restart")

    # 2. Random: a storm of creates and rotations, tronchd killed at a random moment.
    api = Client(d)
    results: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=storm, args=(api, base, results, stop, w)) for w in range(6)]
    for t in threads:
        t.start()
    time.sleep(random.uniform(0.5, 1.5))
    kill9(d)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    secs2 = restart_and_converge(d, pg, rd)
    assert broken_invariants(pg) == {}
    check_acknowledged(pg, results)
    rotated = sum(1 for r in results if r[0] == "rotate")
    print(f"tronchd kill -9 at a random moment of a storm: {len(results)} acknowledged ({rotated} rotations), "
          f"all present; invariants hold over {sql(pg, 'SELECT count(*) FROM api_keys')} keys and "
          f"{sql(pg, 'SELECT count(*) FROM audit_log')} audit rows; Redis agreed {secs2:.1f} s after restart")


def test_postgres_kill9_gives_bounded_503_then_recovers(stack):
    pg, rd, start = stack
    d = start()
    api = Client(d)
    k, _ = api.create(name="before-crash")
    os.killpg(pg.proc.pid, signal.SIGKILL)  # the postmaster and every backend, as a crash would
    pg.proc.wait(timeout=10)
    longest, answered = 0.0, 0
    for _ in range(3):
        for method, path, body in [("GET", f"/api/v1/keys/{k['id']}", None), ("GET", "/api/v1/keys", None),
                                   ("POST", "/api/v1/keys", {"environment": "live"}),
                                   ("PATCH", f"/api/v1/keys/{k['id']}", {"name": "x"}),
                                   ("GET", "/api/v1/audit", None)]:
            t0 = time.monotonic()
            r = api.req(method, path, json_body=body, timeout=30)
            longest = max(longest, time.monotonic() - t0)
            assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable", (method, path, r.text)
            assert r.headers.get("Retry-After") == "1"
            answered += 1
    hr = api.req("GET", "/api/v1/health", auth=False, timeout=30)
    assert hr.status_code == 503 and hr.json()["checks"]["postgres"]["status"] == "error"
    assert longest < 10, f"a request took {longest:.1f} s while PostgreSQL was down"

    t0 = time.monotonic()
    pg.start()  # crash recovery
    up = time.monotonic() - t0
    wait_until(lambda: api.req("GET", f"/api/v1/keys/{k['id']}").status_code == 200, timeout=30, interval=0.1,
               msg="tronchd recovered")
    recovered = time.monotonic() - t0
    assert api.req("GET", "/api/v1/health", auth=False).status_code == 200
    assert api.req("POST", "/api/v1/keys", json_body={"environment": "live"}).status_code == 201
    assert api.req("GET", f"/api/v1/keys/{k['id']}").json()["name"] == "before-crash"  # the PATCHes never landed
    assert d.proc.poll() is None
    print(f"\nPostgreSQL kill -9: {answered} requests all 503 database_unavailable, longest {longest * 1000:.0f} ms; "
          f"PostgreSQL back in {up:.1f} s, tronchd serving {recovered:.1f} s after the restart began (no tronchd restart)")
