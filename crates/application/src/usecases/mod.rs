//! The use cases, one module each, and [`Shop`], which holds them all for an inbound
//! adapter.

use std::sync::Arc;

use domain::order::PaymentTimeout;

use crate::ports::{Clock, DataPlatform, UnitOfWork};
use crate::resilience::{BreakerSettings, CircuitBreaker};

pub mod best_products;
pub mod catalog;
pub mod coupons;
pub mod health;
pub mod idempotency_keys;
pub mod orders;
pub mod payments;
pub mod points;
pub mod users;
pub mod voids;

#[cfg(test)]
pub(crate) mod test_support;

/// The outbound ports every use case draws from.
#[derive(Clone)]
pub struct Ports {
    pub uow: Arc<dyn UnitOfWork>,
    pub clock: Arc<dyn Clock>,
    pub data_platform: Arc<dyn DataPlatform>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// Settings that shape the rules' parameters.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub payment_timeout: PaymentTimeout,
    pub time_zone: chrono_tz::Tz,
    /// When the data platform's circuit breaker opens; `None` for a platform that
    /// cannot fail (the logging stand-in): its breaker never opens.
    pub data_platform_breaker: Option<BreakerSettings>,
    /// How many of a user's orders may wait for payment at once.
    pub max_unpaid_orders: u32,
}

/// Every use case of the shop, wired to one set of ports.
#[derive(Debug, Clone)]
pub struct Shop {
    pub create_user: users::CreateUser,
    pub find_user: users::FindUser,
    pub charge_points: points::ChargePoints,
    pub get_balance: points::GetBalance,
    pub point_history: points::PointHistory,
    pub create_product: catalog::CreateProduct,
    pub list_products: catalog::ListProducts,
    pub create_coupon: coupons::CreateCoupon,
    pub issue_coupon: coupons::IssueCoupon,
    pub held_coupons: coupons::HeldCoupons,
    pub place_order: orders::PlaceOrder,
    pub get_order: orders::GetOrder,
    pub expire_orders: orders::ExpireOrders,
    pub pay_order: payments::PayOrder,
    pub refresh_best_products: best_products::RefreshBestProducts,
    pub best_products: best_products::GetBestProducts,
    pub readiness: health::CheckReadiness,
    pub purge_idempotency_keys: idempotency_keys::PurgeExpiredKeys,
    pub deliver_voids: voids::DeliverVoids,
    /// The circuit breaker in front of payments, for metrics and readiness.
    pub data_platform_breaker: Arc<CircuitBreaker>,
}

impl Shop {
    pub fn new(ports: &Ports, settings: Settings) -> Self {
        let latest_best_products = Arc::new(best_products::LatestSnapshot::default());
        let gate = Arc::new(match settings.data_platform_breaker {
            Some(bounds) => CircuitBreaker::new(bounds, ports.clock.clone()),
            None => CircuitBreaker::never_open(ports.clock.clone()),
        });
        Self {
            create_user: users::CreateUser::new(ports.uow.clone()),
            find_user: users::FindUser::new(ports.uow.clone()),
            charge_points: points::ChargePoints::new(ports.uow.clone(), ports.clock.clone()),
            get_balance: points::GetBalance::new(ports.uow.clone()),
            point_history: points::PointHistory::new(ports.uow.clone()),
            create_product: catalog::CreateProduct::new(ports.uow.clone()),
            list_products: catalog::ListProducts::new(ports.uow.clone()),
            create_coupon: coupons::CreateCoupon::new(ports.uow.clone()),
            issue_coupon: coupons::IssueCoupon::new(ports.uow.clone(), ports.clock.clone()),
            held_coupons: coupons::HeldCoupons::new(ports.uow.clone()),
            place_order: orders::PlaceOrder::new(
                ports.uow.clone(),
                ports.clock.clone(),
                settings.payment_timeout,
                settings.max_unpaid_orders,
            ),
            get_order: orders::GetOrder::new(ports.uow.clone()),
            expire_orders: orders::ExpireOrders::new(ports.uow.clone(), ports.clock.clone()),
            pay_order: payments::PayOrder::new(
                ports.uow.clone(),
                ports.clock.clone(),
                ports.data_platform.clone(),
                gate.clone(),
            ),
            refresh_best_products: best_products::RefreshBestProducts::new(
                ports.uow.clone(),
                ports.clock.clone(),
                settings.time_zone,
                latest_best_products.clone(),
            ),
            best_products: best_products::GetBestProducts::new(
                ports.uow.clone(),
                ports.clock.clone(),
                latest_best_products,
            ),
            readiness: health::CheckReadiness::new(ports.uow.clone(), gate.clone()),
            purge_idempotency_keys: idempotency_keys::PurgeExpiredKeys::new(ports.uow.clone()),
            deliver_voids: voids::DeliverVoids::new(
                ports.uow.clone(),
                ports.clock.clone(),
                ports.data_platform.clone(),
            ),
            data_platform_breaker: gate,
        }
    }
}

/// Implements `Debug` for a use case struct without printing its ports.
/// Stores a balance decided on a locked read ([`UserRepository::lock_balance`]) and
/// the ledger entry that explains it, for the charge's and the payment's locked paths.
pub(crate) async fn write_locked_balance(
    users: &mut dyn crate::ports::UserRepository,
    entry: &crate::ports::NewPointEntry,
) -> Result<(), crate::ports::StoreError> {
    users.set_balance(entry.user_id, entry.balance_after).await?;
    users.append_entry(entry).await.map(drop)
}

macro_rules! opaque_debug {
    ($($name:ident),+ $(,)?) => {
        $(impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        })+
    };
}
pub(crate) use opaque_debug;
