-- A stored reply is the body the service sent, as it sent it. The status of a success is
-- the operation's own and is not stored (docs/adr/0010-keyed-use-cases-and-their-stored-reply.md).
-- Dropping the column drops the CHECKs that name it.
ALTER TABLE idempotency_keys DROP COLUMN status;
