//! Who is calling: the admin bearer token, and users' bearer JWTs.
//!
//! Authentication is an inbound-adapter concern. Handlers receive the caller's
//! [`UserId`] from the [`Caller`] extractor and compare it with the user the request
//! names ([`Caller::acting_for`]) before any use case runs; use cases never see a token.
//! Order of judgement (docs/API.md, "Order of judgement"): 401 (the extractor, first argument of every user
//! handler), then 400 (the handler parses the request), then 403, then the use case.

use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use domain::UserId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::{ApiError, ProblemCode};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// The shortest admin token accepted: one that can be guessed is no credential.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The configured admin token. Never printed by `Debug`.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    /// `None` for a token shorter than [`MIN_ADMIN_TOKEN_CHARS`] (an empty one would let
    /// an empty header in).
    pub fn new(token: &str) -> Option<Self> {
        (token.chars().count() >= MIN_ADMIN_TOKEN_CHARS).then(|| Self(Sha256::digest(token.as_bytes()).into()))
    }

    /// Compares digests of equal length in constant time, so the time taken reveals
    /// neither the token's content nor its length.
    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&presented).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// What requests are authenticated against; shared with every request as app data.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `None`: the admin API answers 401 to everyone.
    pub admin_token: Option<AdminToken>,
    /// `None`: every user endpoint answers 401 (`serve` refuses to start so).
    pub user_tokens: Option<UserTokens>,
}

/// Proof that the request carried the admin token. With no token configured, no
/// request carries it.
#[derive(Debug)]
pub struct Admin;

impl Admin {
    /// Whose idempotency keys the back office's are.
    pub const SCOPE: &'static str = "admin";
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req.app_data::<web::Data<Credentials>>().and_then(|credentials| credentials.admin_token.clone());
        ready(match (expected, bearer(req)) {
            (Some(expected), Some(presented)) if expected.matches(presented) => Ok(Admin),
            _ => Err(ApiError::new(ProblemCode::Unauthorized, "a valid admin bearer token is required")),
        })
    }
}

/// The claims of a user token: `sub` is the user id in decimal.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<Audience>,
}

/// `aud`: one audience, or several (RFC 7519 allows both).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Where user tokens' keys come from.
pub enum KeySource {
    /// HS256 with a shared secret (at least 32 bytes); tokens can also be issued.
    Secret(Vec<u8>),
    /// A public key in PEM (RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA) of an
    /// external identity provider; tokens can only be verified.
    PublicKeyPem(Vec<u8>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Secret(_) => "KeySource::Secret(***)",
            Self::PublicKeyPem(_) => "KeySource::PublicKeyPem(..)",
        })
    }
}

/// Why user authentication cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the secret must be at least 32 bytes, got {0}")]
    SecretTooShort(usize),
    #[error("not an RSA, EC (P-256) or Ed25519 public key in PEM")]
    UnreadableKey,
    #[error("an EC key must be on the P-256 curve (ES256)")]
    UnsupportedCurve,
    #[error(
        "with a public key, AUTH_JWT_ISSUER is required: tokens the identity provider issued elsewhere must not pass"
    )]
    MissingIssuer,
    #[error(
        "with a public key, AUTH_JWT_AUDIENCE is required: tokens the identity provider issued for other applications must not pass"
    )]
    MissingAudience,
}

