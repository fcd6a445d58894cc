"""Issue 21 (operator experience): one test per finding in tronchd and tronchctl, each failing
before its fix. The runbook walk against a ./run.sh stack is test_ops_runbook.py."""
from __future__ import annotations

import datetime
import http.server
import json
import os
import secrets
import signal
import subprocess
import threading
import time

import tronch_harness as h
from cp_support import Client, assert_error, wait_until

TRONCHCTL = h.BUILD_DIR / "control_plane" / "tronchctl"


def log_lines(d) -> list[str]:
    return [line for line in d.log_text().splitlines() if line.strip()]


def messages(d) -> list[str]:
    return [json.loads(line).get("msg", "") for line in log_lines(d)]


# ---- idempotency across a server-secret change -------------------------------------------

def test_secret_change_never_turns_a_retry_into_a_second_key(tronchd_factory, redis_client, postgres):
    """Found: after TRONCH_SECRET_KEY changed, a retried create with the same Idempotency-Key made a
    second key (201, new id). Now: 409 until the previous secret is configured, then the replay."""
    a, b = secrets.token_hex(32), secrets.token_hex(32)
    owner = "idem-secret-" + secrets.token_hex(4)
    body = {"environment": "live", "name": "retried", "owner": owner}
    idem = {"Idempotency-Key": "retry-" + secrets.token_hex(8)}

    d1 = tronchd_factory(extra_env={"TRONCH_SECRET_KEY": a})
    first = Client(d1).req("POST", "/api/v1/keys", json_body=body, headers=idem)
    assert first.status_code == 201, first.text
    d1.stop()

    d2 = tronchd_factory(extra_env={"TRONCH_SECRET_KEY": b})   # rotated, previous not given
    retry = Client(d2).req("POST", "/api/v1/keys", json_body=body, headers=idem)
    assert_error(retry, 409, "idempotency_secret_unknown")
    assert "TRONCH_SECRET_KEY_PREVIOUS" in retry.json()["error"]["message"]
    assert "Idempotency-Key requests are refused" in d2.log_text()
    # a request without Idempotency-Key is not affected
    assert Client(d2).req("POST", "/api/v1/keys", json_body={"environment": "test"}).status_code == 201
    d2.stop()

    d3 = tronchd_factory(extra_env={"TRONCH_SECRET_KEY": b, "TRONCH_SECRET_KEY_PREVIOUS": a})
    replay = Client(d3).req("POST", "/api/v1/keys", json_body=body, headers=idem)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true", replay.text
    assert replay.json()["id"] == first.json()["id"] and replay.json()["key"] == first.json()["key"]
    # new records are sealed under the current secret
    fresh = {"Idempotency-Key": "fresh-" + secrets.token_hex(8)}
    r1 = Client(d3).req("POST", "/api/v1/keys", json_body=body, headers=fresh)
    r2 = Client(d3).req("POST", "/api/v1/keys", json_body=body, headers=fresh)
    assert r1.status_code == r2.status_code == 201 and r1.json()["id"] == r2.json()["id"]
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys WHERE owner = %s", (owner,))
        assert cur.fetchone()[0] == 2   # the first create and the fresh one: no duplicate
        # records under secrets the next tests' tronchd does not hold would make it refuse (as above)
        cur.execute("DELETE FROM idempotency_keys")


