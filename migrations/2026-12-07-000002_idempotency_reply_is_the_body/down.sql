-- Every keyed operation answers 200 or 201; the replies stored without a status get 200.
ALTER TABLE idempotency_keys ADD COLUMN status SMALLINT CHECK (status BETWEEN 200 AND 299);
UPDATE idempotency_keys SET status = 200 WHERE body IS NOT NULL;
ALTER TABLE idempotency_keys ADD CHECK ((status IS NULL) = (body IS NULL));
