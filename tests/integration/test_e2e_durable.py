"""./run.sh's PostgreSQL is durable: a key answered 201 survives a `kill -9` of the postmaster
right after it, and works at the gateway once the stack is started again (issue 11)."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import requests

import tronch_harness as h
from module_support import bearer
from test_e2e_stack import Stack


@pytest.fixture
def stack():
    s = Stack()
    yield s
    s.cleanup()


def pg_setting(port: int, name: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                           "-Atqc", f"SHOW {name}"], capture_output=True, text=True, check=True).stdout.strip()


def test_key_survives_kill_9_of_the_run_sh_postgres(stack):
    stack.up()
    env = stack.read_env()
    # the settings a crash-safe cluster needs (the test harness turns all three off)
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        assert pg_setting(stack.ports["PG"], name) == "on", name

    r = stack.api("POST", "/api/v1/keys", env, json={"environment": "live", "name": "crash survivor"})
    assert r.status_code == 201, r.text
    key = r.json()
    postmaster = json.loads((stack.run_dir / "pids.json").read_text())["postgres"]
    os.kill(postmaster, signal.SIGKILL)   # at once: no checkpoint, no shutdown

    stopped = stack.run("stop")   # stops what is left (nginx, tronchd, Redis)
    assert stopped.returncode == 0, stopped.stderr
    second = stack.run("up", "--detach")
    pg_log = (stack.run_dir / "postgres" / "postgres.log").read_text(errors="replace")[-3000:]
    assert second.returncode == 0, f"stdout:\n{second.stdout}\nstderr:\n{second.stderr}\npostgres.log:\n{pg_log}"
    env = stack.read_env()

    got = stack.api("GET", f"/api/v1/keys/{key['id']}", env)
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "active" and got.json()["name"] == "crash survivor"
    r = requests.get(env["TRONCH_GATEWAY_URL"] + "/api/live/x", headers=bearer(key["key"]), timeout=5)
    assert r.status_code == 200, r.text


def test_harness_postgres_stays_fast():
    """The test harness keeps its crash-unsafe settings (they make the suite fast); only ./run.sh
    asks for durability."""
    pg = h.Postgres().start()
    try:
        assert pg_setting(pg.port, "fsync") == "off"
        assert pg_setting(pg.port, "synchronous_commit") == "off"
    finally:
        pg.stop()
