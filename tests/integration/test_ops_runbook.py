"""docs/runbook.md, walked literally against a ./run.sh stack (scripts/stack.py with its own run dir
and free ports): each command below is taken from the runbook (the test fails if the runbook no
longer says it), run with bash from the source dir with `.run/` pointing at the test's run dir, and
the outcome the runbook documents is asserted: stop/start of every component, the Redis and
PostgreSQL outages, rotating the admin token and the server secret, a leaked key handled by
prefix with the CLI, log rotation for nginx and tronchd."""
from __future__ import annotations

import datetime
import os
import subprocess
import time
import uuid

import pytest
import requests

import tronch_harness as h
from cp_support import wait_until
from module_support import bearer, problem
from test_e2e_stack import Stack, demo_key

RUNBOOK = (h.SOURCE_DIR / "docs" / "runbook.md").read_text()


@pytest.fixture
def stack():
    s = Stack()
    yield s
    s.cleanup()


class Operator:
    """Runs runbook commands in a shell, as an operator would after `source .run/env`."""

    def __init__(self, stack: Stack):
        self.stack = stack

    def sh(self, cmd: str, check: bool = True, documented: bool = True,
           shell_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        if documented:
            assert cmd in RUNBOOK, f"the runbook no longer says: {cmd}"
        real = cmd.replace(".run/", f"{self.stack.run_dir}/")
        env = self.stack.env()
        env["PATH"] = f"{h.BUILD_DIR / 'control_plane'}:{env['PATH']}"   # `tronchctl`
        env.update(shell_env or {})
        script = f"set -e\nif [ -f {self.stack.run_dir}/env ]; then source {self.stack.run_dir}/env; fi\n{real}\n"
        r = subprocess.run(["bash", "-c", script], cwd=h.SOURCE_DIR, env=env, capture_output=True, text=True,
                           timeout=180)
        if check:
            assert r.returncode == 0, f"{cmd}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        return r

    def env(self) -> dict[str, str]:
        return self.stack.read_env()

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        env = self.env()
        headers = {"Authorization": f"Bearer {token or env['TRONCH_ADMIN_TOKEN']}", **kw.pop("headers", {})}
        return requests.request(method, env["TRONCH_API_URL"] + path, headers=headers, timeout=15, **kw)

    def health(self) -> tuple[int, dict]:
        try:
            r = requests.get(self.env()["TRONCH_API_URL"] + "/api/v1/health", timeout=15)
            return r.status_code, r.json()
        except requests.RequestException:
            return 0, {}

    def gateway(self, key: str) -> requests.Response:
        return requests.get(self.env()["TRONCH_GATEWAY_URL"] + "/api/live/x", headers=bearer(key), timeout=10)

    def create(self, **fields) -> dict:
        r = self.api("POST", "/api/v1/keys", json={"environment": "live", **fields})
        assert r.status_code == 201, r.text
        return r.json()


def cache_hits(op: Operator) -> float:
    text = requests.get(op.env()["TRONCH_GATEWAY_URL"] + "/tronch_status", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("tronch_cache_hits"))


def cached(op: Operator, key: str) -> bool:
    before = cache_hits(op)
    assert op.gateway(key).status_code == 200
    return cache_hits(op) > before


def ready(op: Operator) -> bool:
    status, body = op.health()
    return status == 200 and body["checks"]["redis"]["mirror_complete"] is True


def test_every_runbook_procedure(stack):
    op = Operator(stack)
    up = stack.up()
    assert demo_key(up.stdout)
    probe = op.create(name="probe")                      # no limits: the gateway checks below
    # ... and in nginx's cache: a request answered from the cache proves the entry is there (the
    # create's key.changed event may arrive after the first look-up and drop what it stored)
    wait_until(lambda: cached(op, probe["key"]), timeout=15, msg="the probe key served from nginx's cache")

    # ---- status, and finding a component restarted by hand (no pid file) --------------------
    st = op.sh("./run.sh status")
    assert st.stdout.count(" running ") == 4, st.stdout
    (stack.run_dir / "redis" / "redis.pid").unlink()
    st = op.sh("./run.sh status", documented=False)
    assert "redis     running" in st.stdout, st.stdout   # found by its port

    # ---- Redis down ---------------------------------------------------------------------------
    stopped = op.sh("./run.sh stop redis")
    assert "stopped redis (pid" in stopped.stdout, stopped.stdout
    assert op.sh("./run.sh status", check=False, documented=False).returncode == 3
    status, body = op.health()
    assert status == 503 and body["checks"]["redis"]["status"] == "error"
    assert op.gateway(probe["key"]).status_code == 200          # cached: keeps passing
    during = op.create(name="made during the Redis outage")    # the write goes to PostgreSQL
    r = op.gateway(during["key"])
    assert r.status_code == 503 and problem(r)["code"] == "auth_unavailable"   # not usable until Redis is back
    again = op.sh("./run.sh stop redis", documented=False)
    assert "redis was not running" in again.stdout and "stopped" not in again.stdout
    op.sh("./run.sh start redis")
    wait_until(lambda: ready(op), timeout=30, msg="health 200 with mirror_complete")
    wait_until(lambda: op.gateway(during["key"]).status_code == 200, timeout=30,
               msg="a key created during the outage passes once Redis is back")

    # ---- Postgres down ------------------------------------------------------------------------
    assert "stopped postgres (pid" in op.sh("./run.sh stop postgres").stdout
    r = op.api("POST", "/api/v1/keys", json={"environment": "live"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
    assert op.gateway(probe["key"]).status_code == 200          # the request path does not use it
    op.sh("./run.sh start postgres")
    wait_until(lambda: op.api("POST", "/api/v1/keys", json={"environment": "live"}).status_code == 201,
               timeout=30, msg="writes work again")
    tronchd_log = (stack.run_dir / "tronchd" / "tronchd.log").read_text()
    assert tronchd_log.count('"msg":"expiry sweep failed"') <= 2, "the sweep failure is logged as a transition"

    # ---- rotating the admin token (restarts tronchd only, keeps the server secret) ---------------
    nginx_pid = op.env()["TRONCH_NGINX_PID"]
    old_token = op.env()["TRONCH_ADMIN_TOKEN"]
    idem = {"Idempotency-Key": f"runbook-{uuid.uuid4()}"}
    body = {"environment": "live", "name": "idempotent"}
    first = op.api("POST", "/api/v1/keys", json=body, headers=idem)
    assert first.status_code == 201
    # from a shell that happens to export another TRONCH_SECRET_KEY: run.sh keeps its own (the finding)
    op.sh("openssl rand -base64 32 | tr -d '\\n' > .run/admin_token && ./run.sh restart tronchd && source .run/env",
          shell_env={"TRONCH_SECRET_KEY": os.urandom(32).hex()})
    assert op.env()["TRONCH_ADMIN_TOKEN"] != old_token
    assert op.api("GET", "/api/v1/keys", token=old_token).status_code == 401
    assert op.api("GET", "/api/v1/keys").status_code == 200
    assert op.env()["TRONCH_NGINX_PID"] == nginx_pid                 # the gateway was not restarted
    assert op.gateway(probe["key"]).status_code == 200
    log = (stack.run_dir / "tronchd" / "tronchd.log").read_text()
    assert "redis mirror taken over from the previous run (no re-mirror)" in log
    retry = op.api("POST", "/api/v1/keys", json=body, headers=idem)  # the finding: this made a second key
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json()["id"] == first.json()["id"]

    # ---- rotating the server secret ------------------------------------------------------------
    op.sh("mv .run/tronchd/secret_key .run/tronchd/secret_key.previous && (umask 077 && openssl rand -hex 32 > "
          ".run/tronchd/secret_key) && ./run.sh restart tronchd")
    assert (stack.run_dir / "tronchd" / "secret_key").stat().st_mode & 0o077 == 0
    retry = op.api("POST", "/api/v1/keys", json=body, headers=idem)
    assert retry.status_code == 201 and retry.json()["id"] == first.json()["id"], retry.text

    # ---- a leaked key, by prefix, with the CLI ---------------------------------------------------
    leaked = op.create(name="leaked", owner="team-leak")
    assert op.gateway(leaked["key"]).status_code == 200
    found = op.sh(f"tronchctl keys find {leaked['prefix']}", documented=False)
    assert "tronchctl keys find tronch_sk_live_AbCdEfGh" in RUNBOOK
    assert leaked["id"] in found.stdout and leaked["key"] not in found.stdout
    graced = op.create(name="graced")
    op.sh(f"tronchctl keys rotate {graced['id']} --grace 600", documented=False)
    assert "tronchctl keys rotate ID --grace 600" in RUNBOOK
    r = op.sh(f"tronchctl keys rotate {graced['id']} --grace 0", check=False, documented=False)
    assert r.returncode == 1 and "key_not_active" in r.stderr     # as documented: revoke it instead
    assert "tronchctl keys revoke ID" in RUNBOOK
    op.sh(f"tronchctl keys revoke {leaked['id']}", documented=False)
    wait_until(lambda: op.gateway(leaked["key"]).status_code == 403, timeout=10, msg="revocation at the gateway")
    assert problem(op.gateway(leaked["key"]))["code"] == "revoked_key"
    new = op.create(name="replacement")
    assert "tronchctl keys update NEW_ID --cidr 203.0.113.0/24 --rate 50 --period 1" in RUNBOOK
    upd = op.sh(f"tronchctl --json keys update {new['id']} --cidr 203.0.113.0/24 --rate 50 --period 1",
                documented=False)
    assert '"203.0.113.0/24"' in upd.stdout
    assert op.gateway(new["key"]).status_code == 403               # 127.0.0.1 is not in the allowed CIDR
    audit = op.sh(f"tronchctl audit --key-id {leaked['id']}", documented=False)
    assert "revoke" in audit.stdout and "create" in audit.stdout
    access_log = 'grep "key_id=ID" .run/nginx/logs/access.log | grep -c "result=revoked_key"'
    assert access_log in RUNBOOK
    counted = op.sh(access_log.replace("ID", leaked["id"]), documented=False)
    assert int(counted.stdout) >= 2                                 # the refusals above, countable

    # ---- logs: nginx reopens on USR1, tronchd's file survives copytruncate ------------------------
    logs = stack.run_dir / "nginx" / "logs"
    op.sh("mv .run/nginx/logs/access.log .run/nginx/logs/access.log.1 && kill -USR1 $(cat .run/nginx/logs/nginx.pid)")
    wait_until(lambda: op.gateway(probe["key"]) is not None and (logs / "access.log").exists()
               and probe["id"] in (logs / "access.log").read_text(), timeout=10, msg="nginx reopened access.log")
    tlog = stack.run_dir / "tronchd" / "tronchd.log"
    os.truncate(tlog, 0)                                             # what logrotate's copytruncate does
    op.create(name="after truncation")
    wait_until(lambda: tlog.stat().st_size > 0, timeout=10)
    data = tlog.read_bytes()
    assert data.startswith(b"{") and b"\0" not in data               # no hole: O_APPEND

    # ---- expiry is exact to the second the API stores (docs/api.md) -----------------------------
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    at = at.replace(microsecond=870000)                              # the finding: refused ~0.87 s early
    expiring = op.create(name="expiring", expires_at=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    stored = datetime.datetime.fromisoformat(expiring["expires_at"].replace("Z", "+00:00")).timestamp()
    assert stored == int(at.timestamp()) + 1                         # rounded up, and said so
    while True:
        r = op.gateway(expiring["key"])
        answered = time.time()
        if r.status_code != 200:
            break
        assert answered < stored + 5, "still passing well after its expires_at"
        time.sleep(0.02)
    assert r.status_code == 403 and problem(r)["code"] == "expired_key"
    assert answered >= stored, f"refused {stored - answered:.3f} s before its expires_at"

    # ---- restarting nginx ----------------------------------------------------------------------
    assert "stopped nginx (pid" in op.sh("./run.sh restart nginx").stdout
    wait_until(lambda: op.gateway(probe["key"]).status_code == 200, timeout=15)

    # ---- rotating the Redis passwords (tronchd's, then the gateway's) -------------------------------
    before = {w: (stack.run_dir / "redis" / f"{w}.password").read_text() for w in ("tronchd", "gateway")}
    op.sh("rm .run/redis/tronchd.password && ./run.sh restart redis && ./run.sh restart tronchd")
    op.sh("rm .run/redis/gateway.password && ./run.sh restart redis && kill -HUP $(cat .run/nginx/logs/nginx.pid)")
    for w in ("tronchd", "gateway"):
        assert (stack.run_dir / "redis" / f"{w}.password").read_text() != before[w]
    wait_until(lambda: ready(op), timeout=30, msg="tronchd re-mirrored with its new password")
    fresh = op.create(name="after the password rotation")
    wait_until(lambda: op.gateway(fresh["key"]).status_code == 200, timeout=30,
               msg="the gateway reads Redis with its new password")

    # ---- rotating the record signing key, the ./run.sh shortcut -----------------------------------
    old_pub = (stack.run_dir / "tronchd" / "records.pub").read_text()
    op.sh("rm .run/tronchd/records.key .run/tronchd/records.pub && ./run.sh restart tronchd && ./run.sh restart nginx")
    assert (stack.run_dir / "tronchd" / "records.pub").read_text() != old_pub
    wait_until(lambda: op.gateway(fresh["key"]).status_code == 200, timeout=30, msg="keys pass with the new key")
    assert op.gateway(probe["key"]).status_code == 200

    # ---- the previous secret removed after 24 h: retries of older records are refused, never a new key
    op.sh("rm .run/tronchd/secret_key.previous && ./run.sh restart tronchd")
    retry = op.api("POST", "/api/v1/keys", json=body, headers=idem)
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "idempotency_secret_unknown"
    assert op.api("POST", "/api/v1/keys", json={"environment": "test"}).status_code == 201

    # ---- stop everything: each stop is reported, nothing is left ----------------------------------
    done = op.sh("./run.sh stop redis", documented=False)
    assert "stopped redis" in done.stdout
    done = op.sh("./run.sh stop", documented=False)
    for name in ("nginx", "tronchd", "postgres"):
        assert f"stopped {name} (pid" in done.stdout, done.stdout
    assert "redis was not running" in done.stdout
    assert op.sh("./run.sh status", check=False, documented=False).returncode == 3
