//! What the simulator's integration tests share: a simulator on 127.0.0.1
//! with short delays, a client that speaks to it as a PeekShot client would,
//! and a webhook receiver (a small axum server on 127.0.0.1) that records
//! every delivery and answers with the statuses a test queues.
//!
//! Waits are bounded by [`PATIENCE`], a guard against hanging forever, never a
//! claim about how fast anything is.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use peekshot_sim::{RunningSimulator, SimConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use url::Url;

/// The most any test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The key the test simulators accept.
pub const API_KEY: &str = "test-key";
/// The project the test simulators accept.
pub const PROJECT: &str = "test-project";
/// The secret query parameter of the webhook URL.
pub const WEBHOOK_SECRET: &str = "token=s3cret-hook-token";

/// A configuration with delays of tens of milliseconds and a fixed seed.
pub fn fast_config() -> SimConfig {
    SimConfig {
        api_key: API_KEY.into(),
        project_id: PROJECT.into(),
        complete_after: Duration::from_millis(40),
        webhook_backoff: Duration::from_millis(20),
        webhook_timeout: Duration::from_secs(5),
        seed: Some(1),
        ..SimConfig::default()
    }
}

/// A simulator on loopback with a client for it.
pub struct TestSim {
    pub sim: RunningSimulator,
    pub client: reqwest::Client,
}

impl TestSim {
    pub async fn start(config: SimConfig) -> Self {
        let sim = RunningSimulator::start_on_loopback(config)
            .await
            .expect("the simulator starts on 127.0.0.1");
        Self {
            sim,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.sim.base_url().as_str().trim_end_matches('/'),
            path
        )
    }

    /// POSTs a create body with the right key.
    pub async fn create(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/screenshots"))
            .header("x-api-key", API_KEY)
            .json(body)
            .send()
            .await
            .expect("the create request gets an answer")
    }

    /// Creates a capture of `url` and returns its request id, expecting 201.
    pub async fn create_ok(&self, url: &str) -> u64 {
        let answer = self
            .create(&json!({"project_id": PROJECT, "url": url}))
            .await;
        assert_eq!(answer.status(), StatusCode::CREATED);
        let body: Value = answer.json().await.expect("the create answer is JSON");
        body["data"]["requestId"]
            .as_u64()
            .expect("requestId is an integer")
    }

    /// GETs a path with the right key and returns status and JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let answer = self
            .client
            .get(self.url(path))
            .header("x-api-key", API_KEY)
            .send()
            .await
            .expect("the GET gets an answer");
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// The record of a capture (`data` of a read).
    pub async fn record(&self, id: u64) -> Value {
        let (status, body) = self.get(&format!("/api/v1/screenshots/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }

    /// Reads the record until its status is `wanted`.
    pub async fn wait_for_status(&self, id: u64, wanted: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let record = self.record(id).await;
            if record["status"] == wanted {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "capture {id} never became {wanted}: {record}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stats(&self) -> Value {
        self.client
            .get(self.url("/_sim/stats"))
            .send()
            .await
            .expect("stats answer")
            .json()
            .await
            .expect("stats are JSON")
    }

    /// Reads the stats until `ready` holds for them.
    pub async fn wait_for_stats(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let stats = self.stats().await;
            if ready(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stats never showed {what}: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One webhook as the receiver got it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub query: Option<String>,
    pub body: Value,
}

/// A webhook receiver on loopback.
pub struct Receiver {
    /// The URL to give the simulator, secret query included.
    pub url: Url,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
    deliveries: mpsc::UnboundedSender<Delivery>,
}

impl Receiver {
    /// Starts a receiver that answers the queued statuses in turn, then 200.
    pub async fn start(answers: &[StatusCode]) -> Self {
        let (sender, deliveries) = mpsc::unbounded_channel();
        let state = ReceiverState {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            deliveries: sender,
        };
        let app = Router::new()
            .route("/hooks/peekshot", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the receiver binds 127.0.0.1");
        let address = listener.local_addr().expect("the receiver has an address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = Url::parse(&format!("http://{address}/hooks/peekshot?{WEBHOOK_SECRET}"))
            .expect("a valid receiver URL");
        Self {
            url,
            deliveries,
            _server: server,
        }
    }

    /// The next delivery; fails the test if none comes in time.
    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(PATIENCE, self.deliveries.recv())
            .await
            .ok()
            .flatten()
            .expect("a webhook arrives")
    }

    /// A delivery that has already arrived, without waiting.
    pub fn already_arrived(&mut self) -> Option<Delivery> {
        self.deliveries.try_recv().ok()
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = state.deliveries.send(Delivery { query, body });
    let next = state
        .answers
        .lock()
        .map(|mut answers| answers.pop_front())
        .ok()
        .flatten();
    next.unwrap_or(StatusCode::OK)
}
