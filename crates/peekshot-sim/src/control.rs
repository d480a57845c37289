//! The simulator's own endpoints under `/_sim`, for tests and the local
//! stack; PeekShot has no such thing. They need no key and never meet an
//! injected fault.
//!
//! | endpoint | what it does |
//! | --- | --- |
//! | `GET /_sim/health` | 200 `{"status":"ok"}` once the server is up |
//! | `GET /_sim/stats` | the counters of [`crate::stats::Stats`] |
//! | `GET /_sim/captures` | every capture record since the last reset, oldest first: the truth a test compares the pipeline's records with |
//! | `POST /_sim/reset` | clears records and counters, restarts the fault numbering; a body `{"seed": N}` also seeds the dice anew |
//! | `GET /_sim/faults` | the current fault knobs |
//! | `PUT /_sim/faults` | replaces the fault knobs; absent fields take their defaults |

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::faults::Faults;
use crate::state::SimState;

/// The `/_sim` routes.
pub fn routes() -> Router<SimState> {
    Router::new()
        .route("/_sim/health", get(health))
        .route("/_sim/stats", get(stats))
        .route("/_sim/captures", get(captures))
        .route("/_sim/reset", post(reset))
        .route("/_sim/faults", get(get_faults).put(put_faults))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn stats(State(state): State<SimState>) -> Response {
    Json(state.stats()).into_response()
}

/// The optional body of `POST /_sim/reset`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    seed: Option<u64>,
}

async fn captures(State(state): State<SimState>) -> Response {
    Json(json!({ "captures": state.records() })).into_response()
}

async fn reset(State(state): State<SimState>, body: Bytes) -> Response {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        ResetBody::default()
    } else {
        match serde_json::from_slice::<ResetBody>(&body) {
            Ok(body) => body,
            Err(error) => return refuse(&format!("invalid reset body: {error}")),
        }
    };
    state.reset(body.seed);
    tracing::info!(seed = body.seed, "records and counters cleared");
    Json(json!({"status": "ok"})).into_response()
}

async fn get_faults(State(state): State<SimState>) -> Json<Faults> {
    Json(state.faults())
}

/// Replaces the knobs. The body is read by hand so that a typo or a bad rate
/// is answered 400 with a sentence that names the field.
async fn put_faults(State(state): State<SimState>, body: Bytes) -> Response {
    let faults = match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => faults,
        Err(error) => return refuse(&format!("invalid fault settings: {error}")),
    };
    if let Err(error) = state.set_faults(faults.clone()) {
        return refuse(&error.to_string());
    }
    tracing::info!(?faults, "fault knobs replaced");
    Json(faults).into_response()
}

fn refuse(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "error", "message": message})),
    )
        .into_response()
}
