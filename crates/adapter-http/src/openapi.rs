//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::{admin, best_products, coupons, health, orders, payments, points, products};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "E-commerce service",
        version = "1.0.0",
        description = "Points, products, first-come coupons, orders and payments. Every error is \
            `application/problem+json` (RFC 9457) with a stable `code`; clients branch on `code`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        points::charge, points::balance, points::history,
        products::list, best_products::best,
        coupons::issue, coupons::list_held,
        orders::place, orders::get, payments::pay,
        admin::create_user, admin::create_product, admin::create_coupon, admin::refresh_best_products,
        health::live, health::ready, health::metrics,
    ),
    modifiers(&AdminTokenScheme),
    tags(
        (name = "points", description = "Charging and reading balances"),
        (name = "products", description = "The catalog and the best sellers"),
        (name = "coupons", description = "First-come, first-served coupons"),
        (name = "orders", description = "Orders and payments"),
        (name = "admin", description = "Back office (bearer admin token)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json().map(|mut json| {
        json.push('\n');
        json
    })
}
