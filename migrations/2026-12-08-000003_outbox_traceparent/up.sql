-- An outbox event carries the trace of the request that caused it (W3C `traceparent`:
-- the payment whose send may need a void, the refund), so that the relay sends it on
-- when it delivers the event later. Null for events recorded without one.

ALTER TABLE outbox ADD COLUMN traceparent TEXT;

-- As before, plus the trace: a send opened again keeps the first payment's trace.
DROP FUNCTION open_payment_send(bigint, bigint, timestamptz);
CREATE FUNCTION open_payment_send(placed bigint, buyer bigint, moment timestamptz, trace text) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    opened integer;
BEGIN
    INSERT INTO outbox AS e (kind, order_id, recorded_at, next_attempt_at, sends_in_doubt, traceparent)
    SELECT 'ORDER_PAYMENT_VOIDED', o.id, moment, moment, 1, trace FROM orders o
    WHERE o.id = placed AND o.user_id = buyer AND o.status = 'NOT_PAID'
    ON CONFLICT (kind, order_id) DO UPDATE SET sends_in_doubt = e.sends_in_doubt + 1;
    GET DIAGNOSTICS opened = ROW_COUNT;
    RETURN opened = 1;
END
$$;

-- As before, plus the event's trace.
DROP FUNCTION lock_due_event(timestamptz);
CREATE FUNCTION lock_due_event(due_by timestamptz)
    RETURNS TABLE (kind text, order_id bigint, user_id bigint, status text, payment_amount bigint,
                   refunded_at timestamptz, attempts integer, traceparent text)
    LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT e.kind, e.order_id, o.user_id, o.status, o.payment_amount, o.refunded_at, e.attempts, e.traceparent
        FROM outbox e JOIN orders o ON o.id = e.order_id
        WHERE e.next_attempt_at <= due_by AND (e.kind <> 'ORDER_PAYMENT_VOIDED' OR o.status <> 'NOT_PAID')
        ORDER BY e.next_attempt_at LIMIT 1 FOR UPDATE OF e SKIP LOCKED;
END
$$;
