"""tronchd key lifecycle: create/get/list/patch/revoke, audit rows, Redis record + events."""
from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest

from cp_support import Client, Events, assert_error, audit_rows, redis_key_name, redis_record, wait_until

KEY_RE = re.compile(r"^tronch_sk_(live|test)_[0-9A-Za-z]{49}$")


def test_auth_required_everywhere_but_health(d, api):
    assert api.req("GET", "/api/v1/health", auth=False).status_code == 200
    for method, path in [("GET", "/api/v1/keys"), ("POST", "/api/v1/keys"), ("GET", "/api/v1/audit"),
                         ("GET", "/api/v1/metrics"), ("GET", "/api/v1/openapi.json"),
                         ("GET", f"/api/v1/keys/{uuid.uuid4()}"), ("GET", "/api/v1/nope")]:
        r = api.req(method, path, auth=False)
        assert_error(r, 401, "unauthorized")
    r = api.req("GET", "/api/v1/keys", auth=False, headers={"Authorization": "Bearer wrong-token"})
    assert_error(r, 401, "unauthorized")
    r = api.req("GET", "/api/v1/keys", auth=False, headers={"Authorization": "Basic " + d.admin_token})
    assert_error(r, 401, "unauthorized")


def test_create_returns_plaintext_once_and_mirrors(d, api, redis_client, postgres):
    events = Events(redis_client)
    body = {"environment": "live", "name": "billing", "owner": "team-a", "scopes": ["read", "write:orders"],
            "limits": {"rate": 100, "period_seconds": 60, "burst": 10}, "allowed_cidrs": ["10.0.0.0/8", "192.168.1.7"],
            "metadata": {"plan": "pro"}, "expires_at": "2099-01-01T00:00:00Z"}
    r = api.req("POST", "/api/v1/keys", json_body=body, headers={"X-Request-Id": "test-create-1"})
    assert r.status_code == 201, r.text
    k = r.json()
    assert KEY_RE.match(k["key"]) and k["key"].startswith("tronch_sk_live_")
    assert k["prefix"] == k["key"][:23]
    assert r.headers["ETag"] == '"1"' and r.headers["Location"] == f"/api/v1/keys/{k['id']}"
    assert r.headers["X-Request-Id"] == "test-create-1"
    assert "key_hash" not in k
    assert k["status"] == "active" and k["environment"] == "live" and k["owner"] == "team-a"
    assert k["limits"] == {"rate": 100, "period_seconds": 60, "burst": 10}
    assert k["allowed_cidrs"] == ["10.0.0.0/8", "192.168.1.7/32"]
    assert k["expires_at"] == "2099-01-01T00:00:00Z" and k["version"] == 1

    # GET never shows the plaintext again
    g = api.req("GET", f"/api/v1/keys/{k['id']}")
    assert g.status_code == 200 and g.headers["ETag"] == '"1"'
    assert "key" not in g.json() and g.json()["id"] == k["id"]

    # Postgres: the hash, never the key
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT key_hash, key_prefix FROM api_keys WHERE id = %s", (k["id"],))
        key_hash, prefix = cur.fetchone()
    assert key_hash == hashlib.sha256(k["key"].encode()).hexdigest() and prefix == k["prefix"]

    # Redis: the core record under the core name, and an event
    raw = wait_until(lambda: redis_client.get(redis_key_name(k["key"])), msg="redis record")
    rec = redis_record(raw)
    assert rec["id"] == k["id"] and rec["prefix"] == k["prefix"] and rec["status"] == "active"
    assert k["key"] not in raw
    assert redis_client.ttl(redis_key_name(k["key"])) == -1
    ev = events.wait_for(lambda m: m.get("id") == k["id"])
    assert ev == {"v": 1, "type": "key.changed", "key_hash": key_hash, "id": k["id"]}
    assert redis_client.exists("tronch:mirror:epoch")

    rows = audit_rows(postgres, k["id"])
    assert [r[0] for r in rows] == ["create"]
    assert rows[0][1] == "admin" and rows[0][2] == "test-create-1" and rows[0][3] is None
    assert rows[0][4]["id"] == k["id"] and "key" not in rows[0][4]
    events.close()


def test_create_minimal_and_test_environment(api):
    k, _ = api.create(environment="test")
    assert k["key"].startswith("tronch_sk_test_") and k["limits"] is None
    assert k["scopes"] == [] and k["allowed_cidrs"] == [] and k["metadata"] == {} and k["expires_at"] is None


