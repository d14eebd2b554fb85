//! Every operation of the API, each declared once: its handler's route attribute gives
//! the method and path, its `#[utoipa::path]` the documentation, and its module's
//! `operations` list both registers it (`server`) and puts it in the OpenAPI document
//! ([`document`]). A new operation in an existing module is one line there.

use actix_web::App;
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::openapi::{ApiDoc, ReplayHeader, TraceParentHeader};

use crate::handlers::{admin, best_products, coupons, health, orders, payments, points, products};

/// Registers every operation on `cfg`.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.configure(points::operations)
        .configure(products::operations)
        .configure(best_products::operations)
        .configure(coupons::operations)
        .configure(orders::operations)
        .configure(payments::operations)
        .configure(admin::operations)
        .configure(health::operations);
}

/// The whole document: [`ApiDoc`] with every registered operation and the schemas
/// they use.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut document) =
        App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(operations).split_for_parts();
    // After the operations are in: it reads their responses.
    ReplayHeader.modify(&mut document);
    TraceParentHeader.modify(&mut document);
    document
}

/// The document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    document().to_pretty_json().map(|mut json| {
        json.push('\n');
        json
    })
}