/// Verifies user tokens and, with a shared secret, issues them.
#[derive(Clone)]
pub struct UserTokens {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    lifetime: Duration,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens")
            .field("algorithm", &self.algorithm)
            .field("issues", &self.encoding.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// A token just issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl UserTokens {
    /// # Errors
    /// A secret shorter than 32 bytes, or a PEM that holds no supported public key.
    pub fn new(
        keys: KeySource,
        issuer: Option<String>,
        audience: Option<String>,
        lifetime: Duration,
    ) -> Result<Self, AuthConfigError> {
        let (algorithm, decoding, encoding) = match keys {
            KeySource::Secret(secret) => {
                if secret.len() < 32 {
                    return Err(AuthConfigError::SecretTooShort(secret.len()));
                }
                (Algorithm::HS256, DecodingKey::from_secret(&secret), Some(EncodingKey::from_secret(&secret)))
            }
            KeySource::PublicKeyPem(pem) => {
                // An identity provider issues tokens for many applications: both are
                // needed to tell this service's apart.
                if issuer.is_none() {
                    return Err(AuthConfigError::MissingIssuer);
                }
                if audience.is_none() {
                    return Err(AuthConfigError::MissingAudience);
                }
                let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    (Algorithm::RS256, key)
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    // ES256 is P-256; a key on another curve would fail every request.
                    let text = std::str::from_utf8(&pem).map_err(|_| AuthConfigError::UnreadableKey)?;
                    if p256::PublicKey::from_public_key_pem(text).is_err() {
                        return Err(AuthConfigError::UnsupportedCurve);
                    }
                    (Algorithm::ES256, key)
                } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
                    (Algorithm::EdDSA, key)
                } else {
                    return Err(AuthConfigError::UnreadableKey);
                };
                (algorithm, key, None)
            }
        };
        // Only the configured algorithm; `exp` required, `nbf` checked when present;
        // `iss`/`aud` when configured (always with a public key).
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        match &issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                validation.required_spec_claims.insert("iss".to_owned());
            }
            None => validation.iss = None,
        }
        match &audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        Ok(Self { algorithm, decoding, encoding, validation, issuer, audience, lifetime })
    }

    /// Whether this service can issue tokens (it holds the shared secret).
    pub fn can_issue(&self) -> bool {
        self.encoding.is_some()
    }

    /// A token for `user`, valid from `now` for the configured lifetime; `None` when
    /// this service only verifies.
    pub fn issue(&self, user: UserId, now: DateTime<Utc>) -> Option<IssuedToken> {
        let key = self.encoding.as_ref()?;
        let expires_at = now + chrono::Duration::from_std(self.lifetime).unwrap_or(chrono::Duration::MAX);
        let claims = Claims {
            sub: user.get().to_string(),
            exp: expires_at.timestamp(),
            iat: Some(now.timestamp()),
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).ok()?;
        Some(IssuedToken { token, expires_at })
    }

    /// The user a token speaks for.
    ///
    /// # Errors
    /// Why the token is refused, for the `WWW-Authenticate` challenge.
    pub fn verify(&self, token: &str) -> Result<UserId, &'static str> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::InvalidAlgorithm => "the token is not signed with the accepted algorithm",
                ErrorKind::InvalidIssuer => "the token was issued by another issuer",
                ErrorKind::InvalidAudience => "the token is meant for another audience",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, sub, iss or aud)",
                _ => "the token is malformed",
            })?;
        let sub = data.claims.sub;
        // The canonical decimal form only: "+5" or "05" is not user 5.
        sub.parse::<i64>()
            .ok()
            .filter(|id| id.to_string() == sub)
            .and_then(|id| UserId::new(id).ok())
            .ok_or("the token's subject is not a user id")
    }
}

/// A 401 with its RFC 6750 challenge: no `error` when no token was presented.
fn unauthenticated(reason: Option<&str>) -> ApiError {
    let (challenge, detail) = match reason {
        None => ("Bearer realm=\"ecommerce\"".to_owned(), "a bearer token is required".to_owned()),
        Some(reason) => (
            format!("Bearer realm=\"ecommerce\", error=\"invalid_token\", error_description=\"{reason}\""),
            reason.to_owned(),
        ),
    };
    ApiError::new(ProblemCode::Unauthenticated, detail).challenge(challenge)
}

/// The authenticated user: the `sub` of a valid bearer token.
#[derive(Debug, Clone, Copy)]
pub struct Caller(UserId);

impl Caller {
    /// Whose idempotency keys this caller's are.
    pub fn scope(self) -> String {
        format!("user:{}", self.0)
    }

