# Generates openapi.json (run: python3 control_plane/gen_openapi.py). The JSON is committed and
# embedded into tronchd at build time; keep the two in step.
import json
def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def resp(n): return {"$ref": f"#/components/responses/{n}"}
ts = {"type": "string", "format": "date-time"}
nts = {"type": "string", "format": "date-time", "nullable": True}
codes = ["unauthorized","not_found","method_not_allowed","invalid_json","unknown_field","invalid_field","missing_field",
         "unknown_parameter","invalid_parameter","invalid_id","invalid_cursor","invalid_header","body_too_large",
         "unsupported_media_type","key_not_found","key_not_active","precondition_failed","idempotency_key_reused",
         "idempotency_secret_unknown","idempotency_unreadable","database_unavailable","internal_error","bad_request"]
limits = {"type": "object", "additionalProperties": False, "required": ["rate", "period_seconds"],
          "description": "GCRA limit: rate requests per period_seconds, plus burst.",
          "properties": {"rate": {"type": "integer", "minimum": 1, "maximum": 1000000},
                         "period_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
                         "burst": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 0}}}
scopes = {"type": "array", "maxItems": 32, "items": {"type": "string", "pattern": "^[a-z0-9_.:-]{1,64}$"}}
cidrs = {"type": "array", "maxItems": 16, "items": {"type": "string", "example": "10.0.0.0/8"}}
metadata = {"type": "object", "additionalProperties": True, "maxProperties": 50,
            "description": "Free-form JSON object, at most 8 KiB serialised: nested at most 5 levels (this object is level 1), "
                           "at most 50 members per object or items per array, keys 1..40 bytes, strings up to 500 bytes, "
                           "no NUL (\\u0000), integers within -2^53..2^53. Anything else is 400 invalid_field."}
text = lambda n: {"type": "string", "maxLength": n,
                  "description": "No control characters (U+0000-U+001F, U+007F-U+009F) and no bidi overrides or isolates "
                                 "(U+202A-U+202E, U+2066-U+2069): 400 invalid_field."}
key = {"type": "object", "required": ["id","name","owner","prefix","environment","status","scopes","limits","allowed_cidrs",
        "metadata","created_at","updated_at","expires_at","last_used_at","revoked_at","rotated_from","version"],
       "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "owner": {"type": "string"},
        "prefix": {"type": "string", "description": "Non-secret start of the key, e.g. tronch_sk_live_AbCd1234."},
        "environment": {"type": "string", "enum": ["live", "test"]},
        "status": {"type": "string", "enum": ["active", "rotating", "revoked", "expired"]},
        "scopes": scopes, "limits": {**limits, "nullable": True}, "allowed_cidrs": cidrs, "metadata": metadata,
        "created_at": ts, "updated_at": ts, "expires_at": nts, "last_used_at": nts, "revoked_at": nts,
        "rotated_from": {"type": "string", "format": "uuid", "nullable": True},
        "version": {"type": "integer", "description": "Optimistic-concurrency version; the ETag is its quoted value."}}}
key_with_secret = {"allOf": [ref("Key"), {"type": "object", "required": ["key"], "properties": {
        "key": {"type": "string", "description": "The plaintext API key. Returned once; never stored or retrievable again."}}}]}
rotated = {"allOf": [ref("KeyWithSecret"), {"type": "object", "required": ["previous"], "properties": {"previous": ref("Key")}}]}
create = {"type": "object", "additionalProperties": False, "required": ["environment"], "properties": {
        "name": text(200), "owner": text(200),
        "environment": {"type": "string", "enum": ["live", "test"]}, "scopes": scopes,
        "limits": {**limits, "nullable": True}, "expires_at": {**ts, "nullable": True, "description": "RFC 3339, in the future and before 10000-01-01T00:00:00Z."},
        "allowed_cidrs": cidrs, "metadata": metadata}}
patch = {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
        "name": text(200), "scopes": scopes, "limits": {**limits, "nullable": True},
        "allowed_cidrs": cidrs, "metadata": {**metadata, "description": "Replaces the whole metadata object."}}}
rotate = {"type": "object", "additionalProperties": False, "properties": {
        "grace_period_seconds": {"type": "integer", "minimum": 0, "maximum": 2592000, "default": 86400,
                                 "description": "How long the old key keeps working; 0 revokes it at once. The cap is configurable (TRONCH_MAX_GRACE_SECONDS)."}}}
