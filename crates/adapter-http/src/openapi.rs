//! The OpenAPI 3.1 document, generated from the handlers' annotations: [`ApiDoc`] holds
//! what is said once for the whole API, and the operations come from the same list
//! that registers their routes (`operations::operations`).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Required};
use utoipa::{Modify, OpenApi};

use crate::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "E-commerce service",
        version = "1.0.0",
        description = "Points, products, first-come coupons, orders and payments. Every error is \
            `application/problem+json` (RFC 9457) with a stable `code`; clients branch on `code`. \
            User endpoints need a user's bearer JWT (`user_token`), the back office the admin token \
            (`admin_token`); the product list, best products and operations are public.",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
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

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The back office's `ADMIN_TOKEN`, for `/api/v1/admin/*`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A user's JWT (`sub` = the user id, `exp` required), from `POST \
                         /api/v1/admin/users/{userId}/tokens`, `ecommerce token <userId>`, or the identity \
                         provider whose public key is configured. A user acts only as themself: a token \
                         for another user than the request names is 403.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documents `Idempotent-Replayed` on the successes of the operations whose
/// idempotency keys are stored (those that can answer `IDEMPOTENCY_KEY_REUSED`).
pub(crate) struct ReplayHeader;

impl Modify for ReplayHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["true"])))
            .description(Some("`true` when this is the stored reply of an earlier request with the same key."))
            .build();
        for item in openapi.paths.paths.values_mut() {
            let Some(operation) = item.post.as_mut() else { continue };
            let keyed = serde_json::to_string(&operation.responses).is_ok_and(|r| r.contains("IDEMPOTENCY_KEY_REUSED"));
            if !keyed {
                continue;
            }
            for (status, response) in &mut operation.responses.responses {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response.headers.insert("Idempotent-Replayed".to_owned(), header.clone());
                }
            }
        }
    }
}

/// Documents the optional `traceparent` request header (W3C Trace Context) on every
/// operation: the request continues the caller's trace.
pub(crate) struct TraceParentHeader;

impl Modify for TraceParentHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let parameter = ParameterBuilder::new()
            .name("traceparent")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "W3C Trace Context (`00-<trace id>-<parent id>-<flags>`): the request continues this trace. \
                 Any value is accepted: one that does not read starts a new trace, as an absent one does. \
                 The trace id is in every problem's `traceId`.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .examples(["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]),
            ))
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                operation.parameters.get_or_insert_with(Vec::new).push(parameter.clone());
            }
        }
    }
}
