"""tronchd under bad input and failures: 4xx never 5xx, Redis flushed -> rebuilt, Postgres
stopped -> 503 then recovery, and the plaintext key found nowhere."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid

import pytest

import tronch_harness as h
from cp_support import Client, Events, assert_error, redis_key_name, redis_record, wait_until


@pytest.fixture
def d(tronchd_factory, redis_client):
    return tronchd_factory(extra_env={"TRONCH_MIRROR_INTERVAL_MS": "200", "TRONCH_PG_CONNECT_TIMEOUT_S": "2"})


@pytest.fixture
def api(d):
    return Client(d)


def test_bad_input_is_4xx_never_5xx(api):
    k, _ = api.create()
    kid = k["id"]
    cases = [
        ("POST", "/api/v1/keys", "{not json", "application/json", 400, "invalid_json"),
        ("POST", "/api/v1/keys", "[1,2]", "application/json", 400, "invalid_json"),
        ("POST", "/api/v1/keys", "", "application/json", 400, "invalid_json"),
        ("POST", "/api/v1/keys", '{"environment":"live"}', "text/plain", 415, "unsupported_media_type"),
        ("POST", "/api/v1/keys", '{"environment":"live"}', None, 415, "unsupported_media_type"),
        ("POST", "/api/v1/keys", '{"environment":"live","extra":true}', "application/json", 400, "unknown_field"),
        ("POST", "/api/v1/keys", '{"environment":["live"]}', "application/json", 400, "invalid_field"),
        ("POST", "/api/v1/keys", '{"environment":"live","name":"\\u0000"}', "application/json", 400, "invalid_field"),
        ("POST", "/api/v1/keys", '{"environment":"live","limits":{"rate":1e3,"period_seconds":1}}', "application/json", 400, "invalid_field"),
        ("POST", "/api/v1/keys", '{"environment":"live","limits":{"rate":99999999999999999999999,"period_seconds":1}}', "application/json", 400, "invalid_field"),
        ("PATCH", f"/api/v1/keys/{kid}", "{", "application/json", 400, "invalid_json"),
        ("PATCH", f"/api/v1/keys/{kid}", '{"name":"x"}', "application/xml", 415, "unsupported_media_type"),
        ("PATCH", f"/api/v1/keys/{kid}", '{"version":3}', "application/json", 400, "unknown_field"),
        ("POST", f"/api/v1/keys/{kid}/rotate", "{oops", "application/json", 400, "invalid_json"),
        ("POST", f"/api/v1/keys/{kid}/rotate", '{"grace_period_seconds":1}', "text/plain", 415, "unsupported_media_type"),
        ("GET", "/api/v1/keys/%00", None, None, 400, "invalid_id"),
        ("GET", "/api/v1/keys/" + "a" * 5000, None, None, 400, "invalid_id"),
        ("GET", f"/api/v1/keys/{kid}?x=1", None, None, 400, "unknown_parameter"),
        ("GET", "/api/v1/keys?limit=1&limit=2", None, None, 400, "invalid_parameter"),
        ("GET", f"/api/v1/keys/{kid}/usage?since=yesterday", None, None, 400, "invalid_parameter"),
    ]
    for method, path, body, ctype, status, code in cases:
        headers = {"Content-Type": ctype} if ctype else {}
        r = api.req(method, path, data=body.encode() if body is not None else None, headers=headers)
        assert r.status_code == status and r.json()["error"]["code"] == code, (method, path, body, r.status_code, r.text)
    # over 64 KiB: 413 before the body is read
    big = json.dumps({"environment": "live", "metadata": {"x": "y" * 70000}})
    assert_error(api.req("POST", "/api/v1/keys", data=big, headers={"Content-Type": "application/json"}), 413,
                 "body_too_large")
    # metadata over its own limit but under the body limit
    mid = json.dumps({"environment": "live", "metadata": {"x": "y" * 10000}})
    assert_error(api.req("POST", "/api/v1/keys", data=mid, headers={"Content-Type": "application/json"}), 400,
                 "invalid_field")
    # the server is still fine
    assert api.req("GET", f"/api/v1/keys/{kid}").status_code == 200


def test_garbage_http_gets_400(d):
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 400"), data


def test_redis_flush_rebuilds_mirror(api, redis_client):
    keys = [api.create()[0] for _ in range(3)]
    revoked, _ = api.create()
    assert api.req("DELETE", f"/api/v1/keys/{revoked['id']}").status_code == 204
    wait_until(lambda: redis_client.exists("tronch:mirror:epoch"))
    events = Events(redis_client)
    redis_client.flushall()
    wait_until(lambda: redis_client.exists("tronch:mirror:epoch"), timeout=5, msg="epoch back")
    for k in keys:
        assert redis_record(redis_client.get(redis_key_name(k["key"])))["status"] == "active"
    assert redis_record(redis_client.get(redis_key_name(revoked["key"])))["status"] == "revoked"
    events.wait_for(lambda m: m.get("type") == "mirror.rebuilt")
    events.close()


def test_redis_down_then_back(postgres, tronchd_factory):
    srv = h.Redis().start()
    d = tronchd_factory(start=False, extra_env={"TRONCH_MIRROR_INTERVAL_MS": "200"})
    d.redis = srv
    d.start()
    api = Client(d)
    srv.stop()
    # writes still succeed (Postgres is the truth); health says Redis is down
    k, _ = api.create()
    hr = api.req("GET", "/api/v1/health", auth=False)
    assert hr.status_code == 503 and hr.json()["checks"]["redis"]["status"] == "error"
    assert hr.json()["checks"]["postgres"]["status"] == "ok"
    srv.start()  # same port, empty
    c = srv.client()
    wait_until(lambda: c.get(redis_key_name(k["key"])), timeout=8, msg="key re-mirrored after Redis came back")
    assert c.exists("tronch:mirror:epoch")
    assert api.req("GET", "/api/v1/health", auth=False).status_code == 200
    m = api.req("GET", "/api/v1/metrics").text
    errors = [l for l in m.splitlines() if l.startswith("tronchd_redis_errors_total ")]
    assert errors and int(errors[0].split()[1]) > 0
    srv.stop()


def test_postgres_down_gives_503_then_recovers(api, postgres):
    k, _ = api.create()
    postgres.stop()
    try:
        for method, path, body in [("GET", f"/api/v1/keys/{k['id']}", None), ("GET", "/api/v1/keys", None),
                                   ("POST", "/api/v1/keys", {"environment": "live"}),
                                   ("DELETE", f"/api/v1/keys/{k['id']}", None)]:
            r = api.req(method, path, json_body=body, timeout=20)
            assert_error(r, 503, "database_unavailable")
        hr = api.req("GET", "/api/v1/health", auth=False, timeout=20)
        assert hr.status_code == 503 and hr.json()["checks"]["postgres"]["status"] == "error"
        # bad input is still 4xx without the database
        assert_error(api.req("POST", "/api/v1/keys", json_body={"environment": "nope"}), 400, "invalid_field")
    finally:
        postgres.start()
    wait_until(lambda: api.req("GET", f"/api/v1/keys/{k['id']}").status_code == 200, timeout=15, msg="recovery")
    assert api.req("GET", "/api/v1/health", auth=False).status_code == 200
    assert api.req("POST", "/api/v1/keys", json_body={"environment": "live"}).status_code == 201


def test_plaintext_key_found_nowhere(d, api, postgres, redis_client):
    created = [api.create(name="secret-check")[0] for _ in range(2)]
    h = {"Idempotency-Key": str(uuid.uuid4())}
    r = api.req("POST", "/api/v1/keys", json_body={"environment": "test"}, headers=h)
    api.req("POST", "/api/v1/keys", json_body={"environment": "test"}, headers=h)
    created.append(r.json())
    rot = api.req("POST", f"/api/v1/keys/{created[0]['id']}/rotate", json_body={}).json()
    created.append(rot)
    api.req("DELETE", f"/api/v1/keys/{created[1]['id']}")
    plaintexts = [c["key"] for c in created]
    # tronchd's log
    log = d.log_text()
    assert log and all(p not in log for p in plaintexts)
    # every Postgres table (pg_dump, text)
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "-d",
                           postgres.dbname, "--data-only"], capture_output=True, text=True, check=True).stdout
    assert "api_keys" in dump and all(p not in dump for p in plaintexts)
    # the body part alone must not appear either
    assert all(p[15:] not in dump and p[15:] not in log for p in plaintexts)
    # every Redis value
    blob = []
    for name in redis_client.scan_iter("*"):
        t = redis_client.type(name)
        if t == "string":
            blob.append(redis_client.get(name))
        elif t == "hash":
            blob.append(json.dumps(redis_client.hgetall(name)))
        blob.append(name)
    text = "\n".join(blob)
    assert "tronch:key:" in text and all(p not in text for p in plaintexts)


def test_a_failing_audit_row_undoes_the_change(api, postgres):
    """The audit row is pipelined after the change (one round trip with the COMMIT); if the server
    refuses it, the whole transaction is rolled back, the client gets a 500 without details, and
    the pooled connection keeps working."""
    postgres.psql_admin("""
        CREATE FUNCTION refuse_marked_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.request_id = 'audit-must-fail' THEN RAISE EXCEPTION 'audit refused by test trigger'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_marked_audit BEFORE INSERT ON audit_log
          FOR EACH ROW EXECUTE FUNCTION refuse_marked_audit();
    """, db=postgres.dbname)
    try:
        count = "SELECT count(*) FROM api_keys WHERE name = 'audit-fails'"
        for _ in range(3):  # more than once: the connection must come back clean every time
            r = api.req("POST", "/api/v1/keys", json_body={"environment": "live", "name": "audit-fails"},
                        headers={"X-Request-Id": "audit-must-fail"})
            assert_error(r, 500, "internal_error")
            assert "audit refused" not in r.text
        assert postgres.psql_admin(count, db=postgres.dbname).strip() == "0"
        k, _ = api.create(name="audit-ok")
        k2 = api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={"grace_period_seconds": 60},
                     headers={"X-Request-Id": "audit-must-fail"})
        assert_error(k2, 500, "internal_error")
        assert api.req("GET", f"/api/v1/keys/{k['id']}").json()["status"] == "active"
        assert postgres.psql_admin(f"SELECT count(*) FROM api_keys WHERE rotated_from = '{k['id']}'",
                                   db=postgres.dbname).strip() == "0"
    finally:
        postgres.psql_admin("DROP TRIGGER refuse_marked_audit ON audit_log; DROP FUNCTION refuse_marked_audit();",
                            db=postgres.dbname)
    assert api.create(name="after")[0]["status"] == "active"


def test_first_requests_after_a_postgres_restart_succeed(tronchd_factory, postgres):
    """Every pooled connection goes stale when Postgres restarts. The first request to meet one
    retries once on a fresh connection (the pool drops the other stale ones), so clients see no
    503 once Postgres is back. Background work is slowed down so that the requests, not the
    mirror sweep, are the first to meet the stale connections."""
    from concurrent.futures import ThreadPoolExecutor
    api = Client(tronchd_factory(extra_env={"TRONCH_MIRROR_INTERVAL_MS": "600000",
                                            "TRONCH_USAGE_INTERVAL_MS": "600000"}))
    with ThreadPoolExecutor(8) as pool:  # concurrent, so the pool holds several idle connections
        assert all(r[1].status_code == 201 for r in pool.map(lambda _: api.create(name="warm"), range(16)))
    kid = api.create(name="before-restart")[0]["id"]
    postgres.stop()
    postgres.start()
    r = api.req("POST", "/api/v1/keys", json_body={"environment": "live", "name": "after-restart"})
    assert r.status_code == 201, r.text
    assert api.req("GET", f"/api/v1/keys/{kid}").status_code == 200
    assert api.req("GET", "/api/v1/keys?limit=5").status_code == 200


def test_statements_are_parsed_once_per_connection(tronchd_factory, postgres):
    """tronchd prepares each statement on a connection's first use and then only binds and
    executes it by name (parse and plan were a third of Postgres's CPU per create). Seen from the
    server's own statement log: every insert after the first ones runs a named statement, and no
    more names are used for it than tronchd has connections."""
    pool = 3
    api = Client(tronchd_factory(extra_env={"TRONCH_PG_POOL_SIZE": str(pool)}))
    log = postgres.dir / "postgres.log"
    postgres.psql_admin("ALTER SYSTEM SET log_statement = 'all'; SELECT pg_reload_conf();")
    try:
        start = log.stat().st_size
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(6) as workers:
            created = list(workers.map(lambda i: api.create(name=f"prepared-{i}")[0], range(30)))
        assert len({k["id"] for k in created}) == 30
        time.sleep(0.5)  # the logger process writes asynchronously
        lines = log.read_text(errors="replace")[start:].splitlines()
    finally:
        postgres.psql_admin("ALTER SYSTEM RESET log_statement; SELECT pg_reload_conf();")
    inserts = [l for l in lines if "INSERT INTO api_keys" in l and "execute" in l]
    assert len(inserts) == 30, inserts[:3]
    names = {re.search(r"execute ([^:]+):", l).group(1) for l in inserts}
    assert "<unnamed>" not in names, names
    assert 1 <= len(names) <= pool, names
    # the audit rows, pipelined with the COMMIT, run prepared too
    assert not [l for l in lines if "execute <unnamed>" in l and "audit_log" in l]
    assert api.req("GET", f"/api/v1/keys/{created[0]['id']}").json()["name"] == created[0]["name"]


def test_a_migration_that_changes_a_returned_type_costs_no_error(tronchd_factory, postgres):
    """A prepared statement keeps its result types: after a migration alters a column it returns,
    the server refuses it on the connections that prepared it ("cached plan must not change result
    type"). tronchd drops such a connection and runs the work again on a fresh one, once: a read
    (outside a transaction) and a create (inside one) both succeed."""
    api = Client(tronchd_factory(extra_env={"TRONCH_PG_POOL_SIZE": "1", "TRONCH_MIRROR_INTERVAL_MS": "600000",
                                            "TRONCH_USAGE_INTERVAL_MS": "600000"}))
    alter = "ALTER TABLE api_keys ALTER COLUMN name TYPE {}"
    k = api.create(name="before")[0]
    assert api.req("GET", f"/api/v1/keys/{k['id']}").status_code == 200   # the read is prepared too
    try:
        postgres.psql_admin(alter.format("varchar(300)"), db=postgres.dbname)
        g = api.req("GET", f"/api/v1/keys/{k['id']}")
        assert g.status_code == 200 and g.json()["name"] == "before", g.text
        assert api.create(name="between")[1].status_code == 201   # prepares the insert anew
    finally:
        postgres.psql_admin(alter.format("text"), db=postgres.dbname)
    r = api.req("POST", "/api/v1/keys", json_body={"environment": "live", "name": "after"})
    assert r.status_code == 201, r.text
    assert api.req("GET", f"/api/v1/keys/{r.json()['id']}").json()["name"] == "after"
