"""tronchd hardening findings (issue 12): each case was a 500, or accepted when it should not be,
before its fix. Every refusal is a 4xx with the usual JSON error body."""
from __future__ import annotations

import json
import uuid

import pytest

import tronch_harness as h
from cp_support import Client, assert_error

JSON = {"Content-Type": "application/json"}


def post_raw(api, path, text, method="POST"):
    return api.req(method, path, data=text.encode(), headers=JSON)


def key_count(postgres):
    return int(postgres.psql_admin("SELECT count(*) FROM api_keys", db=postgres.dbname).strip())


@pytest.mark.parametrize("metadata", [
    '{"a\\u0000b": "x"}', '{"a": "x\\u0000"}', '{"a": {"b": ["\\u0000"]}}'])
def test_nul_in_metadata_is_400_on_create_and_patch(api, postgres, metadata):
    before = key_count(postgres)
    r = post_raw(api, "/api/v1/keys", '{"environment":"live","metadata":' + metadata + '}')
    assert_error(r, 400, "invalid_field")
    assert key_count(postgres) == before
    k, _ = api.create(metadata={"ok": 1})
    assert_error(post_raw(api, f"/api/v1/keys/{k['id']}", '{"metadata":' + metadata + '}', "PATCH"), 400,
                 "invalid_field")
    assert api.req("GET", f"/api/v1/keys/{k['id']}").json()["metadata"] == {"ok": 1}


@pytest.mark.parametrize("query", ["owner=%FF%FE", "owner=%C0%AF", "status=%ED%A0%80", "%FF=1", "owner=a%00b",
                                   "owner=%00", "owner=%1F", "owner=%zz", "owner=%4"])
def test_bad_query_text_is_400(d, query):
    import http.client  # sends the target as given (requests re-quotes a bad %-escape)
    for path in ("/api/v1/keys?" + query, "/api/v1/audit?" + query.replace("owner", "action")):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        conn.request("GET", path, headers=d.headers())
        r = conn.getresponse()
        body = json.loads(r.read())
        conn.close()
        assert r.status == 400 and body["error"]["code"] == "invalid_parameter", (path, r.status, body)


def test_utf8_owner_filter_still_works(api):
    k, _ = api.create(owner="équipe-ß")
    r = api.req("GET", "/api/v1/keys?owner=%C3%A9quipe-%C3%9F")
    assert r.status_code == 200 and [x["id"] for x in r.json()["data"]] == [k["id"]]


@pytest.mark.parametrize("when", ["9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59.999-00:01",
                                  "10000-01-01T00:00:00Z", "+10000-01-01T00:00:00Z"])
def test_expires_at_past_year_9999_is_400(api, when):
    assert_error(api.req("POST", "/api/v1/keys", json_body={"environment": "live", "expires_at": when}), 400,
                 "invalid_field")


def test_latest_expires_at_is_echoed_as_valid_rfc3339(api):
    k, _ = api.create(expires_at="9999-12-31T23:59:59Z")
    assert k["expires_at"] == "9999-12-31T23:59:59Z"
    k2, _ = api.create(expires_at="9999-12-31T18:00:00-05:00")
    assert k2["expires_at"] == "9999-12-31T23:00:00Z"
    r = api.req("GET", f"/api/v1/keys/{k['id']}/usage?since=2020-01-01T00:00:00Z&until=9999-12-31T23:00:00-05:00")
    assert_error(r, 400, "invalid_parameter")


def nested(depth):
    v = "leaf"
    for _ in range(depth):  # `depth` objects, the metadata object included
        v = {"n": v}
    return v


@pytest.mark.parametrize("metadata,ok", [
    (nested(5), True), (nested(6), False),
    ({f"k{i}": i for i in range(50)}, True), ({f"k{i}": i for i in range(51)}, False),
    ({"k" * 40: 1}, True), ({"k" * 41: 1}, False), ({"": 1}, False),
    ({"s": "v" * 500}, True), ({"s": "v" * 501}, False),
    ({"a": list(range(50))}, True), ({"a": list(range(51))}, False),
])
def test_metadata_bounds(api, metadata, ok):
    r = api.req("POST", "/api/v1/keys", json_body={"environment": "live", "metadata": metadata})
    if ok:
        assert r.status_code == 201, r.text
        assert r.json()["metadata"] == metadata
    else:
        assert_error(r, 400, "invalid_field")


