//! A stand-in for Lambda's runtime API on loopback: the HTTP interface a custom runtime
//! (here `lambda_runtime`, inside each function's `bootstrap`) polls for work.
//!
//! It serves the four routes a function uses:
//!
//! - `GET /2018-06-01/runtime/invocation/next` waits until the bench hands it an event, then
//!   answers it with the `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` and
//!   `Lambda-Runtime-Invoked-Function-Arn` headers, as Lambda does;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` end that
//!   invocation;
//! - `POST /2018-06-01/runtime/init/error` reports a failed cold start.
//!
//! Each function process gets its own server, so an event can never reach a process other than
//! the one it was meant for. The server records when the first `next` arrives (the end of the
//! cold start) and, for every invocation, when the event was handed out and when the answer
//! came back: the function's own duration, as Lambda bills it, without the bench's overhead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long a function may take for one invocation before the bench gives up on it; the
/// template's submitter timeout is 30 s, and the slowest scenario (100 messages one at a
/// time against a 200 ms PeekShot) needs about 25 s.
pub const INVOCATION_LIMIT: Duration = Duration::from_secs(120);

/// Where a function's cold start stands.
#[derive(Debug, Clone)]
enum Init {
    /// Not polled yet.
    Waiting,
    /// The first `next` arrived at this instant.
    Polled(Instant),
    /// The function reported a failed cold start.
    Failed(String),
}

/// How an invocation ended.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `/response` with this JSON body.
    Response(Value),
    /// `/error` with this body.
    Error(String),
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// What the function answered.
    pub answer: Answer,
    /// When the event left the runtime API (the `next` answer was sent).
    pub handed_out: Instant,
    /// When the function's answer arrived.
    pub answered: Instant,
}

impl Invocation {
    /// The function's duration for this invocation: what Lambda bills.
    pub fn duration(&self) -> Duration {
        self.answered.saturating_duration_since(self.handed_out)
    }

    /// The response body, or an error naming what the function reported instead.
    pub fn response(&self) -> anyhow::Result<&Value> {
        match &self.answer {
            Answer::Response(body) => Ok(body),
            Answer::Error(body) => bail!("the function reported an invocation error: {body}"),
        }
    }
}

/// An event waiting for the function's next poll.
struct Pending {
    event: Value,
    done: oneshot::Sender<Invocation>,
}

/// An event handed out and not answered yet.
struct InFlight {
    handed_out: Instant,
    done: oneshot::Sender<Invocation>,
}

struct Shared {
    function_arn: String,
    next_id: AtomicU64,
    queue: Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: std::sync::Mutex<HashMap<String, InFlight>>,
    init: watch::Sender<Init>,
}

/// One runtime API server, for one function process.
pub struct RuntimeApi {
    address: SocketAddr,
    sender: mpsc::UnboundedSender<Pending>,
    init: watch::Receiver<Init>,
    task: JoinHandle<()>,
}

impl RuntimeApi {
    /// Starts a server on a free loopback port for the function named `function_name`.
    pub async fn start(function_name: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the runtime API stand-in to a loopback port")?;
        let address = listener.local_addr()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let (init_tx, init_rx) = watch::channel(Init::Waiting);
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            next_id: AtomicU64::new(1),
            queue: Mutex::new(receiver),
            in_flight: std::sync::Mutex::new(HashMap::new()),
            init: init_tx,
        });

        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            address,
            sender,
            init: init_rx,
            task,
        })
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Waits for the function's first poll and returns when it came; fails if the function
    /// reports a failed cold start, or `limit` passes.
    pub async fn first_poll(&self, limit: Duration) -> anyhow::Result<Instant> {
        let mut init = self.init.clone();
        let state = tokio::time::timeout(
            limit,
            init.wait_for(|state| !matches!(state, Init::Waiting)),
        )
        .await
        .with_context(|| format!("the function did not poll for work within {limit:?}"))?
        .context("the runtime API stopped")?
        .clone();
        match state {
            Init::Polled(at) => Ok(at),
            Init::Failed(body) => bail!("the function's cold start failed: {body}"),
            Init::Waiting => bail!("the function has not polled yet"),
        }
    }

    /// Hands `event` to the function and waits for its answer, up to [`INVOCATION_LIMIT`].
    pub async fn invoke(&self, event: Value) -> anyhow::Result<Invocation> {
        let (done, finished) = oneshot::channel();
        self.sender
            .send(Pending { event, done })
            .map_err(|_| anyhow::anyhow!("the runtime API stopped"))?;
        tokio::time::timeout(INVOCATION_LIMIT, finished)
            .await
            .with_context(|| {
                format!("the function did not answer an invocation within {INVOCATION_LIMIT:?}")
            })?
            .context("the invocation was dropped before the function answered")
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.init.send_if_modified(|state| {
        if matches!(state, Init::Waiting) {
            *state = Init::Polled(Instant::now());
            true
        } else {
            false
        }
    });

    let pending = shared.queue.lock().await.recv().await;
    let Some(Pending { event, done }) = pending else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let id = format!(
        "bench-{:08}",
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + INVOCATION_LIMIT.as_millis();

    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &id);
    set("lambda-runtime-deadline-ms", &deadline.to_string());
    set("lambda-runtime-invoked-function-arn", &shared.function_arn);
    set("lambda-runtime-trace-id", &format!("Root=1-00000000-{id}"));
    set("content-type", "application/json");

    if let Ok(mut in_flight) = shared.in_flight.lock() {
        in_flight.insert(
            id,
            InFlight {
                handed_out: Instant::now(),
                done,
            },
        );
    }
    (headers, event.to_string()).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let answer = match serde_json::from_slice(&body) {
        Ok(value) => Answer::Response(value),
        Err(_) => Answer::Error(format!(
            "the response is not JSON: {}",
            String::from_utf8_lossy(&body)
        )),
    };
    finish(&shared, &id, answer)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(
        &shared,
        &id,
        Answer::Error(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared
        .init
        .send_replace(Init::Failed(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

/// Ends the invocation `id` with `answer`; 400 for an id that is not in flight, as Lambda's
/// API answers an unknown request id.
fn finish(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    let answered = Instant::now();
    let entry = shared
        .in_flight
        .lock()
        .ok()
        .and_then(|mut in_flight| in_flight.remove(id));
    let Some(InFlight { handed_out, done }) = entry else {
        return StatusCode::BAD_REQUEST;
    };
    let _ = done.send(Invocation {
        answer,
        handed_out,
        answered,
    });
    StatusCode::ACCEPTED
}