error = {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "enum": codes}, "message": {"type": "string"}, "request_id": {"type": "string"}}}}}
key_list = {"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": ref("Key")}, "next_cursor": {"type": "string", "nullable": True}}}
audit_entry = {"type": "object", "required": ["id","at","actor","action","key_id","request_id","before","after"], "properties": {
        "id": {"type": "integer"}, "at": ts, "actor": {"type": "string"},
        "action": {"type": "string", "enum": ["create", "update", "rotate", "revoke", "expire"]},
        "key_id": {"type": "string", "format": "uuid", "nullable": True}, "request_id": {"type": "string", "nullable": True},
        # OpenAPI 3.0: `nullable` only counts next to a `type` (Redocly's struct rule refuses it alone).
        "before": {"type": "object", "allOf": [ref("Key")], "nullable": True},
        "after": {"type": "object", "allOf": [ref("Key")], "nullable": True}}}
audit_list = {"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": ref("AuditEntry")}, "next_cursor": {"type": "string", "nullable": True}}}
usage = {"type": "object", "required": ["key_id","since","until","bucket_seconds","last_used_at","totals","data"], "properties": {
        "key_id": {"type": "string", "format": "uuid"}, "since": ts, "until": ts, "bucket_seconds": {"type": "integer"},
        "last_used_at": nts,
        "totals": {"type": "object", "properties": {"requests": {"type": "integer"}, "errors": {"type": "integer"}}},
        "data": {"type": "array", "items": {"type": "object", "properties": {"bucket_start": ts, "requests": {"type": "integer"}, "errors": {"type": "integer"}}}}}}
check = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok", "error"]},
        "latency_ms": {"type": "number"}, "code": {"type": "string", "description": "database_unavailable, redis_unavailable, or mirror_incomplete (Redis answers but the key mirror is not complete yet: not ready)."},
        "message": {"type": "string", "description": "A stable short reason; the driver's error text goes to tronchd's log only."},
        "mirror_complete": {"type": "boolean"}}}
health = {"type": "object", "required": ["status", "checks"], "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {"type": "object", "properties": {"postgres": ref("Check"), "redis": ref("Check")}}}}

records_key = {"type": "object", "required": ["algorithm", "kid", "public_key_pem", "public_key_path", "validity_seconds"], "properties": {
        "algorithm": {"type": "string", "enum": ["Ed25519"]},
        "kid": {"type": "string", "description": "Key id: the first 16 hex digits of SHA-256 over the raw public key; named in every signed record."},
        "public_key_pem": {"type": "string", "description": "SubjectPublicKeyInfo PEM: the file for nginx's tronch_record_key."},
        "public_key_path": {"type": "string", "description": "Where tronchd wrote it, beside its signing key."},
        "validity_seconds": {"type": "integer", "description": "How long a signed record stays valid; tronchd re-signs every half of it."}}}

def err(desc): return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}
responses = {
    "BadRequest": err("Invalid input: invalid_json (also duplicate member names, nesting over 16 levels), unknown_field, invalid_field, missing_field, unknown_parameter, invalid_parameter (also invalid UTF-8, control characters or %00 in the query), invalid_id, invalid_cursor, invalid_header, bad_request (malformed HTTP, a target not starting with '/', a missing or doubled Host)."),
    "Unauthorized": err("Missing or wrong admin token (unauthorized)."),
    "NotFound": err("No such key (key_not_found) or route (not_found)."),
    "MethodNotAllowed": err("Method not allowed on this route (method_not_allowed)."),
    "Conflict": err("The key is not in a state that allows this (key_not_active); on a rotation with an Idempotency-Key, also idempotency_unreadable or idempotency_secret_unknown (see IdempotencyUnavailable)."),
    "PreconditionFailed": err("If-Match does not match the current ETag (precondition_failed)."),
    "PayloadTooLarge": err("Body over 64 KiB (body_too_large)."),
    "UnsupportedMediaType": err("Content-Type is not application/json (unsupported_media_type)."),
    "IdempotencyConflict": err("The Idempotency-Key was used with a different request (idempotency_key_reused)."),
    "IdempotencyUnavailable": err("A retry cannot be answered safely, and nothing was created: its stored response cannot be read (idempotency_unreadable), or records exist under a server secret tronchd does not hold (idempotency_secret_unknown; set TRONCH_SECRET_KEY_PREVIOUS)."),
    "ServiceUnavailable": err("PostgreSQL is unreachable (database_unavailable)."),
    "InternalError": err("Unexpected server error (internal_error)."),
}
def std(*extra):
    r = {"400": resp("BadRequest"), "401": resp("Unauthorized"), "405": resp("MethodNotAllowed"),
         "500": resp("InternalError"), "503": resp("ServiceUnavailable")}
    for e in extra: r.update(e)
    return r
