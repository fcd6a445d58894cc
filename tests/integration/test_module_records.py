"""Redis is not trusted: a key record is believed only if it carries a valid signature by a
configured tronch_record_key, names the key hash it is stored under, is not older than a version
the gateway has seen, and its signed validity has not ended. Everything else is refused as an
unknown key (401, whatever tronch_failure_mode says), counted, and logged once per key hash.

Records here are signed by tronch_testkit with the session's test key (module_support); the
same checks against tronchd's own signing are in test_e2e_records.py."""
from __future__ import annotations

import json
import time

import pytest
import requests

import tronch_harness as h
from module_support import (RECORD_PUBLIC_KEY, bearer, http_block, new_key, problem, sign, status_metrics,
                            wait_subscribers)
from module_support import testkit as kit   # (a name pytest would not collect)

LOG_LINE = "key record in redis refused for key hash "
FAKE_ID = "6f1c2b9e-8d1a-4c55-9a7e-0d6b1f2a3c4d"


@pytest.fixture
def gateway(nginx_factory, redis_server, redis_client):
    def make(record_keys=(RECORD_PUBLIC_KEY,), extra_http: str = "tronch_failure_mode open;"):
        # failure mode open: a refused record must still be refused (it is not "Redis failed")
        ngx = nginx_factory(http_block(f"127.0.0.1:{redis_server.port}", record_keys=record_keys,
                                       extra_http=extra_http), workers=1)
        wait_subscribers(redis_client, 1)
        return ngx
    return make


@pytest.fixture
def ngx(gateway):
    return gateway()


def get(ngx, key: str) -> requests.Response:
    return requests.get(ngx.url("/"), headers=bearer(key), timeout=5)


def assert_unknown(ngx, key: str) -> None:
    r = get(ngx, key)
    assert r.status_code == 401, r.text
    assert problem(r)["code"] == "unknown_key"


def rejected(ngx) -> float:
    return status_metrics(ngx)["tronch_records_rejected_total"]


def refusal_lines(ngx, digest: str) -> list[str]:
    return [l for l in ngx.error_log.read_text().splitlines() if LOG_LINE + digest[:8] in l]


def record(key: str, status: str = "active", **opts) -> str:
    args = ["record", "--id", FAKE_ID, "--key", key, "--status", status]
    for k, v in opts.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return kit(*args)


def store(redis_client, digest: str, value: str) -> None:
    redis_client.set(kit("redis-key", digest), value)


def tamper(envelope: str, **fields) -> str:
    """The envelope with fields of its record changed and the signature left as it was."""
    env = json.loads(envelope)
    rec = json.loads(env["rec"])
    rec.update(fields)
    env["rec"] = json.dumps(rec, separators=(",", ":"), sort_keys=True)
    return json.dumps(env)


def test_genuine_signed_record_passes(ngx, keys):
    key, _, _ = keys.make()
    assert get(ngx, key).status_code == 200
    assert rejected(ngx) == 0


def test_record_written_by_hand_is_refused_counted_and_logged_once(ngx, keys, redis_client):
    key, digest = new_key()
    # valid JSON, the right name for a key the attacker made: what anyone with Redis write access could do
    store(redis_client, digest, record(key))
    assert_unknown(ngx, key)
    assert rejected(ngx) == 1
    for _ in range(3):   # forged events drop the cached refusal: verified (and refused) again
        keys.changed(digest, FAKE_ID)
        time.sleep(0.05)
        assert_unknown(ngx, key)
    assert rejected(ngx) == 4
    lines = refusal_lines(ngx, digest)
    assert len(lines) == 1, lines
    assert "[warn]" in lines[0] and "not signed" in lines[0]
    text = ngx.error_log.read_text()
    assert key not in text and key[15:] not in text and digest not in text  # only a hash prefix


@pytest.mark.parametrize("fields", [
    {"status": "active"},                                     # revoked -> active
    {"environment": "live"},                                  # test -> live
    {"expires_at": 4000000000},                               # expired -> far future
    {"limit": {"rate": 1000000, "period_seconds": 1, "burst": 1000000}},
    {"allowed_cidrs": []},                                    # drop the address restriction
])
def test_genuine_record_with_one_field_changed_is_refused(ngx, keys, redis_client, fields):
    key, digest = new_key("test" if "environment" in fields else "live")
    env = "test" if "environment" in fields else "live"
    status = "revoked" if "status" in fields else "active"
    opts = {"env": env, "rate": 1, "period": 60, "burst": 0, "cidr": "10.9.9.0/24"}
    if "expires_at" in fields:
        opts["expires_at"] = int(time.time()) - 10
    genuine = sign(record(key, status, **opts), digest)
    store(redis_client, digest, tamper(genuine, **fields))
    assert_unknown(ngx, key)
    assert rejected(ngx) == 1
    assert "bad signature" in refusal_lines(ngx, digest)[0]


def test_forged_signature_and_unknown_signing_key_are_refused(ngx, keys, redis_client, tmp_path):
    key1, digest1 = new_key()
    env = json.loads(sign(record(key1), digest1))
    env["sig"] = "A" * 86 + "=="                               # the configured kid, a made-up signature
    store(redis_client, digest1, json.dumps(env))
    assert_unknown(ngx, key1)

    other = tmp_path / "other.key"
    kit("signing-key", str(other))
    key2, digest2 = new_key()
    store(redis_client, digest2, sign(record(key2), digest2, signing_key=other))
    assert_unknown(ngx, key2)
    assert "not configured" in refusal_lines(ngx, digest2)[0]

    store(redis_client, digest1, "definitely not JSON")          # garbage is a refusal, not a Redis failure
    keys.changed(digest1, FAKE_ID)
    time.sleep(0.05)
    assert_unknown(ngx, key1)
    assert rejected(ngx) == 3


