"""Tronch in the same nginx as Debian's third-party modules (nginx-extras' set).

nginx dlopens every module RTLD_GLOBAL, so a symbol one .so exports can bind another's
references. nchan bundles hiredis 1.x and exports it; when Tronch borrowed hiredis from the
global scope (it linked libhiredis.so.0.14), its workers crashed in a loop with nchan loaded
first. Both load orders run as separate nginx instances, with traffic through Tronch (an
accepted and a refused key), nchan (publish then subscribe, stored in Redis, so nchan's own
hiredis runs too) and Lua (content_by_lua_block, alone and behind `tronch on`)."""
from __future__ import annotations

import time

import pytest
import requests

import tronch_harness as h
from module_support import bearer, new_key, problem

MODULES_DIR = "/usr/lib/nginx/modules"
# Debian's modules-enabled order: ndk (10-) before lua, then the 50- ones, stream geoip (70-) last.
# Installed by scripts/deps.sh (libnginx-mod-*: nginx-extras' set on Debian 12).
OTHERS = [
    "ndk_http_module", "ngx_http_lua_module", "ngx_nchan_module",
    "ngx_http_auth_pam_module", "ngx_http_cache_purge_module", "ngx_http_dav_ext_module",
    "ngx_http_echo_module", "ngx_http_fancyindex_module", "ngx_http_geoip_module",
    "ngx_http_geoip2_module", "ngx_http_headers_more_filter_module", "ngx_http_image_filter_module",
    "ngx_http_perl_module", "ngx_http_subs_filter_module", "ngx_http_uploadprogress_module",
    "ngx_http_upstream_fair_module", "ngx_http_xslt_filter_module", "ngx_mail_module",
    "ngx_stream_module", "ngx_stream_geoip_module", "ngx_stream_geoip2_module",
]

HTTP = """
    tronch_zone tronch_coexist 1m;
    tronch_redis 127.0.0.1:REDIS_PORT;
    tronch_redis_timeout 500ms;
    nchan_redis_url "redis://127.0.0.1:REDIS_PORT";
    server {
        listen 127.0.0.1:{port};
        location /api/ {
            tronch on;
            default_type text/plain;
            content_by_lua_block { ngx.say("lua behind tronch: ", ngx.var.tronch_key_id) }
        }
        location = /lua { default_type text/plain; content_by_lua_block { ngx.say("lua alone") } }
        location = /pub { nchan_publisher; nchan_channel_id $arg_id; nchan_use_redis on; }
        location = /sub {
            nchan_subscriber longpoll;
            nchan_channel_id $arg_id;
            nchan_use_redis on;
            nchan_subscriber_first_message oldest;
        }
    }
"""

CRASH_WORDS = ("signal 11", "exited on signal", "[alert]", "[emerg]", "[crit]")


def load_lines(order: str) -> str:
    tronch = f"load_module {h.MODULE_SO};"
    others = [f"load_module {MODULES_DIR}/{m}.so;" for m in OTHERS]
    return "\n".join([tronch, *others] if order == "tronch_first" else [*others, tronch])


def publish(ngx, channel: str, message: str) -> None:
    """nchan answers 503 until its Redis connection is up: retry for a generous while."""
    deadline = time.monotonic() + 20
    while True:
        r = requests.post(ngx.url(f"/pub?id={channel}"), data=message, timeout=5)
        if r.status_code in (201, 202) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code in (201, 202), (r.status_code, r.text)


def crash_lines(ngx) -> list[str]:
    text = ngx.error_log.read_text(errors="replace") if ngx.error_log.exists() else ""
    return [l for l in text.splitlines() if any(w in l for w in CRASH_WORDS)]


@pytest.mark.parametrize("order", ["tronch_first", "tronch_last"])
def test_tronch_nchan_lua_share_one_nginx(order, redis_server, keys, nginx_factory):
    http = HTTP.replace("REDIS_PORT", str(redis_server.port))
    ngx = nginx_factory(http, main_block=load_lines(order), load_module=False)
    key, _, key_id = keys.make()
    unknown, _ = new_key()  # well formed, not in Redis: a lookup through Tronch's hiredis

    for _ in range(20):  # every worker sees both kinds of request
        ok = requests.get(ngx.url("/api/x"), headers=bearer(key), timeout=5)
        assert ok.status_code == 200, ok.text
        assert ok.text == f"lua behind tronch: {key_id}\n"
        refused = requests.get(ngx.url("/api/x"), headers=bearer(unknown), timeout=5)
        assert refused.status_code == 401 and problem(refused)["code"] == "unknown_key", refused.text
        missing = requests.get(ngx.url("/api/x"), timeout=5)
        assert missing.status_code == 401, missing.text

    lua = requests.get(ngx.url("/lua"), timeout=5)
    assert (lua.status_code, lua.text) == (200, "lua alone\n")

    channel = f"coexist-{order}"
    publish(ngx, channel, "hello through nchan")
    sub = requests.get(ngx.url(f"/sub?id={channel}"), timeout=10)
    assert (sub.status_code, sub.text) == (200, "hello through nchan"), sub.text

    # Tronch still answers after nchan and Lua ran in the same workers.
    again = requests.get(ngx.url("/api/y"), headers=bearer(key), timeout=5)
    assert again.status_code == 200, again.text
    assert crash_lines(ngx) == []
