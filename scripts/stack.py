#!/usr/bin/env python3
"""The whole Tronch stack on loopback, for ./run.sh: Postgres and Redis in a local data dir,
tronchd, and nginx with the module. It reuses the test harness's service classes, so there is
one way to start each service.

  stack.py up [--detach]    start (or reuse the data of) the stack; foreground until Ctrl-C
  stack.py stop             stop a detached stack
"""
from __future__ import annotations

from typing import NoReturn

import argparse
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import tronch_harness as h  # noqa: E402

RUN_DIR = pathlib.Path(os.environ.get("TRONCH_RUN_DIR", ROOT / ".run")).resolve()
PORTS = {
    "gateway": int(os.environ.get("TRONCH_GATEWAY_PORT", 8080)),
    "api": int(os.environ.get("TRONCH_API_PORT", 8081)),
    "postgres": int(os.environ.get("TRONCH_PG_PORT", 54329)),
    "redis": int(os.environ.get("TRONCH_REDIS_PORT", 63799)),
}
STATE = RUN_DIR / "pids.json"
ENV_FILE = RUN_DIR / "env"
GATEWAY_TEMPLATE = ROOT / "nginx_conf" / "gateway.conf"


def say(msg: str) -> None:
    try:
        print(f"==> {msg}", flush=True)
    except BrokenPipeError:  # output piped into `head`: keep going (stopping must finish)
        pass


