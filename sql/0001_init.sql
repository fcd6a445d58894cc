-- Tronch control plane: keys, usage, audit, idempotency records.
-- Postgres is the truth; Redis is a cache rebuilt from these tables.

CREATE TABLE api_keys (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_prefix          text NOT NULL,                 -- display prefix, not secret
    key_hash            text NOT NULL,                 -- SHA-256 hex of the whole key
    environment         text NOT NULL CHECK (environment IN ('live', 'test')),
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'rotating', 'revoked', 'expired')),
    name                text NOT NULL DEFAULT '',
    owner               text NOT NULL DEFAULT '',
    scopes              jsonb NOT NULL DEFAULT '[]',
    rate_limit          bigint,
    rate_period_seconds bigint,
    rate_burst          bigint,
    allowed_cidrs       jsonb NOT NULL DEFAULT '[]',
    metadata            jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    expires_at          timestamptz,
    revoked_at          timestamptz,
    rotated_from        uuid REFERENCES api_keys (id),
    version             bigint NOT NULL DEFAULT 1,
    CONSTRAINT api_keys_limit_complete CHECK (
        (rate_limit IS NULL AND rate_period_seconds IS NULL AND rate_burst IS NULL) OR
        (rate_limit IS NOT NULL AND rate_period_seconds IS NOT NULL AND rate_burst IS NOT NULL))
);
CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_created ON api_keys (created_at DESC, id DESC);
CREATE INDEX api_keys_owner ON api_keys (owner);
CREATE INDEX api_keys_expiring ON api_keys (expires_at) WHERE status IN ('active', 'rotating');

-- Usage rolled up from the gateways' Redis counters, per key per time bucket.
CREATE TABLE key_usage (
    key_id       uuid NOT NULL REFERENCES api_keys (id),
    bucket_start timestamptz NOT NULL,
    requests     bigint NOT NULL DEFAULT 0,
    errors       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, bucket_start)
);

-- One row per change, written in the same transaction as the change.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL CHECK (action IN ('create', 'update', 'rotate', 'revoke', 'expire')),
    key_id      uuid REFERENCES api_keys (id),
    request_id  text,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_key ON audit_log (key_id, id);

-- Idempotency-Key records. id_hash is an HMAC of the Idempotency-Key under the server
-- secret; response is AES-256-GCM encrypted under a key derived from the server secret and
-- the Idempotency-Key itself, so the table alone never yields a plaintext API key.
CREATE TABLE idempotency_keys (
    id_hash       text PRIMARY KEY,
    endpoint      text NOT NULL,
    request_hash  text NOT NULL,
    status        integer NOT NULL,
    response      bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
