"""tronchd rotation (grace, immediate, If-Match, concurrency), Idempotency-Key, expiry sweep."""
from __future__ import annotations

import json
import uuid

import pytest

from cp_support import (Client, Events, assert_error, audit_rows, redis_key_name, redis_record, run_parallel,
                        wait_until)


@pytest.fixture
def d(tronchd_factory, redis_client):
    return tronchd_factory(extra_env={"TRONCH_MIRROR_INTERVAL_MS": "200"})


@pytest.fixture
def api(d):
    return Client(d)


def test_rotate_with_grace(api, redis_client, postgres):
    k, r = api.create(name="svc", scopes=["read"], limits={"rate": 9, "period_seconds": 3, "burst": 1},
                      allowed_cidrs=["10.1.0.0/16"], metadata={"m": 1})
    events = Events(redis_client)
    rr = api.req("POST", f"/api/v1/keys/{k['id']}/rotate", headers={"If-Match": r.headers["ETag"]},
                 json_body={"grace_period_seconds": 3600})
    assert rr.status_code == 201, rr.text
    new = rr.json()
    assert new["key"] != k["key"] and new["id"] != k["id"] and new["rotated_from"] == k["id"]
    for f in ("name", "owner", "environment", "scopes", "limits", "allowed_cidrs", "metadata"):
        assert new[f] == k[f], f
    prev = new["previous"]
    assert prev["id"] == k["id"] and prev["status"] == "rotating" and prev["expires_at"] is not None
    assert rr.headers["ETag"] == '"1"' and rr.headers["Location"] == f"/api/v1/keys/{new['id']}"
    old_name, new_name = redis_key_name(k["key"]), redis_key_name(new["key"])
    events.wait_for(lambda m: m.get("id") == k["id"])
    events.wait_for(lambda m: m.get("id") == new["id"])
    assert redis_record(redis_client.get(old_name))["status"] == "rotating"
    assert 3500 < redis_client.ttl(old_name) <= 3601  # drops out at the grace end (rounded up to a whole second)
    assert redis_record(redis_client.get(new_name))["status"] == "active"
    assert [x[0] for x in audit_rows(postgres, k["id"])] == ["create", "rotate"]
    assert [x[0] for x in audit_rows(postgres, new["id"])] == ["create"]
    # a second rotation of the replaced key
    assert_error(api.req("POST", f"/api/v1/keys/{k['id']}/rotate"), 409, "key_not_active")
    events.close()


def test_rotate_immediate_and_defaults(api, redis_client):
    k, _ = api.create()
    rr = api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={"grace_period_seconds": 0})
    assert rr.status_code == 201
    assert rr.json()["previous"]["status"] == "revoked"
    rec = wait_until(lambda: redis_client.get(redis_key_name(k["key"])))
    assert redis_record(rec)["status"] == "revoked"
    # no body: the default grace (one day)
    k2, _ = api.create()
    rr = api.req("POST", f"/api/v1/keys/{k2['id']}/rotate")
    assert rr.status_code == 201 and rr.json()["previous"]["status"] == "rotating"
    ttl = redis_client.ttl(redis_key_name(k2["key"]))
    assert 86000 < ttl <= 86401  # the grace end is rounded up to a whole second
    assert_error(api.req("POST", f"/api/v1/keys/{k2['id']}/rotate", json_body={"grace_period_seconds": -1}),
                 400, "invalid_field")
    k3, _ = api.create()
    assert_error(api.req("POST", f"/api/v1/keys/{k3['id']}/rotate", json_body={"grace_period_seconds": 10**9}),
                 400, "invalid_field")
    assert_error(api.req("POST", f"/api/v1/keys/{k3['id']}/rotate", json_body={"grace": 1}), 400, "unknown_field")
    assert_error(api.req("POST", f"/api/v1/keys/{k3['id']}/rotate", json_body={"grace_period_seconds": "1"}),
                 400, "invalid_field")
    assert_error(api.req("POST", f"/api/v1/keys/{uuid.uuid4()}/rotate"), 404, "key_not_found")
    assert_error(api.req("POST", "/api/v1/keys/xyz/rotate"), 400, "invalid_id")


