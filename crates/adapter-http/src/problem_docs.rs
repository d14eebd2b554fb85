//! The problem responses of each operation in the OpenAPI document: `problems!`
//! names an operation's codes, [`documented`] turns them into responses.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::problem::{PROBLEM_JSON, ProblemCode};

/// Declares the problem responses of one operation: a unit type to name in its
/// `#[utoipa::path(responses(..))]`, documenting each listed code under its status.
///
/// ```ignore
/// problems!(BalanceProblems: InvalidUserId, UserNotFound, ServiceUnavailable);
/// problems!(keyed_post ChargeProblems: InvalidUserId, InvalidAmount, UserNotFound);
/// ```
macro_rules! problems {
    // A POST that takes an `Idempotency-Key` and a JSON body: the codes every such
    // operation shares, then its own.
    (keyed_post $name:ident: $($code:ident),+ $(,)?) => {
        $crate::problem_docs::problems!($name: InvalidIdempotencyKey, IdempotencyKeyReused, IdempotencyKeyInFlight,
            UnsupportedMediaType, PayloadTooLarge, ServiceUnavailable, OutcomeUnknown, $($code),+);
    };
    ($name:ident: $($code:ident),+ $(,)?) => {
        #[doc = concat!("The problem responses of one operation: ", $("`", stringify!($code), "` "),+)]
        #[derive(Debug)]
        pub struct $name;

        impl $name {
            /// The codes this operation can answer with.
            pub const CODES: &[$crate::problem::ProblemCode] = &[$($crate::problem::ProblemCode::$code),+];
        }

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
                $crate::problem_docs::documented(Self::CODES)
            }
        }
    };
}
pub(crate) use problems;

/// The OpenAPI responses for `codes`, one per status: a [`Problem`](crate::problem::Problem) whose `code` is one
/// of that status's codes.
pub fn documented(codes: &[ProblemCode]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ProblemCode>> = BTreeMap::new();
    for &code in codes {
        by_status.entry(code.status().as_u16()).or_default().push(code);
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let description =
                codes.iter().map(|c| format!("`{}`: {}", c.as_str(), c.title())).collect::<Vec<_>>().join("; ");
            let code_rule = ObjectBuilder::new().property(
                "code",
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes.iter().map(|c| c.as_str()))),
            );
            let schema = AllOfBuilder::new().item(Ref::from_schema_name("Problem")).item(code_rule);
            let mut response = ResponseBuilder::new()
                .description(description)
                .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build());
            for (name, meaning) in codes.iter().filter_map(|c| c.header()) {
                let header = HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some(format!("With {}: {meaning}", codes_carrying(&codes, name))))
                    .build();
                response = response.header(name, header);
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// The codes among `codes` that carry the header `name`, as a list for people.
fn codes_carrying(codes: &[ProblemCode], name: &str) -> String {
    let carrying: Vec<String> =
        codes.iter().filter(|c| c.header().is_some_and(|(n, _)| n == name)).map(|c| format!("`{c}`")).collect();
    carrying.join(", ")
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use actix_web::http::header::RETRY_AFTER;

    use super::*;
    use crate::problem::ApiError;

    #[test]
    fn the_headers_a_problem_carries_are_documented_with_it() {
        let responses =
            documented(&[ProblemCode::Unauthenticated, ProblemCode::ServiceUnavailable, ProblemCode::OutOfStock]);
        let json = |status: &str| serde_json::to_value(&responses[status]).unwrap_or_default();
        assert!(json("401")["headers"]["WWW-Authenticate"].is_object());
        assert!(json("503")["headers"]["Retry-After"].is_object());
        assert!(json("409").get("headers").is_none());
        // And what is documented is sent.
        let sent = ApiError::new(ProblemCode::IdempotencyKeyInFlight, "busy").error_response();
        assert!(sent.headers().contains_key(RETRY_AFTER), "409 in flight");
    }

    #[test]
    fn documented_responses_group_codes_by_status() {
        let responses =
            documented(&[ProblemCode::InvalidUserId, ProblemCode::InvalidAmount, ProblemCode::UserNotFound]);
        assert_eq!(responses.keys().collect::<Vec<_>>(), ["400", "404"]);
        let json = serde_json::to_value(&responses["400"]).unwrap_or_default();
        let allowed = &json["content"][PROBLEM_JSON]["schema"]["allOf"][1]["properties"]["code"]["enum"];
        assert_eq!(allowed, &serde_json::json!(["INVALID_USER_ID", "INVALID_AMOUNT"]));
    }
}