etag_h = {"ETag": {"description": "Strong ETag: the key's version, quoted.", "schema": {"type": "string"}}}
rid_h = {"X-Request-Id": {"description": "The request id (echoed or generated).", "schema": {"type": "string"}},
         "Cache-Control": {"description": "Always no-store (create and rotate responses carry a plaintext key).",
                           "schema": {"type": "string", "enum": ["no-store"]}},
         "X-Content-Type-Options": {"description": "Always nosniff.", "schema": {"type": "string", "enum": ["nosniff"]}}}
def ok(desc, schema, headers=None, ctype="application/json"):
    r = {"description": desc, "content": {ctype: {"schema": schema}}}
    r["headers"] = {**rid_h, **(headers or {})}
    return r
idp = {"$ref": "#/components/parameters/Id"}
ifm = {"$ref": "#/components/parameters/IfMatch"}
idem = {"$ref": "#/components/parameters/IdempotencyKey"}
body = lambda s, req=True: {"required": req, "content": {"application/json": {"schema": s}}}
def q(name, desc, schema): return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}
limit = q("limit", "Page size, 1..200 (default 50); larger values are refused with 400 invalid_parameter.", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50})
cursor = q("cursor", "Opaque cursor from next_cursor.", {"type": "string"})
big = {"413": resp("PayloadTooLarge"), "415": resp("UnsupportedMediaType")}

