//! A counting HTTP proxy on loopback between an AWS client and moto.
//!
//! Each caller (the submitter, the webhook, the bench acting as producer and event source)
//! gets its own proxy port as its `AWS_ENDPOINT_URL`, so every request is known by caller,
//! service and operation without reading anyone's logs. The operation comes from the
//! `X-Amz-Target` header of the JSON protocols (`DynamoDB_20120810.UpdateItem`,
//! `AmazonSQS.ReceiveMessage`), or from the `Action` parameter of SQS's older query protocol.
//! The proxy also times each request to moto, so a function's latency can be split into its
//! own time and the time it waited for DynamoDB.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::task::JoinHandle;

/// Largest request body the proxy forwards; DynamoDB's own request limit is 16 MB.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request that went through a proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who sent it: the proxy's label.
    pub caller: &'static str,
    /// `dynamodb`, `sqs`, `ssm` or `other`.
    pub service: &'static str,
    /// `UpdateItem`, `ReceiveMessage`, ...
    pub operation: String,
    /// The `pk` of the item a DynamoDB request names, to price the write by that item's size.
    pub key: Option<String>,
    /// When the proxy received it.
    pub started: Instant,
    /// How long moto took to answer, as seen from the proxy.
    pub elapsed: Duration,
}

/// Every call through every proxy of one run, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    calls: Arc<Mutex<Vec<Call>>>,
}

/// How many calls of one kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallCount {
    /// Who made them.
    pub caller: String,
    /// Which service.
    pub service: String,
    /// Which operation.
    pub operation: String,
    /// How many.
    pub count: usize,
}

impl Ledger {
    /// Forgets every call recorded so far.
    pub fn clear(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.clear();
        }
    }

    /// A copy of the calls recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The calls recorded so far, counted by caller, service and operation.
    pub fn counts(&self) -> Vec<CallCount> {
        let mut counts: Vec<CallCount> = Vec::new();
        for call in self.calls() {
            match counts.iter_mut().find(|c| {
                c.caller == call.caller
                    && c.service == call.service
                    && c.operation == call.operation
            }) {
                Some(count) => count.count += 1,
                None => counts.push(CallCount {
                    caller: call.caller.to_owned(),
                    service: call.service.to_owned(),
                    operation: call.operation,
                    count: 1,
                }),
            }
        }
        counts.sort();
        counts
    }

    fn record(&self, call: Call) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }
}

struct Forwarder {
    caller: &'static str,
    upstream: String,
    client: reqwest::Client,
    ledger: Ledger,
}

/// One running proxy.
pub struct CountingProxy {
    url: String,
    task: JoinHandle<()>,
}

impl CountingProxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream` (moto's URL) and
    /// records every request in `ledger` under `caller`.
    pub async fn start(
        caller: &'static str,
        upstream: &str,
        ledger: &Ledger,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the counting proxy to a loopback port")?;
        let url = format!("http://{}", listener.local_addr()?);
        let forwarder = Arc::new(Forwarder {
            caller,
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("building the proxy's HTTP client")?,
            ledger: ledger.clone(),
        });
        let router = Router::new().fallback(forward).with_state(forwarder);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { url, task })
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(forwarder): State<Arc<Forwarder>>, request: Request) -> Response {
    match relay(&forwarder, request).await {
        Ok(response) => response,
        Err(problem) => (StatusCode::BAD_GATEWAY, format!("{problem:#}")).into_response(),
    }
}

async fn relay(forwarder: &Forwarder, request: Request) -> anyhow::Result<Response> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY)
        .await
        .context("reading the request body")?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let (service, operation) = operation_of(&parts.headers, parts.uri.query(), &body);
    let key = (service == "dynamodb").then(|| item_key(&body)).flatten();

    let mut upstream = forwarder
        .client
        .request(
            parts.method.clone(),
            format!("{}{path}", forwarder.upstream),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_header(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.context("forwarding to moto")?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.context("reading moto's answer")?;
    forwarder.ledger.record(Call {
        caller: forwarder.caller,
        service,
        operation,
        key,
        started,
        elapsed: started.elapsed(),
    });

    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !is_hop_header(name) {
            response = response.header(name, value);
        }
    }
    Ok(response.body(Body::from(bytes))?)
}

/// Headers that belong to one connection and must not be copied to the next.
fn is_hop_header(name: &HeaderName) -> bool {
    name == header::HOST
        || name == header::CONNECTION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name.as_str() == "keep-alive"
}

/// The service and operation of an AWS request.
fn operation_of(
    headers: &axum::http::HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> (&'static str, String) {
    if let Some(target) = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
    {
        let (prefix, operation) = target.split_once('.').unwrap_or(("", target));
        let service = if prefix.starts_with("DynamoDB") {
            "dynamodb"
        } else if prefix == "AmazonSQS" {
            "sqs"
        } else if prefix == "AmazonSSM" {
            "ssm"
        } else {
            "other"
        };
        return (service, operation.to_owned());
    }
    let form = std::str::from_utf8(body).unwrap_or_default();
    let action = [query.unwrap_or_default(), form]
        .into_iter()
        .flat_map(|text| text.split('&'))
        .find_map(|pair| pair.strip_prefix("Action="));
    match action {
        Some(action) => ("sqs", action.to_owned()),
        None => ("other", "unknown".to_owned()),
    }
}

/// The `pk` named by a DynamoDB request's `Key` (updates, reads) or `Item` (puts).
fn item_key(body: &[u8]) -> Option<String> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["Key", "Item"]
        .iter()
        .find_map(|field| request[field]["pk"]["S"].as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn target(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_protocol_targets_name_service_and_operation() {
        assert_eq!(
            operation_of(&target("DynamoDB_20120810.UpdateItem"), None, b"{}"),
            ("dynamodb", "UpdateItem".to_owned())
        );
        assert_eq!(
            operation_of(&target("AmazonSQS.DeleteMessageBatch"), None, b"{}"),
            ("sqs", "DeleteMessageBatch".to_owned())
        );
    }

    #[test]
    fn dynamodb_requests_name_their_item() {
        let update = br#"{"TableName":"t","Key":{"pk":{"S":"capture#a"}}}"#;
        assert_eq!(item_key(update).as_deref(), Some("capture#a"));
        let put = br#"{"TableName":"t","Item":{"pk":{"S":"capture#b"},"x":{"N":"1"}}}"#;
        assert_eq!(item_key(put).as_deref(), Some("capture#b"));
        assert_eq!(item_key(b"{}"), None);
    }

    #[test]
    fn query_protocol_actions_are_sqs() {
        assert_eq!(
            operation_of(
                &HeaderMap::new(),
                None,
                b"Action=ReceiveMessage&Version=2012-11-05"
            ),
            ("sqs", "ReceiveMessage".to_owned())
        );
    }
}