def test_metadata_thousands_deep_is_refused_without_harm(api, d):
    deep = '{"environment":"live","metadata":' + '{"a":' * 5000 + '1' + '}' * 5000 + '}'
    assert_error(post_raw(api, "/api/v1/keys", deep), 400, "invalid_json")
    deep_arr = '{"environment":"live","metadata":{"a":' + '[' * 20000 + ']' * 20000 + '}}'
    assert_error(post_raw(api, "/api/v1/keys", deep_arr), 400, "invalid_json")
    assert d.proc.poll() is None and api.req("GET", "/api/v1/keys?limit=1").status_code == 200


@pytest.mark.parametrize("number", ["9007199254740993", "-9007199254740993", "18446744073709551615",
                                    "123456789012345678901234567890", "1e400", "-1e400"])
def test_numbers_a_double_cannot_hold_are_400(api, postgres, number):
    before = key_count(postgres)
    # 1e400 overflows a double: the JSON parser itself refuses it (invalid_json)
    assert_error(post_raw(api, "/api/v1/keys", '{"environment":"live","metadata":{"n":' + number + '}}'), 400,
                 "invalid_json" if "e" in number else "invalid_field")
    assert key_count(postgres) == before


def test_exact_integers_are_kept(api):
    k, _ = api.create(metadata={"max": 9007199254740992, "min": -9007199254740992, "f": 0.5})
    assert k["metadata"] == {"max": 9007199254740992, "min": -9007199254740992, "f": 0.5}


BAD_CHARS = ["\u0000", "\u0009", "\u001f", "\u007f", "\u0080", "\u009f", "\u202a", "\u202e", "\u2066", "\u2069"]


@pytest.mark.parametrize("ch", BAD_CHARS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARS])
def test_control_and_bidi_characters_in_name_and_owner_are_400(api, ch):
    for field in ("name", "owner"):
        r = api.req("POST", "/api/v1/keys", json_body={"environment": "live", field: f"a{ch}b"})
        assert_error(r, 400, "invalid_field")
    k, _ = api.create()
    assert_error(api.req("PATCH", f"/api/v1/keys/{k['id']}", json_body={"name": f"x{ch}"}), 400, "invalid_field")


def test_ordinary_unicode_names_are_fine(api):
    for name in ("naïve café", "日本語キー", "emoji 🚀", "a\u00a0b", "\u200fmark"):
        assert api.create(name=name)[0]["name"] == name


@pytest.mark.parametrize("body", [
    '{"environment":"live","environment":"test"}',
    '{"environment":"live","name":"a","name":"b"}',
    '{"environment":"live","metadata":{"x":1,"x":2}}',
    '{"environment":"live","limits":{"rate":1,"rate":2,"period_seconds":1}}',
])
def test_duplicate_member_names_are_400(api, postgres, body):
    before = key_count(postgres)
    assert_error(post_raw(api, "/api/v1/keys", body), 400, "invalid_json")
    assert key_count(postgres) == before


def test_duplicate_member_names_in_patch_and_rotate(api):
    k, _ = api.create()
    assert_error(post_raw(api, f"/api/v1/keys/{k['id']}", '{"name":"a","name":"b"}', "PATCH"), 400, "invalid_json")
    assert_error(post_raw(api, f"/api/v1/keys/{k['id']}/rotate",
                          '{"grace_period_seconds":1,"grace_period_seconds":0}'), 400, "invalid_json")
    assert api.req("GET", f"/api/v1/keys/{k['id']}").json()["status"] == "active"


def raw(d, data: bytes) -> tuple[int, dict, bytes]:
    """Sends bytes as they are; returns (status, headers, body) of the first response."""
    return h.raw_http(d.port, data, timeout=10)


def assert_raw_error(result, status=400, code="bad_request"):
    st, headers, body = result
    assert st == status, (st, body)
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code


