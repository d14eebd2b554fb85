// @generated automatically by Diesel CLI.

diesel::table! {
    best_product_snapshot_items (snapshot_id, rank) {
        snapshot_id -> Int8,
        rank -> Int2,
        product_id -> Int8,
        sold_quantity -> Int8,
    }
}

diesel::table! {
    best_product_snapshots (id) {
        id -> Int8,
        window_from -> Timestamptz,
        window_to -> Timestamptz,
        calculated_at -> Timestamptz,
    }
}

diesel::table! {
    coupon_stock (coupon_id, bucket) {
        coupon_id -> Int8,
        bucket -> Int2,
        remaining -> Int4,
    }
}

diesel::table! {
    coupons (id) {
        id -> Int8,
        name -> Text,
        discount_type -> Text,
        discount_value -> Int8,
        min_order_amount -> Int8,
        total_quantity -> Int4,
        valid_from -> Timestamptz,
        valid_until -> Timestamptz,
        created_at -> Timestamptz,
        sold_out -> Bool,
        buckets -> Int2,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        fingerprint -> Bytea,
        body -> Nullable<Bytea>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Int8,
        line_no -> Int2,
        product_id -> Int8,
        product_name -> Text,
        unit_price -> Int8,
        quantity -> Int4,
        amount -> Int8,
    }
}

diesel::table! {
    orders (id) {
        id -> Int8,
        user_id -> Int8,
        coupon_id -> Nullable<Int8>,
        status -> Text,
        total_amount -> Int8,
        discount_amount -> Int8,
        payment_amount -> Int8,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        refunded_at -> Nullable<Timestamptz>,
        refund_reason -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (kind, order_id) {
        kind -> Text,
        order_id -> Int8,
        recorded_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        sends_in_doubt -> Int4,
        traceparent -> Nullable<Text>,
    }
}

diesel::table! {
    payments (id) {
        id -> Int8,
        order_id -> Int8,
        user_id -> Int8,
        amount -> Int8,
        paid_at -> Timestamptz,
    }
}

diesel::table! {
    point_history (id) {
        id -> Int8,
        user_id -> Int8,
        kind -> Text,
        amount -> Int8,
        balance_after -> Int8,
        order_id -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    products (id) {
        id -> Int8,
        name -> Text,
        price -> Int8,
        stock -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    user_coupons (id) {
        id -> Int8,
        coupon_id -> Int8,
        user_id -> Int8,
        issued_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        order_id -> Nullable<Int8>,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        name -> Text,
        balance -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(best_product_snapshot_items -> best_product_snapshots (snapshot_id));
diesel::joinable!(best_product_snapshot_items -> products (product_id));
diesel::joinable!(coupon_stock -> coupons (coupon_id));
diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(order_lines -> products (product_id));
diesel::joinable!(orders -> coupons (coupon_id));
diesel::joinable!(orders -> users (user_id));
diesel::joinable!(outbox -> orders (order_id));
diesel::joinable!(payments -> orders (order_id));
diesel::joinable!(payments -> users (user_id));
diesel::joinable!(point_history -> orders (order_id));
diesel::joinable!(point_history -> users (user_id));
diesel::joinable!(user_coupons -> coupons (coupon_id));
diesel::joinable!(user_coupons -> orders (order_id));
diesel::joinable!(user_coupons -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    best_product_snapshot_items,
    best_product_snapshots,
    coupon_stock,
    coupons,
    idempotency_keys,
    order_lines,
    orders,
    outbox,
    payments,
    point_history,
    products,
    user_coupons,
    users,
);