    /// The user the request acts for, if the caller is that user; 403 otherwise.
    pub fn acting_for(self, user: UserId) -> Result<UserId, ApiError> {
        if self.0 == user {
            Ok(user)
        } else {
            Err(ApiError::new(ProblemCode::Forbidden, format!("this token does not act for user {user}")))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let tokens = req.app_data::<web::Data<Credentials>>().and_then(|credentials| credentials.user_tokens.clone());
        ready(match (tokens, bearer(req)) {
            (_, None) => Err(unauthenticated(None)),
            (None, Some(_)) => Err(unauthenticated(Some("user authentication is not configured"))),
            (Some(tokens), Some(token)) => tokens.verify(token).map(Caller).map_err(|why| unauthenticated(Some(why))),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn tokens() -> UserTokens {
        UserTokens::new(KeySource::Secret(SECRET.to_vec()), None, None, Duration::from_secs(60)).unwrap()
    }

    fn sign(claims: &serde_json::Value, algorithm: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn user(id: i64) -> UserId {
        UserId::new(id).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_as_its_user() {
        let issued = tokens().issue(user(42), Utc::now()).unwrap();
        assert_eq!(tokens().verify(&issued.token), Ok(user(42)));
    }

    #[test]
    fn a_short_secret_or_a_key_that_is_not_pem_is_refused() {
        let short = UserTokens::new(KeySource::Secret(vec![b'x'; 31]), None, None, Duration::from_secs(1));
        assert!(matches!(short, Err(AuthConfigError::SecretTooShort(31))));
        let (issuer, audience) = (Some("https://id.example".to_owned()), Some("shop-api".to_owned()));
        let not_pem = UserTokens::new(
            KeySource::PublicKeyPem(b"hello".to_vec()),
            issuer.clone(),
            audience.clone(),
            Duration::from_secs(1),
        );
        assert!(matches!(not_pem, Err(AuthConfigError::UnreadableKey)));
        let no_issuer =
            UserTokens::new(KeySource::PublicKeyPem(b"hello".to_vec()), None, audience, Duration::from_secs(1));
        assert!(matches!(no_issuer, Err(AuthConfigError::MissingIssuer)));
        let no_audience =
            UserTokens::new(KeySource::PublicKeyPem(b"hello".to_vec()), issuer, None, Duration::from_secs(1));
        assert!(matches!(no_audience, Err(AuthConfigError::MissingAudience)));
    }

    #[test]
    fn expired_wrongly_signed_unsigned_or_exp_less_tokens_are_refused() {
        let now = Utc::now().timestamp();
        let expired = sign(&serde_json::json!({"sub": "1", "exp": now - 120}), Algorithm::HS256, SECRET);
        assert_eq!(tokens().verify(&expired), Err("the token has expired"));
        let other_key = sign(&serde_json::json!({"sub": "1", "exp": now + 60}), Algorithm::HS256, &[b'y'; 32]);
        assert_eq!(tokens().verify(&other_key), Err("the token's signature is invalid"));
        let other_algorithm = sign(&serde_json::json!({"sub": "1", "exp": now + 60}), Algorithm::HS384, SECRET);
        assert!(tokens().verify(&other_algorithm).is_err());
        let no_exp = sign(&serde_json::json!({"sub": "1"}), Algorithm::HS256, SECRET);
        assert!(tokens().verify(&no_exp).is_err());
        // alg "none": a header and claims with an empty signature.
        let none = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(format!(r#"{{"sub":"1","exp":{}}}"#, now + 60).as_bytes())
        );
        assert!(tokens().verify(&none).is_err());
        assert!(tokens().verify("not.a.token").is_err());
    }

    #[test]
    fn issuer_and_audience_must_match_when_configured() {
        let strict = UserTokens::new(
            KeySource::Secret(SECRET.to_vec()),
            Some("shop".into()),
            Some("api".into()),
            Duration::from_secs(60),
        )
        .unwrap();
        let exp = Utc::now().timestamp() + 60;
        let good =
            sign(&serde_json::json!({"sub": "7", "exp": exp, "iss": "shop", "aud": "api"}), Algorithm::HS256, SECRET);
        assert_eq!(strict.verify(&good), Ok(user(7)));
        let wrong_iss =
            sign(&serde_json::json!({"sub": "7", "exp": exp, "iss": "other", "aud": "api"}), Algorithm::HS256, SECRET);
        assert!(strict.verify(&wrong_iss).is_err());
        let no_aud = sign(&serde_json::json!({"sub": "7", "exp": exp, "iss": "shop"}), Algorithm::HS256, SECRET);
        assert!(strict.verify(&no_aud).is_err());
        assert_eq!(strict.verify(&strict.issue(user(7), Utc::now()).unwrap().token), Ok(user(7)));
    }

    #[test]
    fn a_subject_that_is_not_a_positive_id_in_canonical_form_is_refused() {
        let exp = Utc::now().timestamp() + 60;
        for sub in ["0", "-3", "kim", "", "+5", "05", " 5"] {
            let token = sign(&serde_json::json!({"sub": sub, "exp": exp}), Algorithm::HS256, SECRET);
            assert!(tokens().verify(&token).is_err(), "{sub:?}");
        }
    }

    #[test]
    fn the_admin_token_matches_only_itself_and_has_at_least_32_characters() {
        let secret = "s3cret-admin-token-of-32-characters";
        let token = AdminToken::new(secret).unwrap();
        assert!(token.matches(secret));
        assert!(!token.matches(&format!("{secret} ")));
        assert!(!token.matches("s3cret"));
        assert!(!token.matches(""));
        assert!(AdminToken::new("").is_none());
        assert!(AdminToken::new(&"x".repeat(31)).is_none());
        assert!(AdminToken::new(&"x".repeat(32)).is_some());
    }

    #[test]
    fn an_audience_array_that_contains_ours_passes_and_a_future_nbf_does_not() {
        let strict =
            UserTokens::new(KeySource::Secret(SECRET.to_vec()), None, Some("api".into()), Duration::from_secs(60))
                .unwrap();
        let now = Utc::now().timestamp();
        let token = |claims: serde_json::Value| sign(&claims, Algorithm::HS256, SECRET);
        assert_eq!(
            strict.verify(&token(serde_json::json!({"sub": "7", "exp": now + 60, "aud": ["web", "api"]}))),
            Ok(user(7))
        );
        assert!(strict.verify(&token(serde_json::json!({"sub": "7", "exp": now + 60, "aud": ["web"]}))).is_err());
        let later = token(serde_json::json!({"sub": "7", "exp": now + 600, "aud": "api", "nbf": now + 120}));
        assert_eq!(strict.verify(&later), Err("the token is not valid yet (nbf)"));
        let skewed = token(serde_json::json!({"sub": "7", "exp": now + 600, "aud": "api", "nbf": now + 10}));
        assert_eq!(strict.verify(&skewed), Ok(user(7)), "30 s of leeway");
    }

    fn base64_url(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}
