-- Idempotency keys (docs/API.md, "Idempotency keys"): the reply of a request that succeeded, stored in the
-- same transaction as its effect. A row is inserted with no reply when a request
-- claims its key, and completed before that transaction commits; a request that rolls
-- back leaves no row. Keys are scoped to their caller.
CREATE TABLE idempotency_keys (
    scope        TEXT        NOT NULL CHECK (length(scope) BETWEEN 1 AND 64),
    key          TEXT        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  BYTEA       NOT NULL,
    status       SMALLINT    CHECK (status BETWEEN 200 AND 299),
    body         BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key),
    CHECK ((status IS NULL) = (body IS NULL))
);

-- The expiry job deletes the oldest first.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
