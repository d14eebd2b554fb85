-- GET /api/v1/points/{userId}, as the service sent it before the load benchmark existed.
\set k :k + 1
\set uid 1 + (:client_id + :clients * :k) % :users
SELECT "users"."id", "users"."name", "users"."balance" FROM "users" WHERE ("users"."id" = :uid) LIMIT 1;
