"""Helpers for the module's black-box tests: keys and records made by the core library
(tronch_testkit), Redis writes through python3-redis, and an nginx config with an upstream
that echoes what it received."""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import subprocess
import threading
import time
import uuid

import requests

import tronch_harness as h

TESTKIT = h.BUILD_DIR / "tests" / "tools" / "tronch_testkit"


def testkit(*args: str) -> str:
    r = subprocess.run([str(TESTKIT), *args], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def new_key(env: str = "live") -> tuple[str, str]:
    """(key, sha256 hex)"""
    key, digest = testkit("key", env).split()
    return key, digest


EPOCH_KEY, EVENTS_CHANNEL = testkit("names").split()

# Records are signed (Redis is not trusted): one test signing key per session, its public key in
# every http_block by default, as tronchd's would be.
_SIGNING_DIR = h.make_temp_dir("tronch-records-")
RECORD_SIGNING_KEY = _SIGNING_DIR / "records.key"
RECORD_PUBLIC_KEY = _SIGNING_DIR / "records.pub"
RECORD_KID = testkit("signing-key", str(RECORD_SIGNING_KEY))


def record_version() -> int:
    """Increasing across the session, as tronchd's versions are per key: a later put wins."""
    return time.time_ns() // 1000


def sign(record_json: str, digest: str, *, version: int | None = None, valid_until: int | None = None,
         signing_key=RECORD_SIGNING_KEY) -> str:
    """The envelope tronchd would store for record_json under digest's name."""
    version = record_version() if version is None else version
    valid_until = int(time.time()) + 3600 if valid_until is None else valid_until
    r = subprocess.run([str(TESTKIT), "sign", str(signing_key), digest, str(version), str(valid_until)],
                       input=record_json, capture_output=True, text=True, check=True)
    return r.stdout.strip()


class Keys:
    """Writes key records into Redis the way tronchd mirrors them."""

    def __init__(self, client):
        self.r = client

    def mark_mirror_complete(self) -> None:
        self.r.set(EPOCH_KEY, str(int(time.time())))

    def put(self, key: str, digest: str, *, status: str = "active", env: str | None = None,
            expires_at: int | None = None, cidrs: tuple[str, ...] = (), key_id: str | None = None,
            limit: tuple[int, int, int] | None = None, signed: bool = True) -> str:
        """limit: (rate, period seconds, burst); signed: as tronchd stores it (else plain JSON)"""
        key_id = key_id or str(uuid.uuid4())
        args = ["record", "--id", key_id, "--key", key, "--status", status]
        if env:
            args += ["--env", env]
        if expires_at is not None:
            args += ["--expires-at", str(expires_at)]
        for c in cidrs:
            args += ["--cidr", c]
        if limit:
            args += ["--rate", str(limit[0]), "--period", str(limit[1]), "--burst", str(limit[2])]
        record = testkit(*args)
        self.r.set(testkit("redis-key", digest), sign(record, digest) if signed else record)
        return key_id

    def make(self, env: str = "live", **kw) -> tuple[str, str, str]:
        """A new key stored in Redis: (key, digest, id)."""
        key, digest = new_key(env)
        key_id = self.put(key, digest, **kw)
        return key, digest, key_id

    def changed(self, digest: str, key_id: str) -> int:
        return self.r.publish(EVENTS_CHANNEL, testkit("event", digest, key_id))

    def rebuilt(self) -> int:
        return self.r.publish(EVENTS_CHANNEL, testkit("event", "--rebuilt"))



def flushed_client(server):
    """An admin client of a Redis server (plain or TLS), emptied so each test starts clean."""
    client = server.client()
    client.flushall()
    return client


def mirrored_keys(client) -> Keys:
    """Keys over client with the mirror-complete mark set (so misses are cached as negative, as
    in production)."""
    k = Keys(client)
    k.mark_mirror_complete()
    return k

def command_calls(client) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}


ECHO = ('{"authorization":"$http_authorization","x_api_key":"$http_x_api_key",'
        '"key_id":"$http_x_tronch_key_id","env":"$http_x_tronch_key_env",'
        '"prefix":"$http_x_tronch_key_prefix","result":"$http_x_tronch_result",'
        '"spoof":"$http_x_tronch_spoof","args":"$args"}')

PROTECT = """
            proxy_set_header X-Tronch-Key-Id $tronch_key_id;
            proxy_set_header X-Tronch-Key-Env $tronch_key_env;
            proxy_set_header X-Tronch-Key-Prefix $tronch_key_prefix;
            proxy_set_header X-Tronch-Result $tronch_result;
            add_header X-Worker-Pid $pid always;
            add_header X-Tronch-Result $tronch_result always;
            proxy_pass http://127.0.0.1:UPSTREAM;
"""


