//! The `Idempotency-Key` header (docs/API.md, "Idempotency keys"): read and
//! fingerprinted here, decided in `application::idempotency`.
//!
//! A middleware reads the key of a POST and, when there is one, hashes the method, the
//! path with its query and the body into the request's fingerprint (putting the body
//! back for the handler). Handlers take [`IdempotencyHeader`] after the caller and hand
//! it, scoped to that caller, to `AppState::keyed_post`, which encodes the success once:
//! those bytes are both what is sent now and what is stored for a replay — so a replay
//! is the very same body, with the operation's status and `Idempotent-Replayed: true`.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_ENCODING, ContentType, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use application::idempotency::Answer;
use application::ports::{IdempotencyKey, Reply};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use crate::problem::{ApiError, ProblemCode};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The header as documented on every POST.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyParam {
    /// Makes a retry safe: a request with the key of an earlier success (same method,
    /// path and body, within `IDEMPOTENCY_KEY_TTL_SECS`) gets that success's status and
    /// body again, with `Idempotent-Replayed: true`, and runs nothing. 1 to 255
    /// printable ASCII characters; scoped to the caller. The same key with another
    /// request: 422 `IDEMPOTENCY_KEY_REUSED`; while its first request runs: 409
    /// `IDEMPOTENCY_KEY_IN_FLIGHT` with `Retry-After` (or the replay, if it ends in
    /// time). A failed request stores nothing and may be retried with the same key.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7E]{1,255}$")]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

/// What the middleware found in a request.
#[derive(Debug, Clone)]
enum KeyHeader {
    Valid { key: String, fingerprint: Vec<u8> },
    Invalid,
}

fn valid_key(raw: &HeaderValue) -> Option<String> {
    let key = raw.to_str().ok()?;
    (!key.is_empty() && key.len() <= 255 && key.bytes().all(|b| (0x20..=0x7E).contains(&b))).then(|| key.to_owned())
}

/// Middleware: for a POST carrying `Idempotency-Key`, validates the key and computes
/// the request's fingerprint from its method, path, query and body.
pub async fn fingerprint(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::POST
        && let Some(raw) = req.headers().get(IDEMPOTENCY_KEY).cloned()
    {
        let found = match valid_key(&raw) {
            None => KeyHeader::Invalid,
            Some(key) => {
                // Decoded (a `Content-Encoding: gzip` body is inflated here), so the
                // fingerprint is the same as for the same body sent uncompressed; the
                // body is put back decoded, and so no longer encoded.
                let body = req.extract::<web::Bytes>().await?;
                let mut hash = Sha256::new();
                hash.update(req.method().as_str());
                hash.update(b"\n");
                hash.update(req.uri().path_and_query().map_or("", |p| p.as_str()));
                hash.update(b"\n");
                hash.update(&body);
                req.headers_mut().remove(CONTENT_ENCODING);
                req.set_payload(Payload::from(body));
                KeyHeader::Valid { key, fingerprint: hash.finalize().to_vec() }
            }
        };
        req.extensions_mut().insert(found);
    }
    next.call(req).await
}

/// The request's idempotency key, if it has one; a malformed key is a 400.
#[derive(Debug)]
pub struct IdempotencyHeader(Option<(String, Vec<u8>)>);

impl IdempotencyHeader {
    /// The key scoped to its caller (`user:42`, `admin`), if the request has one.
    pub fn scoped(self, scope: &str) -> Option<IdempotencyKey> {
        self.0.map(|(key, fingerprint)| IdempotencyKey { scope: scope.to_owned(), key, fingerprint })
    }
}

impl FromRequest for IdempotencyHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.extensions().get::<KeyHeader>() {
            None => Ok(Self(None)),
            Some(KeyHeader::Valid { key, fingerprint }) => Ok(Self(Some((key.clone(), fingerprint.clone())))),
            Some(KeyHeader::Invalid) => Err(ApiError::new(
                ProblemCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )),
        })
    }
}

/// A success: its status and its JSON body.
pub(crate) fn json<D: Serialize>(status: StatusCode, body: &D) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// The JSON encoding of a success, as it is sent and stored with its key.
pub(crate) fn encode<D: Serialize>(body: &D) -> Reply {
    // A DTO of plain fields always serialises; an empty body would only be a bug.
    Reply(serde_json::to_vec(body).unwrap_or_default())
}

/// The answer of a keyed use case: the value encoded now, or the reply stored with its
/// key (sent as it is: the same bytes as every replay), `Idempotent-Replayed: true` on
/// a replay.
pub(crate) fn respond<T, D: Serialize>(status: StatusCode, answer: Answer<T>, dto: fn(&T) -> D) -> HttpResponse {
    let (reply, replayed) = match answer {
        Answer::Ran(value) => return json(status, &dto(&value)),
        Answer::Stored(reply) => (reply, false),
        Answer::Replayed(reply) => (reply, true),
    };
    let mut response = HttpResponse::build(status);
    response.insert_header(ContentType::json());
    if replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    response.body(reply.0)
}
