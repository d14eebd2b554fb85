ALTER TABLE coupons ADD COLUMN remaining_quantity INTEGER;
UPDATE coupons c SET remaining_quantity = coalesce((SELECT sum(s.remaining) FROM coupon_stock s WHERE s.coupon_id = c.id), 0);
ALTER TABLE coupons ALTER COLUMN remaining_quantity SET NOT NULL;
ALTER TABLE coupons ADD CONSTRAINT coupons_remaining_range CHECK (remaining_quantity BETWEEN 0 AND total_quantity);
ALTER TABLE coupons DROP COLUMN sold_out;
ALTER TABLE coupons DROP COLUMN buckets;
DROP TABLE coupon_stock;