def test_request_target_must_start_with_slash(d):
    auth = f"Authorization: Bearer {d.admin_token}\r\n".encode()
    for target in (b"api/v1/keys", b"*", b"http://127.0.0.1/api/v1/keys", b"?x=1"):
        assert_raw_error(raw(d, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"))
    st, _, _ = raw(d, b"GET /api/v1/keys HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    assert st == 200


def test_host_must_be_given_once(d):
    auth = f"Authorization: Bearer {d.admin_token}\r\n".encode()
    assert_raw_error(raw(d, b"GET /api/v1/keys HTTP/1.1\r\n" + auth + b"\r\n"))
    assert_raw_error(raw(d, b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + auth + b"\r\n"))
    assert_raw_error(raw(d, b"GET /api/v1/health HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"))
    assert raw(d, b"GET /api/v1/health HTTP/1.0\r\n\r\n")[0] == 200  # HTTP/1.0 may omit Host
    assert raw(d, b"GET /api/v1/health HTTP/1.1\r\nHost: a\r\n\r\n")[0] == 200


def test_uppercase_uuids_are_accepted_as_ids(api):
    k, _ = api.create()
    up = k["id"].upper()
    g = api.req("GET", f"/api/v1/keys/{up}")
    assert g.status_code == 200 and g.json()["id"] == k["id"]
    assert api.req("GET", f"/api/v1/keys/{up}/usage").json()["key_id"] == k["id"]
    p = api.req("PATCH", f"/api/v1/keys/{up}", json_body={"name": "renamed"})
    assert p.status_code == 200 and p.json()["name"] == "renamed"
    a = api.req("GET", f"/api/v1/audit?key_id={up}")
    assert a.status_code == 200 and [e["action"] for e in a.json()["data"]] == ["update", "create"]
    r = api.req("POST", f"/api/v1/keys/{up}/rotate", json_body={"grace_period_seconds": 0})
    assert r.status_code == 201 and r.json()["previous"]["id"] == k["id"]
    assert api.req("DELETE", f"/api/v1/keys/{r.json()['id'].upper()}").status_code == 204


def test_no_store_and_nosniff_headers(api):
    h = {"Idempotency-Key": str(uuid.uuid4())}
    created = api.req("POST", "/api/v1/keys", json_body={"environment": "live"}, headers=h)
    replay = api.req("POST", "/api/v1/keys", json_body={"environment": "live"}, headers=h)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    kid = created.json()["id"]
    rotated = api.req("POST", f"/api/v1/keys/{kid}/rotate", json_body={})
    for r in (created, replay, rotated):
        assert "key" in r.json()
        assert r.headers["Cache-Control"] == "no-store"
    others = [api.req("GET", f"/api/v1/keys/{kid}"), api.req("GET", "/api/v1/keys"), api.req("GET", "/api/v1/audit"),
              api.req("GET", "/api/v1/health", auth=False), api.req("GET", "/api/v1/metrics"),
              api.req("GET", "/api/v1/openapi.json"), api.req("GET", "/api/v1/nope"),
              api.req("GET", "/api/v1/keys", auth=False), api.req("DELETE", f"/api/v1/keys/{kid}")]
    for r in [created, replay, rotated] + others:
        assert r.headers["X-Content-Type-Options"] == "nosniff", (r.url, r.headers)


def test_health_does_not_echo_driver_errors(tronchd_factory, postgres, redis_server):
    srv = h.Redis().start()
    d = tronchd_factory(start=False, extra_env={"TRONCH_PG_CONNECT_TIMEOUT_S": "2"})
    d.redis = srv
    d.start()
    try:
        srv.stop()
        postgres.stop()
        r = Client(d).req("GET", "/api/v1/health", auth=False, timeout=30)
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["postgres"] == {"status": "error", "code": "database_unavailable",
                                      "message": "PostgreSQL is unreachable"}
        assert checks["redis"] == {"status": "error", "code": "redis_unavailable", "message": "Redis is unreachable"}
        for leak in ("127.0.0.1", str(postgres.port), str(srv.port), "connection", "refused", "server"):
            assert leak not in r.text, leak
        assert "health: postgres check failed" in d.log_text()
    finally:
        postgres.start()
        srv.stop()
