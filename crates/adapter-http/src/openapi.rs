//! The OpenAPI 3.1 document, generated from the handlers' annotations: [`ApiDoc`] holds
//! what is said once for the whole API, and the operations come from the same list
//! that registers their routes (`server::operations`).

use actix_web::App;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "E-commerce service",
        version = "1.0.0",
        description = "Points, products, first-come coupons, orders and payments. Every error is \
            `application/problem+json` (RFC 9457) with a stable `code`; clients branch on `code`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(Problem)),
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

/// The whole document: [`ApiDoc`] with every registered operation and the schemas
/// they use.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, document) =
        App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(crate::server::operations).split_for_parts();
    document
}

/// The document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    document().to_pretty_json().map(|mut json| {
        json.push('\n');
        json
    })
}