def test_concurrent_rotation_exactly_one_wins(api, postgres):
    for _ in range(3):
        k, r = api.create()
        etag = r.headers["ETag"]
        results = run_parallel([
            lambda: api.req("POST", f"/api/v1/keys/{k['id']}/rotate", headers={"If-Match": etag}, json_body={})
            for _ in range(2)])
        statuses = sorted(x.status_code for x in results)
        assert statuses == [201, 412], [x.text for x in results]
        loser = [x for x in results if x.status_code == 412][0]
        assert loser.json()["error"]["code"] == "precondition_failed"
        with postgres.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM api_keys WHERE rotated_from = %s", (k["id"],))
            assert cur.fetchone()[0] == 1
    # without If-Match: one wins, the other finds the key no longer active
    k, _ = api.create()
    results = run_parallel([lambda: api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={}) for _ in range(2)])
    assert sorted(x.status_code for x in results) == [201, 409]


def test_idempotent_create_retry_makes_one_key(api, postgres):
    body = {"environment": "live", "name": "idem", "owner": "idem-owner"}
    h = {"Idempotency-Key": "create-" + str(uuid.uuid4())}
    r1 = api.req("POST", "/api/v1/keys", json_body=body, headers=h)
    r2 = api.req("POST", "/api/v1/keys", json_body=body, headers=h)
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()  # same key, same plaintext: the stored response replayed
    assert r2.headers.get("Idempotent-Replayed") == "true" and r2.headers["ETag"] == r1.headers["ETag"]
    # concurrent retries too
    h2 = {"Idempotency-Key": "create-" + str(uuid.uuid4())}
    res = run_parallel([lambda: api.req("POST", "/api/v1/keys", json_body=body, headers=h2) for _ in range(4)])
    assert {x.status_code for x in res} == {201} and len({x.json()["id"] for x in res}) == 1
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys WHERE owner = 'idem-owner'")
        assert cur.fetchone()[0] == 2
        # the stored response is encrypted: the plaintext key is not in the table
        cur.execute("SELECT response FROM idempotency_keys")
        blobs = [bytes(x[0]) for x in cur.fetchall()]
    assert blobs and all(r1.json()["key"].encode() not in b for b in blobs)
    # same key, different body
    r3 = api.req("POST", "/api/v1/keys", json_body={**body, "name": "other"}, headers=h)
    assert_error(r3, 422, "idempotency_key_reused")
    assert_error(api.req("POST", "/api/v1/keys", json_body=body, headers={"Idempotency-Key": "x" * 300}),
                 400, "invalid_header")


def test_idempotent_rotate_retry(api, postgres):
    k, _ = api.create()
    h = {"Idempotency-Key": "rot-" + str(uuid.uuid4())}
    r1 = api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={"grace_period_seconds": 60}, headers=h)
    r2 = api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={"grace_period_seconds": 60}, headers=h)
    assert r1.status_code == r2.status_code == 201 and r1.json()["key"] == r2.json()["key"]
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys WHERE rotated_from = %s", (k["id"],))
        assert cur.fetchone()[0] == 1
    # the same Idempotency-Key on another endpoint is a different request
    assert_error(api.req("POST", "/api/v1/keys", json_body={"environment": "live"}, headers=h), 422,
                 "idempotency_key_reused")


def test_grace_end_expires_old_key(api, redis_client, postgres):
    k, _ = api.create()
    events = Events(redis_client)
    rr = api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={"grace_period_seconds": 2})
    assert rr.status_code == 201
    new = rr.json()
    name = redis_key_name(k["key"])
    assert redis_record(redis_client.get(name))["status"] == "rotating"
    # in Postgres the sweep marks it expired (audit "expire") and publishes the change
    wait_until(lambda: api.req("GET", f"/api/v1/keys/{k['id']}").json()["status"] == "expired", timeout=8,
               msg="old key expired")
    rec = redis_client.get(name)
    assert rec is None or redis_record(rec)["status"] == "expired"
    assert [x[0] for x in audit_rows(postgres, k["id"])] == ["create", "rotate", "expire"]
    assert audit_rows(postgres, k["id"])[2][1] == "system"
    assert redis_record(redis_client.get(redis_key_name(new["key"])))["status"] == "active"
    events.wait_for(lambda m: m.get("id") == k["id"])
    events.close()


def test_expires_at_sweeps_active_key(api, redis_client):
    from datetime import datetime, timedelta, timezone
    at = (datetime.now(timezone.utc) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    k, _ = api.create(expires_at=at)
    wait_until(lambda: api.req("GET", f"/api/v1/keys/{k['id']}").json()["status"] == "expired", timeout=8)
    wait_until(lambda: redis_record(redis_client.get(redis_key_name(k["key"])) or "{}").get("status") == "expired",
               timeout=5)
