"""The example configs in nginx_conf/ never rot: each passes `nginx -t` with the built module
(placeholders rendered with real paths, as ./run.sh does), and the two-node example really runs
as two nodes on one Redis."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess

import pytest
import requests

import tronch_harness as h
from cp_support import Client, wait_until
from module_support import RECORD_PUBLIC_KEY, bearer, problem

CONF_DIR = h.SOURCE_DIR / "nginx_conf"
EXAMPLES = {"gateway.conf", "tronch.conf", "two-node.conf",
            "mod-http-tronch.conf", "tronch-api-site.conf"}  # these two: test_module_install.py

_spec = importlib.util.spec_from_file_location("stack", h.SOURCE_DIR / "scripts" / "stack.py")
stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack)   # the launcher's own rendering: one way to fill the placeholders


class RenderedNginx:
    """One nginx_conf template rendered into a temp prefix, run daemonized as in production."""

    def __init__(self, template: str, redis: str = "127.0.0.1:6379", extra: dict[str, str] | None = None):
        self.prefix = h.make_temp_dir("tronch-example-")
        self.port = h.free_port()
        stack.prepare_prefix(self.prefix)
        extra = {"@RECORD_KEY@": str(RECORD_PUBLIC_KEY), **(extra or {})}
        self.conf = stack.render_template(CONF_DIR / template, self.prefix, self.port, redis, extra)

    def nginx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([h.NGINX_BIN, "-p", str(self.prefix), "-c", str(self.conf), *args],
                              capture_output=True, text=True)

    def start(self) -> "RenderedNginx":
        r = self.nginx()
        assert r.returncode == 0, r.stderr
        h.wait_for_port(self.port)
        return self

    def stop(self) -> None:
        pidfile = self.prefix / "logs" / "nginx.pid"
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        if not text:   # never started (`nginx -t` leaves an empty pid file), or already stopped
            return
        pid = int(text)
        self.nginx("-s", "quit")
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15, msg="nginx stopped")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_problems(self) -> list[str]:
        log = self.prefix / "logs" / "error.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return [line for line in text.splitlines() if h.Nginx.ALERT.search(line)]


@pytest.fixture
def render():
    """RenderedNginx instances, stopped and removed afterwards."""
    made: list[RenderedNginx] = []

    def make(*args, **kw) -> RenderedNginx:
        made.append(RenderedNginx(*args, **kw))
        return made[-1]

    yield make
    for ngx in made:
        ngx.stop()
        shutil.rmtree(ngx.prefix, ignore_errors=True)


def test_every_example_is_checked_here():
    assert {p.name for p in CONF_DIR.glob("*.conf")} == EXAMPLES


@pytest.mark.parametrize("template", ["gateway.conf", "two-node.conf"])
def test_full_example_passes_nginx_t(render, template):
    ngx = render(template, extra={"@NODE@": "a"})
    r = ngx.nginx("-t")
    assert r.returncode == 0, r.stderr
    text = ngx.conf.read_text()
    assert "@" not in text.replace("$remote_addr", ""), "a placeholder was left unrendered"
    assert "daemon off" not in text   # run.sh and ./run.sh stop rely on a daemonized nginx


def test_snippet_included_in_an_existing_nginx(tmp_path):
    prefix = tmp_path
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
load_module {h.MODULE_SO};
pid {prefix}/logs/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ }}
http {{
    include {CONF_DIR / 'tronch.conf'};
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{h.free_port()};
        access_log {prefix}/logs/access.log tronch_main;
        location /api/ {{ tronch on; root {prefix}; }}
        location = /tronch_status {{ tronch_status; allow 127.0.0.1; deny all; }}
    }}
}}
""")
    r = subprocess.run([h.NGINX_BIN, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_two_node_example_shares_keys_and_revocations(render, redis_server, redis_client, tronchd_factory):
    d = tronchd_factory()
    api = Client(d)
    redis = f"127.0.0.1:{redis_server.port}"
    nodes = [render("two-node.conf", redis, {"@NODE@": name, "@RECORD_KEY@": str(d.record_public_key)})
             for name in ("a", "b")]
    try:
        for node in nodes:
            node.start()
        k, _ = api.create(environment="live", name="two-node example")
        for node, name in zip(nodes, ("a", "b")):
            r = requests.get(node.url("/api/x"), headers=bearer(k["key"]), timeout=5)
            assert r.status_code == 200 and r.headers["X-Tronch-Node"] == name
        assert api.req("DELETE", f"/api/v1/keys/{k['id']}").status_code == 204
        for node in nodes:
            wait_until(lambda: requests.get(node.url("/api/x"), headers=bearer(k["key"]), timeout=5).status_code == 403,
                       timeout=2, interval=0.02, msg="revocation reached the node")
            assert problem(requests.get(node.url("/api/x"), headers=bearer(k["key"]), timeout=5))["code"] == \
                "revoked_key"
    finally:
        for node in nodes:
            node.stop()
    problems = [line for node in nodes for line in node.log_problems()]
    assert not problems, problems


def test_every_directive_is_documented():
    """docs/operator-guide.md is the one reference for the module's directives: each directive the
    module defines has a heading there (the rate-limit placeholder heading names the limit branch's)."""
    source = "\n".join(p.read_text() for p in (h.SOURCE_DIR / "ngx_module").glob("*.c"))
    tables = re.findall(r"ngx_command_t\s+\w+\[\]\s*=\s*\{(.*?)ngx_null_command", source, re.S)
    directives = {d for table in tables for d in re.findall(r'ngx_string\("(\w+)"\)', table)}
    assert "tronch_zone" in directives and "tronch" in directives
    headings = [line for line in (h.SOURCE_DIR / "docs" / "operator-guide.md").read_text().splitlines()
                if line.startswith("#")]
    missing = [d for d in sorted(directives) if not any(re.search(rf"\b{d}\b", line) for line in headings)]
    assert not missing, f"directives without a section in docs/operator-guide.md: {missing}"