def test_unreadable_stored_response_fails_loudly(d, api, postgres):
    """A stored response that cannot be opened: 409 idempotency_unreadable, never a new key."""
    owner = "unreadable-" + secrets.token_hex(4)
    body = {"environment": "live", "owner": owner}
    idem = {"Idempotency-Key": "damaged-" + secrets.token_hex(8)}
    assert api.req("POST", "/api/v1/keys", json_body=body, headers=idem).status_code == 201
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE idempotency_keys SET response = set_byte(response, 20, get_byte(response, 20) # 1)")
    assert_error(api.req("POST", "/api/v1/keys", json_body=body, headers=idem), 409, "idempotency_unreadable")
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys WHERE owner = %s", (owner,))
        assert cur.fetchone()[0] == 1


# ---- readiness ----------------------------------------------------------------------------

def test_health_is_not_ready_until_the_mirror_is_complete(tronchd_factory, redis_client):
    """Found: health said 200 while the mirror was still being rebuilt. Now 503 mirror_incomplete."""
    d = tronchd_factory(extra_env={"TRONCH_MIRROR_INTERVAL_MS": "600000"})   # no rebuild by the loop
    api = Client(d)
    ok = api.req("GET", "/api/v1/health", auth=False)
    assert ok.status_code == 200 and ok.json()["checks"]["redis"]["mirror_complete"] is True
    redis_client.delete("tronch:mirror:epoch")   # Redis answers, but the gateway cannot trust a miss
    r = api.req("GET", "/api/v1/health", auth=False)
    assert r.status_code == 503, r.text
    assert r.json()["checks"]["redis"] == {**r.json()["checks"]["redis"], "status": "error",
                                           "code": "mirror_incomplete", "mirror_complete": False}


# ---- prefix search --------------------------------------------------------------------------

def test_prefix_filter(api, postgres):
    live, _ = api.create(environment="live")
    test, _ = api.create(environment="test")
    got = api.req("GET", f"/api/v1/keys?prefix={live['prefix']}").json()["data"]
    assert [k["id"] for k in got] == [live["id"]]
    lives = {k["id"] for k in api.req("GET", "/api/v1/keys?prefix=tronch_sk_live_&limit=200").json()["data"]}
    assert live["id"] in lives and test["id"] not in lives
    assert_error(api.req("GET", f"/api/v1/keys?prefix={live['key']}"), 400, "invalid_parameter")  # never a whole key
    assert_error(api.req("GET", "/api/v1/keys?prefix=tronch%25"), 400, "invalid_parameter")
    assert_error(api.req("GET", "/api/v1/keys?prefix="), 400, "invalid_parameter")
    with postgres.connect() as conn, conn.cursor() as cur:   # the range the API sends can use the index
        cur.execute("SET enable_seqscan = off")
        cur.execute("EXPLAIN SELECT id FROM api_keys WHERE key_prefix COLLATE \"C\" >= 'tronch_sk_live_Ab' "
                    "AND key_prefix COLLATE \"C\" < 'tronch_sk_live_Ac'")
        assert "api_keys_prefix" in " ".join(r[0] for r in cur.fetchall())


# ---- expiry resolution ----------------------------------------------------------------------

def test_expiry_is_stored_in_the_whole_seconds_gateways_compare(api):
    """Found: a key expired up to 1 s early (gateways compare whole seconds, the fraction was
    dropped). Now the API stores whole seconds, rounded up, and says so in the response."""
    at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).replace(microsecond=870000)
    k, _ = api.create(expires_at=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    stored = datetime.datetime.fromisoformat(k["expires_at"].replace("Z", "+00:00"))
    assert stored.microsecond == 0 and stored == at.replace(microsecond=0) + datetime.timedelta(seconds=1)
    rot = api.req("POST", f"/api/v1/keys/{k['id']}/rotate", json_body={"grace_period_seconds": 60}).json()
    grace_end = datetime.datetime.fromisoformat(rot["previous"]["expires_at"].replace("Z", "+00:00"))
    assert grace_end.microsecond == 0


# ---- logs -----------------------------------------------------------------------------------

def test_sweep_failures_are_logged_as_a_transition(redis_server, redis_client):
    """Found: "expiry sweep failed" every second while PostgreSQL was down. Now: once, then at most
    once a minute, and one line when it works again."""
    pg = h.Postgres().start()
    d = h.Tronchd(pg, redis_server, extra_env={"TRONCH_MIRROR_INTERVAL_MS": "100"}).start()
    try:
        wait_until(lambda: Client(d).req("GET", "/api/v1/health", auth=False).status_code == 200, timeout=30)
        pg.stop()
        wait_until(lambda: "expiry sweep failed" in messages(d), timeout=30, msg="first sweep failure logged")
        # let at least 20 more sweep rounds (100 ms apart) fail: waiting longer only makes this stricter
        until = time.monotonic() + 2
        while time.monotonic() < until:
            assert Client(d).req("GET", "/api/v1/health", auth=False).status_code == 503
            time.sleep(0.1)
        assert messages(d).count("expiry sweep failed") == 1, messages(d)
        pg.start()
        wait_until(lambda: "expiry sweep works again" in messages(d), timeout=30)
    finally:
        d.stop()
        pg.stop()


def test_postgres_notices_stay_json(tronchd_factory, redis_client):
    """Found: a raw `NOTICE:` line from libpq in the JSON log. A second start over the same database
    makes PostgreSQL send one (CREATE TABLE IF NOT EXISTS schema_migrations)."""
    tronchd_factory().stop()
    d = tronchd_factory()
    wait_until(lambda: "tronchd listening" in d.log_text(), timeout=30)
    for line in log_lines(d):
        json.loads(line)   # every line is one JSON object
    assert "postgres notice" in messages(d)


# ---- restarts do not re-mirror a complete mirror ----------------------------------------------

def test_clean_restart_takes_the_mirror_over_and_a_crash_rebuilds(tronchd_factory, redis_client):
    d1 = tronchd_factory()
    k, _ = Client(d1).create()
    d1.stop()
    assert "redis mirror handed over" in messages(d1)
    same_key = {"TRONCH_RECORD_SIGNING_KEY": str(d1.dir / "records.key")}   # a new key would re-sign all
    d2 = tronchd_factory(extra_env=same_key)
    wait_until(lambda: "tronchd listening" in d2.log_text(), timeout=30)
    assert "redis mirror taken over from the previous run (no re-mirror)" in messages(d2)
    assert "redis mirror rebuilt" not in messages(d2)
    assert Client(d2).req("GET", "/api/v1/health", auth=False).status_code == 200
    d2.proc.send_signal(signal.SIGKILL)   # a crash leaves no hand-over: the next start rebuilds
    d2.proc.wait()
    d3 = tronchd_factory(extra_env=same_key)
    wait_until(lambda: "redis mirror rebuilt" in messages(d3), timeout=30)


# ---- the CLI --------------------------------------------------------------------------------

def ctl(d, *args, url=None, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRONCH_")}
    env.update(TRONCH_API_URL=url or f"http://127.0.0.1:{d.port}", TRONCH_ADMIN_TOKEN=d.admin_token)
    env.update(env_extra or {})
    return subprocess.run([str(TRONCHCTL), *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_runs_a_leaked_key_incident(d, api, postgres):
    leaked, _ = api.create(environment="live", name="leaky", owner="team-x")
    other, _ = api.create(environment="live", name="other", owner="team-x")
    found = ctl(d, "keys", "find", leaked["prefix"])
    assert found.returncode == 0 and leaked["id"] in found.stdout and other["id"] not in found.stdout
    # the whole key works too, reduced to its prefix on this side (never sent)
    found = ctl(d, "--json", "keys", "find", leaked["key"])
    assert [k["id"] for k in json.loads(found.stdout)["data"]] == [leaked["id"]]
    upd = ctl(d, "--json", "keys", "update", other["id"], "--cidr", "10.0.0.0/8", "--rate", "5", "--period", "1")
    assert upd.returncode == 0, upd.stderr
    assert json.loads(upd.stdout)["allowed_cidrs"] == ["10.0.0.0/8"] and json.loads(upd.stdout)["limits"]["rate"] == 5
    assert ctl(d, "keys", "revoke", leaked["id"]).returncode == 0
    audit = ctl(d, "audit", "--key-id", leaked["id"])
    assert audit.returncode == 0 and "revoke" in audit.stdout and "create" in audit.stdout
    audit_json = json.loads(ctl(d, "--json", "audit", "--action", "update").stdout)
    assert other["id"] in {e["key_id"] for e in audit_json["data"]}


def test_cli_papercuts(d, api, postgres):
    # usage errors exit 2 with a message naming the problem
    for args, text in [(["keys", "bogus"], "unknown command: keys bogus"),
                       (["keys", "create"], "needs --env"),
                       (["keys", "create", "--env", "live", "--rate", "5"], "--rate needs --period"),
                       (["keys", "create", "--env", "live", "--period", "5"], "go with --rate"),
                       (["keys", "create", "--env", "live", "--rate", "x", "--period", "1"], "whole number"),
                       (["keys", "get"], "needs a key id"),
                       (["keys", "list", "--bogus", "1"], "does not take --bogus"),
                       (["keys", "update", "00000000-0000-0000-0000-000000000000"], "something to change")]:
        r = ctl(d, *args)
        assert r.returncode == 2 and text in r.stderr, (args, r.returncode, r.stderr)
    # --json: errors are JSON on stdout, usage errors too
    r = ctl(d, "--json", "keys", "get", "nope")
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["code"] == "invalid_id"
    r = ctl(d, "--json", "keys", "create")
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "usage"
    # the "more" hint goes to stderr: stdout stays a table
    api.create()
    api.create()
    r = ctl(d, "keys", "list", "--limit", "1")
    assert "more: --cursor" in r.stderr and "more:" not in r.stdout
    # names with bidi/control characters are printed escaped (rows written before validation existed)
    k, _ = api.create(name="plain")
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE api_keys SET name = %s WHERE id = %s", ("evil\u202egnp.exe\x1b[31m", k["id"]))
    out = ctl(d, "keys", "get", k["id"]).stdout
    assert "\u202e" not in out and "\x1b" not in out and "evil\\u{202e}gnp.exe\\x1b[31m" in out
    # the default URL is tronchd's default port, and a non-tronchd answer is named as such
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRONCH_")}
    env["TRONCH_ADMIN_TOKEN"] = d.admin_token
    help_text = subprocess.run([str(TRONCHCTL), "--help"], env=env, capture_output=True, text=True).stdout
    assert "default http://127.0.0.1:8081" in help_text

    class NotTronchd(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>404 Not Found</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), NotTronchd)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        r = ctl(d, "keys", "list", url=f"http://127.0.0.1:{srv.server_address[1]}")
        assert r.returncode == 1 and "is not tronchd's" in r.stderr and "not the gateway" in r.stderr, r.stderr
    finally:
        srv.shutdown()
