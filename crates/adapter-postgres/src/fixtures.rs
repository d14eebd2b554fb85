//! Fixtures of the adapter's tests against a real PostgreSQL: each test has its own
//! database cloned from a migrated template (`testing::TestDatabase`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use application::UnitOfWork;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use domain::coupon::{DiscountPolicy, NewCoupon, ValidityWindow};
use domain::product::{NewProduct, ProductName, Stock};
use domain::testing::at;
use domain::user::UserName;
use domain::{CouponId, Money, ProductId, UserId};

use crate::testing::TestDatabase;
use crate::{PgPool, PgUnitOfWork, PoolSettings, connect};

pub(crate) struct Fixture {
    /// Dropped last: the database lives as long as the test.
    pub(crate) db: TestDatabase,
    pub(crate) pool: PgPool,
    pub(crate) uow: Arc<PgUnitOfWork>,
}

pub(crate) async fn fixture() -> Fixture {
    let db = TestDatabase::new().await.unwrap();
    let pool = connect(db.url(), PoolSettings::default()).unwrap();
    let uow = Arc::new(PgUnitOfWork::new(pool.clone()));
    Fixture { db, pool, uow }
}

pub(crate) async fn count(pool: &PgPool, sql: &str) -> i64 {
    let mut conn = pool.get().await.unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})"))).get_result(&mut conn).await.unwrap()
}

pub(crate) async fn user(uow: &PgUnitOfWork) -> UserId {
    let mut work = uow.begin().await.unwrap();
    let user = work.users().create(&UserName::new("kim").unwrap()).await.unwrap();
    work.commit().await.unwrap();
    user.id
}

pub(crate) async fn product(uow: &PgUnitOfWork, price: i64, stock: i64) -> ProductId {
    let mut work = uow.begin().await.unwrap();
    let product = work
        .products()
        .create(&NewProduct {
            name: ProductName::new("p").unwrap(),
            price: Money::new(price).unwrap(),
            stock: Stock::new(stock).unwrap(),
        })
        .await
        .unwrap();
    work.commit().await.unwrap();
    product.id
}

pub(crate) async fn coupon(uow: &PgUnitOfWork, quantity: i64) -> CouponId {
    let mut work = uow.begin().await.unwrap();
    let window = ValidityWindow::new(at(0), at(1_000)).unwrap();
    let coupon = NewCoupon::new("c", DiscountPolicy::fixed(100).unwrap(), 0, quantity, window).unwrap();
    let coupon = work.coupons().create(&coupon).await.unwrap();
    work.commit().await.unwrap();
    coupon.id()
}