def http_block(redis_addr: str, *, extra_http: str = "", locations: str = "", server_extra: str = "",
               upstream_port: int | None = None, listen_opts: str = "",
               record_keys: tuple = (RECORD_PUBLIC_KEY,)) -> str:
    """A server on {port} whose / is protected by tronch and proxies to an echoing upstream.
    `locations` adds more locations (PROTECT is available as a snippet). `record_keys`: the
    tronch_record_key files (the session's test key by default; () for none)."""
    up = upstream_port or h.free_port()
    keys = "".join(f"    tronch_record_key {k};\n" for k in record_keys)
    block = keys + """
    tronch_zone tronch_test 1m;
    tronch_redis REDIS;
    tronch_redis_timeout 200ms;
    log_format tronch '$remote_addr $status $tronch_result $tronch_key_id';
    EXTRA_HTTP
    server {
        listen 127.0.0.1:UPSTREAM;
        default_type application/json;
        location / { return 200 'ECHO'; }
    }
    server {
        listen 127.0.0.1:{port} LISTEN_OPTS;
        access_log {prefix}/logs/tronch.log tronch;
        SERVER_EXTRA
        location / {
            tronch on;
            PROTECT
        }
        location = /tronch_status { tronch_status; }
        LOCATIONS
    }
"""
    return (block.replace("EXTRA_HTTP", extra_http).replace("SERVER_EXTRA", server_extra)
            .replace("LOCATIONS", locations).replace("LISTEN_OPTS", listen_opts).replace("PROTECT", PROTECT).replace("ECHO", ECHO)
            .replace("UPSTREAM", str(up)).replace("REDIS", redis_addr))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def flood(url: str, key: str, stop_at: float, threads: int = 6) -> dict:
    """GETs with the key from `threads` threads until time.monotonic() reaches stop_at: counts of
    200 ("ok"), 429 ("limited") and anything else ("other"), and each request's start ("times")."""
    out = {"ok": 0, "limited": 0, "other": 0, "times": []}
    lock = threading.Lock()

    def run():
        s = requests.Session()
        while time.monotonic() < stop_at:
            t = time.monotonic()
            r = s.get(url, headers=bearer(key), timeout=5)
            with lock:
                out["times"].append(t)
                out[{200: "ok", 429: "limited"}.get(r.status_code, "other")] += 1

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(run) for _ in range(threads)]:
            f.result()
    return out


def problem(resp) -> dict:
    assert resp.headers["Content-Type"] == "application/problem+json", resp.headers
    body = json.loads(resp.text)
    assert body["status"] == resp.status_code
    return body


def status_metrics(ngx) -> dict[str, float]:
    text = requests.get(ngx.url("/tronch_status"), timeout=5).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


# --- reaching every worker (the config's PROTECT snippet adds X-Worker-Pid) ---

def wait_subscribers(client, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dict(client.pubsub_numsub("tronch:events")).get("tronch:events", 0) == n:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {n} subscribers, have {client.pubsub_numsub('tronch:events')}")


def hit_every_worker(ngx, key: str, expect: int, timeout: float = 10.0) -> set[int]:
    pids = set(ngx.worker_pids())
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while seen != pids and time.monotonic() < deadline:
        r = requests.get(ngx.url("/"), headers=bearer(key), timeout=5)
        assert r.status_code == expect, r.text
        seen.add(int(r.headers["X-Worker-Pid"]))
    assert seen == pids, (seen, pids)
    return seen


def connection_per_worker(ngx, key: str) -> dict[int, http.client.HTTPConnection]:
    """One keep-alive connection pinned to each worker (a connection stays with its worker)."""
    pids = set(ngx.worker_pids())
    conns: dict[int, http.client.HTTPConnection] = {}
    deadline = time.monotonic() + 10
    while set(conns) != pids and time.monotonic() < deadline:
        c = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=5)
        c.request("GET", "/", headers=bearer(key))
        r = c.getresponse()
        r.read()
        assert r.status == 200
        pid = int(r.getheader("X-Worker-Pid"))
        if pid in conns:
            c.close()
        else:
            conns[pid] = c
    assert set(conns) == pids
    return conns


def until_all_refuse(conns, key: str, t0: float, limit: float = 2.0) -> float:
    """Poll each worker's pinned connection until every one refuses the key; the seconds from t0."""
    refused_at: dict[int, float] = {}
    while len(refused_at) < len(conns) and time.monotonic() < t0 + limit:
        for pid, c in conns.items():
            if pid in refused_at:
                continue
            c.request("GET", "/", headers=bearer(key))
            r = c.getresponse()
            body = r.read()
            assert int(r.getheader("X-Worker-Pid")) == pid
            if r.status == 403:
                assert json.loads(body)["code"] == "revoked_key"
                refused_at[pid] = time.monotonic() - t0
            else:
                assert r.status == 200, (r.status, body)
    for c in conns.values():
        c.close()
    assert len(refused_at) == len(conns), f"not refused everywhere after {limit}s: {refused_at}"
    return max(refused_at.values())
