"""End to end, Redis not trusted: tronchd signs every record it mirrors with its own Ed25519 key
(made on first start), nginx verifies with the public key tronchd wrote. A replayed older record
is refused by a gateway that saw the newer one and by any gateway once its validity ends; the
signing key rotates with no key failing; forged events cannot make a gateway accept anything."""
from __future__ import annotations

import hashlib
import json
import subprocess
import time

import pytest
import requests

import tronch_harness as h
from cp_support import Client, redis_key_name, wait_until
from module_support import Keys, bearer, http_block, problem, status_metrics, wait_subscribers
from module_support import testkit as kit

TRONCHCTL = h.BUILD_DIR / "control_plane" / "tronchctl"


@pytest.fixture
def gateway(nginx_factory, redis_server, redis_client):
    """A gateway (one worker) trusting the given public key files, subscribed before it is used."""
    started = []

    def make(*record_keys):
        ngx = nginx_factory(http_block(f"127.0.0.1:{redis_server.port}", record_keys=record_keys), workers=1)
        started.append(ngx)
        wait_subscribers(redis_client, len(started))
        return ngx
    return make


def get(ngx, key: str) -> requests.Response:
    return requests.get(ngx.url("/"), headers=bearer(key), timeout=5)


def code(ngx, key: str) -> tuple[int, str | None]:
    r = get(ngx, key)
    return r.status_code, (problem(r)["code"] if r.status_code >= 400 else None)


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def envelope(redis_client, key: str) -> dict:
    return json.loads(redis_client.get(redis_key_name(key)))


