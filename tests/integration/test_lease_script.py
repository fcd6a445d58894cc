"""The lease script (tronch_limit_policy leased) run directly against a real Redis: the core's
gcra_lease maths step by step (grant, partial grant, refusal), the burst never exceeded, and
concurrent callers on separate connections never granted more than GCRA allows between them."""
from __future__ import annotations

import threading
import time

from module_support import testkit as kit

STATE = "tronch:rl:{lease-test}"


def run(client, script, interval, capacity, want, now=None):
    args = [interval, capacity, want] + ([now] if now is not None else [])
    return list(map(int, client.eval(script, 1, STATE, *args)))


def test_script_matches_core_maths(redis_client):
    script = kit("lease-script")
    base = 1_700_000_000_000_000
    # (want, now offset): grants, a partial grant, refusals, refills, a clamp to the capacity
    steps = [(50, 0), (2000, 0), (10, 0), (10, 2_500), (1, 2_500), (3, 10_000), (1, 10_000),
             (500, 600_000), (1200, 5_000_000), (1, 5_000_001), (7, 5_003_000)]
    lines = kit("lease-seq", "1000", "1", "100", *[f"{w}@{base + d}" for w, d in steps]).splitlines()
    interval, capacity = lines[0].split()
    want = [list(map(int, line.split())) for line in lines[1:]]
    got = [run(redis_client, script, interval, capacity, w, base + d) for w, d in steps]
    assert got == want
    # the cases the steps cover, read off the answers
    assert got[0][0] == 50                       # grant
    assert got[1][0] == 1050 and got[1][4] > 0   # partial grant, with the wait for the full ask
    assert got[2][0] == 0 and got[2][2] == 1000  # refusal: one fits after one interval
    assert got[3][0] == 2                        # 2.5 intervals later: two
    assert 0 < redis_client.pttl(STATE)          # the state expires when idle


def test_first_lease_with_redis_clock(redis_client):
    script = kit("lease-script")
    assert run(redis_client, script, 1000, 1100, 20) == [20, 1080, 0, 20_000, 0]
    # asking for 0 or less is asking for one
    assert run(redis_client, script, 1000, 1100, 0)[0] == 1


def test_burst_never_exceeded(redis_client):
    """Leases as fast as Redis answers for ~1 s with Redis's own clock: never more than GCRA
    allows from the first grant (capacity + elapsed / interval), and the TAT never runs more
    than the capacity ahead of the clock."""
    script = kit("lease-script")
    interval, capacity = 1000, 110   # 1,000/s, burst 10
    start_us = None
    total = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        granted = run(redis_client, script, interval, capacity, 7)[0]
        sec, usec = redis_client.time()
        now_us = sec * 1_000_000 + usec
        if start_us is None:
            start_us = now_us - 1_000   # the first grant was made before this TIME
        total += granted
        assert total <= capacity + (now_us - start_us) // interval + 1
        tat = int(redis_client.get(STATE) or 0)
        assert tat - now_us <= capacity * interval


def test_concurrent_callers_share_one_budget(redis_server, redis_client):
    """Eight connections lease at once from a slow limit (nothing refills during the test):
    together they get exactly the capacity, never more."""
    script = kit("lease-script")
    sha = redis_client.script_load(script)
    interval, capacity = 60_000_000, 200   # 1 per minute, burst 199
    totals = [0] * 8
    barrier = threading.Barrier(8)

    def caller(i):
        c = redis_server.client()
        barrier.wait()
        for _ in range(60):
            totals[i] += int(c.evalsha(sha, 1, STATE, interval, capacity, 1 + i)[0])

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(totals) == capacity
    assert sum(1 for t in totals if t > 0) >= 2   # they really ran side by side
    assert run(redis_client, script, interval, capacity, 5)[0] == 0
