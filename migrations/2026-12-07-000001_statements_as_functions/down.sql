DROP FUNCTION lock_due_void(timestamptz);
DROP FUNCTION delete_expired_idempotency_keys(bigint, bigint);
DROP FUNCTION lock_idempotency_key(text, text, bigint);
DROP FUNCTION paid_sales(timestamptz, timestamptz, bigint);
DROP FUNCTION place_order(bigint, bigint, bigint, bigint, bigint, timestamptz, timestamptz, smallint[], bigint[],
                          text[], bigint[], integer[], bigint[], boolean);
DROP FUNCTION move_stock(bigint[], integer[], integer);
DROP FUNCTION issue_coupon(bigint, bigint, timestamptz, boolean);
DROP FUNCTION fill_coupon_stock(bigint);
DROP FUNCTION coupon_remaining(bigint, boolean);
DROP FUNCTION coupon_bucket_capacity(integer, integer, integer);
