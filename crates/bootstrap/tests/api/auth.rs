//! User authentication (docs/API.md, "Authentication"): every user endpoint needs the bearer token of the
//! user it acts for; public routes need none.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::helpers::{TestApp, token, token_with};

/// What the database holds that a refused request must not change.
async fn state(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for sql in [
        "SELECT coalesce(sum(balance), 0)::int8 FROM users",
        "SELECT coalesce(sum(stock), 0)::int8 FROM products",
        "SELECT coalesce(sum(remaining), 0)::int8 FROM coupon_stock",
        "SELECT count(*) FROM user_coupons",
        "SELECT count(*) FROM orders",
        "SELECT count(*) FROM payments",
        "SELECT count(*) FROM point_history",
    ] {
        counts.push(app.scalar(sql).await);
    }
    counts
}

/// Every user operation, acting for `user`: (method, path, body).
fn user_operations(user: i64, coupon: i64, product: i64, order: i64) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("POST", format!("/api/v1/points/{user}"), Some(json!({"amount": 1_000}))),
        ("GET", format!("/api/v1/points/{user}"), None),
        ("GET", format!("/api/v1/points/{user}/history"), None),
        ("POST", format!("/api/v1/coupons/{coupon}/issue"), Some(json!({"userId": user}))),
        ("GET", format!("/api/v1/coupons?userId={user}"), None),
        (
            "POST",
            "/api/v1/orders".to_owned(),
            Some(json!({"userId": user, "items": [{"productId": product, "quantity": 1}]})),
        ),
        ("GET", format!("/api/v1/orders/{order}?userId={user}"), None),
        ("POST", "/api/v1/payments".to_owned(), Some(json!({"userId": user, "orderId": order}))),
    ]
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut request = match method {
        "POST" => app.client.post(app.url(path)).json(body.unwrap_or(&Value::Null)),
        _ => app.client.get(app.url(path)),
    };
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

async fn code_of(response: reqwest::Response) -> (u16, String, Option<String>) {
    let status = response.status().as_u16();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned(), challenge)
}

#[tokio::test]
async fn every_user_endpoint_refuses_no_token_and_another_users_token_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (owner, stranger) = (app.create_user().await, app.create_user().await);
    let product = app.create_product(100, 10).await;
    let coupon = app.create_coupon("FIXED", 10, 0, 10).await;
    assert_eq!(app.charge(owner, 10_000).await.status, 200);
    let order = app.order(owner, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    let before = state(&app).await;

    for (method, path, body) in user_operations(owner, coupon, product, order) {
        let (status, code, challenge) = code_of(call(&app, method, &path, body.as_ref(), None).await).await;
        assert_eq!((status, code.as_str()), (401, "UNAUTHENTICATED"), "{method} {path} without a token");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"ecommerce\""), "{method} {path}");

        let theirs = token(stranger);
        let (status, code, _) = code_of(call(&app, method, &path, body.as_ref(), Some(&theirs)).await).await;
        assert_eq!((status, code.as_str()), (403, "FORBIDDEN"), "{method} {path} with another user's token");
    }
    assert_eq!(state(&app).await, before, "nothing was read into a change or written");

    // The owner's own token works on every one of them.
    let mine = token(owner);
    for (method, path, body) in user_operations(owner, coupon, product, order) {
        let status = call(&app, method, &path, body.as_ref(), Some(&mine)).await.status().as_u16();
        assert!(status == 200 || status == 201, "{method} {path} with the owner's token answered {status}");
    }
}

