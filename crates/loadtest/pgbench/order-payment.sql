-- POST /api/v1/orders (one unit of the hot product) then POST /api/v1/payments for it,
-- by a distinct user each time, as the service sent them before the load benchmark
-- existed. One pgbench transaction is one pair.
\set k :k + 1
\set uid 1 + (:client_id + :clients * :k) % :users
BEGIN;
SELECT "users"."balance" FROM "users" WHERE ("users"."id" = :uid) LIMIT 1 FOR NO KEY UPDATE;
SELECT COUNT(*) FROM "orders" WHERE (("orders"."user_id" = :uid) AND ("orders"."status" = 'NOT_PAID'));
SELECT "products"."id", "products"."name", "products"."price", "products"."stock" FROM "products" WHERE ("products"."id" = ANY(ARRAY[:product]::int8[])) ORDER BY "products"."id" ASC FOR NO KEY UPDATE \gset p_
UPDATE products AS p SET stock = p.stock - l.quantity FROM unnest(ARRAY[:product]::int8[], ARRAY[1]::int4[]) AS l(id, quantity) WHERE p.id = l.id;
INSERT INTO "orders" ("user_id", "coupon_id", "status", "total_amount", "discount_amount", "payment_amount", "created_at", "expires_at") VALUES (:uid, NULL, 'NOT_PAID', :p_price, 0, :p_price, now(), now() + interval '5 minutes') RETURNING "orders"."id", "orders"."user_id", "orders"."coupon_id", "orders"."status", "orders"."total_amount", "orders"."discount_amount", "orders"."payment_amount", "orders"."created_at", "orders"."expires_at", "orders"."paid_at" \gset o_
INSERT INTO "order_lines" ("order_id", "line_no", "product_id", "product_name", "unit_price", "quantity", "amount") VALUES (:o_id, 1, :product, :p_name, :p_price, 1, :p_price) RETURNING "order_lines"."order_id", "order_lines"."product_id", "order_lines"."product_name", "order_lines"."unit_price", "order_lines"."quantity", "order_lines"."amount";
COMMIT;
BEGIN;
SELECT "orders"."id", "orders"."user_id", "orders"."coupon_id", "orders"."status", "orders"."total_amount", "orders"."discount_amount", "orders"."payment_amount", "orders"."created_at", "orders"."expires_at", "orders"."paid_at" FROM "orders" WHERE ("orders"."id" = :o_id) LIMIT 1 FOR NO KEY UPDATE;
SELECT "order_lines"."order_id", "order_lines"."product_id", "order_lines"."product_name", "order_lines"."unit_price", "order_lines"."quantity", "order_lines"."amount" FROM "order_lines" WHERE ("order_lines"."order_id" = ANY(ARRAY[:o_id]::int8[])) ORDER BY "order_lines"."order_id" ASC, "order_lines"."line_no" ASC;
SELECT "users"."balance" FROM "users" WHERE ("users"."id" = :uid) LIMIT 1 FOR NO KEY UPDATE \gset
\set after :balance - :p_price
UPDATE "users" SET "balance" = :after WHERE ("users"."id" = :uid);
INSERT INTO "point_history" ("user_id", "kind", "amount", "balance_after", "order_id", "created_at") VALUES (:uid, 'USE', :p_price, :after, :o_id, now()) RETURNING "point_history"."id", "point_history"."user_id", "point_history"."kind", "point_history"."amount", "point_history"."balance_after", "point_history"."order_id", "point_history"."created_at";
INSERT INTO "payments" ("order_id", "user_id", "amount", "paid_at") VALUES (:o_id, :uid, :p_price, now()) RETURNING "payments"."id";
UPDATE "orders" SET "status" = 'PAID', "paid_at" = now() WHERE (("orders"."id" = :o_id) AND ("orders"."status" = 'NOT_PAID'));
COMMIT;
