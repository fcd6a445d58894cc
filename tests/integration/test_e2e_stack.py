"""./run.sh's launcher (scripts/stack.py; run.sh itself only adds apt-get and the build) brings up
the whole stack from nginx_conf/gateway.conf; keys survive a stop and a second start."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess

import pytest
import requests

import tronch_harness as h
from module_support import bearer, problem

STACK = h.SOURCE_DIR / "scripts" / "stack.py"


class Stack:
    """stack.py with its own run dir and free ports."""

    def __init__(self):
        self.dir = h.make_temp_dir("tronch-run-")   # 0755: the postgres user and nginx workers get in
        self.run_dir = self.dir / "run"
        self.ports = {name: h.free_port() for name in ("GATEWAY", "API", "PG", "REDIS")}

    def env(self) -> dict[str, str]:
        env = dict(os.environ, TRONCH_RUN_DIR=str(self.run_dir), TRONCH_BUILD_DIR=str(h.BUILD_DIR))
        env.update({f"TRONCH_{name}_PORT": str(port) for name, port in self.ports.items()})
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["/usr/bin/python3", str(STACK), *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout)

    def up(self) -> subprocess.CompletedProcess:
        r = self.run("up", "--detach")
        assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        return r

    def read_env(self) -> dict[str, str]:
        # `export NAME=value` lines, shell-quoted (so `source .run/env` exports them)
        out = {}
        for line in (self.run_dir / "env").read_text().splitlines():
            if line:
                assert line.startswith("export "), line
                name, value = line[len("export "):].split("=", 1)
                out[name] = shlex.split(value)[0] if value else ""
        return out

    def api(self, method: str, path: str, env: dict[str, str], **kw) -> requests.Response:
        return requests.request(method, env["TRONCH_API_URL"] + path, timeout=10,
                                headers={"Authorization": f"Bearer {env['TRONCH_ADMIN_TOKEN']}"}, **kw)

    def cleanup(self) -> None:
        self.run("stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def stack():
    s = Stack()
    yield s
    s.cleanup()   # always stop, whatever the test did


def demo_key(stdout: str) -> str:
    m = re.search(r"shown this once:\s*\n\s*(tronch_sk_test_\S+)", stdout)
    assert m, stdout
    return m.group(1)


def test_detach_stop_detach_keeps_keys(stack):
    first = stack.up()
    env = stack.read_env()
    assert set(env) == {"TRONCH_GATEWAY_URL", "TRONCH_API_URL", "TRONCH_ADMIN_TOKEN", "TRONCH_REDIS_URL",
                        "TRONCH_REDIS_PASSWORD_FILE",
                        "TRONCH_DATABASE_URL", "TRONCH_NGINX_PID"}
    assert env["TRONCH_GATEWAY_URL"] == f"http://127.0.0.1:{stack.ports['GATEWAY']}"
    os.kill(int(env["TRONCH_NGINX_PID"]), 0)   # the nginx master is running
    gw = env["TRONCH_GATEWAY_URL"]

    # what the printout promises: the demo key passes, a bad key is refused, the page is public
    demo = demo_key(first.stdout)
    r = requests.get(gw + "/api/hello", headers=bearer(demo), timeout=5)
    assert r.status_code == 200 and "accepted" in r.text, (r.status_code, r.text)
    assert problem(requests.get(gw + "/api/hello", headers=bearer("tronch_sk_test_nope"), timeout=5))["code"] == \
        "malformed_key"
    assert requests.get(gw + "/public", timeout=5).status_code == 200
    assert requests.get(gw + "/tronch_status", timeout=5).status_code == 200   # from 127.0.0.1
    assert problem(requests.get(gw + "/api/live/x", headers=bearer(demo), timeout=5))["code"] == "wrong_environment"
    assert requests.get(gw + "/api/test/x", headers=bearer(demo), timeout=5).status_code == 200

    r = stack.api("POST", "/api/v1/keys", env, json={"environment": "live", "name": "survivor"})
    assert r.status_code == 201, r.text
    survivor = r.json()
    assert requests.get(gw + "/api/live/x", headers=bearer(survivor["key"]), timeout=5).status_code == 200

    # a second start while running is refused, clearly
    again = stack.run("up", "--detach")
    assert again.returncode == 1 and "already running" in again.stderr

    stopped = stack.run("stop")
    assert stopped.returncode == 0, stopped.stderr
    for name in ("nginx", "tronchd", "redis", "postgres"):
        assert f"stopped {name}" in stopped.stdout, stopped.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(gw + "/api/hello", timeout=2)

    stack.up()   # reuses the data dir: same token, the key is still there and still passes
    env2 = stack.read_env()
    assert env2["TRONCH_ADMIN_TOKEN"] == env["TRONCH_ADMIN_TOKEN"]
    assert stack.api("GET", f"/api/v1/keys/{survivor['id']}", env2).json()["status"] == "active"
    assert requests.get(gw + "/api/live/x", headers=bearer(survivor["key"]), timeout=5).status_code == 200
    assert requests.get(gw + "/api/hello", headers=bearer(demo), timeout=5).status_code == 200

    # the 429 the printout shows: the demo key allows 5 requests per 10 s
    codes = [requests.get(gw + "/api/hello", headers=bearer(demo), timeout=5) for _ in range(7)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert problem(limited[0])["code"] == "rate_limited" and limited[0].headers.get("Retry-After")


def test_port_taken_is_named_and_nothing_starts(stack):
    with socket.socket() as s:
        s.bind(("127.0.0.1", stack.ports["API"]))
        s.listen()
        r = stack.run("up", "--detach")
    assert r.returncode == 1
    assert f"api port {stack.ports['API']}" in r.stderr and "TRONCH_API_PORT" in r.stderr, r.stderr
    assert not (stack.run_dir / "pids.json").exists()


def test_stop_with_nothing_running(stack):
    r = stack.run("stop")
    assert r.returncode == 0 and "nothing is running" in r.stdout


def test_failed_step_is_named_and_the_rest_stopped(stack, tmp_path):
    """A step that fails (here: no tronchd binary in the build dir) is named with its log, and what
    had started (Postgres, Redis) is stopped again."""
    env = stack.env()
    env["TRONCH_BUILD_DIR"] = str(tmp_path / "no-build")
    r = subprocess.run(["/usr/bin/python3", str(STACK), "up", "--detach"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert "starting tronchd" in r.stderr and "tronchd.log" in r.stderr, r.stderr
    assert "stopped postgres" in r.stdout and "stopped redis" in r.stdout, r.stdout
    assert not (stack.run_dir / "pids.json").exists()
    for port in (stack.ports["PG"], stack.ports["REDIS"]):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
