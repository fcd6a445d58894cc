"""Hostile REST (issue 12): a table of malformed or hostile requests across every endpoint. Every
one must be answered 4xx with a JSON error body (never a 5xx, never a 2xx), and afterwards nothing
may have been created or changed (row counts, the keys' versions, Redis records)."""
from __future__ import annotations

import json
import uuid

import pytest

from cp_support import Client
from tronch_harness import raw_http

HTTP_CASES = []  # (label, method, path, headers, body bytes or None, expected status, expected code or None)


def case(label, method, path, status, code=None, headers=None, body=None):
    HTTP_CASES.append((label, method, path, headers or {}, body, status, code))


def json_case(label, method, path, body, status, code=None, extra=None):
    b = body if isinstance(body, bytes) else body.encode()
    case(label, method, path, status, code, {"Content-Type": "application/json", **(extra or {})}, b)


K = "{K}"  # an active key's id, filled in at run time
R = "{R}"  # a revoked key's id
KEYS = "/api/v1/keys"
ID_ROUTES = [("GET", f"{KEYS}/{{id}}"), ("PATCH", f"{KEYS}/{{id}}"), ("DELETE", f"{KEYS}/{{id}}"),
             ("POST", f"{KEYS}/{{id}}/rotate"), ("GET", f"{KEYS}/{{id}}/usage")]
ALL_AUTH_ROUTES = [("GET", KEYS), ("POST", KEYS), ("GET", "/api/v1/audit"), ("GET", "/api/v1/metrics"),
                   ("GET", "/api/v1/openapi.json")] + [(m, p.replace("{id}", K)) for m, p in ID_ROUTES]

# ---- authentication ------------------------------------------------------------------------
for m, p in ALL_AUTH_ROUTES:
    case(f"no auth {m} {p}", m, p, 401, "unauthorized", {"Authorization": None})
for label, value in [("empty", ""), ("scheme only", "Bearer"), ("scheme and space", "Bearer "),
                     ("wrong token", "Bearer wrong"), ("basic", "Basic {TOKEN}"), ("token only", "{TOKEN}"),
                     ("double space", "Bearer  {TOKEN}"), ("trailing char", "Bearer {TOKEN}x"),
                     ("prefix of token", "Bearer {TOKEN_PREFIX}"), ("token upper", "Bearer {TOKEN_UPPER}"),
                     ("tab separator", "Bearer\t{TOKEN}"),
                     ("latin1 byte", "Bearer {TOKEN}\xe9"),
                     ("two tokens", "Bearer {TOKEN}, Bearer {TOKEN}"), ("token scheme", "Token {TOKEN}")]:
    case(f"auth {label}", "GET", KEYS, 401, "unauthorized", {"Authorization": value})
case("auth nul in token", "GET", KEYS, None, None, {"Authorization": "Bearer {TOKEN}\x00"})
case("token in query", "GET", KEYS + "?access_token={TOKEN}", 401, "unauthorized", {"Authorization": None})
case("token in x-api-key", "GET", KEYS, 401, "unauthorized", {"Authorization": None, "X-API-Key": "{TOKEN}"})

# ---- bodies: bad JSON ---------------------------------------------------------------------
for label, body in [("truncated", '{"environment":"live"'), ("trailing comma", '{"environment":"live",}'),
                    ("single quotes", "{'environment':'live'}"), ("bare word", "live"), ("array", "[]"),
                    ("number", "42"), ("string", '"x"'), ("null", "null"), ("two objects", "{}{}"),
                    ("comment", '{"environment":"live"/*c*/}'), ("NaN", '{"environment":"live","metadata":{"x":NaN}}'),
                    ("unquoted key", "{environment:\"live\"}"), ("lone surrogate", '{"environment":"live","name":"\\ud800"}'),
                    ("bad escape", '{"environment":"live","name":"\\x41"}'), ("raw newline in string", '{"environment":"li\nve"}'),
                    ("duplicate member", '{"environment":"live","environment":"test"}'),
                    ("deep nesting", '{"environment":"live","metadata":' + '[' * 3000 + ']' * 3000 + '}'),
                    ("only whitespace", "   ")]:
    json_case(f"create bad json: {label}", "POST", KEYS, body, 400, "invalid_json")
json_case("create invalid utf-8", "POST", KEYS, b'{"environment":"live","name":"\xff\xfe"}', 400, "invalid_json")
json_case("create latin-1 body", "POST", KEYS, '{"environment":"live","name":"caf\xe9"}'.encode("latin-1"), 400,
          "invalid_json")
