"""Helpers for the control-plane (tronchd) black-box tests."""
from __future__ import annotations

import hashlib
import json
import threading
import time

import requests

KEY_PREFIX = "tronch:key:{"
EPOCH = "tronch:mirror:epoch"
EVENTS = "tronch:events"


def redis_key_name(plaintext: str) -> str:
    return KEY_PREFIX + hashlib.sha256(plaintext.encode()).hexdigest() + "}"


class Client:
    """requests against one tronchd, with the admin token."""

    def __init__(self, d):
        self.d = d
        self.s = requests.Session()

    def req(self, method, path, *, json_body=None, headers=None, auth=True, data=None, timeout=15):
        h = dict(self.d.headers()) if auth else {}
        h.update(headers or {})
        if json_body is not None:
            data = json.dumps(json_body)
            h.setdefault("Content-Type", "application/json")
        return self.s.request(method, self.d.url(path), data=data, headers=h, timeout=timeout)

    def create(self, **fields):
        body = {"environment": "live", "name": "k", **fields}
        r = self.req("POST", "/api/v1/keys", json_body=body)
        assert r.status_code == 201, r.text
        return r.json(), r


def assert_error(r, status: int, code: str):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


class Events:
    """Collects messages published on tronch:events (subscribe before the change)."""

    def __init__(self, redis_client):
        self.pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(EVENTS)
        # wait for the subscription to be active
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.pubsub.get_message(timeout=0.1)  # processes the subscribe confirmation
            if self.pubsub.subscribed:
                break
        self.messages: list[dict] = []

    def wait_for(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if pred(m):
                    return m
            m = self.pubsub.get_message(timeout=0.2)
            if m and m.get("type") == "message":
                self.messages.append(json.loads(m["data"]))
        raise AssertionError(f"no matching event; got {self.messages}")

    def close(self):
        self.pubsub.close()


def wait_until(pred, timeout=10.0, interval=0.1, msg="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {msg} (last: {last!r})")


def audit_rows(postgres, key_id):
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT action, actor, request_id, before, after FROM audit_log WHERE key_id = %s ORDER BY id",
                    (key_id,))
        return cur.fetchall()


def run_parallel(fns):
    results = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def run(i):
        barrier.wait()
        results[i] = fns[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def redis_record(raw) -> dict:
    """The key record in what tronchd stored in Redis: the signed envelope's "rec" (the exact
    bytes signed, a JSON string), decoded."""
    outer = json.loads(raw)
    return json.loads(outer["rec"]) if "sig" in outer else outer
