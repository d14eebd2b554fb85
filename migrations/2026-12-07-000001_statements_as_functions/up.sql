-- The statements the query builder cannot express live here (all but the balance
-- change, see the ADR below), as functions the adapter calls with typed arguments
-- (crates/adapter-postgres/src/functions.rs declares each one). A call is an ordinary query of the builder, so it is prepared once per
-- connection; and PL/pgSQL keeps the plans of the statements inside a function for the
-- life of the connection. docs/adr/0011-hand-written-sql-as-database-functions.md says
-- why this and not SQL text in the adapter.
--
-- Every function runs in the caller's transaction (or, outside one, as one statement)
-- and takes the row locks its comments name until that transaction ends.

-- Stock buckets (docs/adr/0009-coupon-stock-buckets.md) ----------------------------------

-- How many units bucket `bucket` of a coupon of `total` units in `buckets` buckets holds
-- when none is taken: bucket b holds the units whose ordinal (0-based, in issue order) is
-- b, b + n, b + 2n, ... below total. The one definition of the split.
CREATE FUNCTION coupon_bucket_capacity(total integer, buckets integer, bucket integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN total / buckets + (bucket < total % buckets)::integer;

-- What remains of a coupon: the sum of its buckets, or 0 without reading them once it is
-- flagged sold out.
CREATE FUNCTION coupon_remaining(coupon bigint, sold_out boolean) RETURNS integer
    LANGUAGE plpgsql STABLE STRICT AS $$
BEGIN
    IF sold_out THEN
        RETURN 0;
    END IF;
    RETURN (SELECT coalesce(sum(s.remaining), 0)::integer FROM coupon_stock s WHERE s.coupon_id = coupon);
END
$$;

-- Creates the full stock buckets of a new coupon (as many as `coupons.buckets` says).
CREATE FUNCTION fill_coupon_stock(coupon bigint) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    created integer;
BEGIN
    INSERT INTO coupon_stock (coupon_id, bucket, remaining)
    SELECT c.id, b.n, coupon_bucket_capacity(c.total_quantity, c.buckets, b.n)
    FROM coupons c, generate_series(0, c.buckets - 1) AS b(n)
    WHERE c.id = coupon;
    GET DIAGNOSTICS created = ROW_COUNT;
    RETURN created;
END
$$;

-- Issues `coupon` to `holder` at `moment`, in one call. Unless the coupon is flagged sold out
-- or not valid at `moment`, it locks the least-taken bucket with stock — passing by buckets
-- other issues hold, or, with `wait`, waiting for one (a bucket emptied meanwhile is
-- passed over when the lock is granted) — then writes the holder row unless the holder
-- already has one (the unique key decides, and a concurrent issue to the same holder is
-- waited for), and only then takes the unit.
--
-- One row (none for an unknown coupon): the coupon, what remains, whether it is flagged
-- sold out, `issued_at` when issued now, and `already_held`. An unknown holder fails on
-- the holder row's foreign key.
--
-- The remaining quantity of an issue is `total - 1 - ordinal` of the unit taken: exact
-- when issues do not overlap (the least-taken bucket first makes the ordinals run 0, 1,
-- 2, ...), distinct for every issue, and together the replies count from `total - 1`
-- down to 0. Without an issue it is the sum of the buckets.
CREATE FUNCTION issue_coupon(coupon bigint, holder bigint, moment timestamptz, wait boolean)
    RETURNS TABLE (id bigint, name text, discount_type text, discount_value bigint, min_order_amount bigint,
                   total_quantity integer, remaining_quantity integer, valid_from timestamptz,
                   valid_until timestamptz, sold_out boolean, issued_at timestamptz, already_held boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    c coupons%ROWTYPE;
    taken_from smallint;
    left_in_bucket integer;
BEGIN
    SELECT * INTO c FROM coupons WHERE coupons.id = coupon;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    id := c.id; name := c.name; discount_type := c.discount_type; discount_value := c.discount_value;
    min_order_amount := c.min_order_amount; total_quantity := c.total_quantity; valid_from := c.valid_from;
    valid_until := c.valid_until; sold_out := c.sold_out; already_held := false;

    IF NOT c.sold_out AND c.valid_from <= moment AND c.valid_until >= moment THEN
        IF wait THEN
            SELECT s.bucket INTO taken_from FROM coupon_stock s
            WHERE s.coupon_id = coupon AND s.remaining > 0
            ORDER BY coupon_bucket_capacity(c.total_quantity, c.buckets, s.bucket) - s.remaining, s.bucket
            LIMIT 1 FOR UPDATE;
        ELSE
            SELECT s.bucket INTO taken_from FROM coupon_stock s
            WHERE s.coupon_id = coupon AND s.remaining > 0
            ORDER BY coupon_bucket_capacity(c.total_quantity, c.buckets, s.bucket) - s.remaining, s.bucket
            LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
    END IF;

    IF taken_from IS NOT NULL THEN
        INSERT INTO user_coupons AS h (coupon_id, user_id, issued_at) VALUES (coupon, holder, moment)
        ON CONFLICT (user_id, coupon_id) DO NOTHING
        RETURNING h.issued_at INTO issued_at;
        IF issued_at IS NULL THEN
            already_held := true;
            remaining_quantity := coupon_remaining(c.id, c.sold_out);
            RETURN NEXT;
            RETURN;
        END IF;
        UPDATE coupon_stock s SET remaining = s.remaining - 1
        WHERE s.coupon_id = coupon AND s.bucket = taken_from
        RETURNING s.remaining INTO left_in_bucket;
        remaining_quantity := c.total_quantity - 1
            - ((coupon_bucket_capacity(c.total_quantity, c.buckets, taken_from) - left_in_bucket - 1) * c.buckets
               + taken_from);
    ELSE
        remaining_quantity := coupon_remaining(c.id, c.sold_out);
        already_held := EXISTS (SELECT 1 FROM user_coupons h WHERE h.user_id = holder AND h.coupon_id = coupon);
    END IF;
    RETURN NEXT;
END
$$;

-- Stock and orders ---------------------------------------------------------------------

-- Takes (`sign` -1) or gives back (`sign` 1) each quantity from its product's stock; the
-- table's CHECK refuses a shortfall. Callers hold the rows' locks. Rows changed.
CREATE FUNCTION move_stock(products_ bigint[], quantities integer[], sign integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    moved integer;
BEGIN
    UPDATE products p SET stock = p.stock + sign * l.quantity
    FROM unnest(products_, quantities) AS l(id, quantity) WHERE p.id = l.id;
    GET DIAGNOSTICS moved = ROW_COUNT;
    RETURN moved;
END
$$;

-- Inserts a NOT_PAID order with its lines (one array per line column) and returns it.
-- With `take_stock`, first locks the products in ascending id (so two orders over
-- overlapping products cannot deadlock) and takes each line's quantity, provided the
-- product still has the line's unit price and at least its quantity; if any has not,
-- inserts nothing and returns no row — stock of other lines may have been taken, so the
-- caller MUST roll back.
CREATE FUNCTION place_order(buyer bigint, coupon bigint, total bigint, discount bigint, payment bigint,
                            created timestamptz, expires timestamptz, line_nos smallint[], product_ids bigint[],
                            product_names text[], unit_prices bigint[], quantities integer[], amounts bigint[],
                            take_stock boolean)
    RETURNS TABLE (id bigint, user_id bigint, coupon_id bigint, status text, total_amount bigint,
                   discount_amount bigint, payment_amount bigint, created_at timestamptz,
                   expires_at timestamptz, paid_at timestamptz)
    LANGUAGE plpgsql AS $$
DECLARE
    taken integer;
    placed bigint;
BEGIN
    IF take_stock THEN
        PERFORM 1 FROM products p WHERE p.id = ANY (product_ids) ORDER BY p.id FOR NO KEY UPDATE;
        UPDATE products p SET stock = p.stock - w.quantity
        FROM unnest(product_ids, unit_prices, quantities) AS w(product_id, unit_price, quantity)
        WHERE p.id = w.product_id AND p.stock >= w.quantity AND p.price = w.unit_price;
        GET DIAGNOSTICS taken = ROW_COUNT;
        IF taken <> cardinality(product_ids) THEN
            RETURN;
        END IF;
    END IF;
    INSERT INTO orders AS o (user_id, coupon_id, status, total_amount, discount_amount, payment_amount, created_at,
                             expires_at)
    VALUES (buyer, coupon, 'NOT_PAID', total, discount, payment, created, expires)
    RETURNING o.id INTO placed;
    INSERT INTO order_lines (order_id, line_no, product_id, product_name, unit_price, quantity, amount)
    SELECT placed, w.* FROM unnest(line_nos, product_ids, product_names, unit_prices, quantities, amounts) AS w;
    RETURN QUERY
        SELECT placed, buyer, coupon, 'NOT_PAID'::text, total, discount, payment, created, expires,
               NULL::timestamptz;
END
$$;

-- Best products ------------------------------------------------------------------------

-- Units sold per product in PAID orders paid in [window_from, window_to), best first
-- (ties: lower product id), at most `top` of them.
CREATE FUNCTION paid_sales(window_from timestamptz, window_to timestamptz, top bigint)
    RETURNS TABLE (product_id bigint, sold_quantity bigint)
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
        SELECT l.product_id, sum(l.quantity)::bigint AS sold
        FROM orders o JOIN order_lines l ON l.order_id = o.id
        WHERE o.status = 'PAID' AND o.paid_at >= window_from AND o.paid_at < window_to
        GROUP BY l.product_id
        ORDER BY sold DESC, l.product_id ASC
        LIMIT top;
END
$$;

-- Idempotency keys ---------------------------------------------------------------------

-- The key's row, locked: its fingerprint, its reply (NULL until completed), and whether
-- it is older than `ttl_secs`. No row for an unknown key.
CREATE FUNCTION lock_idempotency_key(key_scope text, key_text text, ttl_secs bigint)
    RETURNS TABLE (fingerprint bytea, body bytea, expired boolean)
    LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT k.fingerprint, k.body, k.created_at < now() - make_interval(secs => ttl_secs)
        FROM idempotency_keys k WHERE k.scope = key_scope AND k.key = key_text
        FOR UPDATE;
END
$$;

-- Deletes up to `batch` keys older than `ttl_secs`, oldest first, passing by rows another
-- deleter holds. Rows deleted.
CREATE FUNCTION delete_expired_idempotency_keys(ttl_secs bigint, batch bigint) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    deleted bigint;
BEGIN
    DELETE FROM idempotency_keys WHERE (scope, key) IN (
        SELECT k.scope, k.key FROM idempotency_keys k
        WHERE k.created_at < now() - make_interval(secs => ttl_secs)
        ORDER BY k.created_at LIMIT batch FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;

-- Pending voids ------------------------------------------------------------------------

-- The oldest record due at `due_by` whose order has ended (not NOT_PAID), locked, with
-- its order's status; records another relay holds are passed by. No row when none.
CREATE FUNCTION lock_due_void(due_by timestamptz)
    RETURNS TABLE (order_id bigint, user_id bigint, status text, attempts integer)
    LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT v.order_id, v.user_id, o.status, v.attempts FROM pending_voids v
        JOIN orders o ON o.id = v.order_id
        WHERE v.next_attempt_at <= due_by AND o.status <> 'NOT_PAID'
        ORDER BY v.next_attempt_at LIMIT 1 FOR UPDATE OF v SKIP LOCKED;
END
$$;
