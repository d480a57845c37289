//! A stand-in for the API Gateway HTTP API in front of the webhook, for the end-to-end path:
//! the simulator POSTs its completion webhooks here, each one becomes a payload 2.0 event for
//! the webhook function (through its runtime API stand-in), and the function's answer becomes
//! the HTTP answer the simulator sees. Deliveries are handled one at a time, as one Lambda
//! instance handles them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::events::WebhookEvents;
use crate::function::FunctionProcess;
use crate::runtime_api::Invocation;

/// The route the template gives the webhook.
pub const WEBHOOK_PATH: &str = "/webhooks/peekshot";

struct Shared {
    function: Mutex<FunctionProcess>,
    events: WebhookEvents,
    delivered: AtomicU64,
    invocations: std::sync::Mutex<Vec<Invocation>>,
}

/// A running gateway in front of one webhook process.
pub struct Gateway {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// Starts a gateway on a free loopback port that forwards to `function`.
    pub async fn start(function: FunctionProcess, events: WebhookEvents) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the gateway stand-in to a loopback port")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            function: Mutex::new(function),
            events,
            delivered: AtomicU64::new(0),
            invocations: std::sync::Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route(WEBHOOK_PATH, post(deliver))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { url, shared, task })
    }

    /// The webhook URL to give PeekShot (the simulator): the route with the secret.
    pub fn webhook_url(&self, secret: &str) -> String {
        format!("{}{WEBHOOK_PATH}?secret={secret}", self.url)
    }

    /// The invocations so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared
            .invocations
            .lock()
            .map(|i| i.clone())
            .unwrap_or_default()
    }

    /// Stops the gateway and the webhook process behind it.
    pub async fn stop(self) {
        self.task.abort();
        self.shared.function.lock().await.stop().await;
    }
}

async fn deliver(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(body) = std::str::from_utf8(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "the bench only relays UTF-8 bodies",
        )
            .into_response();
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let n = shared.delivered.fetch_add(1, Ordering::Relaxed);
    let event = shared
        .events
        .event(n, query.as_deref().unwrap_or_default(), &headers, body);

    let invocation = shared.function.lock().await.invoke(event).await;
    match invocation {
        Ok(invocation) => {
            let answer = http_answer(&invocation);
            if let Ok(mut all) = shared.invocations.lock() {
                all.push(invocation);
            }
            answer
        }
        Err(problem) => (StatusCode::BAD_GATEWAY, format!("{problem:#}")).into_response(),
    }
}

/// The HTTP answer API Gateway makes of a payload 2.0 response.
fn http_answer(invocation: &Invocation) -> Response {
    let Ok(body) = invocation.response() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let status = body["statusCode"]
        .as_u64()
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    let text = body["body"].as_str().unwrap_or_default().to_owned();
    (status, text).into_response()
}