json_case("create utf-16 body", "POST", KEYS, '{"environment":"live"}'.encode("utf-16"), 400, "invalid_json")
json_case("patch bad json", "PATCH", f"{KEYS}/{K}", "{", 400, "invalid_json")
json_case("patch array", "PATCH", f"{KEYS}/{K}", "[]", 400, "invalid_json")
json_case("patch duplicate", "PATCH", f"{KEYS}/{K}", '{"name":"a","name":"b"}', 400, "invalid_json")
json_case("rotate bad json", "POST", f"{KEYS}/{K}/rotate", "{oops", 400, "invalid_json")
json_case("rotate array", "POST", f"{KEYS}/{K}/rotate", "[1]", 400, "invalid_json")

# ---- bodies: wrong types and values ------------------------------------------------------
CREATE_BAD = [
    ("environment missing", {}), ("environment number", {"environment": 1}), ("environment null", {"environment": None}),
    ("environment upper", {"environment": "LIVE"}), ("environment prod", {"environment": "prod"}),
    ("name number", {"name": 1}), ("name null", {"name": None}), ("name array", {"name": ["a"]}),
    ("name too long", {"name": "n" * 201}), ("name control", {"name": "a\x01"}), ("name bidi", {"name": "a\u202eb"}),
    ("name c1", {"name": "a\u0085"}), ("name isolate", {"name": "\u2067x"}),
    ("owner object", {"owner": {}}), ("owner too long", {"owner": "o" * 201}), ("owner nul", {"owner": "a\x00"}),
    ("owner del", {"owner": "a\x7f"}),
    ("scopes string", {"scopes": "read"}), ("scopes numbers", {"scopes": [1]}), ("scopes upper", {"scopes": ["READ"]}),
    ("scopes empty entry", {"scopes": [""]}), ("scopes too many", {"scopes": [f"s{i}" for i in range(33)]}),
    ("scopes too long", {"scopes": ["s" * 65]}),
    ("limits string", {"limits": "x"}), ("limits empty", {"limits": {}}), ("limits zero rate", {"limits": {"rate": 0, "period_seconds": 1}}),
    ("limits negative", {"limits": {"rate": -1, "period_seconds": 1}}), ("limits float", {"limits": {"rate": 1.5, "period_seconds": 1}}),
    ("limits string rate", {"limits": {"rate": "1", "period_seconds": 1}}),
    ("limits extra", {"limits": {"rate": 1, "period_seconds": 1, "x": 1}}),
    ("limits huge rate", {"limits": {"rate": 1000001, "period_seconds": 1}}),
    ("limits huge period", {"limits": {"rate": 1, "period_seconds": 86401}}),
    ("limits negative burst", {"limits": {"rate": 1, "period_seconds": 1, "burst": -1}}),
    ("limits bool", {"limits": {"rate": True, "period_seconds": 1}}),
    ("expires number", {"expires_at": 123}), ("expires words", {"expires_at": "tomorrow"}),
    ("expires past", {"expires_at": "2020-01-01T00:00:00Z"}), ("expires feb 30", {"expires_at": "2030-02-30T00:00:00Z"}),
    ("expires space", {"expires_at": "2030-01-01 00:00:00Z"}), ("expires hour 24", {"expires_at": "2030-01-01T24:00:00Z"}),
    ("expires no zone", {"expires_at": "2030-01-01T00:00:00"}), ("expires year 10000", {"expires_at": "9999-12-31T23:00:00-02:00"}),
    ("expires 5-digit year", {"expires_at": "10000-01-01T00:00:00Z"}),
    ("cidrs string", {"allowed_cidrs": "10.0.0.0/8"}), ("cidrs bad prefix", {"allowed_cidrs": ["10.0.0.0/33"]}),
    ("cidrs words", {"allowed_cidrs": ["localhost"]}), ("cidrs number", {"allowed_cidrs": [1]}),
    ("cidrs too many", {"allowed_cidrs": [f"10.0.{i}.0/24" for i in range(17)]}),
    ("metadata array", {"metadata": []}), ("metadata string", {"metadata": "x"}), ("metadata null", {"metadata": None}),
    ("metadata too big", {"metadata": {f"k{i}": "v" * 400 for i in range(25)}}),
    ("metadata nul key", {"metadata": {"a\x00": 1}}), ("metadata nul value", {"metadata": {"a": "\x00"}}),
    ("metadata too deep", {"metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}),
    ("metadata too many keys", {"metadata": {f"k{i}": 1 for i in range(51)}}),
    ("metadata long key", {"metadata": {"k" * 41: 1}}), ("metadata long string", {"metadata": {"k": "v" * 501}}),
    ("unknown field", {"extra": True}), ("id given", {"id": str(uuid.uuid4())}), ("key given", {"key": "tronch_sk_live_x"}),
    ("status given", {"status": "revoked"}), ("version given", {"version": 7}),
]
for label, fields in CREATE_BAD:
    body = {"environment": "live", **fields} if "environment" not in label else fields
    json_case(f"create {label}", "POST", KEYS, json.dumps(body), 400)
for label, number in [("beyond 2^53", "9007199254740993"), ("u64 max", "18446744073709551615"),
                      ("overflowing literal", "1" * 30), ("1e400", "1e400")]:
    json_case(f"create number {label}", "POST", KEYS, '{"environment":"live","metadata":{"n":' + number + '}}', 400,
              "invalid_json" if "e" in number else "invalid_field")
PATCH_BAD = [("empty", {}), ("environment", {"environment": "test"}), ("owner", {"owner": "x"}),
             ("expires_at", {"expires_at": "2030-01-01T00:00:00Z"}), ("name number", {"name": 5}),
             ("name bidi", {"name": "\u202ax"}), ("scopes null", {"scopes": None}), ("limits zero", {"limits": {"rate": 0, "period_seconds": 1}}),
             ("cidrs bad", {"allowed_cidrs": ["300.0.0.1"]}), ("metadata nul", {"metadata": {"\x00": "x"}}),
             ("metadata deep", {"metadata": {"a": {"b": {"c": {"d": {"e": {}}}}}}}), ("version", {"version": 2}),
             ("status", {"status": "revoked"})]
for label, fields in PATCH_BAD:
    json_case(f"patch {label}", "PATCH", f"{KEYS}/{K}", json.dumps(fields), 400)
for label, fields in [("negative grace", {"grace_period_seconds": -1}), ("huge grace", {"grace_period_seconds": 10 ** 12}),
                      ("string grace", {"grace_period_seconds": "60"}), ("float grace", {"grace_period_seconds": 1.5}),
                      ("unknown", {"grace": 1}), ("null grace", {"grace_period_seconds": None})]:
    json_case(f"rotate {label}", "POST", f"{KEYS}/{K}/rotate", json.dumps(fields), 400)

# ---- content types and sizes ---------------------------------------------------------------
for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", "text/json",
              "multipart/form-data; boundary=x", "application/json-patch+json"):
    case(f"create content-type {ctype}", "POST", KEYS, 415, "unsupported_media_type", {"Content-Type": ctype},
         b'{"environment":"live"}')
case("create no content-type", "POST", KEYS, 415, "unsupported_media_type", {}, b'{"environment":"live"}')
case("patch text/plain", "PATCH", f"{KEYS}/{K}", 415, "unsupported_media_type", {"Content-Type": "text/plain"},
     b'{"name":"x"}')
json_case("create empty body", "POST", KEYS, b"", 400, "invalid_json")
json_case("patch empty body", "PATCH", f"{KEYS}/{K}", b"", 400, "invalid_json")
json_case("create over 64 KiB", "POST", KEYS, json.dumps({"environment": "live", "name": "x" * 70000}), 413,
          "body_too_large")
json_case("patch over 64 KiB", "PATCH", f"{KEYS}/{K}", json.dumps({"name": "x" * 70000}), 413, "body_too_large")
json_case("rotate over 64 KiB", "POST", f"{KEYS}/{K}/rotate", " " * 70000, 413, "body_too_large")

# ---- ids --------------------------------------------------------------------------------------
BAD_IDS = ["not-a-uuid", "1234", "x", "0" * 32, "{" + "0" * 8 + "-0000-0000-0000-" + "0" * 12 + "}",
           "g" * 8 + "-0000-0000-0000-" + "0" * 12, "00000000-0000-0000-0000-0000000000000", "%00", "a" * 5000,
           "00000000_0000_0000_0000_000000000000", "%2e%2e"]
for bad_id in BAD_IDS:
    for m, p in ID_ROUTES:
        case(f"bad id {bad_id[:20]} {m} {p}", m, p.replace("{id}", bad_id), 400, "invalid_id",
             {"Content-Type": "application/json"}, b'{"name":"x"}' if m == "PATCH" else None)
MISSING = "00000000-0000-4000-8000-000000000000"
for m, p in ID_ROUTES:
    case(f"unknown id {m} {p}", m, p.replace("{id}", MISSING), 404, "key_not_found",
         {"Content-Type": "application/json"}, b'{"name":"x"}' if m == "PATCH" else None)

# ---- query parameters and cursors -------------------------------------------------------------
for q, code in [("limit=0", "invalid_parameter"), ("limit=201", "invalid_parameter"), ("limit=-1", "invalid_parameter"),
                ("limit=abc", "invalid_parameter"), ("limit=1.5", "invalid_parameter"), ("limit=", "invalid_parameter"),
                ("limit=99999999999", "invalid_parameter"), ("limit=1&limit=2", "invalid_parameter"),
                ("status=bogus", "invalid_parameter"), ("status=ACTIVE", "invalid_parameter"),
                ("environment=prod", "invalid_parameter"), ("expiring_within=0", "invalid_parameter"),
                ("expiring_within=abc", "invalid_parameter"), ("expiring_within=-1h", "invalid_parameter"),
                ("expiring_within=99999999999d", "invalid_parameter"), ("owner=%FF%FE", "invalid_parameter"),
                ("owner=%00", "invalid_parameter"), ("owner=a%0Ab", "invalid_parameter"),
                ("nope=1", "unknown_parameter"), ("key_id=" + MISSING, "unknown_parameter"),
                ("cursor=x", "invalid_cursor"), ("cursor=!!!!", "invalid_cursor"), ("cursor=" + "A" * 4000, "invalid_cursor"),
                ("cursor=AAAA", "invalid_cursor"), ("cursor=MTIzfG5vdC1hLXV1aWQ", "invalid_cursor"),
                ("cursor=%FF", "invalid_parameter")]:
    case(f"list ?{q[:40]}", "GET", f"{KEYS}?{q}", 400, code)
for q, code in [("limit=0", "invalid_parameter"), ("action=delete", "invalid_parameter"), ("action=", "invalid_parameter"),
                ("key_id=nope", "invalid_parameter"), ("key_id=%00", "invalid_parameter"), ("status=active", "unknown_parameter"),
                ("cursor=x", "invalid_cursor"), ("cursor=-1", "invalid_cursor"), ("cursor=" + "_" * 300, "invalid_cursor"),
                ("action=%FF", "invalid_parameter")]:
    case(f"audit ?{q[:40]}", "GET", f"/api/v1/audit?{q}", 400, code)
for q in ("since=yesterday", "until=2020-13-01T00:00:00Z", "since=2030-01-01T00:00:00Z&until=2029-01-01T00:00:00Z",
          "since=9999-12-31T23:00:00-05:00", "x=1", "since=%00"):
    case(f"usage ?{q[:40]}", "GET", f"{KEYS}/{K}/usage?{q}", 400)
for m, p in [("GET", f"{KEYS}/{K}?x=1"), ("DELETE", f"{KEYS}/{K}?force=1"), ("GET", "/api/v1/metrics?x=1")]:
    case(f"unknown param {m} {p}", m, p, 400, "unknown_parameter")

# ---- methods and routes -----------------------------------------------------------------------
for m, p in [("PUT", KEYS), ("DELETE", KEYS), ("PATCH", KEYS), ("POST", f"{KEYS}/{K}"), ("PUT", f"{KEYS}/{K}"),
             ("GET", f"{KEYS}/{K}/rotate"), ("DELETE", f"{KEYS}/{K}/rotate"), ("POST", f"{KEYS}/{K}/usage"),
             ("POST", "/api/v1/audit"), ("DELETE", "/api/v1/audit"), ("POST", "/api/v1/health"),
             ("POST", "/api/v1/metrics"), ("PUT", "/api/v1/openapi.json"), ("TRACE", KEYS), ("FOO", KEYS),
             ("OPTIONS", KEYS)]:
    case(f"method {m} {p}", m, p, 405, "method_not_allowed")
for p in ("/api/v1/nope", "/api/v2/keys", "/api/v1", "/", "/api/v1/keys/" + K + "/nope", "/api/v1/keys/" + K + "/usage/x",
          "/api/v1/audit/1"):
    case(f"route {p}", "GET", p, 404, "not_found")

# ---- If-Match ---------------------------------------------------------------------------------
for label, value in [("wrong version", '"999"'), ("weak tag", 'W/"1"'), ("unquoted", "1"), ("empty", ""),
                     ("garbage", "garbage"), ("list without match", '"5", "6"'), ("zero", '"0"')]:
    json_case(f"patch if-match {label}", "PATCH", f"{KEYS}/{K}", '{"name":"x"}', 412, "precondition_failed",
              {"If-Match": value})
json_case("rotate if-match wrong", "POST", f"{KEYS}/{K}/rotate", "{}", 412, "precondition_failed", {"If-Match": '"42"'})
case("delete if-match wrong", "DELETE", f"{KEYS}/{K}", 412, "precondition_failed", {"If-Match": '"42"'})
json_case("patch revoked key", "PATCH", f"{KEYS}/{R}", '{"name":"x"}', 409, "key_not_active")
json_case("rotate revoked key", "POST", f"{KEYS}/{R}/rotate", "{}", 409, "key_not_active")

# ---- Idempotency-Key --------------------------------------------------------------------------
for label, value in [("empty", ""), ("too long", "i" * 256), ("space inside", "a b"), ("latin-1", "cl\xe9"),
                     ("tab", "a\tb")]:
    json_case(f"create idempotency-key {label}", "POST", KEYS, '{"environment":"live"}', 400, "invalid_header",
              {"Idempotency-Key": value})
    json_case(f"rotate idempotency-key {label}", "POST", f"{KEYS}/{K}/rotate", "{}", 400, "invalid_header",
              {"Idempotency-Key": value})
json_case("create idempotency-key control char", "POST", KEYS, '{"environment":"live"}', None, None,
          {"Idempotency-Key": "a\x01b"})
json_case("idempotency-key reused with another body", "POST", KEYS, '{"environment":"test"}', 422,
          "idempotency_key_reused", {"Idempotency-Key": "hostile-used"})
json_case("idempotency-key reused on rotate", "POST", f"{KEYS}/{K}/rotate", "{}", 422, "idempotency_key_reused",
          {"Idempotency-Key": "hostile-used"})

# ---- raw HTTP: what requests cannot send ------------------------------------------------------
RAW_CASES = [
    ("no host", b"GET /api/v1/keys HTTP/1.1\r\n{AUTH}\r\n"),
    ("two hosts", b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\nHost: b\r\n{AUTH}\r\n"),
    ("two hosts on create", b"POST /api/v1/keys HTTP/1.1\r\nHost: a\r\nHost: a\r\n{AUTH}Content-Type: application/json\r\n"
                            b"Content-Length: 22\r\n\r\n{\"environment\":\"live\"}"),
    ("target without slash", b"GET api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}\r\n"),
    ("absolute target", b"GET http://a/api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}\r\n"),
    ("asterisk target", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n{AUTH}\r\n"),
    ("space in header name", b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n{AUTH}\r\n"),
    ("nul in header value", b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n{AUTH}\r\n"),
    ("control in header value", b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n{AUTH}\r\n"),
    ("header without colon", b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\nNoColon\r\n{AUTH}\r\n"),
    ("huge header", b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 20000 + b"\r\n{AUTH}\r\n"),
    ("bad version", b"GET /api/v1/keys HTTP/9.9\r\nHost: a\r\n{AUTH}\r\n"),
    ("bad content-length", b"POST /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}Content-Length: abc\r\n\r\n"),
    ("negative content-length", b"POST /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}Content-Length: -5\r\n\r\n"),
    ("two content-lengths", b"POST /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}Content-Type: application/json\r\n"
                            b"Content-Length: 22\r\nContent-Length: 5\r\n\r\n{\"environment\":\"live\"}"),
    ("bad chunk size", b"POST /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}Content-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    ("chunked over 64 KiB", b"POST /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}Content-Type: application/json\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n11170\r\n" + b" " * 70000 + b"\r\n0\r\n\r\n"),
    ("content-length over 64 KiB", b"POST /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}Content-Type: application/json\r\n"
                                   b"Content-Length: 1000000\r\n\r\n"),
    ("bad %-escape in query", b"GET /api/v1/keys?owner=%zz HTTP/1.1\r\nHost: a\r\n{AUTH}\r\n"),
    ("truncated %-escape in query", b"GET /api/v1/keys?owner=%4 HTTP/1.1\r\nHost: a\r\n{AUTH}\r\n"),
    ("raw byte in target", b"GET /api/v1/keys?owner=\xff HTTP/1.1\r\nHost: a\r\n{AUTH}\r\n"),
    ("lowercase method", b"get /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}\r\n"),
    ("two auth headers", b"GET /api/v1/keys HTTP/1.1\r\nHost: a\r\n{AUTH}{AUTH}\r\n"),
    ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
]


def snapshot(postgres, redis_client):
    q = ("SELECT (SELECT count(*) FROM api_keys), (SELECT count(*) FROM audit_log), "
         "(SELECT count(*) FROM idempotency_keys), (SELECT string_agg(id || ':' || version || ':' || status || ':' || name, ',' "
         "ORDER BY id) FROM api_keys)")
    rows = postgres.psql_admin(q, db=postgres.dbname).strip()
    redis_records = sorted((k, redis_client.get(k)) for k in redis_client.scan_iter("tronch:key:*"))
    return rows, redis_records


def fill(text: str, ctx: dict) -> str:
    for k, v in ctx.items():
        text = text.replace("{" + k + "}", v)
    return text


def test_hostile_table(tronchd_factory, redis_client, postgres):
    d = tronchd_factory(extra_env={"TRONCH_MIRROR_INTERVAL_MS": "600000", "TRONCH_USAGE_INTERVAL_MS": "600000"})
    api = Client(d)
    active, _ = api.create(name="hostile-target", metadata={"m": 1})
    revoked, _ = api.create(name="hostile-revoked")
    assert api.req("DELETE", f"/api/v1/keys/{revoked['id']}").status_code == 204
    used = api.req("POST", KEYS, json_body={"environment": "live", "name": "idem"}, headers={"Idempotency-Key": "hostile-used"})
    assert used.status_code == 201
    token = d.admin_token
    ctx = {"K": active["id"], "R": revoked["id"], "TOKEN": token, "TOKEN_PREFIX": token[:-1], "TOKEN_UPPER": token.upper()}
    before = snapshot(postgres, redis_client)
    assert len(HTTP_CASES) + len(RAW_CASES) >= 150

    failures = []
    statuses: dict[int, int] = {}
    for label, method, path, headers, body, status, code in HTTP_CASES:
        h = dict(d.headers())
        for name, value in headers.items():
            if value is None:
                h.pop(name, None)
            else:
                h[name] = fill(value, ctx).encode("latin-1")
        try:
            r = api.s.request(method, d.url(fill(path, ctx)), data=body, headers=h, timeout=20)
        except Exception as e:  # a client-side refusal is a bug in the table, not in tronchd
            failures.append(f"{label}: client error {e!r}")
            continue
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        problem = check(r.status_code, r.headers.get("Content-Type", ""), r.content, status, code)
        if problem:
            failures.append(f"{label}: {problem}")

    auth_line = f"Authorization: Bearer {token}\r\n".encode()
    for label, data in RAW_CASES:
        st, headers, body = raw_http(d.port, data.replace(b"{AUTH}", auth_line), timeout=15)
        statuses[st] = statuses.get(st, 0) + 1
        problem = check(st, headers.get("content-type", ""), body, None, None)
        if problem:
            failures.append(f"raw {label}: {problem}")

    print(f"\nhostile REST: {len(HTTP_CASES) + len(RAW_CASES)} requests, statuses {dict(sorted(statuses.items()))}, "
          f"{len(failures)} failures")
    assert not failures, "\n".join(failures)
    assert d.proc.poll() is None, "tronchd died"
    assert snapshot(postgres, redis_client) == before, "a hostile request changed something"
    assert api.req("GET", f"/api/v1/keys/{active['id']}").json()["version"] == 1


def check(status, content_type, body, want_status, want_code):
    if not 400 <= status < 500:
        return f"status {status} (want a 4xx): {body[:200]!r}"
    if want_status is not None and status != want_status:
        return f"status {status}, want {want_status}: {body[:200]!r}"
    if content_type.split(";")[0].strip() != "application/json":
        return f"content type {content_type!r}"
    try:
        err = json.loads(body)["error"]
    except Exception:
        return f"not a JSON error body: {body[:200]!r}"
    if not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
        return f"error body without code/message: {err}"
    if want_code is not None and err["code"] != want_code:
        return f"code {err['code']}, want {want_code}: {err['message']}"
    return None