def test_genuine_record_of_another_key_is_refused(ngx, keys, redis_client):
    victim, victim_digest, _ = keys.make()
    attacker, attacker_digest = new_key()
    # the attacker copies a genuine record under the name of a key it made up
    store(redis_client, attacker_digest, redis_client.get(kit("redis-key", victim_digest)))
    assert_unknown(ngx, attacker)
    assert "another key hash" in refusal_lines(ngx, attacker_digest)[0]
    assert get(ngx, victim).status_code == 200


def test_replayed_older_record_is_refused_by_a_gateway_that_saw_the_newer(ngx, keys, redis_client):
    key, digest = new_key()
    old_active = sign(record(key, "active"), digest, version=10)
    store(redis_client, digest, old_active)
    assert get(ngx, key).status_code == 200
    store(redis_client, digest, sign(record(key, "revoked"), digest, version=11))
    keys.changed(digest, FAKE_ID)
    time.sleep(0.05)
    assert get(ngx, key).status_code == 403             # the gateway has now seen version 11

    store(redis_client, digest, old_active)             # the replay, and forged events to make it noticed
    for forge in (lambda: keys.changed(digest, FAKE_ID), keys.rebuilt):
        forge()
        time.sleep(0.05)
        assert_unknown(ngx, key)
    assert "older than a version already seen" in refusal_lines(ngx, digest)[0]


def test_record_past_its_validity_is_refused_by_a_fresh_gateway(gateway, keys, redis_client):
    key, digest = new_key()
    valid_until = int(time.time()) + 2
    store(redis_client, digest, sign(record(key, "active"), digest, valid_until=valid_until))
    while time.time() < valid_until + 1:    # a fresh gateway that never saw a newer version
        time.sleep(0.2)
    ngx = gateway()
    assert_unknown(ngx, key)
    assert "validity ended" in refusal_lines(ngx, digest)[0]


def test_rotation_two_public_keys_then_one(gateway, keys, redis_client, tmp_path):
    new_private = tmp_path / "new.key"
    kit("signing-key", str(new_private))
    new_public = tmp_path / "new.pub"
    ngx = gateway(record_keys=(RECORD_PUBLIC_KEY, new_public))
    old_key, old_digest, _ = keys.make()                      # signed by the old key
    new_key_, new_digest = new_key()
    store(redis_client, new_digest, sign(record(new_key_), new_digest, signing_key=new_private))
    assert get(ngx, old_key).status_code == 200 and get(ngx, new_key_).status_code == 200
    # the mirror is re-signed with the new key, then the old public key goes
    store(redis_client, old_digest, sign(record(old_key), old_digest, signing_key=new_private))
    old_workers = set(ngx.worker_pids())
    ngx.reload(http_block(f"127.0.0.1:{redis_server_port(redis_client)}", record_keys=(new_public,)))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (set(ngx.worker_pids()) & old_workers or not ngx.worker_pids()):
        time.sleep(0.1)
    assert not set(ngx.worker_pids()) & old_workers, "the reload did not replace the worker"
    wait_subscribers(redis_client, 1)
    for d in (old_digest, new_digest):     # cached entries stay across a reload: make them misses
        keys.changed(d, FAKE_ID)
    time.sleep(0.1)
    assert get(ngx, old_key).status_code == 200 and get(ngx, new_key_).status_code == 200
    # a record still signed by the removed key is refused now
    stale_key, stale_digest = new_key()
    store(redis_client, stale_digest, sign(record(stale_key), stale_digest))
    assert_unknown(ngx, stale_key)


def redis_server_port(client) -> int:
    return client.connection_pool.connection_kwargs["port"]


def test_nginx_t_fails_on_a_bad_record_key(nginx_factory, redis_server, tmp_path):
    not_a_key = tmp_path / "junk.pub"
    not_a_key.write_text("hello\n")
    private = tmp_path / "priv.key"
    kit("signing-key", str(private))
    for path, words in ((tmp_path / "missing.pub", "cannot open"), (not_a_key, "not usable"),
                        (private, "not usable")):
        ngx = nginx_factory(http_block(f"127.0.0.1:{redis_server.port}", record_keys=(path,)), start=False)
        r = ngx.test_config()
        assert r.returncode != 0
        assert "tronch_record_key" in r.stderr and words in r.stderr and str(path) in r.stderr, r.stderr


def test_without_a_record_key_unsigned_records_pass_with_a_warning(gateway, keys):
    ngx = gateway(record_keys=())
    key, _, _ = keys.make(signed=False)
    assert get(ngx, key).status_code == 200
    # said while the configuration is read: on nginx's stderr (and by nginx -t)
    assert "[warn]" in (ngx.prefix / "logs" / "stderr.log").read_text()
    assert "no tronch_record_key" in (ngx.prefix / "logs" / "stderr.log").read_text()
    assert "no tronch_record_key" in ngx.test_config().stderr
