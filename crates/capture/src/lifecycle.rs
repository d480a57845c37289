//! The capture record's lifecycle: its statuses, the transitions between them, and the outcome
//! that ends a capture.
//!
//! ```text
//!   (message received) ──claim──▶ QUEUED ──request id stored──▶ SUBMITTED
//!          │                        │  │                            │
//!          │ invalid body           │  │ PeekShot refused           │ webhook: done / failed
//!          ▼                        │  ▼                            ▼
//!        FAILED ◀───────────────────┘ FAILED                 COMPLETE | FAILED
//!                 webhook raced ahead of the stored request id
//! ```
//!
//! COMPLETE and FAILED are final: no event moves a record out of them. The store enforces the
//! same table with conditional writes; [`CaptureStatus::may_become`] is the single statement of
//! it that both the store and the tests read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a capture is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureStatus {
    /// The submitter has the request and holds (or held) a claim to create it at PeekShot; no
    /// request id is stored yet.
    Queued,
    /// PeekShot accepted the capture; its request id is stored and a webhook is awaited.
    Submitted,
    /// PeekShot finished the capture; the record holds the file URL. Final.
    Complete,
    /// The capture cannot succeed; the record holds the reason. Final.
    Failed,
}

impl CaptureStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [CaptureStatus; 4] = [
        CaptureStatus::Queued,
        CaptureStatus::Submitted,
        CaptureStatus::Complete,
        CaptureStatus::Failed,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureStatus::Queued => "QUEUED",
            CaptureStatus::Submitted => "SUBMITTED",
            CaptureStatus::Complete => "COMPLETE",
            CaptureStatus::Failed => "FAILED",
        }
    }

    /// COMPLETE and FAILED end a capture.
    pub fn is_final(self) -> bool {
        matches!(self, CaptureStatus::Complete | CaptureStatus::Failed)
    }

    /// Whether a record in this status may move to `next`. Staying put is not a transition.
    pub fn may_become(self, next: CaptureStatus) -> bool {
        use CaptureStatus::*;
        matches!(
            (self, next),
            (Queued, Submitted)
                | (Queued, Complete)
                | (Queued, Failed)
                | (Submitted, Complete)
                | (Submitted, Failed)
        )
    }

    /// The statuses from which a record may move to `next`; the store turns this into the
    /// condition of its conditional write.
    pub fn predecessors(next: CaptureStatus) -> Vec<CaptureStatus> {
        Self::ALL
            .into_iter()
            .filter(|from| from.may_become(next))
            .collect()
    }
}

impl fmt::Display for CaptureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaptureStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown capture status {s:?}"))
    }
}

/// How a capture ended at PeekShot, as its webhook (or, later, its read endpoint) reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// The image exists.
    Complete {
        /// Where the image is served. PeekShot always sends one; a notice without it is still
        /// recorded as complete rather than dropped, and logged.
        file_url: Option<String>,
        /// Credits PeekShot charged, when it says.
        credits: Option<f64>,
        /// Processing time in seconds, when PeekShot says.
        duration_seconds: Option<f64>,
    },
    /// PeekShot could not capture the page (bot protection, unreachable site, timeout).
    Failed {
        /// PeekShot's error text.
        reason: String,
    },
}

impl Outcome {
    /// The final status this outcome gives a record.
    pub fn status(&self) -> CaptureStatus {
        match self {
            Outcome::Complete { .. } => CaptureStatus::Complete,
            Outcome::Failed { .. } => CaptureStatus::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CaptureStatus::*;
    use super::*;

    #[test]
    fn final_statuses_never_move() {
        for from in [Complete, Failed] {
            for to in CaptureStatus::ALL {
                assert!(!from.may_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn nothing_moves_back_to_queued() {
        for from in CaptureStatus::ALL {
            assert!(!from.may_become(Queued), "{from} -> QUEUED");
        }
    }

    #[test]
    fn queued_may_finish_directly_when_the_webhook_races_ahead() {
        assert!(Queued.may_become(Complete));
        assert!(Queued.may_become(Failed));
    }

    #[test]
    fn submitted_only_moves_forward_to_a_final_status() {
        assert!(Submitted.may_become(Complete));
        assert!(Submitted.may_become(Failed));
        assert!(!Submitted.may_become(Submitted));
        assert!(!Submitted.may_become(Queued));
    }

    #[test]
    fn predecessors_of_final_statuses_are_the_open_ones() {
        assert_eq!(
            CaptureStatus::predecessors(Complete),
            vec![Queued, Submitted]
        );
        assert_eq!(CaptureStatus::predecessors(Submitted), vec![Queued]);
        assert!(CaptureStatus::predecessors(Queued).is_empty());
    }

    #[test]
    fn status_round_trips_through_its_stored_spelling() {
        for status in CaptureStatus::ALL {
            assert_eq!(status.as_str().parse::<CaptureStatus>(), Ok(status));
        }
        assert!("DONE".parse::<CaptureStatus>().is_err());
    }
}
