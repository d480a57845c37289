//! PeekShot's API as the simulator serves it: `POST /api/v1/screenshots`,
//! `GET /api/v1/screenshots/{requestId}` and `GET /api/v1/screenshots`, in
//! PeekShot's envelope `{"status", "message", "statusCode", "data"}`.
//!
//! Each request passes two layers before its handler: the gateway faults
//! (5xx, 429, hang, slow; see [`crate::faults`]) and then the `x-api-key`
//! check. So an injected fault hides whether the key was right, as a load
//! balancer in front of the real API would.
//!
//! The answers to a wrong `project_id` on create: 403 with
//! "Project not found or not accessible with this API key". The key is valid
//! but the project is not one of its own, which no retry of the capture can
//! fix: like a wrong key, it is a fault of the deployment, and 403 is what a
//! client already classifies that way. It is counted as `rejectedProject`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;

use crate::faults::{AnswerFault, GatewayFault};
use crate::lifecycle;
use crate::request::{CreateRequest, RequestError};
use crate::server::ConnectionCloser;
use crate::state::SimState;
use crate::store::ListQuery;

/// The message of a 403 for a wrong or missing key, word for word PeekShot's.
pub const INVALID_API_KEY_MESSAGE: &str = "Invalid or inactive API key";

/// Records per page of a list unless `?limit=` says otherwise.
const DEFAULT_LIMIT: u64 = 10;
/// The most records a list page holds.
const MAX_LIMIT: u64 = 100;

/// Why an API request was refused, each mapped to its status in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `x-api-key` is missing or not the configured key.
    #[error("{INVALID_API_KEY_MESSAGE}")]
    InvalidApiKey,
    /// The create's `project_id` is not the configured project.
    #[error("Project not found or not accessible with this API key")]
    UnknownProject,
    /// The create body failed a check.
    #[error(transparent)]
    InvalidRequest(#[from] RequestError),
    /// A list query parameter is not usable.
    #[error("{name} {expected}")]
    InvalidQuery {
        /// The parameter.
        name: &'static str,
        /// What it must be, as the rest of the sentence.
        expected: &'static str,
    },
    /// No capture has this request id.
    #[error("Screenshot not found")]
    NotFound,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidApiKey | Self::UnknownProject => StatusCode::FORBIDDEN,
            Self::InvalidRequest(_) | Self::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        failure(self.status(), &self.to_string())
    }
}

/// A success envelope carrying `data`.
pub fn success(status: StatusCode, message: &str, data: impl Serialize) -> Response {
    let body = json!({
        "status": "success",
        "message": message,
        "statusCode": status.as_u16(),
        "data": data,
    });
    (status, Json(body)).into_response()
}

