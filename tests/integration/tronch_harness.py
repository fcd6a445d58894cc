"""Real services for black-box tests: PostgreSQL, Redis, nginx (with the built module) and
tronchd, each on 127.0.0.1, on a free port, in a temp dir, stopped afterwards.

Used by the pytest fixtures in conftest.py and by run.sh-style scripts. Nothing here mocks
anything; nothing depends on a service started by hand.
"""
from __future__ import annotations

import atexit
import os
import pathlib
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SOURCE_DIR = pathlib.Path(os.environ.get("TRONCH_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
BUILD_DIR = pathlib.Path(os.environ.get("TRONCH_BUILD_DIR", SOURCE_DIR / "build"))
MODULE_SO = BUILD_DIR / "ngx_module" / "ngx_http_tronch_module.so"
TRONCHD_BIN = BUILD_DIR / "control_plane" / "tronchd"
NGINX_BIN = "/usr/sbin/nginx"
PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")
IS_ROOT = os.geteuid() == 0

# Latency bounds in tests are the product's promises (revocation within 100 ms, ...). They hold on a quiet
# machine, where TRONCH_STRICT_TIMING=1 checks them as stated. By default (CI on two shared, drifting
# cores) a bound only proves that nothing hangs or waits for a timeout it should not: ten times the promise.
TIMING_SLACK = 1.0 if os.environ.get("TRONCH_STRICT_TIMING") == "1" else 10.0


def within(seconds: float, promise: float) -> bool:
    """True if a measured latency keeps the promise (scaled by TIMING_SLACK, see above)."""
    return seconds < promise * TIMING_SLACK


_ports_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port nothing listens on right now, never handed out before by this process, and
    outside the kernel's ephemeral range. Letting the kernel pick (bind to port 0) could give the
    same port twice before either was bound: two server blocks of one nginx on one port then share
    it silently, and requests reach the wrong one (it.module_records saw an unprotected 200 so).
    Ephemeral ports are also what outgoing connections take while a test sets up."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(20000, 32768) if p not in _ports_handed_out and not low <= p <= high]
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for port in rng.sample(candidates, min(200, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_handed_out.add(port)
        return port
    raise RuntimeError("no free TCP port found in 20000-32767")


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


_TEMP_DIRS: list[pathlib.Path] = []


def make_temp_dir(prefix: str) -> pathlib.Path:
    """A temp dir that nginx workers (nobody) and postgres can read: mktemp makes 0700.
    Removed when the process exits (see _remove_temp_dirs)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    _TEMP_DIRS.append(path)
    return path


@atexit.register
def _remove_temp_dirs() -> None:
    """At exit, once every fixture has stopped its service (a service may be stopped and started
    again on the same dir, so stop() cannot remove it): each Postgres dir holds a whole cluster,
    40-280 MB. TRONCH_KEEP_TEMP=1 keeps them for a post-mortem."""
    if os.environ.get("TRONCH_KEEP_TEMP"):
        return
    for path in _TEMP_DIRS:
        shutil.rmtree(path, ignore_errors=True)


def _stop(proc: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Redis:
    def __init__(self, port: int | None = None, workdir: pathlib.Path | None = None):
        self.port = port or free_port()
        self.dir = workdir or make_temp_dir("tronch-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Redis":
        self.proc = subprocess.Popen(
            # enable-debug-command local: the fault suite freezes Redis with DEBUG SLEEP
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--enable-debug-command", "local",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self):
        import redis  # Debian's python3-redis
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)


class Postgres:
    """A cluster in `workdir` (a temp dir unless given). As root (as CI runs) initdb/postgres
    refuse to run, so they run as Debian's `postgres` user on a data dir it owns.

    Tests run it fast and crash-unsafe (fsync, synchronous_commit and full_page_writes off);
    `durable=True` (./run.sh) keeps PostgreSQL's safe defaults, so a 201 survives a crash."""

    # Crash-unsafe settings that only a throw-away test cluster may use.
    FAST_SETTINGS = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]

    def __init__(self, port: int | None = None, workdir: pathlib.Path | None = None, durable: bool = False):
        self.durable = durable
        self.port = port or free_port()
        self.dir = workdir or make_temp_dir("tronch-pg-")
        self.data = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.proc: subprocess.Popen | None = None
        self.dbname = "tronch"

    def _as_owner(self, argv: list[str]) -> list[str]:
        # setpriv execs in place (runuser forks and does not pass signals on), so the pid we
        # hold is the postmaster's own and SIGINT reaches it.
        if not IS_ROOT:
            return argv
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]

    def _chown(self, path: pathlib.Path) -> None:
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self) -> "Postgres":
        self.sockdir.mkdir(exist_ok=True)
        self._chown(self.sockdir)
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(exist_ok=True)
            self._chown(self.data)
            subprocess.run(self._as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                           "--auth=trust", "-E", "UTF8", *([] if self.durable else ["--no-sync"])]),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            self._as_owner([str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                            "-h", "127.0.0.1", "-k", str(self.sockdir),
                            *([] if self.durable else self.FAST_SETTINGS), "-c", "max_connections=200"]),
            stdout=log, stderr=log, start_new_session=True)
        wait_for_port(self.port, proc=self.proc, timeout=30)
        self._wait_ready()
        self.psql_admin(f"SELECT 'CREATE DATABASE {self.dbname}' "
                        f"WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{self.dbname}')\\gexec")
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("postgres not ready")

    def psql_admin(self, sql: str, db: str = "postgres") -> str:
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                            "-v", "ON_ERROR_STOP=1", "-Atq"], input=sql, text=True,
                           capture_output=True, check=True)
        return r.stdout

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT, timeout=20)  # SIGINT: fast shutdown
        self.proc = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def connect(self):
        import psycopg2  # Debian's python3-psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=self.dbname)
        conn.autocommit = True
        return conn


