-- Payments whose send to the data platform ended without a clear answer (docs/API.md, "Data platform events").
-- Written outside the rolled-back payment; once the order has ended, the relay drops
-- the row (PAID) or delivers ORDER_PAYMENT_VOIDED and then deletes it (FAILED).
CREATE TABLE pending_voids (
    order_id         BIGINT      PRIMARY KEY REFERENCES orders (id),
    user_id          BIGINT      NOT NULL REFERENCES users (id),
    recorded_at      TIMESTAMPTZ NOT NULL,
    attempts         INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX pending_voids_next_attempt_at ON pending_voids (next_attempt_at);