/// An error envelope, as PeekShot answers errors.
pub fn failure(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "status": "error",
        "message": message,
        "statusCode": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

/// The API routes with their two layers; merged into the full router by
/// [`crate::router`].
pub fn routes(state: SimState) -> Router<SimState> {
    Router::new()
        .route(
            "/api/v1/screenshots",
            post(create_capture).get(list_captures),
        )
        .route("/api/v1/screenshots/{request_id}", get(read_capture))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .route_layer(middleware::from_fn_with_state(state, inject_gateway_faults))
}

/// The outer layer: lets the dice decide whether this request meets a 5xx,
/// a 429, a hang or a slow answer before anything else looks at it.
async fn inject_gateway_faults(
    State(state): State<SimState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(fault) = state.next_gateway_fault() else {
        return next.run(request).await;
    };
    tracing::info!(
        fault = %fault.kind(),
        method = %request.method(),
        path = request.uri().path(),
        "fault injected"
    );
    match fault {
        GatewayFault::ServerError(StatusCode::BAD_GATEWAY) => {
            let page = "<html><head><title>502 Bad Gateway</title></head>\
                        <body><center><h1>502 Bad Gateway</h1></center></body></html>";
            (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                page,
            )
                .into_response()
        }
        GatewayFault::ServerError(status) => {
            failure(status, status.canonical_reason().unwrap_or("Server error"))
        }
        GatewayFault::RateLimited { secs } => {
            let mut answer = failure(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests, please try again later",
            );
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            answer
        }
        GatewayFault::Hang(hold) => {
            tokio::time::sleep(hold).await;
            failure(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
        }
        GatewayFault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
    }
}

/// The inner layer: refuses any request whose `x-api-key` is not the key.
async fn require_api_key(State(state): State<SimState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get("x-api-key")
        .map(HeaderValue::as_bytes);
    if presented == Some(state.config().api_key.as_bytes()) {
        return next.run(request).await;
    }
    state.count_rejected_api_key();
    tracing::warn!(
        key_present = presented.is_some(),
        path = request.uri().path(),
        "request refused: wrong API key"
    );
    ApiError::InvalidApiKey.into_response()
}

/// `POST /api/v1/screenshots`: checks the body, records the capture, starts
/// it, and answers 201 with the request id, unless a fault or the reserved
/// host `early-webhook.test` says otherwise.
#[tracing::instrument(name = "create", skip_all, fields(request_id))]
async fn create_capture(
    State(state): State<SimState>,
    closer: Option<Extension<ConnectionCloser>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = CreateRequest::parse(&body).inspect_err(|error| {
        tracing::info!(%error, "create refused: invalid body");
    })?;
    if request.project_id != state.config().project_id {
        state.count_rejected_project();
        tracing::warn!(project_id = %request.project_id, "create refused: unknown project");
        return Err(ApiError::UnknownProject);
    }

    let accepted = state.accept(request);
    tracing::Span::current().record("request_id", accepted.id);
    tracing::info!(
        credits = accepted.credits,
        early = accepted.early,
        "capture accepted"
    );
    if accepted.early {
        lifecycle::finish_now(&state, &accepted).await;
    } else {
        tokio::spawn(lifecycle::run(state.clone(), accepted.clone()));
    }

    let answer = success(
        StatusCode::CREATED,
        "Screenshot request accepted",
        json!({
            "requestId": accepted.id,
            "creditRequired": accepted.credits,
            "status": "PENDING",
        }),
    );
    Ok(deliver_answer(&state, accepted.faults.answer, closer, answer).await)
}

/// Hands the create answer over as the answer fault decided: at once, after a
/// hold, or not at all (the connection is closed and this never returns).
async fn deliver_answer(
    state: &SimState,
    fault: AnswerFault,
    closer: Option<Extension<ConnectionCloser>>,
    answer: Response,
) -> Response {
    match (fault, closer) {
        (AnswerFault::None, _) => answer,
        (AnswerFault::Dropped, Some(Extension(closer))) => {
            tracing::info!(
                fault = "createAnswerDropped",
                "closing the connection without an answer"
            );
            closer.close();
            std::future::pending().await
        }
        (AnswerFault::Dropped, None) => {
            // Only the simulator's own accept loop can close a connection;
            // under another server the nearest thing is an answer held past
            // the client's timeout.
            tracing::warn!(
                "served without the simulator's accept loop; holding the answer instead of dropping it"
            );
            let hold = std::time::Duration::from_millis(state.faults().hang_ms);
            tokio::time::sleep(hold).await;
            answer
        }
        (AnswerFault::Held(hold), _) => {
            tracing::info!(
                fault = "createAnswerHeld",
                hold_ms = hold.as_millis() as u64,
                "holding the answer"
            );
            tokio::time::sleep(hold).await;
            answer
        }
    }
}

/// `GET /api/v1/screenshots/{requestId}`: the record, or 404 for an id that
/// is unknown or not a number.
#[tracing::instrument(name = "read", skip_all, fields(request_id = %raw_id))]
async fn read_capture(
    State(state): State<SimState>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = raw_id.parse::<u64>().ok().and_then(|id| state.read(id));
    let record = record.ok_or(ApiError::NotFound)?;
    Ok(success(
        StatusCode::OK,
        "Screenshot fetched successfully",
        record,
    ))
}

/// `GET /api/v1/screenshots?status=&page=&limit=&projectId=&url=`: one page of
/// records, newest first, under `data.screenshots`, with `total`, `page`,
/// `limit` and `totalPages` beside it.
async fn list_captures(
    State(state): State<SimState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_list_query(raw.as_deref().unwrap_or(""))?;
    let page = state.list(&query);
    Ok(success(
        StatusCode::OK,
        "Screenshots fetched successfully",
        page,
    ))
}

/// Reads the list parameters; empty values count as absent, unknown ones are
/// ignored.
fn parse_list_query(raw: &str) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery {
        status: None,
        project_id: None,
        url: None,
        page: 1,
        limit: DEFAULT_LIMIT,
    };
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if value.is_empty() {
            continue;
        }
        match name.as_ref() {
            "status" => query.status = Some(value.into_owned()),
            "projectId" => query.project_id = Some(value.into_owned()),
            "url" => query.url = Some(value.into_owned()),
            "page" => {
                query.page =
                    value
                        .parse()
                        .ok()
                        .filter(|p| *p >= 1)
                        .ok_or(ApiError::InvalidQuery {
                            name: "page",
                            expected: "must be a whole number from 1",
                        })?;
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or(ApiError::InvalidQuery {
                        name: "limit",
                        expected: "must be a whole number from 1 to 100",
                    })?;
            }
            _ => {}
        }
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_reads_filters_and_defaults() {
        let query = parse_list_query(
            "status=COMPLETE&projectId=p&url=https%3A%2F%2Fa.example%2F&page=&x=1",
        );
        let query = query.ok();
        assert_eq!(
            query.as_ref().and_then(|q| q.url.as_deref()),
            Some("https://a.example/")
        );
        assert_eq!(
            query.as_ref().map(|q| (q.page, q.limit)),
            Some((1, DEFAULT_LIMIT))
        );
    }

    #[test]
    fn list_query_refuses_unusable_paging() {
        for raw in ["page=0", "page=two", "limit=0", "limit=101"] {
            let message = parse_list_query(raw).err().map(|e| e.to_string());
            let name = raw.split('=').next().unwrap_or_default();
            assert!(message.is_some_and(|m| m.starts_with(name)), "{raw}");
        }
    }
}
