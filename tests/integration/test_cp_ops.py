"""tronchd operations: health, metrics, OpenAPI (validated by a real validator), usage
roll-up, migrations, configuration file, the CLI."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

import tronch_harness as h
from cp_support import Client, assert_error, wait_until

TRONCHCTL = h.BUILD_DIR / "control_plane" / "tronchctl"


@pytest.fixture
def d(tronchd_factory, redis_client):
    return tronchd_factory(extra_env={"TRONCH_USAGE_INTERVAL_MS": "200"})


@pytest.fixture
def api(d):
    return Client(d)


def test_health(api):
    r = api.req("GET", "/api/v1/health", auth=False)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["postgres"]["status"] == "ok" and body["checks"]["redis"]["status"] == "ok"
    assert_error(api.req("POST", "/api/v1/health", auth=False), 405, "method_not_allowed")


def test_metrics(api):
    api.create()
    api.req("GET", "/api/v1/keys/nope")
    r = api.req("GET", "/api/v1/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    t = r.text
    assert 'tronchd_http_requests_total{route="/api/v1/keys",method="POST",status="201"} 1' in t
    assert 'tronchd_http_requests_total{route="/api/v1/keys/{id}",method="GET",status="400"} 1' in t
    assert re.search(r'tronchd_http_request_duration_seconds_bucket\{route="/api/v1/keys",le="\+Inf"\} \d+', t)
    default_pool = min(16, max(2, 2 * (os.cpu_count() or 1)))  # tronchd's default: 2 x cores, 2..16
    assert "tronchd_pg_pool_connections{state=\"in_use\"}" in t and f"tronchd_pg_pool_size {default_pool}\n" in t
    assert "tronchd_redis_errors_total 0" in t
    assert re.search(r'tronchd_keys\{status="active"\} [1-9]', t)
    for line in t.splitlines():  # every sample line parses as name{labels} value
        if line and not line.startswith("#"):
            assert re.match(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+-]+$', line), line


def _validator_command(path: str) -> list[str]:
    """An interpreter that has openapi_spec_validator, else an npm validator. Never skip."""
    candidates = [shutil.which("python3"), shutil.which("python")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3")))
    candidates += sorted(glob.glob("/root/.pyenv/versions/*/bin/python3"))
    for py in filter(None, candidates):
        ok = subprocess.run([py, "-c", "import openapi_spec_validator"], capture_output=True)
        if ok.returncode == 0:
            return [py, "-c", "import json,sys; from openapi_spec_validator import validate_spec;"
                              " validate_spec(json.load(open(sys.argv[1]))); print('valid')", path]
    npx = shutil.which("npx")
    assert npx, "no OpenAPI validator: neither a python with openapi_spec_validator nor npx"
    return [npx, "--yes", "@apidevtools/swagger-cli@4.0.4", "validate", path]


def test_openapi_document_is_valid_and_complete(api, tmp_path):
    r = api.req("GET", "/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    path = tmp_path / "openapi.json"
    path.write_text(r.text)
    out = subprocess.run(_validator_command(str(path)), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    # every route the server serves is documented (and every documented one is served)
    served = {(m, p) for m, p in [
        ("get", "/api/v1/health"), ("get", "/api/v1/metrics"), ("get", "/api/v1/openapi.json"),
        ("post", "/api/v1/keys"), ("get", "/api/v1/keys"), ("get", "/api/v1/keys/{id}"),
        ("patch", "/api/v1/keys/{id}"), ("delete", "/api/v1/keys/{id}"), ("post", "/api/v1/keys/{id}/rotate"),
        ("get", "/api/v1/keys/{id}/usage"), ("get", "/api/v1/audit"), ("get", "/api/v1/records-key")]}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops if m in ("get", "post", "patch", "delete", "put")}
    assert served == documented
    # ... and each one answers something other than not_found
    for m, p in served:
        rr = api.req(m.upper(), p.replace("{id}", str(uuid.uuid4())),
                     json_body={} if m in ("post", "patch") else None)
        assert not (rr.status_code == 404 and rr.json()["error"]["code"] == "not_found"), (m, p)
    # every error code the server uses is in the Error schema
    codes = set(doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    for c in ["unauthorized", "invalid_json", "unknown_field", "invalid_field", "invalid_id", "key_not_found",
              "precondition_failed", "key_not_active", "idempotency_key_reused", "body_too_large",
              "unsupported_media_type", "database_unavailable", "not_found", "method_not_allowed"]:
        assert c in codes


def test_usage_rollup(api, redis_client, postgres):
    k, _ = api.create()
    other, _ = api.create()
    now = int(time.time())
    bucket = now - now % 60
    unknown = str(uuid.uuid4())
    redis_client.hset("tronch:usage:pending", mapping={
        f"{k['id']}|{bucket}|r": 5, f"{k['id']}|{bucket}|e": 2, f"{k['id']}|{bucket - 60}|r": 1,
        f"{k['id']}|0|l": now, f"{unknown}|{bucket}|r": 9, "garbage": 1})
    # a leftover of an interrupted round is finished too
    redis_client.hset("tronch:usage:draining:leftover", mapping={f"{other['id']}|{bucket}|r": 3})
    wait_until(lambda: not redis_client.exists("tronch:usage:pending") and
               not redis_client.exists("tronch:usage:draining:leftover"), timeout=10, msg="drained")

    def totals():
        u = api.req("GET", f"/api/v1/keys/{k['id']}/usage").json()
        return u if u["totals"]["requests"] == 6 else None
    u = wait_until(totals, timeout=10, msg="usage rolled up")
    assert u["totals"] == {"requests": 6, "errors": 2} and len(u["data"]) == 2
    assert u["last_used_at"] is not None
    assert api.req("GET", f"/api/v1/keys/{k['id']}").json()["last_used_at"] is not None
    # counts add up over rounds
    redis_client.hincrby("tronch:usage:pending", f"{k['id']}|{bucket}|r", 4)
    wait_until(lambda: api.req("GET", f"/api/v1/keys/{k['id']}/usage").json()["totals"]["requests"] == 10, timeout=10)
    ou = api.req("GET", f"/api/v1/keys/{other['id']}/usage").json()
    assert ou["totals"]["requests"] == 3
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM key_usage WHERE key_id = %s", (unknown,))
        assert cur.fetchone()[0] == 0
    assert_error(api.req("GET", f"/api/v1/keys/{uuid.uuid4()}/usage"), 404, "key_not_found")
    assert_error(api.req("GET", f"/api/v1/keys/{k['id']}/usage?since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z"),
                 400, "invalid_parameter")


def test_migrate_command_and_schema(d, postgres):
    env = d.env()
    r = subprocess.run([str(h.TRONCHD_BIN), "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        rows = cur.fetchall()
        assert rows[0] == (1, "0001_init.sql")
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'api_keys_key_hash'")
        assert "UNIQUE" in cur.fetchone()[0]


def test_config_file_and_env_override(postgres, redis_server, tmp_path):
    port = h.free_port()
    cfg = tmp_path / "tronchd.json"
    cfg.write_text(json.dumps({"database_url": postgres.url, "redis_addr": f"127.0.0.1:{redis_server.port}",
                               "listen": "127.0.0.1:1", "admin_token": "from-file-token-123456"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRONCH_")}
    env["TRONCH_LISTEN"] = f"127.0.0.1:{port}"  # env overrides the file
    log = open(tmp_path / "log", "wb")
    p = subprocess.Popen([str(h.TRONCHD_BIN), "serve", "--config", str(cfg)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        h.wait_for_port(port, proc=p)
        import requests
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/keys", headers={"Authorization": "Bearer from-file-token-123456"})
        assert r.status_code == 200
    finally:
        p.terminate()
        p.wait(10)
    bad = tmp_path / "bad.json"
    bad.write_text('{"no_such_setting": 1}')
    r = subprocess.run([str(h.TRONCHD_BIN), "serve", "--config", str(bad)], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "unknown setting" in r.stdout + r.stderr


def _ctl(d, *args, check=True):
    env = dict(os.environ, TRONCH_API_URL=f"http://127.0.0.1:{d.port}", TRONCH_ADMIN_TOKEN=d.admin_token)
    r = subprocess.run([str(TRONCHCTL), *args], env=env, capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_cli(d):
    out = _ctl(d, "--json", "keys", "create", "--env", "test", "--name", "cli-key", "--owner", "ops",
               "--scope", "read", "--rate", "10", "--period", "60", "--cidr", "10.0.0.0/8")
    k = json.loads(out.stdout)
    assert k["key"].startswith("tronch_sk_test_") and k["limits"]["rate"] == 10 and k["scopes"] == ["read"]
    table = _ctl(d, "keys", "list", "--owner", "ops").stdout
    assert "PREFIX" in table and k["prefix"] in table and k["key"] not in table
    assert k["id"] in _ctl(d, "keys", "get", k["id"]).stdout
    rot = json.loads(_ctl(d, "--json", "keys", "rotate", k["id"], "--grace", "60").stdout)
    assert rot["previous"]["status"] == "rotating"
    human = _ctl(d, "keys", "create", "--env", "live").stdout
    assert "shown once" in human
    assert "BUCKET" in _ctl(d, "keys", "usage", rot["id"]).stdout
    assert "revoked" in _ctl(d, "keys", "revoke", rot["id"]).stdout
    listed = json.loads(_ctl(d, "--json", "keys", "list", "--all", "--limit", "1").stdout)
    assert len(listed["data"]) >= 3
    bad = _ctl(d, "keys", "get", "nope", check=False)
    assert bad.returncode == 1 and "invalid_id" in bad.stderr
    # `tronchd keys ...` is the same CLI
    env = dict(os.environ, TRONCH_API_URL=f"http://127.0.0.1:{d.port}", TRONCH_ADMIN_TOKEN=d.admin_token)
    r = subprocess.run([str(h.TRONCHD_BIN), "keys", "get", k["id"], "--json"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == k["id"]
    # wrong token
    env["TRONCH_ADMIN_TOKEN"] = "wrong"
    r = subprocess.run([str(TRONCHCTL), "keys", "list"], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "unauthorized" in r.stderr
