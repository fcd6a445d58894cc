"""bench/run's cluster cases (imported by bench/run):

  - commands_per_1000: Redis commands per 1,000 requests under the exact (`redis`) and the leased
    policy at 1, 2 and 4 nginx instances (1 worker each, tronch_nodes = instances), wrk on each at
    once. Two shapes: `free` (the bench's default limit, never reached: 100 keys) and `at limit`
    (one key at 1,000 r/s burst 100, offered several times that). Commands are counted from INFO
    commandstats: the commands the nodes sent (scripts count once; what a script runs inside --
    TIME, GET, SET, HINCRBY -- and INFO itself are taken out).
  - revocation_latency: tronchd + Postgres + an nginx with 2 workers on their own Redis; for each of
    n keys (>= 100): create it through the API, warm it on every worker, DELETE it, and time from the
    DELETE's answer until every worker refuses it. p50/p99/max.
"""
from __future__ import annotations

import pathlib
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "integration"))
import tronch_harness as h  # noqa: E402

INSTANCES = (1, 2, 4)


def sent_commands(client) -> int:
    c = {name.removeprefix("cmdstat_"): v["calls"] for name, v in client.info("commandstats").items()}
    inside = 2 * c.get("time", 0) + c.get("set", 0) + c.get("hincrby", 0)
    return sum(v for k, v in c.items() if k != "info") - inside


def _nginx(redis_conf: str, record_key: str, policy: str, nodes: int, limit: str) -> h.Nginx:
    return h.Nginx(f"""
    access_log off;
    keepalive_requests 1000000;
    tronch_zone cluster 10m;
    {redis_conf}
    {record_key}
    tronch_limit_policy {policy};
    tronch_nodes {nodes};
    tronch_default_limit {limit};
    server {{ listen 127.0.0.1:{{port}}; root {{prefix}}/html; location / {{ tronch on; }} }}
""", workers=1)


def _wrk_all(ngxs, lua: pathlib.Path, seconds: int) -> tuple[int, int]:
    """(requests, of which admitted) over all instances."""
    procs = [subprocess.Popen(["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", str(lua), f"http://127.0.0.1:{n.port}/small.txt"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for n in ngxs]
    outs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
    requests = sum(int(re.search(r"(\d+) requests in", o).group(1)) for o in outs)
    refused = sum(int(m.group(1)) for o in outs if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", o)))
    return requests, requests - refused


def commands_per_1000(redis_conf: str, record_key: str, client, lua_free: pathlib.Path,
                      lua_one: pathlib.Path, free_limit: str, seconds: int) -> list[dict]:
    rows = []
    for shape, lua, limit in (("free", lua_free, free_limit), ("at limit", lua_one, "rate=1000r/s burst=100")):
        for policy in ("redis", "leased"):
            for n in INSTANCES:
                ngxs = [_nginx(redis_conf, record_key, policy, n, limit) for _ in range(n)]
                try:
                    for x in ngxs:
                        x.start()
                    _wrk_all(ngxs, lua, 1)   # warm: caches, scripts, the rate seen
                    before = sent_commands(client)
                    requests, admitted = _wrk_all(ngxs, lua, seconds)
                    commands = sent_commands(client) - before
                finally:
                    for x in ngxs:
                        x.stop()
                        x.cleanup()
                stats = client.info("commandstats").get("cmdstat_evalsha", {})
                rows.append({"shape": shape, "policy": policy, "instances": n, "requests": requests,
                             "usec_per_script": stats.get("usec_per_call", 0.0),
                             "admitted": admitted, "commands": commands,
                             "per_1000": 1000 * commands / max(requests, 1),
                             "per_1000_admitted": 1000 * commands / max(admitted, 1)})
    return rows


def revocation_latency(n: int = 100, workers: int = 2) -> dict:
    from cp_support import Client
    from module_support import RECORD_SIGNING_KEY, connection_per_worker, http_block, until_all_refuse, wait_subscribers
    redis = h.Redis().start()
    pg = h.Postgres().start()
    d = ngx = None
    try:
        d = h.Tronchd(pg, redis, extra_env={"TRONCH_RECORD_SIGNING_KEY": str(RECORD_SIGNING_KEY)}).start()
        api = Client(d)
        ngx = h.Nginx(http_block(f"127.0.0.1:{redis.port}", listen_opts="reuseport"), workers=workers).start()
        wait_subscribers(redis.client(), workers)
        latencies = []
        for i in range(n):
            k, _ = api.create(environment="live", name=f"bench-revoke-{i}")
            conns = connection_per_worker(ngx, k["key"])   # one pinned connection per worker, each saw 200
            r = api.req("DELETE", f"/api/v1/keys/{k['id']}")
            assert r.status_code == 204, r.text
            t0 = time.monotonic()        # from the DELETE's answer
            latencies.append(until_all_refuse(conns, k["key"], t0, limit=5.0) * 1000)   # fails past 5 s
        ms = sorted(latencies)
        return {"n": n, "workers": workers, "p50": statistics.median(ms),
                "p99": ms[min(len(ms) - 1, int(round(0.99 * len(ms))) - 1)], "max": ms[-1],
                "problems": ngx.log_problems()}
    finally:
        if ngx:
            ngx.stop()
            ngx.cleanup()
        if d:
            d.stop()
        pg.stop()
        redis.stop()


def print_commands(rows: list[dict]) -> None:
    print("Redis commands per 1,000 requests (INFO commandstats; instances of 1 worker, wrk -t1 -c8 each):")
    print(f"{'shape':<9} {'policy':<7} {'nginx':>5} {'requests':>9} {'admitted':>9} {'commands':>9} "
          f"{'per 1,000':>10} {'per 1,000 admitted':>19}")
    for r in rows:
        print(f"{r['shape']:<9} {r['policy']:<7} {r['instances']:>5} {r['requests']:>9} {r['admitted']:>9} "
              f"{r['commands']:>9} {r['per_1000']:>10.1f} {r['per_1000_admitted']:>19.1f}")
    for r in rows:
        print(f"commands_per_1000 {r['shape'].replace(' ', '_')} {r['policy']} {r['instances']} {r['per_1000']:.1f} "
              f"admitted {r['per_1000_admitted']:.1f}")
    print(f"Redis CPU per EVALSHA (INFO commandstats usec_per_call, cumulative over the cases): "
          f"{rows[-1]['usec_per_script']:.2f} us")


def print_revocation(rev: dict) -> None:
    print(f"revocation: DELETE answered -> every one of {rev['workers']} workers refuses, {rev['n']} keys: "
          f"p50 {rev['p50']:.1f} ms, p99 {rev['p99']:.1f} ms, max {rev['max']:.1f} ms")
    print(f"revocation_p50_ms {rev['p50']:.1f}")
    print(f"revocation_p99_ms {rev['p99']:.1f}")
    if rev["problems"]:
        print("nginx error.log problems:", *rev["problems"][:5], sep="\n  ")