def fail(msg: str) -> "NoReturn":
    print(f"run.sh: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class StepFailed(Exception):
    """A start-up step failed; the message says which and where to look."""


# What each recorded pid must be running, so a stale pids.json (after a reboot) never makes us
# signal an unrelated process that got the same pid.
EXPECTED_COMM = {"postgres": "postgres", "redis": "redis-server", "tronchd": "tronchd", "nginx": "nginx"}


def pid_alive(pid: int, name: str | None = None) -> bool:
    try:  # our own child (foreground mode): reap it if it has exited
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat[stat.rindex(")") + 2] in "ZX":  # exited; waits for whoever reaps it
        return False
    if name in EXPECTED_COMM:
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        return comm.startswith(EXPECTED_COMM[name][:15])
    return True


def running_pids() -> dict[str, int]:
    if not STATE.exists():
        return {}
    try:
        recorded = json.loads(STATE.read_text())
    except ValueError:
        return {}
    return {k: v for k, v in recorded.items() if pid_alive(v, k)}


def check_traversable(path: pathlib.Path) -> None:
    """As root, Postgres runs as the `postgres` user and nginx workers as `nobody`: every
    directory above the data dir must let others through (x for others)."""
    if os.geteuid() != 0:
        return
    for parent in path.resolve().parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            fail(f"{parent} is not traversable by other users (mode {oct(parent.stat().st_mode & 0o777)}); "
                 f"the postgres user and nginx workers need to reach {path}. "
                 f"chmod o+x {parent}, or set TRONCH_RUN_DIR elsewhere.")


# Redis ACL users (shared/redis-acl/users.acl.in): tronchd's, and the gateway's, which can read key
# records but never write one. The default user is off. Passwords are made on the first start,
# kept in 0600 files in the run dir and never printed; the ACL file holds only their SHA-256.
ACL_DIR = ROOT / "shared" / "redis-acl"
REDIS_USERS = {"tronchd": "tronchd", "gateway": "tronch-gateway"}


def redis_password_file(who: str) -> pathlib.Path:
    path = RUN_DIR / "redis" / f"{who}.password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path


def render_redis_acl() -> pathlib.Path:
    """users.acl from the template, rendered on every start (so it follows the template)."""
    gw, cp = redis_password_file("gateway"), redis_password_file("tronchd")
    text = subprocess.run(["sh", str(ACL_DIR / "render_acl.sh"), str(gw), str(cp)], check=True,
                          capture_output=True, text=True).stdout
    acl = RUN_DIR / "redis" / "users.acl"
    acl.write_text(text)
    acl.chmod(0o600)
    return acl


class AclRedis(h.Redis):
    """The harness's Redis, with the ACL file."""

    def __init__(self, acl: pathlib.Path, **kw):
        super().__init__(**kw)
        self.acl = acl

    def start(self) -> "AclRedis":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
             "--aclfile", str(self.acl)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        h.wait_for_port(self.port, proc=self.proc)
        return self


def admin_token() -> str:
    """Made once per data dir and kept (0600), so a restarted stack keeps its token."""
    path = RUN_DIR / "admin_token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def api(method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{PORTS['api']}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else {}


def wait_healthy(token: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = api("GET", "/api/v1/health", token)
            if status == 200:
                return
            last = body
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise StepFailed(f"tronchd did not become healthy in {timeout}s (last answer: {last}); "
                     f"see {RUN_DIR / 'tronchd' / 'tronchd.log'}")


def render_template(template: pathlib.Path, prefix: pathlib.Path, port: int, redis: str,
                    extra: dict[str, str] | None = None) -> pathlib.Path:
    """nginx_conf/*.conf with its @PLACEHOLDERS@ filled in, written to <prefix>/nginx.conf
    (also used by tests/integration/test_e2e_configs.py)."""
    text = template.read_text()
    for name, value in {
        "@MODULE@": str(h.MODULE_SO), "@PREFIX@": str(prefix), "@GATEWAY_PORT@": str(port),
        "@REDIS@": redis, "@DOCROOT@": str(prefix / "html"), **(extra or {}),
    }.items():
        text = text.replace(name, value)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def prepare_prefix(prefix: pathlib.Path) -> None:
    """logs/, tmp/ and a docroot with the demo pages, readable by workers running as nobody."""
    for sub in ("logs", "html", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    for d in (prefix, prefix / "html"):
        d.chmod(0o755)
    (prefix / "tmp").chmod(0o777)
    for name, text in {"index.html": "Hello from behind Tronch: your key was accepted.\n",
                       "public.txt": "A public page: no key needed.\n"}.items():
        page = prefix / "html" / name
        page.write_text(text)
        page.chmod(0o644)


def start_nginx() -> int:
    prefix = RUN_DIR / "nginx"
    RUN_DIR.chmod(0o755)  # workers run as nobody and must read the docroot
    prepare_prefix(prefix)
    redis = f"127.0.0.1:{PORTS['redis']}"
    conf = render_template(GATEWAY_TEMPLATE, prefix, PORTS["gateway"], redis,
                           {"@RECORD_KEY@": str(RUN_DIR / "tronchd" / "records.pub")})  # tronchd wrote it
    # the gateway's own ACL user, its password read by nginx at load
    lines = conf.read_text().splitlines(keepends=True)
    at = next((i for i, l in enumerate(lines) if l.strip().startswith(f"tronch_redis {redis};")), None)
    assert at is not None, f"{GATEWAY_TEMPLATE} lost its `tronch_redis @REDIS@;` line"
    lines.insert(at + 1, f"    tronch_redis_auth {REDIS_USERS['gateway']} {redis_password_file('gateway')};\n")
    conf.write_text("".join(lines))
    check = subprocess.run([h.NGINX_BIN, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        raise StepFailed(f"nginx -t refused {conf}:\n{check.stderr}")
    pidfile = prefix / "logs" / "nginx.pid"
    pidfile.unlink(missing_ok=True)
    started = subprocess.run([h.NGINX_BIN, "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True)
    if started.returncode != 0:  # daemonized: the master has exited 0 once it listens
        raise StepFailed(f"nginx did not start:\n{started.stderr}see {prefix / 'logs' / 'error.log'}")
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not (pidfile.exists() and pidfile.read_text().strip()):
        raise StepFailed(f"nginx wrote no pid file; see {prefix / 'logs' / 'error.log'}")
    pid = int(pidfile.read_text())
    h.wait_for_port(PORTS["gateway"])
    return pid


def killed_postmaster_lingers(log_text: bytes) -> bool:
    """After a `kill -9` of the postmaster, PostgreSQL refuses to start for a moment: its children
    still hold the shared memory until they notice and exit, and the dead postmaster's pid, until
    its parent reaps it, still answers kill(pid, 0), so postmaster.pid looks taken."""
    if b"pre-existing shared memory block" in log_text:
        return True
    if b'lock file "postmaster.pid" already exists' not in log_text:
        return False
    try:
        pid = int((RUN_DIR / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return not pid_alive(pid, "postgres")   # a zombie or gone: not a running postmaster


def start_postgres(pg: "h.Postgres", timeout: float = 30) -> None:
    """pg.start(), retried while a killed postmaster lingers (see killed_postmaster_lingers)."""
    deadline = time.monotonic() + timeout
    log = RUN_DIR / "postgres" / "postgres.log"
    while True:
        seen = log.stat().st_size if log.exists() else 0
        try:
            pg.start()
            return
        except RuntimeError:
            with open(log, "rb") as f:
                f.seek(seen)
                lingers = killed_postmaster_lingers(f.read())
            if not lingers or time.monotonic() > deadline:
                raise
            say("PostgreSQL's previous processes are still exiting; retrying")
            time.sleep(0.5)


def stop_pids(pids: dict[str, int]) -> None:
    # Reverse start order; the signal each one treats as "shut down cleanly and fast".
    signals = {"nginx": signal.SIGQUIT, "tronchd": signal.SIGTERM, "redis": signal.SIGTERM, "postgres": signal.SIGINT}
    for name in ("nginx", "tronchd", "redis", "postgres"):
        pid = pids.get(name)
        if pid and pid_alive(pid, name):
            os.kill(pid, signals[name])
            deadline = time.monotonic() + 20
            while pid_alive(pid, name) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid, name):
                print(f"run.sh: {name} (pid {pid}) did not stop in 20 s; killing it", file=sys.stderr)
                os.kill(pid, signal.SIGKILL)
            say(f"stopped {name} (pid {pid})")
    STATE.unlink(missing_ok=True)


def create_demo_key(token: str) -> dict:
    status, body = api("POST", "/api/v1/keys", token, {
        "name": "run.sh demo", "owner": "demo", "environment": "test",
        "limits": {"rate": 5, "period_seconds": 10, "burst": 0},
    })
    if status != 201:
        raise StepFailed(f"creating the demo key failed: HTTP {status} {body}")
    return body


def up(detach: bool) -> None:
    if running_pids():
        fail(f"a stack is already running from {RUN_DIR} (pids {running_pids()}); `./run.sh stop` first")
    taken = [f"{name} port {port}" for name, port in PORTS.items() if port_taken(port)]
    if taken:
        fail("in use: " + ", ".join(taken) + ". Free it or set TRONCH_GATEWAY_PORT / TRONCH_API_PORT / "
             "TRONCH_PG_PORT / TRONCH_REDIS_PORT.")
    check_traversable(RUN_DIR)
    for sub in ("postgres", "redis", "tronchd"):
        (RUN_DIR / sub).mkdir(parents=True, exist_ok=True)
    RUN_DIR.chmod(0o755)
    pids: dict[str, int] = {}

    def record(name: str, pid: int) -> None:
        pids[name] = pid
        STATE.write_text(json.dumps(pids))

    step = "preparing"
    try:
        step = f"starting PostgreSQL (log: {RUN_DIR / 'postgres' / 'postgres.log'})"
        first = not (RUN_DIR / "postgres" / "data" / "PG_VERSION").exists()
        say(f"PostgreSQL on 127.0.0.1:{PORTS['postgres']} ({'initdb in' if first else 'reusing'} "
            f"{RUN_DIR / 'postgres' / 'data'})")
        # durable: fsync, synchronous_commit and full_page_writes stay on (a 201 survives a crash)
        pg = h.Postgres(port=PORTS["postgres"], workdir=RUN_DIR / "postgres", durable=True)
        (RUN_DIR / "postgres").chmod(0o755)  # the postgres user must reach data/ and sock/
        try:
            start_postgres(pg)
        finally:
            if pg.proc is not None:
                record("postgres", pg.proc.pid)
        step = f"starting Redis (log: {RUN_DIR / 'redis' / 'redis.log'})"
        say(f"Redis on 127.0.0.1:{PORTS['redis']}")
        redis = AclRedis(render_redis_acl(), port=PORTS["redis"], workdir=RUN_DIR / "redis")
        try:
            redis.start()
        finally:
            if redis.proc is not None:
                record("redis", redis.proc.pid)
        token = admin_token()
        step = f"starting tronchd (log: {RUN_DIR / 'tronchd' / 'tronchd.log'})"
        say(f"tronchd on 127.0.0.1:{PORTS['api']} (migrations applied at start-up)")
        d = h.Tronchd(pg, redis, admin_token=token, port=PORTS["api"], workdir=RUN_DIR / "tronchd", extra_env={
            "TRONCH_REDIS_URL": f"redis://{REDIS_USERS['tronchd']}@127.0.0.1:{PORTS['redis']}",
            "TRONCH_REDIS_PASSWORD_FILE": str(redis_password_file("tronchd"))})
        try:
            d.start()
        finally:
            if d.proc is not None:
                record("tronchd", d.proc.pid)
        wait_healthy(token)
        step = f"starting nginx (log: {RUN_DIR / 'nginx' / 'logs' / 'error.log'})"
        say(f"nginx with the Tronch module on 127.0.0.1:{PORTS['gateway']}")
        record("nginx", start_nginx())
        step = "creating the demo key"
        key = create_demo_key(token)
    except (Exception, KeyboardInterrupt) as e:  # leave nothing half-started behind
        stop_pids(pids)
        detail = e.stderr if isinstance(e, subprocess.CalledProcessError) and e.stderr else e
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        fail(f"{step} failed: {detail}")

    gw, api_url = f"http://127.0.0.1:{PORTS['gateway']}", f"http://127.0.0.1:{PORTS['api']}"
    ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in {
        "TRONCH_GATEWAY_URL": gw, "TRONCH_API_URL": api_url, "TRONCH_ADMIN_TOKEN": token,
        "TRONCH_REDIS_URL": f"redis://{REDIS_USERS['tronchd']}@127.0.0.1:{PORTS['redis']}",
        "TRONCH_REDIS_PASSWORD_FILE": redis_password_file("tronchd"), "TRONCH_DATABASE_URL": pg.url,
        "TRONCH_NGINX_PID": pids["nginx"],
    }.items()))
    ENV_FILE.chmod(0o600)
    print(f"""
Tronch is up.
  gateway      {gw}
  API          {api_url}   (admin token: {token})
  env file     {ENV_FILE}

A demo key (test environment, 5 requests per 10 s), shown this once:
  {key['key']}

  curl -i {gw}/api/hello -H 'Authorization: Bearer {key['key']}'      # 200
  curl -i {gw}/api/hello -H 'Authorization: Bearer tronch_sk_test_nope'  # 401 malformed_key
  for i in $(seq 7); do curl -s -o /dev/null -w '%{{http_code}}\\n' {gw}/api/hello \\
      -H 'Authorization: Bearer {key['key']}'; done                      # ... 429 rate_limited
  curl -s {api_url}/api/v1/keys -H 'Authorization: Bearer {token}'     # list keys
""", flush=True)
    if detach:
        print("Detached. Stop with: ./run.sh stop")
        return
    print("Ctrl-C stops everything.", flush=True)
    try:
        while all(pid_alive(p, n) for n, p in pids.items()):
            time.sleep(0.5)
        dead = [n for n, p in pids.items() if not pid_alive(p, n)]
        print(f"run.sh: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        print()
    stop_pids(pids)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    # Ctrl-C (SIGINT) and SIGTERM both stop everything cleanly; set explicitly, since a shell
    # that starts us in the background hands SIGINT over ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="run.sh")
    parser.add_argument("command", nargs="?", default="up", choices=["up", "stop"])
    parser.add_argument("--detach", action="store_true")
    args = parser.parse_args()
    if args.command == "stop":
        pids = running_pids()
        if not pids:
            print("run.sh: nothing is running from", RUN_DIR)
            STATE.unlink(missing_ok=True)
            return
        stop_pids(pids)
        return
    up(args.detach)


if __name__ == "__main__":
    main()
