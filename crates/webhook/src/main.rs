//! The webhook Lambda: PeekShot calls it (through an API Gateway HTTP API) when a capture is
//! finished, and it writes the outcome onto the capture record.
//!
//! PeekShot documents no signature, and its dashboard takes a plain URL, so callers prove
//! themselves with a shared secret in the URL's `secret` query parameter (or an
//! `x-webhook-secret` header, for senders that can set one). The answers are chosen for a
//! sender that retries anything but a 2xx: 200 only once the outcome is stored, 503 when the
//! store failed and a retry can help, 400 for a body no retry can fix, 401 for strangers.

use capture::{CaptureStore, Progress, Settlement, parse_webhook};
use capture_adapters::{DynamoStore, ProcessEnv, Secret, SsmSecrets, WebhookConfig};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use serde_json::json;
use tracing::{Instrument, error, info, info_span, warn};

/// Query parameter that carries the shared secret.
const SECRET_PARAMETER: &str = "secret";
/// Header that may carry the shared secret instead.
const SECRET_HEADER: &str = "x-webhook-secret";

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();

    let aws = capture_adapters::aws_config().await;
    let config = WebhookConfig::load(&ProcessEnv, &SsmSecrets::new(&aws))
        .await
        .inspect_err(|problem| tracing::error!(%problem, "cannot start the webhook"))?;
    let store = DynamoStore::new(&aws, &config.table, config.retention);
    let secret = config.secret;

    lambda_http::run(service_fn(|request: Request| {
        let span = info_span!("webhook", request_id = tracing::field::Empty);
        handle(&store, &secret, request).instrument(span)
    }))
    .await
}

/// Authenticates, parses and records one webhook delivery.
async fn handle(
    store: &impl CaptureStore,
    secret: &Secret,
    request: Request,
) -> Result<Response<Body>, Error> {
    if request.method() != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use POST"}));
    }
    if !authenticated(&request, secret) {
        warn!("webhook rejected: missing or wrong secret");
        return answer(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
    }

    let notice = match parse_webhook(request.body()) {
        Ok(notice) => notice,
        Err(problem) => {
            warn!(%problem, "webhook body rejected");
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": problem.to_string()}),
            );
        }
    };
    tracing::Span::current().record("request_id", notice.request_id.as_str());

    let outcome = match notice.progress {
        Progress::Finished(outcome) => outcome,
        Progress::InProgress(status) => {
            info!(%status, "webhook reports a capture still in progress; nothing to record");
            return answer(
                StatusCode::OK,
                json!({"result": "ignored", "status": status}),
            );
        }
    };

    match store.record_outcome(&notice.request_id, &outcome).await {
        Ok(settlement) => {
            let result = match settlement {
                Settlement::Applied(status) => {
                    info!(%status, "capture finished");
                    "applied"
                }
                Settlement::AlreadyFinal(status) => {
                    info!(%status, "capture was already final; webhook changed nothing");
                    "unchanged"
                }
                Settlement::Parked => {
                    info!("no capture holds this request id yet; outcome kept until it does");
                    "parked"
                }
            };
            answer(StatusCode::OK, json!({"result": result}))
        }
        Err(failure) => {
            error!(class = %failure.class, reason = %failure.reason, "could not record webhook");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "could not record; retry"}),
            )
        }
    }
}

/// Whether the request carries the shared secret, in the query string or the header.
fn authenticated(request: &Request, secret: &Secret) -> bool {
    let from_query = request
        .query_string_parameters_ref()
        .and_then(|params| params.first(SECRET_PARAMETER).map(str::to_owned));
    let from_header = request
        .headers()
        .get(SECRET_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    from_query
        .or(from_header)
        .is_some_and(|presented| secret.matches(&presented))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))?)
}
