//! The HTTP client for the data platform.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use application::ports::{DataPlatform, DataPlatformError, PaidOrderEvent, PlatformEvent, SendFailure};
use async_trait::async_trait;
use chrono::SecondsFormat;
use domain::OrderId;
use reqwest::{Client, Url, redirect};
use serde::Serialize;

/// Parses the platform's URL as [`HttpDataPlatform`] needs it: absolute, `http` or
/// `https`, with a host. Lets configuration reject a bad URL before anything starts.
///
/// Errors never repeat the URL: it may carry credentials.
pub fn parse_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim()).map_err(|e| anyhow::anyhow!("not an absolute URL ({e})"))?;
    check_url(&url)?;
    Ok(url)
}

fn check_url(url: &Url) -> anyhow::Result<()> {
    ensure!(
        matches!(url.scheme(), "http" | "https"),
        "the data platform URL must be http or https, got a {} URL",
        url.scheme()
    );
    ensure!(url.host_str().is_some_and(|host| !host.is_empty()), "the data platform URL has no host");
    Ok(())
}

/// A [`DataPlatform`] that POSTs each event as JSON to one URL.
///
/// The request carries `Idempotency-Key: order-{orderId}`. It is bounded by `timeout`
/// as a whole (connect, send, and the response head); a 2xx answer is an
/// acknowledgement, anything else — another status (redirects are not followed), a
/// connection failure, or no answer in time — is a [`DataPlatformError`].
///
/// Cheap to share: one connection pool is built in [`HttpDataPlatform::new`] and reused.
#[derive(Debug, Clone)]
pub struct HttpDataPlatform {
    client: Client,
    url: Url,
    timeout: Duration,
}

impl HttpDataPlatform {
    /// A client for the platform at `url` (`http` or `https`) that gives up after
    /// `timeout` (which must not be zero).
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        Self::with_url(parse_url(url)?, timeout)
    }

    /// Like [`HttpDataPlatform::new`], for an already parsed URL.
    pub fn with_url(url: Url, timeout: Duration) -> anyhow::Result<Self> {
        check_url(&url)?;
        ensure!(!timeout.is_zero(), "the data platform timeout must be positive");
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(redirect::Policy::none())
            .build()
            .context("cannot build the data platform HTTP client")?;
        Ok(Self { client, url, timeout })
    }

    /// Where events are sent.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How long one delivery may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn describe(&self, err: &reqwest::Error) -> String {
        if err.is_timeout() {
            format!("no answer within {} ms", self.timeout.as_millis())
        } else if err.is_connect() {
            format!("connection failed: {}", root_cause(err))
        } else {
            format!("request failed: {}", root_cause(err))
        }
    }
}

/// The innermost cause of `err`: the informative part (e.g. "Connection refused"),
/// without the wrappers that repeat the URL.
fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

impl HttpDataPlatform {
    /// POSTs `body` under `key`; a 2xx is acceptance, a 4xx a refusal, anything else (a
    /// 5xx, a redirect, no answer, a connection lost after writing) uncertain: the
    /// platform may still have recorded it.
    async fn post<B: Serialize + Sync>(
        &self,
        order_id: OrderId,
        key: String,
        body: &B,
    ) -> Result<(), DataPlatformError> {
        let fail = |reason: String, failure: SendFailure| {
            tracing::warn!(%reason, ?failure, "the data platform did not accept the event");
            DataPlatformError { order_id, reason, failure }
        };
        let mut request = self.client.post(self.url.clone()).header("Idempotency-Key", key);
        // The trace of the request that caused the event (W3C Trace Context).
        if let Some(trace) = application::scope::traceparent() {
            request = request.header("traceparent", trace.to_string());
        }
        let response = request.json(body).send().await.map_err(|err| fail(self.describe(&err), classify(&err)))?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(%status, "the data platform accepted the event");
            Ok(())
        } else if status.is_client_error() {
            // The platform says it did not take the event.
            Err(fail(format!("answered {status}"), SendFailure::Refused))
        } else {
            // A 5xx (a gateway's 502/504 included) or a redirect: the platform, or the
            // service behind the gateway, may have recorded it.
            Err(fail(format!("answered {status}"), SendFailure::Uncertain))
        }
    }
}

/// Whether a request that got no answer may still have reached the platform: a refused
/// connection sent nothing; a timeout, or a connection lost after the request was
/// written, may have delivered it.
fn classify(err: &reqwest::Error) -> SendFailure {
    if err.is_connect() && !err.is_timeout() { SendFailure::Refused } else { SendFailure::Uncertain }
}

#[async_trait]
impl DataPlatform for HttpDataPlatform {
    #[tracing::instrument(skip_all, fields(order_id = %event.order_id(), event = event.type_name()))]
    async fn send(&self, event: &PlatformEvent) -> Result<(), DataPlatformError> {
        let key = event.idempotency_key();
        let kind = event.type_name();
        match event {
            PlatformEvent::OrderPaid(paid) => self.post(paid.order_id, key, &PaidOrderBody::new(kind, paid)).await,
            PlatformEvent::PaymentVoided(void) => {
                let body = VoidBody {
                    kind,
                    order_id: void.order_id.get(),
                    user_id: void.user_id.get(),
                    voided_at: void.voided_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                };
                self.post(void.order_id, key, &body).await
            }
            PlatformEvent::OrderRefunded(refund) => {
                let body = RefundBody {
                    kind,
                    order_id: refund.order_id.get(),
                    user_id: refund.user_id.get(),
                    refund_amount: refund.refund_amount.krw(),
                    refunded_at: refund.refunded_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                };
                self.post(refund.order_id, key, &body).await
            }
        }
    }
}

/// The JSON body sent for a refund.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundBody {
    #[serde(rename = "type")]
    kind: &'static str,
    order_id: i64,
    user_id: i64,
    refund_amount: i64,
    /// RFC 3339 in UTC with a `Z`, to the second.
    refunded_at: String,
}

/// The JSON body sent for a void.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VoidBody {
    #[serde(rename = "type")]
    kind: &'static str,
    order_id: i64,
    user_id: i64,
    /// RFC 3339 in UTC with a `Z`, to the second.
    voided_at: String,
}

/// The JSON body sent for a paid order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaidOrderBody<'a> {
    /// Always `ORDER_PAID`.
    #[serde(rename = "type")]
    kind: &'static str,
    order_id: i64,
    user_id: i64,
    items: Vec<ItemBody<'a>>,
    total_amount: i64,
    discount_amount: i64,
    payment_amount: i64,
    /// RFC 3339 in UTC with a `Z`, to the second.
    paid_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody<'a> {
    product_id: i64,
    name: &'a str,
    unit_price: i64,
    quantity: i32,
    amount: i64,
}

impl<'a> PaidOrderBody<'a> {
    fn new(kind: &'static str, event: &'a PaidOrderEvent) -> Self {
        Self {
            kind,
            order_id: event.order_id.get(),
            user_id: event.user_id.get(),
            items: event
                .lines
                .iter()
                .map(|line| ItemBody {
                    product_id: line.product_id.get(),
                    name: &line.name,
                    unit_price: line.unit_price.krw(),
                    quantity: line.quantity.get(),
                    amount: line.amount.krw(),
                })
                .collect(),
            total_amount: event.total_amount.krw(),
            discount_amount: event.discount_amount.krw(),
            payment_amount: event.payment_amount.krw(),
            paid_at: event.paid_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}
