-- POST /api/v1/points/{userId} (1 KRW) with an Idempotency-Key, as the service sent it
-- before the load benchmark existed.
\set k :k + 1
\set uid 1 + (:client_id + :clients * :k) % :users
BEGIN;
INSERT INTO "idempotency_keys" ("scope", "key", "fingerprint") VALUES ('user:' || :uid, 'pgbench-' || :client_id || '-' || :k, '\x00') ON CONFLICT DO NOTHING;
SELECT "users"."balance" FROM "users" WHERE ("users"."id" = :uid) LIMIT 1 FOR NO KEY UPDATE \gset
\set after :balance + 1
UPDATE "users" SET "balance" = :after WHERE ("users"."id" = :uid);
INSERT INTO "point_history" ("user_id", "kind", "amount", "balance_after", "order_id", "created_at") VALUES (:uid, 'CHARGE', 1, :after, NULL, now()) RETURNING "point_history"."id", "point_history"."user_id", "point_history"."kind", "point_history"."amount", "point_history"."balance_after", "point_history"."order_id", "point_history"."created_at";
UPDATE "idempotency_keys" SET "body" = '\x7b7d' WHERE (("idempotency_keys"."scope" = 'user:' || :uid) AND ("idempotency_keys"."key" = 'pgbench-' || :client_id || '-' || :k));
COMMIT;
