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
    ("tronch_stale_ttl 10m;", "tronch_stale_ttl forever;", "tronch_stale_ttl", "or 0 to never serve an expired entry"),
    ("tronch_redis_timeout 150ms;", "tronch_redis_timeout 250;", "tronch_redis_timeout", "a number without a unit is seconds"),
    ("tronch_redis_timeout 150ms;", "tronch_redis_timeout 2m;", "tronch_redis_timeout", "more than the 60s maximum"),
    ("tronch_failure_mode closed;", "tronch_failure_mode closed; tronch_default_limit rate=1r/h burst=9000000000;",
     "tronch_default_limit", "within 2^52 us, about 142 years"),
    ("tronch_failure_mode closed;", "tronch_failure_mode closed; tronch_default_limit rate=10 r/d;",
     "tronch_default_limit", "expected e.g. 100r/s"),
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


# --- papercuts of issue 20 ---

@pytest.mark.parametrize("limit", ["rate=10r/s", "rate=600r/m burst=20", "rate=100 r/s burst=50", "rate=5 r/h"])
def test_limit_spellings_of_limit_req_and_the_guide(limit):
    rc, err = check(GOOD.replace("tronch_failure_mode closed;", f"tronch_failure_mode closed; tronch_default_limit {limit};"))
    assert rc == 0, err


def test_guide_limit_examples_parse():
    """Every `tronch_*_limit rate=...` line in the guide's nginx blocks and in tronch.conf passes nginx -t."""
    import re
    texts = [(h.SOURCE_DIR / "docs/operator-guide.md").read_text(), (h.SOURCE_DIR / "nginx_conf/tronch.conf").read_text()]
    lines = {m.group(0) for t in texts for m in re.finditer(r"tronch_(default|address)_limit rate=[^;|`]*;", t)}
    assert len(lines) >= 3, lines
    for line in lines:
        rc, err = check(GOOD.replace("tronch_failure_mode closed;", f"tronch_failure_mode closed; {line}"))
        assert rc == 0, (line, err)


def test_stale_ttl_zero_is_allowed():
    rc, err = check(GOOD.replace("tronch_stale_ttl 10m;", "tronch_stale_ttl 0;"))
    assert rc == 0, err


@pytest.mark.parametrize("missing,needs", [("tronch_zone keys 1m;", "tronch_zone"), ("tronch_redis 127.0.0.1:6390;", "tronch_redis")])
def test_missing_zone_or_redis_names_the_location(missing, needs):
    conf = GOOD.replace(missing, "").replace("location / { tronch on;", "location / { root html; }\n        location /orders/ { tronch on;")
    rc, err = check(conf)
    assert rc != 0, err
    assert f'"tronch on" in location "/orders/" needs a "{needs}"' in err, err


def test_status_with_proxy_pass_fails():
    for body in ("tronch_status; proxy_pass http://127.0.0.1:9;", "proxy_pass http://127.0.0.1:9; tronch_status;"):
        rc, err = check(GOOD.replace("location = /status { tronch_status; }", f"location = /status {{ {body} }}"))
        assert rc != 0, (body, err)
        assert '"tronch_status"' in err and "location of its own" in err, err


def test_return_in_a_tronch_location_warns():
    conf = GOOD.replace("location /test/ { tronch on;",
                        "location /ping/ { tronch on; return 200 'pong'; }\n        location /test/ { tronch on;")
    rc, err = check(conf)
    assert rc == 0, err
    assert '[warn]' in err and '"tronch on" in location "/ping/" also has "return"' in err, err
    # a conditional return (CORS preflight) warns too, once: nginx compiles it into the same program
    rc, err = check(GOOD.replace("location /test/ { tronch on;",
                                 "location /test/ { if ($request_method = OPTIONS) { return 204; } tronch on;"))
    assert rc == 0 and err.count('also has "return"') == 1 and 'location "/test/"' in err, err
    # a location with other rewrite directives (set) but no return: no warning
    rc, err = check(GOOD.replace("location /test/ { tronch on;", "location /test/ { set $x 1; tronch on;"))
    assert rc == 0 and "also has" not in err, err


def test_return_answers_without_a_key(redis_server, nginx_factory):
    """What the warning is about (documented in the guide): return runs before the key check."""
    import requests
    ngx = nginx_factory(f"""
    tronch_zone keys 1m;
    tronch_redis 127.0.0.1:{redis_server.port};
    server {{
        listen 127.0.0.1:{{port}};
        location /ping/ {{ tronch on; return 200 'pong'; }}
        location / {{ tronch on; root html; }}
    }}
""")
    assert requests.get(ngx.url("/ping/"), timeout=5).status_code == 200
    assert requests.get(ngx.url("/index.html"), timeout=5).status_code == 401


def test_snippet_in_conf_d_and_included_again_says_so():
    snippet = (h.SOURCE_DIR / "nginx_conf/tronch.conf")
    rc, err = check(f"include {snippet};\ninclude {snippet};\n" + GOOD.replace("tronch_zone keys 1m;", ""))
    assert rc != 0
    assert '"tronch_zone" directive is duplicate' in err and "conf.d/ and included by hand" in err, err