#[tokio::test]
async fn expired_foreign_unsigned_and_exp_less_tokens_are_401_with_an_invalid_token_challenge() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let now = chrono::Utc::now().timestamp();
    let foreign_key = {
        let key = jsonwebtoken::EncodingKey::from_secret(b"another secret of thirty-two bytes or more");
        let claims = json!({"sub": user.to_string(), "exp": now + 600});
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    let unsigned = {
        use base64::Engine;
        let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            encode(&json!({"alg": "none", "typ": "JWT"})),
            encode(&json!({"sub": user.to_string(), "exp": now + 600}))
        )
    };
    for (what, bad) in [
        ("expired", token_with(&json!({"sub": user.to_string(), "exp": now - 600}))),
        ("signed with another key", foreign_key),
        ("alg none", unsigned),
        ("without exp", token_with(&json!({"sub": user.to_string()}))),
        ("without sub", token_with(&json!({"exp": now + 600}))),
        ("a signed subject", token_with(&json!({"sub": format!("+{user}"), "exp": now + 600}))),
        ("a subject with a leading zero", token_with(&json!({"sub": format!("0{user}"), "exp": now + 600}))),
        ("not valid yet", token_with(&json!({"sub": user.to_string(), "exp": now + 600, "nbf": now + 120}))),
        ("not a JWT", "garbage".to_owned()),
    ] {
        let response = call(&app, "GET", &format!("/api/v1/points/{user}"), None, Some(&bad)).await;
        let (status, code, challenge) = code_of(response).await;
        assert_eq!((status, code.as_str()), (401, "UNAUTHENTICATED"), "{what}");
        assert!(challenge.as_deref().is_some_and(|c| c.contains("error=\"invalid_token\"")), "{what}: {challenge:?}");
    }
}

#[tokio::test]
async fn authentication_is_judged_before_400_and_400_before_403() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    // No token and a malformed id: 401 first.
    let (status, code, _) = code_of(call(&app, "GET", "/api/v1/points/abc", None, None).await).await;
    assert_eq!((status, code.as_str()), (401, "UNAUTHENTICATED"));
    // A valid token and a malformed id: 400.
    let (status, code, _) = code_of(call(&app, "GET", "/api/v1/points/abc", None, Some(&token(user))).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_USER_ID"));
    // A valid token, a well-formed other user with a malformed body: still 400.
    let body = json!({"amount": "lots"});
    let response = call(&app, "POST", &format!("/api/v1/points/{}", user + 1), Some(&body), Some(&token(user))).await;
    assert_eq!(code_of(response).await.1, "INVALID_AMOUNT");
    // A valid token for another well-formed user: 403, even if that user does not exist.
    let response = call(&app, "GET", &format!("/api/v1/points/{}", user + 99), None, Some(&token(user))).await;
    assert_eq!(code_of(response).await.1, "FORBIDDEN");
}

