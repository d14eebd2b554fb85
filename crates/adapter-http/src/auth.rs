//! The admin bearer token, checked in constant time.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use subtle::ConstantTimeEq;

use crate::problem::{ApiError, ProblemCode};
use crate::state::AppState;

/// The configured admin token. Never printed by `Debug`.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// `None` for an empty token: an empty token would let an empty header in.
    pub fn new(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| Self(token.to_owned()))
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// Proof that the request carried the admin token. With no token configured, no
/// request carries it.
#[derive(Debug)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req.app_data::<web::Data<AppState>>().and_then(|state| state.admin_token.clone());
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        ready(match (expected, presented) {
            (Some(expected), Some(presented)) if expected.matches(presented) => Ok(Admin),
            _ => Err(ApiError::new(ProblemCode::Unauthorized, "a valid admin bearer token is required")),
        })
    }
}
