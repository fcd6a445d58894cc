-- Issue 21 (operator experience).
-- The server secret an Idempotency-Key record was sealed under (a short HMAC fingerprint, not
-- the secret). After a secret change without TRONCH_SECRET_KEY_PREVIOUS, tronchd sees that live
-- records exist under a secret it does not hold and refuses Idempotency-Key requests (409) rather
-- than take a retry for a new request and issue a second key.
ALTER TABLE idempotency_keys ADD COLUMN secret_kid text;
-- `GET /api/v1/keys?prefix=` (a leaked key's prefix): a byte-order range scan on this index
-- (key_prefix >= p AND key_prefix < p with its last byte + 1), which a generic plan can use.
CREATE INDEX api_keys_prefix ON api_keys (key_prefix COLLATE "C");
