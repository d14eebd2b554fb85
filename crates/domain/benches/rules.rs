//! The domain's hot rules: pricing a full basket and ranking a large sales list.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use domain::coupon::{Coupon, CouponParts, DiscountPolicy, IssuedCoupon, ValidityWindow};
use domain::order::{OrderItems, RequestedLine, price_order};
use domain::product::{Product, ProductName, Quantity, Stock};
use domain::ranking::{ProductSales, rank_best};
use domain::{CouponId, Money, ProductId, UserId};

fn pricing(c: &mut Criterion) {
    let products: Vec<Product> = (1..=100)
        .map(|id| Product {
            id: ProductId::new(id).unwrap(),
            name: ProductName::new("product").unwrap(),
            price: Money::new(1_000 + id).unwrap(),
            stock: Stock::new(1_000).unwrap(),
        })
        .collect();
    let items = OrderItems::new(
        (1..=100)
            .rev()
            .map(|id| RequestedLine { product_id: ProductId::new(id).unwrap(), quantity: Quantity::new(3).unwrap() })
            .collect(),
    )
    .unwrap();
    let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let coupon = IssuedCoupon {
        coupon: Coupon::new(CouponParts {
            id: CouponId::new(1).unwrap(),
            name: "ten".into(),
            discount: DiscountPolicy::percent(10).unwrap(),
            min_order_amount: Money::ZERO,
            total_quantity: 1,
            remaining_quantity: 0,
            validity: ValidityWindow::new(at, at + chrono::Duration::days(1)).unwrap(),
        })
        .unwrap(),
        user_id: UserId::new(1).unwrap(),
        issued_at: at,
        used_at: None,
    };
    c.bench_function("price_order/100 lines with a coupon", |b| {
        b.iter(|| price_order(std::hint::black_box(&items), &products, Some(&coupon), at).unwrap());
    });
}

fn ranking(c: &mut Criterion) {
    let sales: Vec<ProductSales> = (1..=10_000)
        .map(|id| ProductSales { product_id: ProductId::new(id).unwrap(), sold_quantity: (id * 7_919) % 1_000 })
        .collect();
    c.bench_function("rank_best/10k products", |b| b.iter(|| rank_best(std::hint::black_box(sales.clone()))));
}

criterion_group!(benches, pricing, ranking);
criterion_main!(benches);
