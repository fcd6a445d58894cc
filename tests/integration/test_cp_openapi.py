"""The served OpenAPI document passes a real linter (Redocly CLI, pinned in tests/openapi/), is what
control_plane/gen_openapi.py generates, and real responses of a running tronchd match its schemas
(create, get, list, patch, rotate, revoke, usage, audit, health, errors)."""
from __future__ import annotations

import copy
import filecmp
import json
import shutil
import subprocess
import sys
import uuid

import jsonschema
import pytest

import tronch_harness as h

LINT_SRC = h.SOURCE_DIR / "tests" / "openapi"
LINT_DIR = h.BUILD_DIR / "openapi-lint"
RFC3339 = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
           r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def redocly() -> str:
    """Installs the pinned @redocly/cli into the build tree (npm ci from the committed lock file)
    unless that exact lock is already installed. Never skips: no npm, or a failed install, fails."""
    npm = shutil.which("npm")
    assert npm, "npm is needed for the OpenAPI linter (scripts/deps.sh installs nodejs and npm)"
    binary = LINT_DIR / "node_modules" / ".bin" / "redocly"
    lock = LINT_DIR / "package-lock.json"
    if not (binary.exists() and lock.exists() and filecmp.cmp(lock, LINT_SRC / "package-lock.json", shallow=False)):
        LINT_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(LINT_SRC / name, LINT_DIR / name)
        out = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=LINT_DIR,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, "npm ci of @redocly/cli failed:\n" + out.stdout[-3000:] + out.stderr[-3000:]
    assert binary.exists()
    return str(binary)


def test_generator_output_is_the_committed_document(tmp_path):
    gen = h.SOURCE_DIR / "control_plane" / "gen_openapi.py"
    shutil.copy(gen, tmp_path / "gen_openapi.py")
    subprocess.run([sys.executable, str(tmp_path / "gen_openapi.py")], check=True, timeout=60)
    committed = (h.SOURCE_DIR / "control_plane" / "openapi.json").read_text()
    assert (tmp_path / "openapi.json").read_text() == committed, "run python3 control_plane/gen_openapi.py"


