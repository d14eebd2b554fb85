-- POST /api/v1/coupons/{couponId}/issue (a distinct user each time), as the service sent
-- it before the load benchmark existed: the holder row, then the one hot campaign row
-- (on `reference_user_coupons` and `reference_coupons`, copies of the tables of that
-- time; see seed.sql).
\set k :k + 1
\set uid 1 + (:client_id + :clients * :k) % :users
BEGIN;
INSERT INTO "reference_user_coupons" AS "user_coupons" ("coupon_id", "user_id", "issued_at") VALUES (:coupon, :uid, now()) ON CONFLICT ("user_id", "coupon_id") DO NOTHING RETURNING "user_coupons"."issued_at";
UPDATE "reference_coupons" AS "coupons" SET "remaining_quantity" = ("coupons"."remaining_quantity" - 1) WHERE (((("coupons"."id" = :coupon) AND ("coupons"."remaining_quantity" > 0)) AND ("coupons"."valid_from" <= now())) AND ("coupons"."valid_until" >= now())) RETURNING "coupons"."id", "coupons"."name", "coupons"."discount_type", "coupons"."discount_value", "coupons"."min_order_amount", "coupons"."total_quantity", "coupons"."remaining_quantity", "coupons"."valid_from", "coupons"."valid_until";
COMMIT;