doc = {
 "openapi": "3.0.3",
 "info": {"title": "Tronch control plane (tronchd)", "version": "1.0.0",
          "description": "Issue, list, rotate and revoke API keys. Every endpoint except /api/v1/health needs `Authorization: Bearer <admin token>`. Errors are {\"error\":{\"code\",\"message\"}} with stable codes. The plaintext key appears only in create and rotate responses."},
 "servers": [{"url": "http://127.0.0.1:8080"}],
 "security": [{"adminToken": []}],
 "paths": {
  "/api/v1/keys": {
   "post": {"operationId": "createKey", "summary": "Create a key (the plaintext key is returned once)", "tags": ["keys"],
            "parameters": [idem], "requestBody": body(ref("CreateKeyRequest")),
            "responses": std({"201": ok("Created.", ref("KeyWithSecret"), {**etag_h, "Location": {"schema": {"type": "string"}}})}, big, {"409": resp("IdempotencyUnavailable"), "422": resp("IdempotencyConflict")})},
   "get": {"operationId": "listKeys", "summary": "List keys, newest first (cursor pagination)", "tags": ["keys"],
           "parameters": [limit, cursor,
                          q("status", "Filter by status.", {"type": "string", "enum": ["active", "rotating", "revoked", "expired"]}),
                          q("environment", "Filter by environment.", {"type": "string", "enum": ["live", "test"]}),
                          q("owner", "Filter by owner (exact).", {"type": "string"}),
                          q("expiring_within", "Active or rotating keys whose expires_at falls within this duration from now: seconds, or 90m, 12h, 7d.", {"type": "string"}),
                          q("prefix", "Keys whose prefix starts with this (1..40 of [A-Za-z0-9_], e.g. a leaked key's tronch_sk_live_AbCdEfGh); indexed.", {"type": "string", "pattern": "^[A-Za-z0-9_]{1,40}$"})],
           "responses": std({"200": ok("A page of keys.", ref("KeyList"))})}},
  "/api/v1/keys/{id}": {
   "get": {"operationId": "getKey", "summary": "Get a key", "tags": ["keys"], "parameters": [idp],
           "responses": std({"200": ok("The key.", ref("Key"), etag_h), "404": resp("NotFound")})},
   "patch": {"operationId": "updateKey", "summary": "Change name, scopes, limits, allowed CIDRs or metadata", "tags": ["keys"],
             "parameters": [idp, ifm], "requestBody": body(ref("UpdateKeyRequest")),
             "responses": std({"200": ok("The updated key.", ref("Key"), etag_h), "404": resp("NotFound"), "409": resp("Conflict"),
                               "412": resp("PreconditionFailed")}, big)},
   "delete": {"operationId": "revokeKey", "summary": "Revoke a key (idempotent)", "tags": ["keys"], "parameters": [idp, ifm],
              "responses": std({"204": {"description": "Revoked (or already revoked).", "headers": rid_h}, "404": resp("NotFound"),
                                "412": resp("PreconditionFailed")})}},
  "/api/v1/keys/{id}/rotate": {
   "post": {"operationId": "rotateKey", "summary": "Rotate: a new key; the old one stays valid for the grace period", "tags": ["keys"],
            "parameters": [idp, ifm, idem], "requestBody": body(ref("RotateKeyRequest"), False),
            "responses": std({"201": ok("The new key (plaintext once) and the previous one.", ref("RotatedKey"), {**etag_h, "Location": {"schema": {"type": "string"}}}),
                              "404": resp("NotFound"), "409": resp("Conflict"), "412": resp("PreconditionFailed"),
                              "422": resp("IdempotencyConflict")}, big)}},
  "/api/v1/keys/{id}/usage": {
   "get": {"operationId": "keyUsage", "summary": "Request and error counts per minute", "tags": ["keys"],
           "parameters": [idp, q("since", "RFC 3339; default 24 hours ago.", ts), q("until", "RFC 3339; default now.", ts)],
           "responses": std({"200": ok("Usage buckets.", ref("Usage")), "404": resp("NotFound")})}},
  "/api/v1/audit": {
   "get": {"operationId": "listAudit", "summary": "The audit log, newest first", "tags": ["audit"],
           "parameters": [limit, cursor, q("key_id", "Only this key.", {"type": "string", "format": "uuid"}),
                          q("action", "Only this action.", {"type": "string", "enum": ["create", "update", "rotate", "revoke", "expire"]})],
           "responses": std({"200": ok("A page of audit entries.", ref("AuditList"))})}},
  "/api/v1/health": {
   "get": {"operationId": "health", "summary": "PostgreSQL and Redis checks (no authentication)", "tags": ["ops"], "security": [],
           "responses": {"200": ok("Healthy.", ref("Health")), "503": ok("Postgres or Redis unavailable; details per check.", ref("Health")),
                         "405": resp("MethodNotAllowed")}}},
  "/api/v1/records-key": {
   "get": {"operationId": "recordsKey", "summary": "The public key gateways verify key records with (tronch_record_key)", "tags": ["ops"],
           "responses": std({"200": ok("tronchd's record-signing public key.", ref("RecordsKey"))})}},
  "/api/v1/metrics": {
   "get": {"operationId": "metrics", "summary": "Prometheus metrics", "tags": ["ops"],
           "responses": std({"200": ok("Prometheus text exposition format 0.0.4.", {"type": "string"}, None, "text/plain")})}},
  "/api/v1/openapi.json": {
   "get": {"operationId": "openapi", "summary": "This document", "tags": ["ops"],
           "responses": std({"200": ok("OpenAPI 3 document.", {"type": "object"})})}},
 },
 "components": {
  "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer", "description": "TRONCH_ADMIN_TOKEN"}},
  "parameters": {
   "Id": {"name": "id", "in": "path", "required": True, "description": "Key id (UUID, either case; answers use lower case); anything else is 400 invalid_id.", "schema": {"type": "string", "format": "uuid"}},
   "IfMatch": {"name": "If-Match", "in": "header", "required": False, "description": "ETag from a previous response; on mismatch 412 precondition_failed.", "schema": {"type": "string"}},
   "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": False, "description": "Retries with the same key and body replay the first response for 24 hours; a different body gives 422 idempotency_key_reused.", "schema": {"type": "string", "maxLength": 255}}},
  "responses": responses,
  "schemas": {"Key": key, "KeyWithSecret": key_with_secret, "RotatedKey": rotated, "Limits": limits,
              "CreateKeyRequest": create, "UpdateKeyRequest": patch, "RotateKeyRequest": rotate, "KeyList": key_list,
              "AuditEntry": audit_entry, "AuditList": audit_list, "Usage": usage, "Check": check, "Health": health, "Error": error,
              "RecordsKey": records_key}}}
open(__import__("pathlib").Path(__file__).with_name("openapi.json"), "w").write(json.dumps(doc, indent=1) + "\n")