def test_served_document_passes_redocly_lint(api, tmp_path):
    r = api.req("GET", "/api/v1/openapi.json")
    assert r.status_code == 200
    assert r.json() == json.loads((h.SOURCE_DIR / "control_plane" / "openapi.json").read_text())
    path = tmp_path / "openapi.json"
    path.write_text(r.text)
    out = subprocess.run([redocly(), "lint", "--format=stylish", str(path)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    print(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr


# ---- responses against the schemas -------------------------------------------------------------

def to_json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes an anyOf with null, and formats we
    rely on become patterns (so every echoed time is checked as RFC 3339)."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if out.get("format") == "date-time":
        out["pattern"] = RFC3339
    if out.get("format") == "uuid":
        out["pattern"] = UUID
    if node.get("nullable"):
        return {"anyOf": [{"type": "null"}, out]}
    return out


class Contract:
    def __init__(self, doc):
        self.doc = doc
        self.root = {"components": to_json_schema(doc["components"])}

    def schema_for(self, method, route, status, ctype="application/json"):
        op = self.doc["paths"][route][method.lower()]
        resp = op["responses"][str(status)]
        if "$ref" in resp:
            resp = self.doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        return resp, to_json_schema(resp.get("content", {}).get(ctype, {}).get("schema"))

    def check(self, r, method, route):
        resp, schema = self.schema_for(method, route, r.status_code)
        for name in resp.get("headers", {}):
            assert name in r.headers, (method, route, r.status_code, name)
        if r.status_code == 204:
            assert r.content == b""
            return
        assert r.headers["Content-Type"].split(";")[0] == "application/json"
        validator = jsonschema.Draft7Validator({**self.root, **schema},
                                               resolver=jsonschema.RefResolver("", {**self.root, **schema}))
        errors = sorted(validator.iter_errors(r.json()), key=lambda e: list(e.path))
        assert not errors, (method, route, r.status_code, [f"{list(e.path)}: {e.message}" for e in errors[:5]])


def test_real_responses_match_the_schemas(api, redis_client):
    c = Contract(api.req("GET", "/api/v1/openapi.json").json())
    checked = []

    def check(r, method, route):
        c.check(r, method, route)
        checked.append((method, route, r.status_code))
        return r

    body = {"environment": "live", "name": "contract", "owner": "team", "scopes": ["read"],
            "limits": {"rate": 5, "period_seconds": 1, "burst": 2}, "allowed_cidrs": ["10.0.0.0/8"],
            "metadata": {"plan": "pro", "n": [1, {"x": None}]}, "expires_at": "9999-12-31T23:59:59Z"}
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    k = check(api.req("POST", "/api/v1/keys", json_body=body, headers=idem), "POST", "/api/v1/keys").json()
    check(api.req("POST", "/api/v1/keys", json_body=body, headers=idem), "POST", "/api/v1/keys")  # replay
    bare = check(api.req("POST", "/api/v1/keys", json_body={"environment": "test"}), "POST", "/api/v1/keys").json()
    kid = k["id"]
    check(api.req("GET", f"/api/v1/keys/{kid}"), "GET", "/api/v1/keys/{id}")
    check(api.req("GET", f"/api/v1/keys/{bare['id']}"), "GET", "/api/v1/keys/{id}")
    check(api.req("GET", "/api/v1/keys?limit=1"), "GET", "/api/v1/keys")
    check(api.req("PATCH", f"/api/v1/keys/{kid}", json_body={"name": "renamed", "limits": None}),
          "PATCH", "/api/v1/keys/{id}")
    rot = check(api.req("POST", f"/api/v1/keys/{kid}/rotate", json_body={"grace_period_seconds": 60}),
                "POST", "/api/v1/keys/{id}/rotate").json()
    check(api.req("DELETE", f"/api/v1/keys/{rot['id']}"), "DELETE", "/api/v1/keys/{id}")
    redis_client.hset("tronch:usage:pending", mapping={f"{kid}|{int(__import__('time').time()) // 60 * 60}|r": 3})
    check(api.req("GET", f"/api/v1/keys/{kid}/usage"), "GET", "/api/v1/keys/{id}/usage")
    check(api.req("GET", "/api/v1/audit?limit=3"), "GET", "/api/v1/audit")
    check(api.req("GET", "/api/v1/audit"), "GET", "/api/v1/audit")
    check(api.req("GET", "/api/v1/health", auth=False), "GET", "/api/v1/health")
    # errors
    check(api.req("POST", "/api/v1/keys", json_body={"environment": "x"}), "POST", "/api/v1/keys")
    check(api.req("GET", "/api/v1/keys", auth=False), "GET", "/api/v1/keys")
    check(api.req("GET", f"/api/v1/keys/{uuid.uuid4()}"), "GET", "/api/v1/keys/{id}")
    check(api.req("PATCH", f"/api/v1/keys/{rot['id']}", json_body={"name": "x"}), "PATCH", "/api/v1/keys/{id}")
    check(api.req("PATCH", f"/api/v1/keys/{bare['id']}", json_body={"name": "x"}, headers={"If-Match": '"9"'}),
          "PATCH", "/api/v1/keys/{id}")
    check(api.req("POST", "/api/v1/keys", data="x" * 70000, headers={"Content-Type": "application/json"}),
          "POST", "/api/v1/keys")
    check(api.req("POST", "/api/v1/keys", data="{}", headers={"Content-Type": "text/plain"}), "POST", "/api/v1/keys")
    check(api.req("POST", "/api/v1/keys", json_body={"environment": "test", "name": "other"}, headers=idem),
          "POST", "/api/v1/keys")
    check(api.req("DELETE", "/api/v1/audit"), "GET", "/api/v1/audit")
    statuses = {s for _, _, s in checked}
    assert {200, 201, 204, 400, 401, 404, 405, 409, 412, 413, 415, 422} <= statuses, statuses
    print(f"\n{len(checked)} real responses validated against the OpenAPI schemas; statuses {sorted(statuses)}")
