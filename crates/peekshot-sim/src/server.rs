//! The accept loop. It does what `axum::serve` does (one task per connection,
//! HTTP/1.1 through hyper) plus one thing that `axum::serve` cannot: each
//! request carries a [`ConnectionCloser`] for its connection, so a handler can
//! end the connection without writing an answer. That is how the "dropped
//! create answer" fault looks to a client: the request went out, the capture
//! was made, and the connection closed with no status line.
//!
//! On shutdown the loop stops accepting; connections already open finish on
//! their own tasks, which is enough for a test double.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// Ends one connection without an answer; found in each request's extensions.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCloser {
    signal: Arc<Notify>,
}

impl ConnectionCloser {
    /// Closes the connection this request came on. The handler that calls it
    /// is dropped with the connection, so it should wait forever after.
    pub fn close(&self) {
        self.signal.notify_one();
    }

    async fn closed(&self) {
        self.signal.notified().await;
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Running out of file descriptors and the like pass; back off
                // briefly instead of spinning on them.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, router.clone()));
    }
    tracing::info!("stopped accepting connections");
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let closer = ConnectionCloser::default();
    let service = router.map_request({
        let closer = closer.clone();
        move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(closer.clone());
            request
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));

    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        () = closer.closed() => {
            tracing::debug!("connection closed without an answer");
        }
    }
}
