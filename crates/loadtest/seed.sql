-- The data set of `make loadtest`, loaded into an empty, migrated database.
-- :users users with room on their balance, a catalog of 1,000 products (product 1 is
-- the one every order buys), and two large coupons: one the service issues, one the
-- pgbench reference issues.
INSERT INTO users (name, balance)
SELECT 'user-' || n, 1000000 FROM generate_series(1, :users) AS n;

INSERT INTO products (name, price, stock)
SELECT 'Product ' || n, 100 * (1 + n % 500), 100000000 FROM generate_series(1, 1000) AS n;

INSERT INTO coupons (name, discount_type, discount_value, min_order_amount, total_quantity, remaining_quantity, valid_from, valid_until)
VALUES
    ('Rush (service)', 'FIXED', 1000, 0, 10000000, 10000000, now() - interval '1 day', now() + interval '1 day'),
    ('Rush (pgbench)', 'FIXED', 1000, 0, 10000000, 10000000, now() - interval '1 day', now() + interval '1 day');

VACUUM ANALYZE;
