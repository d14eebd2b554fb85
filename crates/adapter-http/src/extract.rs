//! Turning raw request parts into domain values, and the framework's own extraction
//! failures into problems.

use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, ResponseError, web};

use crate::problem::{ApiError, PROBLEM_JSON, ProblemCode};

/// The largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(|error, _req: &HttpRequest| {
        let problem = match &error {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::new(ProblemCode::PayloadTooLarge, format!("the body may be at most {MAX_BODY_BYTES} bytes"))
            }
            JsonPayloadError::ContentType => {
                ApiError::new(ProblemCode::UnsupportedMediaType, "the body must be application/json")
            }
            JsonPayloadError::Deserialize(e) => ApiError::invalid_request(format!("invalid JSON body: {e}")),
            other => ApiError::invalid_request(format!("unreadable body: {other}")),
        };
        problem.into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error: QueryPayloadError, _req: &HttpRequest| {
        ApiError::invalid_request(format!("invalid query string: {error}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error: PathError, _req: &HttpRequest| {
        ApiError::invalid_request(format!("invalid path: {error}")).into()
    })
}

/// Parses a positive 64-bit id from text, or answers `code`.
pub fn parse_id<T>(raw: &str, what: &str, code: ProblemCode) -> Result<T, ApiError>
where
    T: TryFrom<i64>,
{
    raw.trim()
        .parse::<i64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| ApiError::new(code, format!("{what} must be a positive 64-bit integer, got {raw:?}")))
}

/// A positive id from a JSON number.
pub fn id_from<T: TryFrom<i64>>(raw: i64, what: &str) -> Result<T, ApiError> {
    T::try_from(raw).map_err(|_| ApiError::invalid_request(format!("{what} must be a positive integer, got {raw}")))
}

/// Reads an optional query value, taking an empty one (`?cursor=`) as absent, so that a
/// client may always send the parameter.
pub fn empty_as_none<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(<Option<String> as serde::Deserialize>::deserialize(deserializer)?.filter(|value| !value.is_empty()))
}

/// `limit` of a paged list: 1..=100, 20 when absent.
pub fn page_limit(raw: Option<&str>) -> Result<u16, ApiError> {
    match raw {
        None => Ok(20),
        Some(raw) => raw.parse::<u16>().ok().filter(|l| (1..=100).contains(l)).ok_or_else(|| {
            ApiError::invalid_request(format!("limit must be an integer between 1 and 100, got {raw:?}"))
        }),
    }
}

/// Turns every error response that is not already a problem — an unknown route, a
/// wrong method, a framework failure — into one, so that every 4xx and 5xx carries
/// `application/problem+json` with a `code`.
pub fn problem_for_every_error<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|response: ServiceResponse<B>| {
        let already_problem = response
            .response()
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PROBLEM_JSON));
        if already_problem {
            return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
        }
        let status = response.status();
        let problem = match status {
            StatusCode::NOT_FOUND => not_found(response.request()),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                ProblemCode::MethodNotAllowed,
                format!("{} is not allowed on {}", response.request().method(), response.request().path()),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(ProblemCode::PayloadTooLarge, "the body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::new(ProblemCode::UnsupportedMediaType, "the body's media type is not accepted")
            }
            s if s.is_server_error() => ApiError::new(ProblemCode::Internal, "the request failed unexpectedly"),
            // Any other refusal of the framework's is, to a client, a malformed request.
            s => ApiError::invalid_request(s.canonical_reason().unwrap_or("the request was refused")),
        };
        let (request, _) = response.into_parts();
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(request, problem.error_response()).map_into_right_body(),
        ))
    })
}

/// The answer to a path no route serves.
pub fn not_found(request: &HttpRequest) -> ApiError {
    ApiError::new(ProblemCode::NotFound, format!("no resource at {}", request.path()))
}
