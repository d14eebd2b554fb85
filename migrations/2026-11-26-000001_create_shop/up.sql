-- The whole shop: users and their points, the catalog, coupons, orders, payments and
-- the daily best-products snapshots. CHECK, UNIQUE and FOREIGN KEY constraints are the
-- last line of defence behind the application's rules (docs/CONCURRENCY.md).

CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    balance     BIGINT      NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_balance_range CHECK (balance BETWEEN 0 AND 5000000)
);

CREATE TABLE products (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price       BIGINT      NOT NULL CHECK (price BETWEEN 0 AND 100000000),
    stock       INTEGER     NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT products_stock_not_negative CHECK (stock >= 0)
);

CREATE TABLE coupons (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    discount_type       TEXT        NOT NULL CHECK (discount_type IN ('FIXED', 'PERCENT')),
    discount_value      BIGINT      NOT NULL CHECK (discount_value >= 1),
    min_order_amount    BIGINT      NOT NULL DEFAULT 0 CHECK (min_order_amount >= 0),
    total_quantity      INTEGER     NOT NULL CHECK (total_quantity >= 1),
    remaining_quantity  INTEGER     NOT NULL,
    valid_from          TIMESTAMPTZ NOT NULL,
    valid_until         TIMESTAMPTZ NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT coupons_percent_range CHECK (discount_type <> 'PERCENT' OR discount_value <= 100),
    CONSTRAINT coupons_remaining_range CHECK (remaining_quantity BETWEEN 0 AND total_quantity),
    CONSTRAINT coupons_validity_ordered CHECK (valid_until > valid_from)
);

CREATE TABLE orders (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          BIGINT      NOT NULL REFERENCES users (id),
    coupon_id        BIGINT      REFERENCES coupons (id),
    status           TEXT        NOT NULL CHECK (status IN ('NOT_PAID', 'PAID', 'FAILED')),
    total_amount     BIGINT      NOT NULL CHECK (total_amount >= 0),
    discount_amount  BIGINT      NOT NULL,
    payment_amount   BIGINT      NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    paid_at          TIMESTAMPTZ,
    failed_at        TIMESTAMPTZ,
    CONSTRAINT orders_discount_range CHECK (discount_amount BETWEEN 0 AND total_amount),
    CONSTRAINT orders_payment_is_total_less_discount CHECK (payment_amount = total_amount - discount_amount),
    CONSTRAINT orders_paid_at_iff_paid CHECK ((status = 'PAID') = (paid_at IS NOT NULL)),
    CONSTRAINT orders_failed_at_iff_failed CHECK ((status = 'FAILED') = (failed_at IS NOT NULL))
);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE INDEX orders_coupon_id_idx ON orders (coupon_id) WHERE coupon_id IS NOT NULL;
-- The expiry sweep: unpaid orders by deadline.
CREATE INDEX orders_unpaid_expires_at_idx ON orders (expires_at) WHERE status = 'NOT_PAID';
-- The daily ranking: paid orders by payment instant.
CREATE INDEX orders_paid_at_idx ON orders (paid_at) WHERE status = 'PAID';

CREATE TABLE order_lines (
    order_id      BIGINT  NOT NULL REFERENCES orders (id),
    line_no       SMALLINT NOT NULL CHECK (line_no BETWEEN 1 AND 100),
    product_id    BIGINT  NOT NULL REFERENCES products (id),
    product_name  TEXT    NOT NULL,
    unit_price    BIGINT  NOT NULL CHECK (unit_price >= 0),
    quantity      INTEGER NOT NULL CHECK (quantity >= 1),
    amount        BIGINT  NOT NULL,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_lines_one_line_per_product UNIQUE (order_id, product_id),
    CONSTRAINT order_lines_amount CHECK (amount = unit_price * quantity)
);
CREATE INDEX order_lines_product_id_idx ON order_lines (product_id);

CREATE TABLE user_coupons (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    coupon_id   BIGINT      NOT NULL REFERENCES coupons (id),
    user_id     BIGINT      NOT NULL REFERENCES users (id),
    issued_at   TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    order_id    BIGINT      REFERENCES orders (id),
    CONSTRAINT user_coupons_one_per_user UNIQUE (user_id, coupon_id),
    CONSTRAINT user_coupons_used_by_an_order CHECK ((used_at IS NULL) = (order_id IS NULL))
);
CREATE INDEX user_coupons_coupon_id_idx ON user_coupons (coupon_id);
CREATE INDEX user_coupons_order_id_idx ON user_coupons (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE point_history (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        BIGINT      NOT NULL REFERENCES users (id),
    kind           TEXT        NOT NULL CHECK (kind IN ('CHARGE', 'USE')),
    amount         BIGINT      NOT NULL CHECK (amount >= 0),
    balance_after  BIGINT      NOT NULL CHECK (balance_after BETWEEN 0 AND 5000000),
    order_id       BIGINT      REFERENCES orders (id),
    created_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT point_history_use_has_order CHECK ((kind = 'USE') = (order_id IS NOT NULL))
);
-- The ledger, newest first, per user.
CREATE INDEX point_history_user_id_id_idx ON point_history (user_id, id DESC);
CREATE INDEX point_history_order_id_idx ON point_history (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE payments (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id  BIGINT      NOT NULL REFERENCES orders (id),
    user_id   BIGINT      NOT NULL REFERENCES users (id),
    amount    BIGINT      NOT NULL CHECK (amount >= 0),
    paid_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT payments_one_per_order UNIQUE (order_id)
);
CREATE INDEX payments_user_id_idx ON payments (user_id);

CREATE TABLE best_product_snapshots (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    window_from    TIMESTAMPTZ NOT NULL,
    window_to      TIMESTAMPTZ NOT NULL,
    calculated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT best_product_snapshots_one_per_window UNIQUE (window_to),
    CONSTRAINT best_product_snapshots_window_ordered CHECK (window_to > window_from)
);

CREATE TABLE best_product_snapshot_items (
    snapshot_id    BIGINT   NOT NULL REFERENCES best_product_snapshots (id) ON DELETE CASCADE,
    rank           SMALLINT NOT NULL CHECK (rank BETWEEN 1 AND 5),
    product_id     BIGINT   NOT NULL REFERENCES products (id),
    sold_quantity  BIGINT   NOT NULL CHECK (sold_quantity > 0),
    PRIMARY KEY (snapshot_id, rank),
    CONSTRAINT best_product_snapshot_items_product_once UNIQUE (snapshot_id, product_id)
);
CREATE INDEX best_product_snapshot_items_product_id_idx ON best_product_snapshot_items (product_id);
