DROP FUNCTION lock_due_event(timestamptz);
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

DROP FUNCTION open_payment_send(bigint, bigint, timestamptz, text);
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

ALTER TABLE outbox DROP COLUMN traceparent;
