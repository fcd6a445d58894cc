"""Hostile clients against the module (issue 12): no key material in any log of the shipped
gateway, no second key upstream (a real Python upstream records what it receives), and the
failed-auth guard that refuses lookups, not cached keys."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.parse

import pytest
import requests

import tronch_harness as h
from module_support import bearer, new_key, problem
from test_e2e_configs import CONF_DIR, RenderedNginx


def raw_request(port: int, data: bytes) -> int:
    """Sends bytes as they are (duplicate and broken header lines included); the status, or 0."""
    return h.raw_http(port, data, timeout=5)[0]


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def needles(key: str) -> list[str]:
    """What must never be in a log: the key, its secret part, and long pieces of both."""
    secret = key[15:]
    return [key, secret, secret[:12], secret[-12:], urllib.parse.quote(key, safe=""),
            "".join(f"%{b:02X}" for b in key.encode())[45:]]


# --- finding 1: keys in nginx's logs ---------------------------------------------------------

def hostile_requests(key: str, other: str) -> list[bytes]:
    encoded = "".join(f"%{b:02X}" for b in key.encode())
    return [
        get("/api/hello", f"Authorization: Bearer {key}", f"Authorization: Bearer {other}"),  # duplicate
        get("/api/hello", "X-Note: a", f" {key}"),                         # a folded (obs-fold) line
        get("/api/hello", f"X API Key: {key}"),                            # an invalid header name
        get("/api/hello", f"X-API-Key: {key}\x01"),                        # a control character
        get(f"/api/hello?api_key={key}&x=1"),                              # the query string
        get(f"/api/hello?k={encoded}"),                                    # URL-encoded
        get(f"/api/hello?k={key[:20]}%5F{key[21:]}"),                      # partly encoded
        get("/api/hello", f"X-API-Key: {key}"),                            # a valid pass
        get(f"/api/hello?again={key}", f"X-API-Key: {key}"),               # pass, key in the query too
        get("/api/hello", f"Cookie: session=1; tronch_key={key}"),         # a cookie
        get("/api/hello", f"Authorization: Bearer {key}", f"X-API-Key: {other}"),  # two keys
        f"G\x01T /?k={key} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),          # an invalid method
        get("/api/hello", f"Authorization: Bearer {key[:-1]}x"),           # malformed (typo)
        get(f"/nowhere/{key}"),                          # in the path: no file is opened (no [error] line)
        get(f"/api/hello?k=tronch%255Fsk%255Ftest%255F{key[15:]}"),         # encoded twice
        get(f"/api/hello?k={key[:15].upper()}{key[15:]}"),                  # prefix in capitals
    ]


def test_no_key_material_in_any_log_of_the_shipped_gateway(redis_server, keys):
    key, _, _ = keys.make("test")
    other, _, _ = keys.make("live")
    ngx = RenderedNginx("gateway.conf", f"127.0.0.1:{redis_server.port}")
    try:
        ngx.start()
        statuses = [raw_request(ngx.port, req) for req in hostile_requests(key, other)]
        print("hostile statuses:", statuses)
    finally:
        ngx.stop()
    logs = {p.name: p.read_text(errors="replace") for p in (ngx.prefix / "logs").iterdir() if p.is_file()}
    assert "access.log" in logs and "error.log" in logs, list(logs)
    for name, text in logs.items():
        for needle in needles(key) + needles(other):
            assert needle not in text, f"{name} holds key material ({needle[:20]}...):\n{text}"
    assert "tronch_sk_test_***" in logs["access.log"], logs["access.log"]   # masked, not dropped
    assert statuses[7] == 200 and statuses[8] == 200, statuses       # the key itself works
    assert statuses[0] == 400 and statuses[10] == 400, statuses      # ambiguous: refused
    assert all(s and s < 500 for s in statuses), statuses


def test_shipped_configs_keep_info_out_of_error_log():
    """nginx logs bad header lines (with their text) at info: every shipped error_log is above it,
    and every shipped log format uses $tronch_safe_request, never $request."""
    for conf in CONF_DIR.glob("*.conf"):
        text = conf.read_text()
        for line in text.splitlines():
            code = line.split("#", 1)[0].split()
            if code[:1] == ["error_log"]:
                assert code[-1].rstrip(";") in ("notice", "warn", "error", "crit", "alert", "emerg"), line
        formats = " ".join(l.split("#", 1)[0] for l in text.splitlines())
        assert "$request " not in formats and '$request"' not in formats, conf
        assert "$request_uri" not in formats and "$args" not in formats, conf
        if "log_format" in formats:
            assert "$tronch_safe_request" in formats, conf


# --- finding 2: a second key travels upstream --------------------------------------------------

class EchoUpstream:
    """A real upstream (Python's http.server) that records the headers of every request."""

    def __init__(self):
        self.received: list[list[tuple[str, str]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.received.append(list(self.headers.items()) + [("path", self.path)])
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = h.free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


def upstream_block(redis_port: int, echo_port: int, extra_http: str = "") -> str:
    upstream = (f"proxy_pass http://127.0.0.1:{echo_port};" if echo_port
                else "root {prefix}/html; try_files /index.html =404;")   # not `return`: it runs before access
    return f"""
    tronch_zone tronch_test 1m;
    tronch_redis 127.0.0.1:{redis_port};
    tronch_redis_timeout 500ms;
    {extra_http}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ tronch on; {upstream} }}
        location /xkey/ {{ tronch on; tronch_key_header X-API-Key; {upstream} }}
        location /auth/ {{ tronch on; tronch_key_header Authorization; {upstream} }}
    }}
"""


def test_no_key_reaches_the_upstream_in_any_combination(nginx_factory, redis_server, keys, echo):
    ngx = nginx_factory(upstream_block(redis_server.port, echo.port))
    k1, _, _ = keys.make("live")
    k2, _, _ = keys.make("live")
    variants = [  # (path, headers, expected status)
        ("/", [f"Authorization: Bearer {k1}"], 200),
        ("/", [f"X-API-Key: {k1}"], 200),
        ("/", [f"Authorization: Bearer {k1}", f"X-API-Key: {k2}"], 400),
        ("/", [f"X-API-Key: {k2}", f"Authorization: Bearer {k1}"], 400),
        ("/", [f"Authorization: Bearer {k1}", f"X-API-Key: {k1}"], 400),
        ("/", [f"X-API-Key: {k1}", f"X-API-Key: {k2}"], 400),
        ("/", [f"X-API-Key: {k1}", f"x-api-key: {k2}"], 400),
        ("/", [f"X-API-Key: {k1}", "X-API-Key: not-a-key"], 400),
        ("/", [f"Authorization: Bearer {k1}", "X-API-Key: x"], 400),
        ("/", [f"Authorization: Bearer {k1}", f"Authorization: Bearer {k2}"], 400),  # nginx's own
        ("/", [f"Authorization: Bearer {k1}", "X-API-Key:  "], 200),    # blank: carries nothing
        ("/xkey/", [f"X-API-Key: {k1}", f"X-API-Key: {k2}"], 400),
        ("/xkey/", [f"X-API-Key: {k1}"], 200),
        ("/auth/", [f"Authorization: Bearer {k1}"], 200),
    ]
    for path, headers, want in variants:
        status = raw_request(ngx.port, get(path, *headers))
        assert status == want, (path, headers, status)
    r = requests.get(ngx.url("/"), headers={**bearer(k1), "X-API-Key": k2}, timeout=5)
    assert r.status_code == 400 and problem(r)["code"] == "ambiguous_credentials"
    assert len(echo.received) == sum(1 for *_, want in variants if want == 200)
    seen = json.dumps(echo.received)
    for needle in needles(k1) + needles(k2):
        assert needle not in seen, f"key material upstream: {seen}"
    print(f"upstream received {len(echo.received)} requests, none with key material")


# --- finding 3: the failed-auth guard and valid keys ------------------------------------------

class Monitor:
    """Every command Redis receives (MONITOR), from a thread, until stop()."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"MONITOR\r\n")
        self.data = b""
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.data += chunk

    def text(self) -> str:
        time.sleep(0.3)
        return self.data.decode(errors="replace")

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


def test_address_over_budget_still_served_for_cached_keys_only(nginx_factory, redis_server, keys):
    ngx = nginx_factory(upstream_block(redis_server.port, 0, "tronch_address_limit rate=5r/m burst=5;"))
    good, _, _ = keys.make("live")
    assert requests.get(ngx.url("/"), headers=bearer(good), timeout=5).status_code == 200  # now cached
    monitor = Monitor(redis_server.port)
    try:
        probe, probe_digest = new_key("live")   # a lookup within budget: MONITOR sees it
        assert requests.get(ngx.url("/"), headers=bearer(probe), timeout=5).status_code == 401
        codes = [requests.get(ngx.url("/"), headers=bearer(f"tronch_sk_live_bad{i}"), timeout=5).status_code
                 for i in range(42)]
        assert codes[-20:] == [429] * 20, codes           # malformed keys still spend and are refused
        # over budget: the cached valid key is served, again and again
        for _ in range(5):
            r = requests.get(ngx.url("/"), headers=bearer(good), timeout=5)
            assert r.status_code == 200, r.text
        # ... but anything that needs a lookup is not, and Redis never hears of it
        fresh, fresh_digest = new_key("live")
        other, other_digest, _ = keys.make("live")        # valid, but not cached here yet
        for k in (fresh, other):
            r = requests.get(ngx.url("/"), headers=bearer(k), timeout=5)
            assert r.status_code == 429 and problem(r)["code"] == "rate_limited", r.text
        assert requests.get(ngx.url("/"), headers=bearer(probe), timeout=5).status_code == 429  # negative cached
        assert requests.get(ngx.url("/"), timeout=5).status_code == 429                         # no key
        seen = monitor.text()
    finally:
        monitor.stop()
    def lookups(digest: str) -> list[str]:   # commands naming the key's record, but our own SET
        return [line for line in seen.splitlines() if digest in line and '"SET"' not in line.upper()]

    assert lookups(probe_digest), "MONITOR saw no lookup at all: the check below would prove nothing"
    assert not lookups(fresh_digest) and not lookups(other_digest), \
        f"a lookup from an address over budget: {lookups(fresh_digest) + lookups(other_digest)}"
    print(f"over budget: cached key 5/5 served; 0 Redis lookups for 2 uncached keys; bad codes {codes[-5:]}")


# --- finding 4: the shipped examples serve nothing protected without a key --------------------

@pytest.mark.parametrize("template", ["gateway.conf", "two-node.conf"])
def test_shipped_examples_serve_nothing_protected_without_a_key(redis_server, keys, template):
    key, _, _ = keys.make("test")
    ngx = RenderedNginx(template, f"127.0.0.1:{redis_server.port}", {"@NODE@": "a"})
    protected = "/api/hello" if template == "gateway.conf" else "/api/x"
    try:
        ngx.start()
        page = requests.get(ngx.url(protected), headers=bearer(key), timeout=5)
        assert page.status_code == 200, page.text
        for path in ("/", "/index.html", "/index.html?x=1", "//index.html", "/./index.html", "/api/",
                     "/api/hello/../../index.html", "/x/..%2Findex.html", "/nginx.conf", "/logs/error.log"):
            r = requests.get(ngx.url(path), timeout=5)
            assert r.status_code in (401, 404), (path, r.status_code)
            assert page.text not in r.text, path
        assert requests.get(ngx.url(protected), timeout=5).status_code == 401
        for r in (page, requests.get(ngx.url("/"), timeout=5)):
            assert r.headers["Server"] == "nginx", r.headers           # no version
            assert not any(h.lower().startswith("x-tronch-worker") for h in r.headers), r.headers
        assert "nginx/" not in requests.get(ngx.url("/"), timeout=5).text
        if template == "gateway.conf":
            assert requests.get(ngx.url("/health"), timeout=5).status_code == 200
            assert requests.get(ngx.url("/public"), timeout=5).status_code == 200
    finally:
        ngx.stop()
