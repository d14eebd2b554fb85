-- A payment's possible void is recorded, and committed, before its ORDER_PAID leaves
-- the service (docs/adr/0013-a-void-recorded-before-the-send.md). The record counts the
-- payment sends of its order that may have reached the platform: each payment opens
-- one before it begins, the payment's own commit removes the record (the order is
-- paid: no void is needed), and a send that certainly did not reach the platform (it
-- never left, or the platform answered 4xx) closes its own. Whatever else stops a
-- payment leaves its send open, and the relay voids the order once it ends unpaid.

ALTER TABLE outbox ADD COLUMN sends_in_doubt INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET sends_in_doubt = 1 WHERE kind = 'ORDER_PAYMENT_VOIDED';
ALTER TABLE outbox ADD CONSTRAINT outbox_sends_in_doubt_only_for_voids
    CHECK ((kind = 'ORDER_PAYMENT_VOIDED') = (sends_in_doubt > 0));

-- Opens a send of `buyer`'s payment of `placed`, provided the order is theirs and
-- NOT_PAID: creates the order's void record or counts one more send on it. Whether it
-- opened one.
CREATE FUNCTION open_payment_send(placed bigint, buyer bigint, moment timestamptz) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    opened integer;
BEGIN
    INSERT INTO outbox AS e (kind, order_id, recorded_at, next_attempt_at, sends_in_doubt)
    SELECT 'ORDER_PAYMENT_VOIDED', o.id, moment, moment, 1 FROM orders o
    WHERE o.id = placed AND o.user_id = buyer AND o.status = 'NOT_PAID'
    ON CONFLICT (kind, order_id) DO UPDATE SET sends_in_doubt = e.sends_in_doubt + 1;
    GET DIAGNOSTICS opened = ROW_COUNT;
    RETURN opened = 1;
END
$$;

-- Closes one send of a payment of `placed` that certainly did not reach the platform;
-- the record goes with its last open send. The sends still open (0: none, or no record).
CREATE FUNCTION close_payment_send(placed bigint) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    left_open integer;
BEGIN
    DELETE FROM outbox e WHERE e.kind = 'ORDER_PAYMENT_VOIDED' AND e.order_id = placed AND e.sends_in_doubt = 1;
    IF FOUND THEN
        RETURN 0;
    END IF;
    UPDATE outbox e SET sends_in_doubt = e.sends_in_doubt - 1
    WHERE e.kind = 'ORDER_PAYMENT_VOIDED' AND e.order_id = placed
    RETURNING e.sends_in_doubt INTO left_open;
    RETURN coalesce(left_open, 0);
END
$$;
