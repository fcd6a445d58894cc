"""./run.sh's Redis has ACL users (issue 11): tronchd's and the gateway's, whose passwords are made
on the first start into 0600 files and never printed; the gateway's user cannot write a key record.
With a module that has tronch_redis_auth the default user is off; with one from before, the default
user keeps only the gateway's rights (so even then the gateway cannot mint a key)."""
from __future__ import annotations

import stat

import pytest
import redis
import requests

from module_support import bearer
from test_e2e_stack import Stack

GATEWAY_USER = "tronch-gateway"
# Debian's python3-redis raises ResponseError for some authentication refusals
REFUSED = (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)


@pytest.fixture
def stack():
    s = Stack()
    yield s
    s.cleanup()


def redis_as(port: int, user: str | None, password: str | None) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, username=user, password=password, decode_responses=True,
                       socket_timeout=5)


def test_run_sh_redis_has_least_privilege_users(stack):
    first = stack.up()
    env = stack.read_env()
    redis_dir = stack.run_dir / "redis"
    passwords = {}
    for who in ("tronchd", "gateway"):
        path = redis_dir / f"{who}.password"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, who
        passwords[who] = path.read_text().strip()
        assert len(passwords[who]) >= 32
        assert passwords[who] not in first.stdout + first.stderr   # never printed
        assert passwords[who] not in (redis_dir / "users.acl").read_text()   # only its SHA-256
        assert passwords[who] not in (stack.run_dir / "tronchd" / "tronchd.log").read_text()
    assert env["TRONCH_REDIS_PASSWORD_FILE"] == str(redis_dir / "tronchd.password")
    port = stack.ports["REDIS"]

    # tronchd works with its user: a new key is mirrored and passes at the gateway
    r = stack.api("POST", "/api/v1/keys", env, json={"environment": "live", "name": "acl"})
    assert r.status_code == 201, r.text
    key = r.json()
    assert requests.get(env["TRONCH_GATEWAY_URL"] + "/api/live/x", headers=bearer(key["key"]), timeout=5).status_code == 200

    conf = (stack.run_dir / "nginx" / "nginx.conf").read_text()
    # the module authenticates as its own user; the default user is off
    assert f"tronch_redis_auth {GATEWAY_USER} {redis_dir / 'gateway.password'};" in conf
    gateway = redis_as(port, GATEWAY_USER, passwords["gateway"])
    with pytest.raises(REFUSED, match="NOAUTH|Authentication"):
        redis_as(port, None, None).ping()
    record = "tronch:key:{" + "0" * 64 + "}"
    assert gateway.exists(record) == 0            # it reads key records ...
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.set(record, "{}")                 # ... and cannot write one
    with pytest.raises(REFUSED, match="WRONGPASS"):
        redis_as(port, "tronchd", "not-the-password").ping()

    # the passwords are kept across a restart (the ACL file is rendered again from them)
    assert stack.run("stop").returncode == 0
    stack.up()
    assert (redis_dir / "tronchd.password").read_text().strip() == passwords["tronchd"]
    env = stack.read_env()
    assert stack.api("GET", f"/api/v1/keys/{key['id']}", env).status_code == 200
    assert requests.get(env["TRONCH_GATEWAY_URL"] + "/api/live/x", headers=bearer(key["key"]), timeout=5).status_code == 200
