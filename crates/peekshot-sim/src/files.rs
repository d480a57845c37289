//! The image files behind `screenshotUrl`: `GET /files/{requestId}.png`
//! answers a small placeholder PNG for every COMPLETE capture, whatever its
//! `file_type`, and 404 otherwise. Like PeekShot's CDN URLs, it needs no key.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::SimState;
use crate::store::CaptureStatus;

/// A 160 x 100 RGB PNG sketching a web page (browser bar, heading, text, a
/// button); `screenshotImageSize` reports its length.
pub const PLACEHOLDER_PNG: &[u8] = include_bytes!("../assets/placeholder.png");

/// Serves the placeholder for `{requestId}.png` when that capture is COMPLETE.
pub async fn get_file(State(state): State<SimState>, Path(name): Path<String>) -> Response {
    let complete = name
        .strip_suffix(".png")
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| state.peek(id))
        .is_some_and(|record| record.status == CaptureStatus::Complete);
    if complete {
        ([(header::CONTENT_TYPE, "image/png")], PLACEHOLDER_PNG).into_response()
    } else {
        (StatusCode::NOT_FOUND, "file not found").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_a_png_of_the_stated_size() {
        assert!(PLACEHOLDER_PNG.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&PLACEHOLDER_PNG[12..16], b"IHDR");
        assert_eq!(&PLACEHOLDER_PNG[16..20], &160u32.to_be_bytes());
        assert_eq!(&PLACEHOLDER_PNG[20..24], &100u32.to_be_bytes());
        assert!(PLACEHOLDER_PNG.ends_with(b"IEND\xaeB`\x82"));
    }
}