@pytest.mark.parametrize("body,code", [
    ({}, "missing_field"),
    ({"environment": "prod"}, "invalid_field"),
    ({"environment": "live", "bogus": 1}, "unknown_field"),
    ({"environment": "live", "name": 5}, "invalid_field"),
    ({"environment": "live", "scopes": ["UPPER"]}, "invalid_field"),
    ({"environment": "live", "scopes": "read"}, "invalid_field"),
    ({"environment": "live", "limits": {"rate": 0, "period_seconds": 1}}, "invalid_field"),
    ({"environment": "live", "limits": {"rate": 1}}, "missing_field"),
    ({"environment": "live", "limits": {"rate": 1, "period_seconds": 1, "x": 1}}, "unknown_field"),
    ({"environment": "live", "limits": {"rate": "1", "period_seconds": 1}}, "invalid_field"),
    ({"environment": "live", "allowed_cidrs": ["10.0.0.1/8"]}, "invalid_field"),
    ({"environment": "live", "allowed_cidrs": ["nonsense"]}, "invalid_field"),
    ({"environment": "live", "expires_at": "2001-01-01T00:00:00Z"}, "invalid_field"),
    ({"environment": "live", "expires_at": "tomorrow"}, "invalid_field"),
    ({"environment": "live", "metadata": [1]}, "invalid_field"),
    ({"environment": "live", "scopes": ["a"] * 40}, "invalid_field"),
])
def test_create_rejects_bad_bodies(api, body, code):
    r = api.req("POST", "/api/v1/keys", json_body=body)
    assert_error(r, 400, code)


def test_list_pagination_and_filters(api):
    made = []
    for i in range(7):
        k, _ = api.create(owner="pager", environment="test" if i % 2 else "live", name=f"p{i}")
        made.append(k["id"])
    soon, _ = api.create(owner="pager2", expires_at="2099-01-01T00:00:00Z")
    seen, cursor = [], None
    while True:
        path = "/api/v1/keys?owner=pager&limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = api.req("GET", path)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["data"]) <= 3
        seen += [k["id"] for k in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))  # newest first, no duplicates, nothing missed
    r = api.req("GET", "/api/v1/keys?owner=pager&environment=test&limit=200")
    assert {k["environment"] for k in r.json()["data"]} == {"test"} and len(r.json()["data"]) == 3
    r = api.req("GET", "/api/v1/keys?status=active&owner=pager")
    assert len(r.json()["data"]) == 7
    r = api.req("GET", "/api/v1/keys?expiring_within=36500d")
    ids = [k["id"] for k in r.json()["data"]]
    assert soon["id"] in ids and made[0] not in ids
    r = api.req("GET", "/api/v1/keys?expiring_within=1h")
    assert soon["id"] not in [k["id"] for k in r.json()["data"]]

    assert_error(api.req("GET", "/api/v1/keys?limit=201"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/keys?limit=0"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/keys?limit=abc"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/keys?status=dead"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/keys?environment=prod"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/keys?expiring_within=soon"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/keys?cursor=!!!"), 400, "invalid_cursor")
    assert_error(api.req("GET", "/api/v1/keys?cursor=Zm9v"), 400, "invalid_cursor")
    assert_error(api.req("GET", "/api/v1/keys?colour=red"), 400, "unknown_parameter")


def test_get_errors(api):
    assert_error(api.req("GET", f"/api/v1/keys/{uuid.uuid4()}"), 404, "key_not_found")
    assert_error(api.req("GET", "/api/v1/keys/not-a-uuid"), 400, "invalid_id")
    assert_error(api.req("GET", "/api/v1/keys/123"), 400, "invalid_id")
    assert_error(api.req("GET", "/api/v1/nothing"), 404, "not_found")
    assert_error(api.req("GET", f"/api/v1/keys/{uuid.uuid4()}/nothing"), 404, "not_found")
    assert_error(api.req("PUT", "/api/v1/keys"), 405, "method_not_allowed")
    assert_error(api.req("POST", f"/api/v1/keys/{uuid.uuid4()}"), 405, "method_not_allowed")
    assert_error(api.req("GET", f"/api/v1/keys/{uuid.uuid4()}/rotate"), 405, "method_not_allowed")


def test_patch_with_etag_audit_and_mirror(api, redis_client, postgres):
    k, r = api.create(name="before", limits={"rate": 5, "period_seconds": 1})
    events = Events(redis_client)
    p = api.req("PATCH", f"/api/v1/keys/{k['id']}", headers={"If-Match": r.headers["ETag"]},
                json_body={"name": "after", "limits": {"rate": 50, "period_seconds": 10, "burst": 2},
                           "allowed_cidrs": ["2001:db8::/32"], "metadata": {"a": 1}, "scopes": ["x"]})
    assert p.status_code == 200, p.text
    n = p.json()
    assert p.headers["ETag"] == '"2"' and n["version"] == 2 and n["name"] == "after"
    assert n["limits"] == {"rate": 50, "period_seconds": 10, "burst": 2} and n["allowed_cidrs"] == ["2001:db8::/32"]
    events.wait_for(lambda m: m.get("id") == k["id"])
    rec = redis_record(redis_client.get(redis_key_name(k["key"])))
    assert rec["name"] == "after"
    # stale If-Match -> 412, nothing changes
    stale = api.req("PATCH", f"/api/v1/keys/{k['id']}", headers={"If-Match": '"1"'}, json_body={"name": "x"})
    assert_error(stale, 412, "precondition_failed")
    assert api.req("GET", f"/api/v1/keys/{k['id']}").json()["name"] == "after"
    # clearing limits
    c = api.req("PATCH", f"/api/v1/keys/{k['id']}", json_body={"limits": None})
    assert c.status_code == 200 and c.json()["limits"] is None
    rows = audit_rows(postgres, k["id"])
    assert [x[0] for x in rows] == ["create", "update", "update"]
    assert rows[1][3]["name"] == "before" and rows[1][4]["name"] == "after"
    # errors
    assert_error(api.req("PATCH", f"/api/v1/keys/{k['id']}", json_body={}), 400, "missing_field")
    assert_error(api.req("PATCH", f"/api/v1/keys/{k['id']}", json_body={"environment": "test"}), 400, "unknown_field")
    assert_error(api.req("PATCH", f"/api/v1/keys/{uuid.uuid4()}", json_body={"name": "x"}), 404, "key_not_found")
    events.close()


