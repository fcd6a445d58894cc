#!/usr/bin/env python3
"""The whole Tronch stack on loopback, for ./run.sh: Postgres and Redis in a local data dir,
tronchd, and nginx with the module. It reuses the test harness's service classes, so there is
one way to start each service.

  stack.py up [--detach]              start (or reuse the data of) the stack; foreground until Ctrl-C
  stack.py stop [COMPONENT]           stop the stack (or one of postgres, redis, tronchd, nginx)
  stack.py start|restart COMPONENT    start / restart one component of a stack
  stack.py status [COMPONENT]         what runs (exit 0), what does not (exit 3)

Each component is found by what it is, not by what this script remembers: its pid file
(Postgres' postmaster.pid, Redis' and tronchd's pid files in the run dir, nginx's logs/nginx.pid),
checked against the process name, or else the process listening on its port when that process
belongs to this run dir. So a component restarted by hand (or by `restart`) is still found, and
`stop` says exactly what it stopped and what was not running.
"""
from __future__ import annotations

from typing import NoReturn

import argparse
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import shlex
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


COMPONENTS = ("postgres", "redis", "tronchd", "nginx")   # start order; stopped in reverse
PID_FILES = {
    "postgres": RUN_DIR / "postgres" / "data" / "postmaster.pid",   # written by PostgreSQL
    "redis": RUN_DIR / "redis" / "redis.pid",                       # redis-server --pidfile
    "tronchd": RUN_DIR / "tronchd" / "tronchd.pid",                 # written here at start
    "nginx": RUN_DIR / "nginx" / "logs" / "nginx.pid",              # written by nginx
}
PORT_OF = {"postgres": "postgres", "redis": "redis", "tronchd": "api", "nginx": "gateway"}


def read_pid(path: pathlib.Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def listener_pids(port: int) -> list[int]:
    """The processes holding a listening TCP socket on `port` (any address), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    pids = []
    if not inodes:
        return pids
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return sorted(pids)


def belongs_here(pid: int) -> bool:
    """Started for this run dir: its working dir (Redis and PostgreSQL chdir into theirs), command
    line (nginx -p) or environment (tronchd's signing key path) names RUN_DIR."""
    here = str(RUN_DIR)
    try:
        if os.readlink(f"/proc/{pid}/cwd").startswith(here):
            return True
    except OSError:
        pass
    for name in ("cmdline", "environ"):
        try:
            if here.encode() in pathlib.Path(f"/proc/{pid}/{name}").read_bytes():
                return True
        except OSError:
            pass
    return False


def find(name: str) -> int | None:
    """The running component's pid: from its pid file, else the holder of its port if that process
    is one of ours (same program, this run dir). None if it is not running."""
    pid = read_pid(PID_FILES[name])
    if pid and pid_alive(pid, name):
        return pid
    for pid in listener_pids(PORTS[PORT_OF[name]]):
        if pid_alive(pid, name) and belongs_here(pid):
            return pid
    return None


def running_pids() -> dict[str, int]:
    return {n: p for n in COMPONENTS if (p := find(n))}


def write_state() -> None:
    """pids.json: a snapshot for scripts (tests read the postmaster's pid); never trusted here."""
    pids = running_pids()
    if pids:
        STATE.write_text(json.dumps(pids))
    else:
        STATE.unlink(missing_ok=True)


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
             "--aclfile", str(self.acl), "--pidfile", str(PID_FILES["redis"])],
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


def server_secret() -> tuple[str, str]:
    """tronchd's server secret (hex) and the previous one after a rotation ("" if none), kept in
    tronchd/secret_key and tronchd/secret_key.previous (0600), so that neither a restart from a
    shell without TRONCH_SECRET_KEY nor a new admin token changes it (Idempotency-Key records are
    sealed under it). Made on the first start: random for a new data dir; for a data dir from
    before it was kept, the value tronchd used to derive from the admin token, so its records
    stay readable."""
    path = RUN_DIR / "tronchd" / "secret_key"
    if not path.exists():
        if (RUN_DIR / "postgres" / "data" / "PG_VERSION").exists():
            value = hmac.new(admin_token().encode(), b"tronch-server-secret-v1", hashlib.sha256).hexdigest()
        else:
            value = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
    previous = RUN_DIR / "tronchd" / "secret_key.previous"
    values = [path.read_text().strip(), previous.read_text().strip() if previous.exists() else ""]
    for file, value in zip((path, previous), values):
        if value and (len(value) < 64 or len(value) % 2 or any(c not in "0123456789abcdefABCDEF" for c in value)):
            raise StepFailed(f"{file} must hold at least 32 bytes of hex (openssl rand -hex 32)")
    return values[0], values[1]


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
    wait_gateway_linked(conf)
    return pid


def wait_gateway_linked(conf: pathlib.Path, timeout: float = 10) -> None:
    """Until every worker's Redis links (look-ups and events) are up: a request before that gets
    the failure mode (503), so "started" would not yet mean "serving". Only a note if Redis is
    not there (nginx runs anyway and connects when it is)."""
    import re
    m = re.search(r"^\s*worker_processes\s+(\d+);", conf.read_text(), re.M)
    want = 2 * (int(m.group(1)) if m else 1)
    url = f"http://127.0.0.1:{PORTS['gateway']}/tronch_status"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
            have = sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("tronch_redis_connects_total"))
            if have >= want:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    say(f"nginx is up, but not all its Redis connections are yet (is Redis running?); see {conf.parent / 'logs' / 'error.log'}")


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