#[tokio::test]
async fn public_routes_need_no_token() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/products",
        "/api/v1/products/best",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/api-docs/openapi.json",
        "/swagger-ui/",
    ] {
        let status = app.client.get(app.url(path)).send().await.unwrap().status().as_u16();
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test]
async fn tokens_issued_by_the_admin_endpoint_and_by_the_cli_act_for_their_user() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let issued = app.admin_post(&format!("/api/v1/admin/users/{user}/tokens"), &json!(null)).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    assert_eq!(issued.body["tokenType"], "Bearer");
    assert!(issued.body["expiresAt"].as_str().is_some());
    let minted = issued.body["token"].as_str().unwrap();
    assert_eq!(call(&app, "GET", &format!("/api/v1/points/{user}"), None, Some(minted)).await.status(), 200);
    app.admin_post(&format!("/api/v1/admin/users/{}/tokens", user + 50), &json!(null))
        .await
        .assert_problem(404, "USER_NOT_FOUND");
    let without_admin = app.client.post(app.url(&format!("/api/v1/admin/users/{user}/tokens"))).bearer_auth(minted);
    app.send(without_admin).await.assert_problem(401, "UNAUTHORIZED");

    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecommerce"))
        .args(["token", &user.to_string()])
        .env("AUTH_JWT_SECRET", crate::helpers::USER_TOKEN_SECRET)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let printed = String::from_utf8(cli.stdout).unwrap();
    let response =
        call(&app, "POST", &format!("/api/v1/points/{user}"), Some(&json!({"amount": 5})), Some(printed.trim())).await;
    assert_eq!(response.status(), 200);
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[tokio::test]
async fn a_public_key_configuration_verifies_an_identity_providers_es256_and_rs256_tokens() {
    for (public, private, algorithm) in [
        ("es256-public.pem", "es256-private.pem", jsonwebtoken::Algorithm::ES256),
        ("rs256-public.pem", "rs256-private.pem", jsonwebtoken::Algorithm::RS256),
    ] {
        let key_file = fixture(public);
        let app = TestApp::spawn_with(&[
            ("AUTH_JWT_SECRET", ""),
            ("AUTH_JWT_PUBLIC_KEY_FILE", key_file.to_str().unwrap()),
            ("AUTH_JWT_ISSUER", "https://id.example"),
            ("AUTH_JWT_AUDIENCE", "shop-api"),
        ])
        .await;
        let user = app.create_user().await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match algorithm {
            jsonwebtoken::Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
            _ => jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
        };
        let sign = |claims: Value| jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key).unwrap();
        let exp = chrono::Utc::now().timestamp() + 600;
        let claims = |extra: Value| {
            let mut claims =
                json!({"sub": user.to_string(), "exp": exp, "iss": "https://id.example", "aud": "shop-api"});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    claims.as_object_mut().unwrap().remove(k);
                } else {
                    claims[k] = v.clone();
                }
            }
            sign(claims)
        };
        let path = format!("/api/v1/points/{user}");
        let now = chrono::Utc::now().timestamp();
        for (what, token, status) in [
            ("good", claims(json!({})), 200),
            ("aud as an array that contains it", claims(json!({"aud": ["other-app", "shop-api"]})), 200),
            ("nbf within the leeway", claims(json!({"nbf": now + 20})), 200),
            ("another issuer", claims(json!({"iss": "https://evil.example"})), 401),
            ("issued for another application", claims(json!({"aud": "other-app"})), 401),
            ("an array without it", claims(json!({"aud": ["other-app"]})), 401),
            ("no audience", claims(json!({"aud": null})), 401),
            ("not valid yet", claims(json!({"nbf": now + 120})), 401),
        ] {
            assert_eq!(call(&app, "GET", &path, None, Some(&token)).await.status(), status, "{algorithm:?}: {what}");
        }
        // HS256 signed with the public key's bytes (the classic algorithm confusion) is refused.
        let confused = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": user.to_string(), "exp": exp, "iss": "https://id.example"}),
            &jsonwebtoken::EncodingKey::from_secret(&std::fs::read(&key_file).unwrap()),
        )
        .unwrap();
        assert_eq!(call(&app, "GET", &path, None, Some(&confused)).await.status(), 401, "{algorithm:?}");
        app.admin_post(&format!("/api/v1/admin/users/{user}/tokens"), &json!(null))
            .await
            .assert_problem(409, "TOKEN_SIGNING_DISABLED");
    }
}

/// Every operation the document says needs a token, called without one: judged first,
/// whatever the path's ids or the body, so the check needs nothing but the document —
/// an operation added later is covered without a line here.
#[tokio::test]
async fn every_documented_operation_that_needs_a_token_refuses_a_request_without_one() {
    let app = TestApp::spawn().await;
    let document: Value = app.client.get(app.url("/api-docs/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut checked = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        let path = template.split('/').map(|part| if part.starts_with('{') { "1" } else { part }).collect::<Vec<_>>();
        let path = path.join("/");
        for (method, operation) in item.as_object().unwrap() {
            let schemes: Vec<&str> = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|requirement| requirement.as_object()?.keys().next().map(String::as_str))
                .collect();
            let expected = match schemes.as_slice() {
                ["user_token"] => "UNAUTHENTICATED",
                ["admin_token"] => "UNAUTHORIZED",
                [] => continue,
                other => panic!("{method} {template}: unexpected security {other:?}"),
            };
            let method = method.to_uppercase();
            let (status, code, _) = code_of(call(&app, &method, &path, Some(&json!({})), None).await).await;
            assert_eq!((status, code.as_str()), (401, expected), "{method} {template} without a token");
            checked += 1;
        }
    }
    assert!(checked >= 13, "the document lists the protected operations ({checked} found)");
}
