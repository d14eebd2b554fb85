#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The data platform adapters against a fake platform (wiremock).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use adapter_data_platform::{HttpDataPlatform, LoggingDataPlatform};
use application::ports::{DataPlatform, PaidOrderEvent, PaymentVoidEvent, PlatformEvent, RefundEvent, SendFailure};
use chrono::{DateTime, Utc};
use domain::order::OrderLine;
use domain::product::Quantity;
use domain::{Money, OrderId, ProductId, UserId};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TIMEOUT: Duration = Duration::from_millis(300);

fn money(krw: i64) -> Money {
    Money::new(krw).unwrap()
}

fn event() -> PlatformEvent {
    PlatformEvent::OrderPaid(PaidOrderEvent {
        order_id: OrderId::new(11).unwrap(),
        user_id: UserId::new(1).unwrap(),
        lines: vec![OrderLine {
            product_id: ProductId::new(3).unwrap(),
            name: "Keyboard".to_owned(),
            unit_price: money(1_000),
            quantity: Quantity::new(2).unwrap(),
            amount: money(2_000),
        }],
        total_amount: money(2_000),
        discount_amount: money(200),
        payment_amount: money(1_800),
        paid_at: "2026-11-26T03:00:00Z".parse::<DateTime<Utc>>().unwrap(),
    })
}

async fn platform_answering(response: ResponseTemplate) -> (MockServer, HttpDataPlatform) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/events")).respond_with(response).mount(&server).await;
    let client = HttpDataPlatform::new(&format!("{}/events", server.uri()), TIMEOUT).unwrap();
    (server, client)
}

#[tokio::test]
async fn a_2xx_answer_is_an_acknowledgement_of_the_json_event() {
    let (server, client) = platform_answering(ResponseTemplate::new(200)).await;

    client.send(&event()).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/events");
    assert_eq!(request.headers.get("idempotency-key").unwrap(), "order-11");
    assert_eq!(request.headers.get("content-type").unwrap(), "application/json");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "ORDER_PAID",
            "orderId": 11,
            "userId": 1,
            "items": [{"productId": 3, "name": "Keyboard", "unitPrice": 1000, "quantity": 2, "amount": 2000}],
            "totalAmount": 2000,
            "discountAmount": 200,
            "paymentAmount": 1800,
            "paidAt": "2026-11-26T03:00:00Z"
        })
    );
}

#[tokio::test]
async fn any_2xx_status_is_accepted() {
    for status in [201, 202, 204] {
        let (_server, client) = platform_answering(ResponseTemplate::new(status)).await;
        assert!(client.send(&event()).await.is_ok(), "status {status}");
    }
}

#[tokio::test]
async fn a_4xx_is_a_refusal() {
    for status in [400, 409, 422] {
        let (_server, client) = platform_answering(ResponseTemplate::new(status)).await;
        let err = client.send(&event()).await.unwrap_err();
        assert_eq!(err.order_id, OrderId::new(11).unwrap());
        assert!(err.reason.starts_with(&format!("answered {status}")), "{}", err.reason);
        assert_eq!(err.failure, SendFailure::Refused, "{status}: the platform did not take it");
    }
}

#[tokio::test]
async fn a_5xx_is_uncertain_a_gateways_included() {
    for status in [500, 502, 503, 504] {
        let (_server, client) = platform_answering(ResponseTemplate::new(status)).await;
        let err = client.send(&event()).await.unwrap_err();
        assert!(err.reason.starts_with(&format!("answered {status}")), "{}", err.reason);
        assert_eq!(err.failure, SendFailure::Uncertain, "{status}: the platform may have recorded it");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_uncertain() {
    let redirect = ResponseTemplate::new(307).insert_header("Location", "/elsewhere");
    let (_server, client) = platform_answering(redirect).await;

    let err = client.send(&event()).await.unwrap_err();

    assert!(err.reason.starts_with("answered 307"), "{}", err.reason);
    assert_eq!(err.failure, SendFailure::Uncertain);
}

#[tokio::test]
async fn a_late_answer_is_a_timeout_and_the_call_returns_in_bounded_time() {
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(5));
    let (_server, client) = platform_answering(slow).await;

    let started = Instant::now();
    let err = client.send(&event()).await.unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(err.reason, "no answer within 300 ms");
    assert_eq!(err.failure, SendFailure::Uncertain, "the platform may have recorded it");
    assert!(elapsed >= TIMEOUT, "gave up early, after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn a_refused_connection_is_a_failure() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = HttpDataPlatform::new(&format!("http://127.0.0.1:{port}/events"), TIMEOUT).unwrap();

    let started = Instant::now();
    let err = client.send(&event()).await.unwrap_err();

    assert_eq!(err.order_id, OrderId::new(11).unwrap());
    assert!(err.reason.starts_with("connection failed: "), "{}", err.reason);
    assert_eq!(err.failure, SendFailure::Refused, "nothing was sent");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_connection_lost_after_the_request_was_written_is_uncertain() {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Reads the request, then closes the connection without a word.
    let closer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buffer = [0; 4096];
        let _ = stream.read(&mut buffer);
    });
    let client = HttpDataPlatform::new(&format!("http://127.0.0.1:{port}/events"), TIMEOUT).unwrap();
    let err = client.send(&event()).await.unwrap_err();
    closer.join().unwrap();
    assert_eq!(err.failure, SendFailure::Uncertain, "{}", err.reason);
}

#[tokio::test]
async fn a_void_is_posted_with_its_type_fields_and_key() {
    let (server, client) = platform_answering(ResponseTemplate::new(200)).await;
    let void = PlatformEvent::PaymentVoided(PaymentVoidEvent {
        order_id: OrderId::new(11).unwrap(),
        user_id: UserId::new(1).unwrap(),
        voided_at: "2026-11-26T03:05:00Z".parse::<DateTime<Utc>>().unwrap(),
    });
    client.send(&void).await.unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(request.headers.get("idempotency-key").unwrap(), "order-11-void");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"type": "ORDER_PAYMENT_VOIDED", "orderId": 11, "userId": 1, "voidedAt": "2026-11-26T03:05:00Z"})
    );
}

#[tokio::test]
async fn a_refund_is_posted_with_its_type_fields_and_key() {
    let (server, client) = platform_answering(ResponseTemplate::new(200)).await;
    let refund = PlatformEvent::OrderRefunded(RefundEvent {
        order_id: OrderId::new(11).unwrap(),
        user_id: UserId::new(1).unwrap(),
        refund_amount: money(1_800),
        refunded_at: "2026-11-26T04:00:00Z".parse::<DateTime<Utc>>().unwrap(),
    });
    client.send(&refund).await.unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(request.headers.get("idempotency-key").unwrap(), "order-11-refund");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"type": "ORDER_REFUNDED", "orderId": 11, "userId": 1, "refundAmount": 1_800,
               "refundedAt": "2026-11-26T04:00:00Z"})
    );
}

#[test]
fn the_client_refuses_a_bad_configuration() {
    assert!(HttpDataPlatform::new("not a url", TIMEOUT).is_err());
    assert!(HttpDataPlatform::new("ftp://example.com/events", TIMEOUT).is_err());
    assert!(HttpDataPlatform::new("http://example.com/events", Duration::ZERO).is_err());
    let ok = HttpDataPlatform::new("https://example.com/events", TIMEOUT).unwrap();
    assert_eq!(ok.url().as_str(), "https://example.com/events");
    assert_eq!(ok.timeout(), TIMEOUT);
}

#[tokio::test]
async fn the_logging_stand_in_accepts_every_event() {
    assert!(LoggingDataPlatform::new().send(&event()).await.is_ok());
}
