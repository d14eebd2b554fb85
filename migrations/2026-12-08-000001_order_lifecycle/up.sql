-- The order lifecycle (docs/API.md, "Order lifecycle"): an unpaid order can be
-- cancelled by its user and a paid one refunded by the shop; a refund is a ledger entry
-- of its own; and the events the data platform must receive after a commit — voids and
-- refunds — wait in one outbox (docs/adr/0012-one-outbox-of-events.md).

-- Orders --------------------------------------------------------------------------------

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_known
    CHECK (status IN ('NOT_PAID', 'PAID', 'FAILED', 'CANCELLED', 'REFUNDED'));

ALTER TABLE orders
    ADD COLUMN cancelled_at  TIMESTAMPTZ,
    ADD COLUMN refunded_at   TIMESTAMPTZ,
    -- What the shop said when it refunded; kept for the back office, never sent.
    ADD COLUMN refund_reason TEXT CHECK (length(refund_reason) <= 500);

-- A refunded order was paid: it keeps its payment instant.
ALTER TABLE orders DROP CONSTRAINT orders_paid_at_iff_paid;
ALTER TABLE orders ADD CONSTRAINT orders_paid_at_iff_paid
    CHECK ((status IN ('PAID', 'REFUNDED')) = (paid_at IS NOT NULL));
ALTER TABLE orders ADD CONSTRAINT orders_cancelled_at_iff_cancelled
    CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL));
ALTER TABLE orders ADD CONSTRAINT orders_refunded_at_iff_refunded
    CHECK ((status = 'REFUNDED') = (refunded_at IS NOT NULL));
ALTER TABLE orders ADD CONSTRAINT orders_refund_reason_only_when_refunded
    CHECK (refund_reason IS NULL OR status = 'REFUNDED');

-- A user's orders, newest first.
CREATE INDEX orders_user_id_id_idx ON orders (user_id, id DESC);
DROP INDEX orders_user_id_idx;

-- The ledger ----------------------------------------------------------------------------

ALTER TABLE point_history DROP CONSTRAINT point_history_kind_check;
ALTER TABLE point_history ADD CONSTRAINT point_history_kind_known CHECK (kind IN ('CHARGE', 'USE', 'REFUND'));
ALTER TABLE point_history DROP CONSTRAINT point_history_use_has_order;
ALTER TABLE point_history ADD CONSTRAINT point_history_order_iff_use_or_refund
    CHECK ((kind IN ('USE', 'REFUND')) = (order_id IS NOT NULL));
-- An order is refunded at most once.
CREATE UNIQUE INDEX point_history_one_refund_per_order ON point_history (order_id) WHERE kind = 'REFUND';

-- A balance is the sum of its CHARGE and REFUND entries minus its USE entries: every
-- statement that changes a balance writes its entry with the balance it produced (in
-- the same statement on the one-statement paths). It is not re-checked here: a
-- constraint across rows costs a query per ledger write, measured at about a quarter of
-- a charge's throughput (docs/adr/0013-the-ledger-sum-is-kept-by-construction.md).

-- The outbox ----------------------------------------------------------------------------

-- Events for the data platform that must go out after a commit, at least once, one row
-- per event. An ORDER_PAYMENT_VOIDED row records a payment whose send may have reached
-- the platform: it waits until its order has ended, then it is delivered (FAILED,
-- CANCELLED) or dropped (PAID, REFUNDED). An ORDER_REFUNDED row is written by the
-- refund's transaction and is due at once. What an event says is read from its order.
CREATE TABLE outbox (
    kind             TEXT        NOT NULL CHECK (kind IN ('ORDER_PAYMENT_VOIDED', 'ORDER_REFUNDED')),
    order_id         BIGINT      NOT NULL REFERENCES orders (id),
    recorded_at      TIMESTAMPTZ NOT NULL,
    attempts         INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, order_id)
);
CREATE INDEX outbox_next_attempt_at_idx ON outbox (next_attempt_at);

INSERT INTO outbox (kind, order_id, recorded_at, attempts, next_attempt_at)
SELECT 'ORDER_PAYMENT_VOIDED', v.order_id, v.recorded_at, v.attempts, v.next_attempt_at FROM pending_voids v;

DROP FUNCTION lock_due_void(timestamptz);
DROP TABLE pending_voids;

-- The oldest event due at `due_by` that can be acted on (a void once its order has
-- ended), locked, with what its order says now; events another relay holds are passed
-- by. No row when none.
CREATE FUNCTION lock_due_event(due_by timestamptz)
    RETURNS TABLE (kind text, order_id bigint, user_id bigint, status text, payment_amount bigint,
                   refunded_at timestamptz, attempts integer)
    LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT e.kind, e.order_id, o.user_id, o.status, o.payment_amount, o.refunded_at, e.attempts
        FROM outbox e JOIN orders o ON o.id = e.order_id
        WHERE e.next_attempt_at <= due_by AND (e.kind <> 'ORDER_PAYMENT_VOIDED' OR o.status <> 'NOT_PAID')
        ORDER BY e.next_attempt_at LIMIT 1 FOR UPDATE OF e SKIP LOCKED;
END
$$;
