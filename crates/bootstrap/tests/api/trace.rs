//! W3C Trace Context end to end: a request's `traceparent` is continued (a new trace
//! when it has none or an invalid one), every problem response names the trace id, and
//! every event the data platform receives carries the trace of the request that caused
//! it — sent at once (`ORDER_PAID`) or later from the outbox (a refund, a void).

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ADMIN_TOKEN, TestApp, eventually, token};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && id != "0".repeat(32)
}

#[tokio::test]
async fn a_problem_names_the_callers_trace_or_a_new_one() {
    let app = TestApp::spawn().await;
    let missing = || app.client.get(app.url("/api/v1/points/999999")).bearer_auth(token(999_999));

    let continued = app.send(missing().header("traceparent", traceparent())).await;
    continued.assert_problem(404, "USER_NOT_FOUND");
    assert_eq!(continued.body["traceId"], TRACE_ID);

    let started = app.send(missing()).await;
    let again = app.send(missing()).await;
    let (first, second) = (started.body["traceId"].as_str().unwrap(), again.body["traceId"].as_str().unwrap());
    assert!(is_trace_id(first) && is_trace_id(second), "{first} {second}");
    assert_ne!(first, second, "each request without a trace starts its own");

    for invalid in ["00-00000000000000000000000000000000-00f067aa0ba902b7-01", "not a traceparent"] {
        let replaced = app.send(missing().header("traceparent", invalid)).await;
        let id = replaced.body["traceId"].as_str().unwrap();
        assert!(is_trace_id(id) && id != TRACE_ID, "{invalid}: {id}");
    }
    // Problems raised before any handler (no token) carry it too.
    let unauthenticated =
        app.send(app.client.get(app.url("/api/v1/points/1")).header("traceparent", traceparent())).await;
    unauthenticated.assert_problem(401, "UNAUTHENTICATED");
    assert_eq!(unauthenticated.body["traceId"], TRACE_ID);
}

/// The `traceparent` a platform request carried: the trace id and the parent id.
fn carried(request: &wiremock::Request) -> (String, String) {
    let header = request.headers.get("traceparent").expect("a traceparent header").to_str().unwrap().to_owned();
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[3]), (4, "00", "01"), "{header}");
    (parts[1].to_owned(), parts[2].to_owned())
}

async fn received(platform: &MockServer, kind: &str) -> Vec<wiremock::Request> {
    let all = platform.received_requests().await.unwrap_or_default();
    all.into_iter().filter(|r| r.body_json::<Value>().is_ok_and(|b| b["type"] == kind)).collect()
}

/// A user with 5,000 points and their unpaid order of one product at 1,000.
async fn unpaid_order(app: &TestApp) -> (i64, i64) {
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    assert_eq!(app.charge(user, 5_000).await.status, 200);
    let order = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    (user, order)
}

/// The user's payment of the order, sent with the caller's `traceparent`.
async fn pay_in_the_callers_trace(app: &TestApp, user: i64, order: i64) -> crate::helpers::Reply {
    let request = app.client.post(app.url("/api/v1/payments")).bearer_auth(token(user));
    let body = json!({"userId": user, "orderId": order});
    app.send(request.header("traceparent", traceparent()).json(&body)).await
}

#[tokio::test]
async fn a_payment_and_its_refund_reach_the_platform_in_the_trace_of_their_requests() {
    let platform = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let url = platform.uri();
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &url)]).await;
    let (user, order) = unpaid_order(&app).await;
    let paid = pay_in_the_callers_trace(&app, user, order).await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    let sent = received(&platform, "ORDER_PAID").await;
    assert_eq!(sent.len(), 1);
    let (trace, parent) = carried(&sent[0]);
    assert_eq!(trace, TRACE_ID, "the caller's trace, continued");
    assert_ne!(parent, CALLER_SPAN, "under the service's own span");

    let refund_trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let refunded = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/admin/orders/{order}/refund")))
                .bearer_auth(ADMIN_TOKEN)
                .header("traceparent", refund_trace)
                .json(&json!({})),
        )
        .await;
    assert_eq!(refunded.status, 200, "{}", refunded.body);
    let delivered =
        eventually(Duration::from_secs(10), async || received(&platform, "ORDER_REFUNDED").await.len() == 1).await;
    assert!(delivered, "ORDER_REFUNDED was delivered");
    let (trace, _) = carried(&received(&platform, "ORDER_REFUNDED").await[0]);
    assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c", "delivered later, in the refund's trace");
}

#[tokio::test]
async fn a_void_reaches_the_platform_in_the_trace_of_the_payment_it_voids() {
    let platform = MockServer::start().await;
    // The gateway in front of the platform fails: the payment's send is uncertain.
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"type": "ORDER_PAID"})))
        .respond_with(ResponseTemplate::new(502))
        .mount(&platform)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let url = platform.uri();
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &url)]).await;
    let (user, order) = unpaid_order(&app).await;
    let refused = pay_in_the_callers_trace(&app, user, order).await;
    refused.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    let cancelled = app.post(&format!("/api/v1/orders/{order}/cancel"), &json!({"userId": user})).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let delivered =
        eventually(Duration::from_secs(10), async || received(&platform, "ORDER_PAYMENT_VOIDED").await.len() == 1)
            .await;
    assert!(delivered, "the void was delivered");
    let (trace, _) = carried(&received(&platform, "ORDER_PAYMENT_VOIDED").await[0]);
    assert_eq!(trace, TRACE_ID, "in the trace of the payment whose send it voids");
}
