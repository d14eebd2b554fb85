-- The data set of `make loadtest`, loaded into an empty, migrated database
-- (psql variables: users, buckets).
-- :users users with room on their balance, a catalog of 1,000 products (product 1 is
-- the one every order buys), and two large coupons: one the service issues, one the
-- pgbench reference issues.
INSERT INTO users (name, balance)
SELECT 'user-' || n, 1000000 FROM generate_series(1, :users) AS n;

INSERT INTO products (name, price, stock)
SELECT 'Product ' || n, 100 * (1 + n % 500), 100000000 FROM generate_series(1, 1000) AS n;

INSERT INTO coupons (name, discount_type, discount_value, min_order_amount, total_quantity, valid_from, valid_until, buckets)
VALUES
    ('Rush (service)', 'FIXED', 1000, 0, 10000000, now() - interval '1 day', now() + interval '1 day', :buckets),
    ('Rush (pgbench)', 'FIXED', 1000, 0, 10000000, now() - interval '1 day', now() + interval '1 day', :buckets);

-- Their stock, in :buckets buckets each (16, as the service creates it, unless
-- LOADTEST_COUPON_BUCKETS says otherwise, to compare designs).
SELECT fill_coupon_stock(id) FROM coupons;

-- A shop in operation has a history: a past campaign, over and sold out, that every
-- user holds. Without it `user_coupons` is analyzed while empty, and a connection that
-- caches its issue statement's generic plan in that state keeps scanning the whole
-- table for the user's holding while the rush fills it (issues then ran at a third of
-- their speed, depending on when autovacuum's next ANALYZE came; docs/PERFORMANCE.md).
INSERT INTO coupons (name, discount_type, discount_value, min_order_amount, total_quantity, valid_from, valid_until, buckets, sold_out)
VALUES ('Welcome (over)', 'FIXED', 1000, 0, :users, now() - interval '60 days', now() - interval '30 days', 16, true);
INSERT INTO coupon_stock (coupon_id, bucket, remaining)
SELECT c.id, b.n, 0 FROM coupons c, generate_series(0, 15) AS b(n) WHERE c.name = 'Welcome (over)';
INSERT INTO user_coupons (coupon_id, user_id, issued_at)
SELECT c.id, u.id, c.valid_from FROM coupons c, users u WHERE c.name = 'Welcome (over)';

-- pgbench's reference for the coupon issue runs the two statements the service sent
-- before its stock was split into buckets, against copies of the two tables of that
-- time: the campaign row with its remaining quantity, and the holders, whose foreign
-- key locks that same row (so the reference pays what the service paid then).
CREATE TABLE reference_coupons (
    id                  BIGINT PRIMARY KEY,
    name                TEXT        NOT NULL,
    discount_type       TEXT        NOT NULL,
    discount_value      BIGINT      NOT NULL,
    min_order_amount    BIGINT      NOT NULL,
    total_quantity      INTEGER     NOT NULL,
    remaining_quantity  INTEGER     NOT NULL,
    valid_from          TIMESTAMPTZ NOT NULL,
    valid_until         TIMESTAMPTZ NOT NULL,
    CONSTRAINT reference_coupons_remaining_range CHECK (remaining_quantity BETWEEN 0 AND total_quantity)
);
INSERT INTO reference_coupons
SELECT id, name, discount_type, discount_value, min_order_amount, total_quantity, total_quantity, valid_from, valid_until
FROM coupons WHERE name = 'Rush (pgbench)';

-- The holders' table has not changed since: a copy of it (columns, keys, checks and
-- indexes), its foreign keys pointing at the reference campaign row.
CREATE TABLE reference_user_coupons (LIKE user_coupons INCLUDING ALL);
ALTER TABLE reference_user_coupons
    ADD FOREIGN KEY (coupon_id) REFERENCES reference_coupons (id),
    ADD FOREIGN KEY (user_id) REFERENCES users (id),
    ADD FOREIGN KEY (order_id) REFERENCES orders (id);

-- The same history for the reference's holders.
INSERT INTO reference_coupons
SELECT id, name, discount_type, discount_value, min_order_amount, total_quantity, 0, valid_from, valid_until
FROM coupons WHERE name = 'Welcome (over)';
INSERT INTO reference_user_coupons (coupon_id, user_id, issued_at)
SELECT coupon_id, user_id, issued_at FROM user_coupons;

VACUUM ANALYZE;
