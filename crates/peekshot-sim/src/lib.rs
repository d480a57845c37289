//! A PeekShot simulator: an HTTP server on loopback that answers PeekShot's
//! screenshot API the way `shared/peekshot-api.md` describes it, finishes
//! captures after a set delay, POSTs completion webhooks, and injects the
//! faults a real hosted API shows (5xx, 429, hangs, lost answers, failed
//! captures, lost, late, duplicated and early webhooks) at configurable rates.
//! It stands in for PeekShot in the local stack and in integration tests; it
//! never fetches the URLs it is asked to capture.
//!
//! # Layout
//!
//! - [`api`]: PeekShot's endpoints under `/api/v1`, the envelope, the key check.
//! - [`request`]: the create body and its checks; credits per capture.
//! - [`store`]: the in-memory records and the list query.
//! - [`lifecycle`]: PENDING → PROCESSING → COMPLETE/FAILED, then the webhook.
//! - [`webhook`]: the webhook payload and its delivery with retries.
//! - [`reserved`]: hosts with a fixed outcome.
//! - [`faults`]: the fault knobs and the seeded dice that apply them.
//! - [`files`]: the placeholder image behind every `screenshotUrl`.
//! - [`control`]: the simulator's own `/_sim` endpoints (stats, reset, faults).
//! - [`stats`]: the counters tests read.
//! - [`state`]: the shared state behind one lock.
//! - [`server`]: the accept loop, which can close a connection unanswered.
//! - [`config`]: [`SimConfig`]. `main.rs` is a thin CLI over [`bind`] and
//!   [`RunningSimulator`], which prints the listening line once serving.
//!
//! # Endpoints
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `POST /api/v1/screenshots` | 201 `{"status":"success","message":"Screenshot request accepted","statusCode":201,"data":{"requestId":100001,"creditRequired":1,"status":"PENDING"}}` |
//! | `GET /api/v1/screenshots/{requestId}` | 200 with the record as `data`, 404 if unknown |
//! | `GET /api/v1/screenshots?status=&page=&limit=&projectId=&url=` | 200 with `data.screenshots` newest first, `total`, `page`, `limit`, `totalPages` |
//! | `GET /files/{requestId}.png` | the placeholder PNG of a COMPLETE capture |
//! | `/_sim/...` | health, stats, reset, faults: see [`control`] |
//!
//! Every `/api/v1` request needs `x-api-key`; a wrong one is answered 403
//! `{"status":"error","message":"Invalid or inactive API key","statusCode":403}`.
//!
//! # Reserved hosts
//!
//! A capture URL whose host is `bot-blocked.test` (or a subdomain) ends FAILED
//! with `Capture failed: the site blocked automated access (bot protection)`.
//! One whose host is `early-webhook.test` (or a subdomain) completes at once,
//! and its webhook is delivered and answered before the create request gets
//! its 201, so a test can prove that a webhook arriving before the submitter
//! stored the request id is not lost. One whose host is `lost-webhook.test`
//! completes as usual but never sends its webhook, so a test can prove that a
//! lost webhook is recovered through the read endpoint without raising the
//! lost-webhook fault rate for everyone. See [`reserved`].
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), peekshot_sim::SimError> {
//! let config = peekshot_sim::SimConfig::default();
//! let listener = peekshot_sim::bind("127.0.0.1", 0).await?;
//! peekshot_sim::serve(config, listener).await
//! # }
//! ```

pub mod api;
pub mod config;
pub mod control;
pub mod faults;
pub mod files;
pub mod lifecycle;
pub mod request;
pub mod reserved;
pub mod server;
pub mod state;
pub mod stats;
pub mod store;
pub mod webhook;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

pub use config::SimConfig;
pub use faults::Faults;
pub use state::SimState;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The port is taken by another process.
    #[error(
        "port {port} on {host} is already in use; choose another with --port or \
         PEEKSHOT_SIM_PORT (0 lets the system pick a free one)"
    )]
    PortInUse {
        /// The host the bind was for.
        host: String,
        /// The port that is taken.
        port: u16,
    },
    /// Binding failed for another reason (unknown host, no permission).
    #[error("cannot listen on {host}:{port}")]
    Bind {
        /// The host the bind was for.
        host: String,
        /// The port the bind was for.
        port: u16,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The bound listener has no address to report.
    #[error("cannot read the listener's local address")]
    LocalAddr(#[source] io::Error),
    /// The bound address does not make a URL (only with a strange host).
    #[error("cannot make a public URL from the bound address {bound}; pass --public-url")]
    PublicUrl {
        /// The bound address.
        bound: SocketAddr,
        /// Why it is not a URL.
        #[source]
        source: url::ParseError,
    },
    /// A fault knob is not a rate.
    #[error("invalid fault settings")]
    Faults(#[from] faults::InvalidRate),
    /// The webhook HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// An error and its causes on one line, outermost first, for logs and the
/// CLI's exit message ("error sending request: client error (Connect): ...").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Binds a TCP listener, telling a taken port apart from other failures so
/// that the message says which flag to change.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, SimError> {
    TcpListener::bind((host, port))
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => SimError::PortInUse {
                host: host.to_owned(),
                port,
            },
            _ => SimError::Bind {
                host: host.to_owned(),
                port,
                source,
            },
        })
}