def stop_component(name: str, fallback_pid: int | None = None) -> bool:
    """Stops one component and says so; says so too when it was not running. True if it was
    running (and now is not)."""
    # the signal each one treats as "shut down cleanly and fast"
    signals = {"nginx": signal.SIGQUIT, "tronchd": signal.SIGTERM, "redis": signal.SIGTERM, "postgres": signal.SIGINT}
    pid = find(name)
    if pid is None and fallback_pid and pid_alive(fallback_pid, name):
        pid = fallback_pid   # started by this run, pid file not written yet
    if pid is None:
        port = PORTS[PORT_OF[name]]
        other = [p for p in listener_pids(port)] if port_taken(port) else []
        note = f"; port {port} is held by pid {other[0]}, not this stack's {name}: left alone" if other else ""
        say(f"{name} was not running{note}")
        return False
    os.kill(pid, signals[name])
    deadline = time.monotonic() + 20
    while pid_alive(pid, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid, name):
        print(f"run.sh: {name} (pid {pid}) did not stop in 20 s; killing it", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid, name):
            time.sleep(0.05)
    if name == "tronchd":
        PID_FILES["tronchd"].unlink(missing_ok=True)
    say(f"stopped {name} (pid {pid})")
    return True


def stop_all(fallback: dict[str, int] | None = None) -> int:
    """Stops what runs, in reverse start order. 0 when nothing of this stack runs afterwards."""
    stopped = [n for n in reversed(COMPONENTS) if stop_component(n, (fallback or {}).get(n))]
    write_state()
    left = running_pids()
    if left:
        print(f"run.sh: still running: {left}", file=sys.stderr)
        return 1
    if not stopped:
        print("run.sh: nothing is running from", RUN_DIR)
    return 0


def make_postgres() -> "h.Postgres":
    # durable: fsync, synchronous_commit and full_page_writes stay on (a 201 survives a crash)
    return h.Postgres(port=PORTS["postgres"], workdir=RUN_DIR / "postgres", durable=True)


def make_redis() -> AclRedis:
    return AclRedis(RUN_DIR / "redis" / "users.acl", port=PORTS["redis"], workdir=RUN_DIR / "redis")


def make_tronchd(token: str) -> "h.Tronchd":
    current, previous = server_secret()
    return h.Tronchd(make_postgres(), make_redis(), admin_token=token, port=PORTS["api"], workdir=RUN_DIR / "tronchd",
                     extra_env={
                         "TRONCH_REDIS_URL": f"redis://{REDIS_USERS['tronchd']}@127.0.0.1:{PORTS['redis']}",
                         "TRONCH_REDIS_PASSWORD_FILE": str(redis_password_file("tronchd")),
                         # set here, never inherited from the shell: see server_secret()
                         "TRONCH_SECRET_KEY": current, "TRONCH_SECRET_KEY_PREVIOUS": previous})


