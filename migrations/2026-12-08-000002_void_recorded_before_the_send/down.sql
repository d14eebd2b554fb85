DROP FUNCTION close_payment_send(bigint);
DROP FUNCTION open_payment_send(bigint, bigint, timestamptz);
ALTER TABLE outbox DROP CONSTRAINT outbox_sends_in_doubt_only_for_voids;
ALTER TABLE outbox DROP COLUMN sends_in_doubt;
