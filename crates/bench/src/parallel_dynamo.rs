//! A DynamoDB stand-in that answers every request after a fixed latency, all in parallel, for
//! measuring the submitter's own concurrency apart from moto.
//!
//! moto serves one request at a time, so against it a batch's wall time is mostly moto's
//! queue. Real DynamoDB answers small conditional writes in a few milliseconds each, in
//! parallel. This stand-in answers every request `{}` (a write that succeeded and returned no
//! attributes: a new claim, a stored request id, a new pace bucket) after
//! [`PARALLEL_DYNAMO_LATENCY`], however many are in flight. It stores nothing, so it serves
//! only the scenario that needs no state to read back: one invocation's batch of fresh
//! captures, whose every write succeeds.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::task::JoinHandle;

/// How long each request takes: single-digit milliseconds is DynamoDB's own figure for small
/// items within a Region, and 10 ms leaves room for the network.
pub const PARALLEL_DYNAMO_LATENCY: Duration = Duration::from_millis(10);

/// A running stand-in; dropping it stops the server.
pub struct ParallelDynamo {
    url: String,
    task: JoinHandle<()>,
}

impl ParallelDynamo {
    /// Starts the stand-in on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the parallel DynamoDB stand-in")?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().route("/", post(answer));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, task })
    }

    /// Its endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ParallelDynamo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer() -> impl IntoResponse {
    tokio::time::sleep(PARALLEL_DYNAMO_LATENCY).await;
    ([(header::CONTENT_TYPE, "application/x-amz-json-1.0")], "{}")
}
