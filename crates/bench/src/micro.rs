//! The webhook's own code, timed in-process apart from everything else: checking the shared
//! secret (`Secret::matches`), reading the body (`capture::parse_webhook`) and deciding what
//! the delivery means, exactly the calls the webhook makes before it reaches DynamoDB.
//!
//! Each call is timed on its own with a monotonic clock over many iterations of the same
//! payloads the function was sent, so the figure is a per-call distribution, not an average
//! hiding the tail. Compiled with the workspace's release profile, like the functions.

use std::hint::black_box;
use std::time::{Duration, Instant};

use capture::{Progress, parse_webhook};
use capture_adapters::Secret;

/// Times `passes` rounds over `bodies`: one secret check, one parse and one decision per call.
/// Returns one duration per call.
pub fn own_webhook_code(
    bodies: &[String],
    secret: &Secret,
    presented: &str,
    passes: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(bodies.len() * passes);
    for _ in 0..passes {
        for body in bodies {
            let started = Instant::now();
            let decision = decide(black_box(secret), black_box(presented), black_box(body));
            samples.push(started.elapsed());
            black_box(decision);
        }
    }
    samples
}

/// What the webhook decides before it touches the store.
#[derive(Debug, PartialEq)]
enum Decision {
    Unauthorized,
    BadRequest,
    Ignore,
    Record,
}

fn decide(secret: &Secret, presented: &str, body: &str) -> Decision {
    if !secret.matches(presented) {
        return Decision::Unauthorized;
    }
    match parse_webhook(body.as_bytes()) {
        Err(_) => Decision::BadRequest,
        Ok(notice) => match notice.progress {
            Progress::InProgress(_) => Decision::Ignore,
            Progress::Finished(_) => Decision::Record,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_delivery_with_the_right_secret_is_recorded() {
        let secret = Secret::new("0123456789abcdef-secret".into());
        let body = crate::events::completed_body(100_001);
        assert_eq!(
            decide(&secret, "0123456789abcdef-secret", &body),
            Decision::Record
        );
        assert_eq!(decide(&secret, "wrong", &body), Decision::Unauthorized);
        let samples = own_webhook_code(&[body], &secret, "0123456789abcdef-secret", 3);
        assert_eq!(samples.len(), 3);
    }
}