def start_component(name: str, record=None) -> int:
    """Starts one component (its dependencies must run: tronchd needs PostgreSQL and Redis to be
    healthy, nginx needs tronchd's records.pub). Returns its pid; raises StepFailed."""
    port = PORTS[PORT_OF[name]]
    if port_taken(port):
        raise StepFailed(f"{name}: port {port} is in use (pids {listener_pids(port) or '?'}); "
                         f"free it or set TRONCH_{PORT_OF[name].upper().replace('POSTGRES', 'PG')}_PORT")
    for sub in ("postgres", "redis", "tronchd"):
        (RUN_DIR / sub).mkdir(parents=True, exist_ok=True)
    if name == "postgres":
        pg = make_postgres()
        (RUN_DIR / "postgres").chmod(0o755)  # the postgres user must reach data/ and sock/
        try:
            start_postgres(pg)
        finally:
            if pg.proc is not None and record:
                record("postgres", pg.proc.pid)
        return pg.proc.pid
    if name == "redis":
        render_redis_acl()
        redis = make_redis()
        try:
            redis.start()
        finally:
            if redis.proc is not None and record:
                record("redis", redis.proc.pid)
        return redis.proc.pid
    if name == "tronchd":
        token = admin_token()
        d = make_tronchd(token)
        try:
            d.start()
        finally:
            if d.proc is not None:
                PID_FILES["tronchd"].write_text(f"{d.proc.pid}\n")
                if record:
                    record("tronchd", d.proc.pid)
        wait_healthy(token)
        write_env()
        return d.proc.pid
    pid = start_nginx()
    write_env()
    return pid


def write_env() -> None:
    """The env file: `source .run/env` exports everything the CLI and curl examples need."""
    pg = make_postgres()
    values = {
        "TRONCH_GATEWAY_URL": f"http://127.0.0.1:{PORTS['gateway']}",
        "TRONCH_API_URL": f"http://127.0.0.1:{PORTS['api']}", "TRONCH_ADMIN_TOKEN": admin_token(),
        "TRONCH_REDIS_URL": f"redis://{REDIS_USERS['tronchd']}@127.0.0.1:{PORTS['redis']}",
        "TRONCH_REDIS_PASSWORD_FILE": str(redis_password_file("tronchd")), "TRONCH_DATABASE_URL": pg.url,
        "TRONCH_NGINX_PID": str(find("nginx") or ""),
    }
    ENV_FILE.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))
    ENV_FILE.chmod(0o600)


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
    logs = {"postgres": RUN_DIR / "postgres" / "postgres.log", "redis": RUN_DIR / "redis" / "redis.log",
            "tronchd": RUN_DIR / "tronchd" / "tronchd.log", "nginx": RUN_DIR / "nginx" / "logs" / "error.log"}
    what = {"postgres": "PostgreSQL", "redis": "Redis", "tronchd": "tronchd", "nginx": "nginx"}
    try:
        for name in COMPONENTS:
            step = f"starting {what[name]} (log: {logs[name]})"
            if name == "postgres":
                first = not (RUN_DIR / "postgres" / "data" / "PG_VERSION").exists()
                say(f"PostgreSQL on 127.0.0.1:{PORTS['postgres']} ({'initdb in' if first else 'reusing'} "
                    f"{RUN_DIR / 'postgres' / 'data'})")
            elif name == "tronchd":
                server_secret()   # made before tronchd first runs (see there)
                say(f"tronchd on 127.0.0.1:{PORTS['api']} (migrations applied at start-up)")
            elif name == "nginx":
                say(f"nginx with the Tronch module on 127.0.0.1:{PORTS['gateway']}")
            else:
                say(f"Redis on 127.0.0.1:{PORTS['redis']}")
            record(name, start_component(name, record))
        step = "creating the demo key"
        token = admin_token()
        key = create_demo_key(token)
    except (Exception, KeyboardInterrupt) as e:  # leave nothing half-started behind
        stop_all(pids)
        detail = e.stderr if isinstance(e, subprocess.CalledProcessError) and e.stderr else e
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        fail(f"{step} failed: {detail}")

    gw, api_url = f"http://127.0.0.1:{PORTS['gateway']}", f"http://127.0.0.1:{PORTS['api']}"
    write_env()
    print(f"""
Tronch is up.
  gateway      {gw}
  API          {api_url}   (admin token: {token})
  env file     {ENV_FILE}   (source it: it exports TRONCH_API_URL, TRONCH_ADMIN_TOKEN, ...)

A demo key (test environment, 5 requests per 10 s), shown this once:
  {key['key']}

  curl -i {gw}/api/hello -H 'Authorization: Bearer {key['key']}'      # 200
  curl -i {gw}/api/hello -H 'Authorization: Bearer tronch_sk_test_nope'  # 401 malformed_key
  for i in $(seq 7); do curl -s -o /dev/null -w '%{{http_code}}\\n' {gw}/api/hello \\
      -H 'Authorization: Bearer {key['key']}'; done                      # ... 429 rate_limited
  curl -s {api_url}/api/v1/keys -H 'Authorization: Bearer {token}'     # list keys
""", flush=True)
    if detach:
        print("Detached. Status: ./run.sh status; stop with: ./run.sh stop")
        return
    print("Ctrl-C stops everything.", flush=True)
    down: set[str] = set()
    try:
        while True:   # a component stopped on purpose (runbook procedures) is noted, not fatal
            now_down = {n for n in COMPONENTS if not find(n)}
            for n in sorted(now_down - down):
                print(f"run.sh: {n} is not running; `./run.sh start {n}` brings it back (Ctrl-C stops everything)",
                      file=sys.stderr, flush=True)
            for n in sorted(down - now_down):
                say(f"{n} is running again (pid {find(n)})")
            down = now_down
            if len(down) == len(COMPONENTS):   # `./run.sh stop` from another shell
                print("run.sh: every component is stopped; exiting", file=sys.stderr)
                return
            time.sleep(0.5)
    except KeyboardInterrupt:
        print()
    stop_all(pids)


