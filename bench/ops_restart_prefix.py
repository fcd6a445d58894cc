"""Issue 21 figures (docs/runbook.md): prefix search and tronchd restart, hand-over vs full
re-mirror, over N keys (default 150k) inserted straight into a throw-away PostgreSQL.
  /usr/bin/python3 bench/ops_restart_prefix.py [N]      (after building tronchd into build/)"""
import json, os, pathlib, signal, sys, time
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("TRONCH_BUILD_DIR", str(ROOT / "build"))
os.environ.setdefault("TRONCH_SOURCE_DIR", str(ROOT))
import requests
import tronch_harness as h

N = int(sys.argv[1]) if len(sys.argv) > 1 else 150000
pg = h.Postgres().start(); rd = h.Redis().start()
key = pg.dir / "records.key"
env = {"TRONCH_RECORD_SIGNING_KEY": str(key)}
def start():
    d = h.Tronchd(pg, rd, extra_env=env); t0 = time.monotonic(); d.start()
    while True:
        try:
            r = requests.get(d.url("/api/v1/health"), timeout=5)
            if r.status_code == 200: break
        except requests.RequestException: pass
        time.sleep(0.02)
    return d, time.monotonic() - t0
try:
    d, _ = start()
    pg.psql_admin(f"""INSERT INTO api_keys (key_prefix, key_hash, environment, name, owner)
        SELECT 'tronch_sk_live_' || substr(md5(i::text), 1, 8), encode(sha256(i::text::bytea), 'hex'), 'live', 'k' || i, 'bulk'
        FROM generate_series(1, {N}) i""", db="tronch")
    pg.psql_admin("ANALYZE api_keys", db="tronch")
    d.stop(); rd.client().delete("tronch:mirror:handover")
    d, t = start(); print(f"start with full re-mirror of {N} keys: {t:.2f} s to health 200")
    H = d.headers()
    for q in ("prefix=tronch_sk_live_abc1", "prefix=tronch_sk_live_0a1b2c3d"):
        t0 = time.monotonic(); r = requests.get(d.url(f"/api/v1/keys?{q}&limit=200"), headers=H); dt = time.monotonic() - t0
        print(f"GET /api/v1/keys?{q}: {r.status_code}, {len(r.json()['data'])} keys, {dt*1000:.1f} ms")
    t0 = time.monotonic(); d.stop(); t_stop = time.monotonic() - t0
    d, t = start(); print(f"clean stop {t_stop:.2f} s, then start with hand-over: {t:.2f} s to health 200")
    print("taken over" in d.log_text(), [json.loads(l)["msg"] for l in d.log_text().splitlines() if "mirror" in l])
    d.proc.send_signal(signal.SIGKILL); d.proc.wait()
    d, t = start(); print(f"after kill -9, start with re-mirror: {t:.2f} s to health 200")
    d.stop()
finally:
    rd.stop(); pg.stop()
