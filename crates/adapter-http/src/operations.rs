//! Every operation of the API, each declared once: its handler's route attribute gives
//! the method and path, its `#[utoipa::path]` the documentation, and this list both
//! registers it (`server`) and puts it in the OpenAPI document (`openapi::document`).

use utoipa_actix_web::service_config::ServiceConfig;

use crate::handlers::{admin, best_products, coupons, health, orders, payments, points, products};

/// Registers every operation on `cfg`.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(points::charge)
        .service(points::balance)
        .service(points::history)
        .service(products::list)
        .service(best_products::best)
        .service(coupons::list_held)
        .service(coupons::issue)
        .service(orders::place)
        .service(orders::get)
        .service(payments::pay)
        .service(admin::create_user)
        .service(admin::issue_token)
        .service(admin::create_product)
        .service(admin::create_coupon)
        .service(admin::refresh_best_products)
        .service(health::live)
        .service(health::ready)
        .service(health::metrics);
}