/// The whole router over `state`: PeekShot's API, the files, the `/_sim`
/// endpoints, and a 404 envelope for anything else.
///
/// Served by anything but [`serve`], the "dropped create answer" fault holds
/// the answer for `hang_ms` instead, since only the simulator's accept loop
/// can close a connection unanswered.
pub fn router(state: SimState) -> Router {
    Router::new()
        .merge(api::routes(state.clone()))
        .merge(control::routes())
        .route("/files/{file}", get(files::get_file))
        .fallback(|| async { api::failure(StatusCode::NOT_FOUND, "Route not found") })
        .with_state(state)
}

/// Runs the simulator on `listener` until the process ends.
pub async fn serve(config: SimConfig, listener: TcpListener) -> Result<(), SimError> {
    serve_with_shutdown(config, listener, std::future::pending()).await
}

/// Runs the simulator on `listener` until `shutdown` completes.
pub async fn serve_with_shutdown(
    config: SimConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let bound = listener.local_addr().map_err(SimError::LocalAddr)?;
    let state = SimState::new(config, bound)?;
    server::run(listener, router(state), shutdown).await;
    Ok(())
}

/// A simulator running on a task of the current runtime, for tests and for
/// tools that embed it. Dropping it stops accepting connections.
pub struct RunningSimulator {
    base_url: Url,
    state: SimState,
    task: JoinHandle<()>,
}

impl RunningSimulator {
    /// Starts a simulator on `listener` in the background.
    pub fn start(config: SimConfig, listener: TcpListener) -> Result<Self, SimError> {
        let bound = listener.local_addr().map_err(SimError::LocalAddr)?;
        let base_url = Url::parse(&format!("http://{bound}"))
            .map_err(|source| SimError::PublicUrl { bound, source })?;
        let state = SimState::new(config, bound)?;
        let task = tokio::spawn(server::run(
            listener,
            router(state.clone()),
            std::future::pending(),
        ));
        Ok(Self {
            base_url,
            state,
            task,
        })
    }

    /// Binds 127.0.0.1 on a free port and starts a simulator there.
    pub async fn start_on_loopback(config: SimConfig) -> Result<Self, SimError> {
        let listener = bind("127.0.0.1", 0).await?;
        Self::start(config, listener)
    }

    /// `http://127.0.0.1:PORT`, the base for every endpoint.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The simulator's state, to read stats or change faults without HTTP.
    pub fn state(&self) -> &SimState {
        &self.state
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