def test_tronchd_makes_its_key_signs_every_record_and_shows_the_public_key(tronchd_factory, gateway, redis_client):
    d = tronchd_factory()
    private = d.record_public_key.with_suffix(".key")
    assert private.stat().st_mode & 0o777 == 0o600
    pem = d.record_public_key.read_text()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pem

    env = {"TRONCH_API_URL": f"http://127.0.0.1:{d.port}", "TRONCH_ADMIN_TOKEN": d.admin_token, "PATH": "/usr/bin:/bin"}
    shown = subprocess.run([str(TRONCHCTL), "records-key"], env=env, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert pem in shown.stdout
    as_json = json.loads(subprocess.run([str(TRONCHCTL), "--json", "records-key"], env=env, capture_output=True,
                                        text=True, timeout=30).stdout)
    assert as_json["public_key_pem"] == pem and as_json["algorithm"] == "Ed25519"

    api = Client(d)
    k, _ = api.create(environment="live")
    e = wait_until(lambda: redis_client.get(redis_key_name(k["key"])) and envelope(redis_client, k["key"]))
    assert e["kid"] == as_json["kid"] and e["key"] == digest_of(k["key"]) and e["ver"] == k["version"]
    assert abs(e["until"] - (time.time() + 86400)) < 120
    ngx = gateway(d.record_public_key)
    assert get(ngx, k["key"]).status_code == 200
    # a PATCH re-signs with a higher version
    assert api.req("PATCH", f"/api/v1/keys/{k['id']}", json_body={"name": "renamed"}).status_code == 200
    wait_until(lambda: envelope(redis_client, k["key"])["ver"] > e["ver"], msg="re-signed after PATCH")


def test_replayed_active_record_is_refused_after_a_revocation(tronchd_factory, gateway, redis_client):
    validity = 4
    d = tronchd_factory(extra_env={"TRONCH_RECORD_VALIDITY_SECONDS": str(validity),
                                   "TRONCH_MIRROR_INTERVAL_MS": "200"})
    api = Client(d)
    ngx_a = gateway(d.record_public_key)
    k, _ = api.create(environment="live")
    assert get(ngx_a, k["key"]).status_code == 200
    old_active = redis_client.get(redis_key_name(k["key"]))
    old_until = json.loads(old_active)["until"]

    assert api.req("DELETE", f"/api/v1/keys/{k['id']}").status_code == 204
    wait_until(lambda: code(ngx_a, k["key"]) == (403, "revoked_key"), msg="revocation seen by gateway A")
    d.stop()   # nobody re-signs from here on: the attacker's copy stays in Redis

    # the attacker writes the old genuine "active" record back and forges an event to get it read
    redis_client.set(redis_key_name(k["key"]), old_active)
    Keys(redis_client).changed(digest_of(k["key"]), k["id"])
    time.sleep(0.1)
    assert code(ngx_a, k["key"]) == (401, "unknown_key")
    assert status_metrics(ngx_a)["tronch_records_rejected_total"] == 1

    # a gateway that never saw the revocation: refused once the old record's validity has ended
    while time.time() < old_until + 1:
        time.sleep(0.2)
    ngx_b = gateway(d.record_public_key)
    assert code(ngx_b, k["key"]) == (401, "unknown_key")
    assert "validity ended" in ngx_b.error_log.read_text()


def test_records_are_re_signed_before_they_lapse(tronchd_factory, gateway, redis_client):
    validity = 4
    d = tronchd_factory(extra_env={"TRONCH_RECORD_VALIDITY_SECONDS": str(validity),
                                   "TRONCH_MIRROR_INTERVAL_MS": "200"})
    api = Client(d)
    k, _ = api.create(environment="live")
    first = wait_until(lambda: redis_client.get(redis_key_name(k["key"])) and envelope(redis_client, k["key"]))
    wait_until(lambda: envelope(redis_client, k["key"])["until"] > first["until"], timeout=3 * validity,
               msg="re-signed within the validity")
    assert envelope(redis_client, k["key"])["ver"] == first["ver"]
    time.sleep(validity + 1)     # past the first signature's validity: a fresh gateway still accepts it
    ngx = gateway(d.record_public_key)
    assert get(ngx, k["key"]).status_code == 200


def test_signing_key_rotation_keeps_every_key_working(tronchd_factory, gateway, redis_client, nginx_factory,
                                                     redis_server, tmp_path):
    d_old = tronchd_factory()
    old_pub = d_old.record_public_key
    api = Client(d_old)
    created = [api.create(environment="live")[0] for _ in range(3)]
    ngx = gateway(old_pub)
    keys = Keys(redis_client)

    def all_pass():
        for k in created:
            keys.changed(digest_of(k["key"]), k["id"])   # each request below is a cache miss
        time.sleep(0.05)
        for k in created:
            assert get(ngx, k["key"]).status_code == 200, k

    def reload(*record_keys):
        old_workers = set(ngx.worker_pids())
        ngx.reload(http_block(f"127.0.0.1:{redis_server.port}", record_keys=record_keys))
        wait_until(lambda: len(ngx.worker_pids()) == 1 and not set(ngx.worker_pids()) & old_workers, timeout=15,
                   msg="reloaded")
        wait_subscribers(redis_client, 1)

    all_pass()
    signed_by_old = redis_client.get(redis_key_name(created[0]["key"]))
    # 1. the new key pair, made ahead; its public key goes to the gateway next to the old one
    new_private = tmp_path / "records-new.key"
    new_kid = kit("signing-key", str(new_private))
    reload(old_pub, new_private.with_suffix(".pub"))
    all_pass()
    # 2. tronchd switches to the new private key: its start-up re-signs the whole mirror
    d_old.stop()
    d_new = tronchd_factory(extra_env={"TRONCH_RECORD_SIGNING_KEY": str(new_private)})
    wait_until(lambda: all(envelope(redis_client, k["key"])["kid"] == new_kid for k in created),
               msg="mirror re-signed with the new key")
    all_pass()
    # 3. the old public key leaves the gateway
    reload(new_private.with_suffix(".pub"))
    all_pass()
    created.append(Client(d_new).create(environment="live")[0])
    all_pass()
    # a record signed by the retired key is refused now
    redis_client.set(redis_key_name(created[0]["key"]), signed_by_old)
    keys.changed(digest_of(created[0]["key"]), created[0]["id"])
    time.sleep(0.05)
    assert code(ngx, created[0]["key"]) == (401, "unknown_key")


def test_forged_events_cannot_make_a_gateway_accept_anything(tronchd_factory, gateway, redis_client):
    d = tronchd_factory()
    api = Client(d)
    ngx = gateway(d.record_public_key)
    revoked, _ = api.create(environment="live")
    assert get(ngx, revoked["key"]).status_code == 200
    assert api.req("DELETE", f"/api/v1/keys/{revoked['id']}").status_code == 204
    wait_until(lambda: code(ngx, revoked["key"]) == (403, "revoked_key"), msg="revoked")
    unknown = kit("key", "live").split()[0]
    keys = Keys(redis_client)
    for _ in range(3):
        keys.changed(digest_of(revoked["key"]), revoked["id"])
        keys.changed(digest_of(unknown), revoked["id"])
        keys.rebuilt()
        redis_client.set("tronch:mirror:epoch", "0")   # even a forged completeness mark
        time.sleep(0.05)
        assert code(ngx, revoked["key"]) == (403, "revoked_key")
        assert code(ngx, unknown) == (401, "unknown_key")


def test_tronchd_refuses_to_start_with_an_unusable_signing_key(tronchd_factory, tmp_path):
    bad = tmp_path / "records.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    bad.chmod(0o600)
    d = tronchd_factory(start=False, extra_env={"TRONCH_RECORD_SIGNING_KEY": str(bad)})
    d.start(wait=False)
    assert d.proc.wait(timeout=60) != 0
    assert "record signing key" in d.log_text() and str(bad) in d.log_text()