def test_revoke_idempotent_audit_mirror(api, redis_client, postgres):
    k, r = api.create()
    events = Events(redis_client)
    assert_error(api.req("DELETE", f"/api/v1/keys/{k['id']}", headers={"If-Match": '"7"'}), 412, "precondition_failed")
    d1 = api.req("DELETE", f"/api/v1/keys/{k['id']}", headers={"If-Match": r.headers["ETag"]})
    assert d1.status_code == 204 and d1.text == ""
    d2 = api.req("DELETE", f"/api/v1/keys/{k['id']}")
    assert d2.status_code == 204
    g = api.req("GET", f"/api/v1/keys/{k['id']}").json()
    assert g["status"] == "revoked" and g["revoked_at"] is not None and g["version"] == 2
    events.wait_for(lambda m: m.get("id") == k["id"])
    name = redis_key_name(k["key"])
    rec = redis_record(redis_client.get(name))
    assert rec["status"] == "revoked"
    assert 0 < redis_client.ttl(name) <= 30 * 86400  # stays so gateways answer "revoked"
    assert [x[0] for x in audit_rows(postgres, k["id"])] == ["create", "revoke"]
    assert_error(api.req("DELETE", f"/api/v1/keys/{uuid.uuid4()}"), 404, "key_not_found")
    assert_error(api.req("DELETE", "/api/v1/keys/zzz"), 400, "invalid_id")
    # a revoked key cannot be changed or rotated
    assert_error(api.req("PATCH", f"/api/v1/keys/{k['id']}", json_body={"name": "x"}), 409, "key_not_active")
    assert_error(api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={}), 409, "key_not_active")
    events.close()


@pytest.mark.parametrize("via", ["create", "rotate"])
def test_a_revoke_racing_the_change_lands_last_in_redis(d, redis_client, via):
    """A create or a rotation writes Redis from the rows its own statements returned, without
    reading them back, under the keys' mirror locks taken before the COMMIT. A revoke that finds
    the new key through the list the moment it commits must still be the last write in Redis:
    the gateway answers "revoked"."""
    import threading
    maker, revoker = Client(d), Client(d)
    made, revoked, done = [], set(), threading.Event()

    def is_target(k):  # the new keys only: for rotations, not the keys being rotated
        return k["name"] == f"race-{via}" and (via == "create" or k["rotated_from"] is not None)

    def revoke_what_appears():
        while not done.is_set() or len(revoked) < len(made):
            page = revoker.req("GET", "/api/v1/keys?status=active&limit=20").json()["data"]
            for k in page:
                if is_target(k) and k["id"] not in revoked:
                    assert revoker.req("DELETE", f"/api/v1/keys/{k['id']}").status_code == 204
                    revoked.add(k["id"])

    def make():
        k = maker.create(name=f"race-{via}")[0]
        if via == "create":
            return k
        r = maker.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={"grace_period_seconds": 60})
        assert r.status_code == 201, r.text
        return r.json()

    t = threading.Thread(target=revoke_what_appears)
    t.start()
    try:
        for _ in range(30):
            made.append(make())
    finally:
        done.set()
        t.join(timeout=60)
    assert not t.is_alive() and revoked == {k["id"] for k in made}
    for k in made:
        rec = redis_record(redis_client.get(redis_key_name(k["key"])))
        assert rec["status"] == "revoked", (k["id"], rec)


def test_audit_endpoint(api):
    k, _ = api.create()
    api.req("PATCH", f"/api/v1/keys/{k['id']}", json_body={"name": "n2"}, headers={"X-Request-Id": "audit-req"})
    r = api.req("GET", f"/api/v1/audit?key_id={k['id']}")
    assert r.status_code == 200
    data = r.json()["data"]
    assert [e["action"] for e in data] == ["update", "create"]
    assert data[0]["request_id"] == "audit-req" and data[0]["after"]["name"] == "n2" and data[0]["before"]["name"] == "k"
    r = api.req("GET", "/api/v1/audit?action=create&limit=1")
    assert len(r.json()["data"]) == 1 and r.json()["next_cursor"]
    r2 = api.req("GET", f"/api/v1/audit?action=create&limit=1&cursor={r.json()['next_cursor']}")
    assert r2.status_code == 200 and r2.json()["data"][0]["id"] < r.json()["data"][0]["id"]
    assert_error(api.req("GET", "/api/v1/audit?action=explode"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/audit?key_id=nope"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/audit?cursor=%%%"), 400, "invalid_cursor")