def status(names: list[str]) -> int:
    """One line per component; exit 0 if all of them run, 3 if any does not (as LSB status)."""
    code = 0
    for name in names:
        pid, port = find(name), PORTS[PORT_OF[name]]
        if pid:
            extra = ""
            if name == "tronchd":
                try:
                    st, body = api("GET", "/api/v1/health", admin_token())
                    redis = body.get("checks", {}).get("redis", {})
                    extra = f"  health {st} {body.get('status')}, mirror_complete {redis.get('mirror_complete')}"
                except OSError as e:
                    extra = f"  health: no answer ({e})"
            print(f"{name:<9} running  pid {pid:<8} 127.0.0.1:{port}{extra}")
        else:
            code = 3
            other = listener_pids(port) if port_taken(port) else []
            note = f" (port {port} held by pid {other[0] if other else '?'}, not this stack's)" if port_taken(port) else ""
            print(f"{name:<9} stopped{note}   start: ./run.sh start {name}")
    return code


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    # Ctrl-C (SIGINT) and SIGTERM both stop everything cleanly; set explicitly, since a shell
    # that starts us in the background hands SIGINT over ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="run.sh")
    parser.add_argument("command", nargs="?", default="up", choices=["up", "stop", "start", "restart", "status"])
    parser.add_argument("component", nargs="?", choices=COMPONENTS)
    parser.add_argument("--detach", action="store_true")
    args = parser.parse_args()
    if args.command == "up":
        if args.component:
            parser.error("up starts everything; one component: ./run.sh start COMPONENT")
        up(args.detach)
        return
    if args.command == "status":
        sys.exit(status([args.component] if args.component else list(COMPONENTS)))
    if args.command == "stop":
        if not args.component:
            sys.exit(stop_all())
        stop_component(args.component)
        write_state()
        return
    if not args.component:
        parser.error(f"{args.command} needs a component: {', '.join(COMPONENTS)}")
    if args.command == "restart":
        stop_component(args.component)
    elif find(args.component):
        say(f"{args.component} is already running (pid {find(args.component)})")
        return
    try:
        pid = start_component(args.component)
    except (StepFailed, RuntimeError, OSError, subprocess.CalledProcessError) as e:
        write_state()
        fail(f"starting {args.component} failed: {e}")
    write_state()
    say(f"started {args.component} (pid {pid})")


if __name__ == "__main__":
    main()
