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

    let aws = capture_adapters::aws_config().await?;
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

#[cfg(test)]
mod tests {
    //! The handler against a fake store that counts calls; the real path (API Gateway event,
    //! DynamoDB in moto) is covered in `tests/pipeline.rs`.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use capture::{
        CaptureId, CaptureRequest, CaptureStatus, Claim, CreatedCapture, Failure, InvalidRequest,
        Outcome, Rejection, RequestId,
    };

    use super::*;

    /// Answers `record_outcome` with a fixed result and counts every call.
    struct FakeStore {
        answer: Result<Settlement, Failure>,
        calls: Mutex<u32>,
    }

    impl FakeStore {
        fn answering(answer: Result<Settlement, Failure>) -> Self {
            Self {
                answer,
                calls: Mutex::new(0),
            }
        }

        fn calls(&self) -> u32 {
            *self.calls.lock().unwrap()
        }
    }

    #[async_trait]
    impl CaptureStore for FakeStore {
        async fn record_invalid(
            &self,
            _: &InvalidRequest,
            _: &str,
            _: &str,
        ) -> Result<Rejection, Failure> {
            unreachable!("not used by the webhook")
        }
        async fn claim(&self, _: &CaptureRequest, _: &str) -> Result<Claim, Failure> {
            unreachable!("not used by the webhook")
        }
        async fn release(&self, _: &CaptureId, _: &Failure) -> Result<(), Failure> {
            unreachable!("not used by the webhook")
        }
        async fn fail_unsubmitted(&self, _: &CaptureId, _: &str) -> Result<(), Failure> {
            unreachable!("not used by the webhook")
        }
        async fn store_request_id(
            &self,
            _: &CaptureId,
            _: &CreatedCapture,
        ) -> Result<CaptureStatus, Failure> {
            unreachable!("not used by the webhook")
        }
        async fn adopt_request_id(
            &self,
            _: &CaptureId,
            _: &CreatedCapture,
        ) -> Result<Option<CaptureStatus>, Failure> {
            unreachable!("not used by the webhook")
        }
        async fn note_ambiguous_create(&self, _: &CaptureId) -> Result<(), Failure> {
            unreachable!("not used by the webhook")
        }
        async fn record_outcome(&self, _: &RequestId, _: &Outcome) -> Result<Settlement, Failure> {
            *self.calls.lock().unwrap() += 1;
            self.answer.clone()
        }
    }

    const SECRET: &str = "a-webhook-secret-of-length";
    const DONE: &str = r#"{"data":{"requestId":7,"success":true,"fileUrl":"https://f/7.png"}}"#;

    fn request(method: Method, secret: Option<&str>, body: &str) -> Request {
        let mut request = Request::new(Body::Text(body.to_owned()));
        *request.method_mut() = method;
        let query: HashMap<String, String> = secret
            .map(|s| HashMap::from([(SECRET_PARAMETER.to_owned(), s.to_owned())]))
            .unwrap_or_default();
        request.with_query_string_parameters(query)
    }

    async fn status(store: &FakeStore, request: Request) -> StatusCode {
        let secret = Secret::new(SECRET.to_owned());
        handle(store, &secret, request).await.unwrap().status()
    }

    #[tokio::test]
    async fn missing_or_wrong_secret_is_401_and_never_reaches_the_store() {
        let store = FakeStore::answering(Ok(Settlement::Applied(CaptureStatus::Complete)));
        assert_eq!(status(&store, request(Method::POST, None, DONE)).await, 401);
        assert_eq!(
            status(&store, request(Method::POST, Some("wrong"), DONE)).await,
            401
        );
        assert_eq!(store.calls(), 0);
    }

    #[tokio::test]
    async fn secret_in_the_header_is_accepted() {
        let store = FakeStore::answering(Ok(Settlement::Applied(CaptureStatus::Complete)));
        let mut call = request(Method::POST, None, DONE);
        call.headers_mut()
            .insert(SECRET_HEADER, SECRET.parse().unwrap());
        assert_eq!(status(&store, call).await, 200);
    }

    #[tokio::test]
    async fn stored_outcome_is_answered_200() {
        let store = FakeStore::answering(Ok(Settlement::Parked));
        assert_eq!(
            status(&store, request(Method::POST, Some(SECRET), DONE)).await,
            200
        );
        assert_eq!(store.calls(), 1);
    }

    #[tokio::test]
    async fn store_failure_is_answered_503_so_peekshot_retries() {
        let store = FakeStore::answering(Err(Failure::transient("DynamoDB throttled")));
        assert_eq!(
            status(&store, request(Method::POST, Some(SECRET), DONE)).await,
            503
        );
    }

    #[tokio::test]
    async fn malformed_body_is_400_and_writes_nothing() {
        let store = FakeStore::answering(Ok(Settlement::Parked));
        assert_eq!(
            status(&store, request(Method::POST, Some(SECRET), "{oops")).await,
            400
        );
        assert_eq!(store.calls(), 0);
    }

    #[tokio::test]
    async fn in_progress_status_writes_nothing() {
        let store = FakeStore::answering(Ok(Settlement::Parked));
        let body = r#"{"data":{"requestId":7,"status":"PROCESSING"}}"#;
        assert_eq!(
            status(&store, request(Method::POST, Some(SECRET), body)).await,
            200
        );
        assert_eq!(store.calls(), 0);
    }

    #[tokio::test]
    async fn other_methods_are_405() {
        let store = FakeStore::answering(Ok(Settlement::Parked));
        assert_eq!(
            status(&store, request(Method::GET, Some(SECRET), "")).await,
            405
        );
    }
}
