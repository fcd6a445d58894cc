"""pytest fixtures over tronch_harness: every service real, on loopback, torn down after."""
from __future__ import annotations

import pytest

import tronch_harness as h
from cp_support import Client
from module_support import flushed_client, mirrored_keys


@pytest.fixture(scope="module")
def postgres():
    pg = h.Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def redis_server():
    srv = h.Redis().start()
    yield srv
    srv.stop()


@pytest.fixture
def redis_client(redis_server):
    return flushed_client(redis_server)


@pytest.fixture
def nginx_factory():
    """Build and start nginx instances; on teardown stop them and fail on [alert]/[emerg]/[crit]
    in error.log, as every nginx test must."""
    started: list[h.Nginx] = []

    def make(http_block: str, start: bool = True, **kwargs) -> h.Nginx:
        ngx = h.Nginx(http_block, **kwargs)
        started.append(ngx)
        return ngx.start() if start else ngx

    yield make
    problems = []
    for ngx in started:
        ngx.stop()
        problems += ngx.log_problems()
    for ngx in started:
        ngx.cleanup()
    assert not problems, "error.log has alerts:\n" + "\n".join(problems)


@pytest.fixture
def tronchd_factory(postgres, redis_server):
    started: list[h.Tronchd] = []

    def make(start: bool = True, **kwargs) -> h.Tronchd:
        d = h.Tronchd(postgres, redis_server, **kwargs)
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def keys(redis_client):
    """Writes key records to the shared Redis, as tronchd mirrors them."""
    return mirrored_keys(redis_client)


@pytest.fixture
def d(tronchd_factory, redis_client):
    """A started tronchd over an emptied Redis (redis_client flushes it first)."""
    return tronchd_factory()


@pytest.fixture
def api(d):
    """An admin REST client of d."""
    return Client(d)