class Nginx:
    """The stock /usr/sbin/nginx with our module loaded, master + workers, in its own prefix.

    `http_block` is the inside of http { }; `main_block` goes at top level (after load_module).
    The docroot (html/) holds index.html and a few small files for locations to serve."""

    ALERT = re.compile(r"\[(alert|emerg|crit)\]")

    def __init__(self, http_block: str, main_block: str = "", workers: int = 2, load_module: bool = True,
                 port: int | None = None):
        self.port = port or free_port()
        self.prefix = make_temp_dir("tronch-nginx-")
        self.http_block = http_block
        self.main_block = main_block
        self.workers = workers
        self.load_module = load_module
        self.proc: subprocess.Popen | None = None
        for sub in ("logs", "html", "tmp"):
            (self.prefix / sub).mkdir()
            (self.prefix / sub).chmod(0o777 if sub == "tmp" else 0o755)
        (self.prefix / "html" / "index.html").write_text("hello from upstream\n")
        (self.prefix / "html" / "small.txt").write_text("x" * 64)
        for f in (self.prefix / "html").iterdir():
            f.chmod(0o644)

    @property
    def conf_path(self) -> pathlib.Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> pathlib.Path:
        return self.prefix / "logs" / "error.log"

    def render(self, http_block: str | None = None) -> str:
        load = f"load_module {MODULE_SO};\n" if self.load_module else ""
        body = (http_block if http_block is not None else self.http_block).replace("{port}", str(self.port))
        body = body.replace("{prefix}", str(self.prefix))
        tmp = self.prefix / "tmp"
        return f"""{load}worker_processes {self.workers};
pid {self.prefix}/logs/nginx.pid;
error_log {self.error_log} info;
daemon off;
{self.main_block}
events {{ worker_connections 1024; }}
http {{
    access_log {self.prefix}/logs/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
{body}
}}
"""

    def write_config(self, http_block: str | None = None) -> None:
        self.conf_path.write_text(self.render(http_block))

    def test_config(self) -> subprocess.CompletedProcess:
        """`nginx -t` on the current config: returncode and stderr (which names any error)."""
        self.write_config()
        return subprocess.run([NGINX_BIN, "-t", "-p", str(self.prefix), "-c", str(self.conf_path)],
                              capture_output=True, text=True)

    def start(self) -> "Nginx":
        self.write_config()
        self.proc = subprocess.Popen([NGINX_BIN, "-p", str(self.prefix), "-c", str(self.conf_path)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.prefix / "logs" / "stderr.log", "ab"))
        wait_for_port(self.port, proc=self.proc)
        return self

    def reload(self, http_block: str | None = None) -> None:
        if http_block is not None:
            self.http_block = http_block
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        _stop(self.proc, signal.SIGQUIT, timeout=15)  # graceful: timers must not hold it up
        self.proc = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_problems(self) -> list[str]:
        if not self.error_log.exists():
            return []
        return [l for l in self.error_log.read_text(errors="replace").splitlines() if self.ALERT.search(l)]

    def cleanup(self) -> None:
        shutil.rmtree(self.prefix, ignore_errors=True)


class Tronchd:
    """The control-plane daemon on a free loopback port, against the given Postgres/Redis."""

    def __init__(self, postgres: Postgres, redis: Redis, admin_token: str = "test-admin-token-0123456789",
                 port: int | None = None, extra_env: dict[str, str] | None = None,
                 workdir: pathlib.Path | None = None):
        self.port = port or free_port()
        self.postgres = postgres
        self.redis = redis
        self.admin_token = admin_token
        self.dir = workdir or make_temp_dir("tronchd-")
        self.log_path = self.dir / "tronchd.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "TRONCH_DATABASE_URL": self.postgres.url,
            "TRONCH_REDIS_ADDR": f"127.0.0.1:{self.redis.port}",
            "TRONCH_LISTEN": f"127.0.0.1:{self.port}",
            "TRONCH_ADMIN_TOKEN": self.admin_token,
            "TRONCH_RECORD_SIGNING_KEY": str(self.dir / "records.key"),  # records.pub beside it
        })
        env.update(self.extra_env)
        return env

    def start(self, wait: bool = True) -> "Tronchd":
        self.proc = subprocess.Popen([str(TRONCHD_BIN), "serve"], env=self.env(),
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if wait:
            wait_for_port(self.port, proc=self.proc, timeout=30)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}", **extra}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def record_public_key(self) -> pathlib.Path:
        """What tronchd wrote beside its signing key (TRONCH_RECORD_SIGNING_KEY in env())."""
        return pathlib.Path(self.env()["TRONCH_RECORD_SIGNING_KEY"]).with_suffix(".pub")


def raw_http(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Sends bytes as they are (broken or duplicate header lines included) to 127.0.0.1:port and
    returns (status, headers with lower-case names, body) of the first response; status 0 if the
    reply has no status line. A server that answers and closes before reading everything is fine."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        want = int(headers.get("content-length", "0"))
        while len(body) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, headers, body
