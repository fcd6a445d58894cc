"""Directives: a good config passes `nginx -t`; a bad value fails it with a message that
names the directive and the problem."""
from __future__ import annotations

import pytest

import tronch_harness as h

GOOD = """
    tronch_zone keys 1m;
    tronch_redis 127.0.0.1:6390;
    tronch_redis_timeout 150ms;
    tronch_cache_ttl 30s;
    tronch_negative_ttl 5s;
    tronch_stale_ttl 10m;
    tronch_failure_mode closed;
    server {
        listen 127.0.0.1:{port};
        tronch_environment live;
        tronch_require_https off;
        location / { tronch on; tronch_key_header X-API-Key; root html; }
        location /test/ { tronch on; tronch_environment any; tronch_failure_mode open; root html; }
        location = /status { tronch_status; }
    }
"""


def check(http_block: str) -> tuple[int, str]:
    ngx = h.Nginx(http_block)
    try:
        r = ngx.test_config()
        return r.returncode, r.stderr
    finally:
        ngx.cleanup()


def test_good_config():
    rc, err = check(GOOD)
    assert rc == 0, err
    assert "test is successful" in err


@pytest.mark.parametrize("directive", [
    "tronch_redis unix:/run/redis.sock",
    "tronch_redis [::1]:6379",
])
def test_other_good_addresses(directive):
    rc, err = check(GOOD.replace("tronch_redis 127.0.0.1:6390", directive))
    assert rc == 0, err


BAD = [
    # (replace this, with this, the directive named, words of the problem)
    ("tronch_environment live;", "tronch_environment prod;", "tronch_environment", "invalid value \"prod\""),
    ("tronch_failure_mode closed;", "tronch_failure_mode maybe;", "tronch_failure_mode", "invalid value \"maybe\""),
    ("tronch_redis 127.0.0.1:6390;", "tronch_redis redis.example.com:6379;", "tronch_redis", "invalid address"),
    ("tronch_redis 127.0.0.1:6390;", "tronch_redis 127.0.0.1:99999;", "tronch_redis", "invalid address"),
    ("tronch_redis 127.0.0.1:6390;", "tronch_redis unix:relative.sock;", "tronch_redis", "must be absolute"),
    ("tronch_redis_timeout 150ms;", "tronch_redis_timeout 0;", "tronch_redis_timeout", "more than zero"),
    ("tronch_redis_timeout 150ms;", "tronch_redis_timeout fast;", "tronch_redis_timeout", "invalid time"),
    ("tronch_cache_ttl 30s;", "tronch_cache_ttl -1;", "tronch_cache_ttl", "invalid time"),
    ("tronch_negative_ttl 5s;", "tronch_negative_ttl soon;", "tronch_negative_ttl", "invalid time"),
    ("tronch_stale_ttl 10m;", "tronch_stale_ttl forever;", "tronch_stale_ttl", "invalid value"),
    ("tronch_zone keys 1m;", "tronch_zone keys 1k;", "tronch_zone", "too small"),
    ("tronch_zone keys 1m;", "tronch_zone keys lots;", "tronch_zone", "invalid size"),
    ("tronch_zone keys 1m;", "tronch_zone ke/ys 1m;", "tronch_zone", "invalid zone name"),
    ("tronch_require_https off;", "tronch_require_https yes;", "tronch_require_https", "it must be \"on\" or \"off\""),
    ("tronch on; tronch_key_header X-API-Key;", "tronch on; tronch_key_header X:API;", "tronch_key_header", "invalid header name"),
    ("tronch on; tronch_key_header X-API-Key;", "tronch maybe;", "tronch", "it must be \"on\" or \"off\""),
    ("tronch_zone keys 1m;", "", "tronch_zone", "needs"),
    ("tronch_redis 127.0.0.1:6390;", "", "tronch_redis", "needs"),
]


@pytest.mark.parametrize("old,new,directive,problem", BAD, ids=[b[1] or f"no {b[2]}" for b in BAD])
def test_bad_value_fails_and_names_directive(old, new, directive, problem):
    assert old in GOOD
    rc, err = check(GOOD.replace(old, new, 1))
    assert rc != 0, err
    assert "[emerg]" in err
    assert f'"{directive}"' in err, err
    assert problem in err, err


def test_directive_outside_its_context():
    rc, err = check(GOOD.replace("location = /status { tronch_status; }",
                                 "location = /status { tronch_zone other 1m; }"))
    assert rc != 0 and '"tronch_zone" directive is not allowed here' in err, err


def test_module_loads_without_use(nginx_factory):
    # load_module with none of the directives: nginx runs as usual
    ngx = nginx_factory("server { listen 127.0.0.1:{port}; location / { root html; } }")
    import requests
    assert requests.get(ngx.url("/index.html"), timeout=5).status_code == 200
