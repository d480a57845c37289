//! Fault injection: the knobs ([`Faults`]), the seeded dice that decide when a
//! knob fires ([`Dice`]), and the decisions taken for one API request
//! ([`GatewayFault`]) or one accepted capture ([`CaptureFaults`]).
//!
//! Every knob is a rate from 0 to 1 (0 never, 1 always) plus, where it needs
//! one, a duration. The same struct is a set of command-line flags (each with
//! an environment variable) and the JSON body of `PUT /_sim/faults`, so the
//! names are the same in both places: `--fault-5xx-rate` is `fault_5xx_rate`.
//!
//! Decisions are repeatable. The dice for the n-th API request and for the
//! n-th accepted capture are seeded from `(seed, stream, n)`, and every
//! decision draws its numbers in a fixed order whether or not its knob is on.
//! So a client that sends the same requests in the same order to a simulator
//! started with the same `--seed` and knobs meets the same faults, and turning
//! one knob does not shift the decisions of another. Concurrent clients make
//! the order of arrival, and so the numbering, depend on scheduling.

use std::time::Duration;

use axum::http::StatusCode;
use clap::Args;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// `Retry-After` seconds sent with an injected 429 unless configured.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;
/// Extra delay of an injected slow answer unless configured.
pub const DEFAULT_SLOW_MS: u64 = 2_000;
/// How long an injected hang holds a connection unless configured; longer than
/// the timeouts HTTP clients are usually given, so the client gives up first.
pub const DEFAULT_HANG_MS: u64 = 30_000;
/// Extra delay of an injected late webhook unless configured.
pub const DEFAULT_WEBHOOK_DELAY_MS: u64 = 3_000;

/// The fault knobs of a run. All rates default to 0, so a simulator without
/// fault flags behaves like a healthy PeekShot.
///
/// "API request" below means any call under `/api/v1` (create, read, list);
/// the `/_sim` control endpoints and `/files` never fail on purpose.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Rate of API requests answered 500, 502 (with an HTML body, as a load
    /// balancer would) or 503, without acting on them.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_5XX_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_5xx_rate: f64,

    /// Rate of API requests answered 429 with a `Retry-After` header, without
    /// acting on them.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_429_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_429_rate: f64,

    /// Seconds announced in the `Retry-After` header of an injected 429.
    #[arg(long, env = "PEEKSHOT_SIM_RETRY_AFTER_SECS", default_value_t = DEFAULT_RETRY_AFTER_SECS)]
    pub retry_after_secs: u64,

    /// Rate of API requests answered normally but only after `slow_ms`.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_SLOW_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_slow_rate: f64,

    /// Extra delay of a slow answer, in milliseconds.
    #[arg(long, env = "PEEKSHOT_SIM_SLOW_MS", default_value_t = DEFAULT_SLOW_MS)]
    pub slow_ms: u64,

    /// Rate of API requests held for `hang_ms` and then answered 504, without
    /// acting on them: a client with a shorter timeout sees a timeout.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_HANG_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_hang_rate: f64,

    /// How long a hung request (and a held create answer) is held, in
    /// milliseconds.
    #[arg(long, env = "PEEKSHOT_SIM_HANG_MS", default_value_t = DEFAULT_HANG_MS)]
    pub hang_ms: u64,

    /// Rate of accepted captures that end FAILED with a realistic reason
    /// (unreachable site, navigation timeout, bot protection).
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_CAPTURE_FAILED_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_capture_failed_rate: f64,

    /// Rate of captures whose webhook is delivered twice.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_WEBHOOK_DUPLICATE_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_webhook_duplicate_rate: f64,

    /// Rate of captures whose webhook is sent `webhook_delay_ms` late.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_WEBHOOK_DELAY_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_webhook_delay_rate: f64,

    /// Extra delay of a late webhook, in milliseconds.
    #[arg(long, env = "PEEKSHOT_SIM_WEBHOOK_DELAY_MS", default_value_t = DEFAULT_WEBHOOK_DELAY_MS)]
    pub webhook_delay_ms: u64,

    /// Rate of captures that finish at once and whose webhook is delivered
    /// before the create request is answered, as for `early-webhook.test`.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_WEBHOOK_EARLY_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_webhook_early_rate: f64,

    /// Rate of captures whose webhook is never sent.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_WEBHOOK_LOST_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_webhook_lost_rate: f64,

    /// Rate of creates that are accepted (record created and counted, capture
    /// and webhook proceed) but whose connection is closed without an answer.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_CREATE_DROPPED_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_create_dropped_rate: f64,

    /// Rate of creates that are accepted but whose 201 answer is held for
    /// `hang_ms` first, past the timeout of a typical client.
    #[arg(long, env = "PEEKSHOT_SIM_FAULT_CREATE_HELD_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fault_create_held_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fault_5xx_rate: 0.0,
            fault_429_rate: 0.0,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            fault_slow_rate: 0.0,
            slow_ms: DEFAULT_SLOW_MS,
            fault_hang_rate: 0.0,
            hang_ms: DEFAULT_HANG_MS,
            fault_capture_failed_rate: 0.0,
            fault_webhook_duplicate_rate: 0.0,
            fault_webhook_delay_rate: 0.0,
            webhook_delay_ms: DEFAULT_WEBHOOK_DELAY_MS,
            fault_webhook_early_rate: 0.0,
            fault_webhook_lost_rate: 0.0,
            fault_create_dropped_rate: 0.0,
            fault_create_held_rate: 0.0,
        }
    }
}

/// A fault knob set to something that is not a rate.
#[derive(Debug, thiserror::Error)]
#[error("{knob} must be a rate from 0 to 1, got {value}")]
pub struct InvalidRate {
    /// The knob's name, as in the JSON body.
    pub knob: &'static str,
    /// The value it was given.
    pub value: f64,
}

impl Faults {
    /// Checks that every rate lies in 0..=1; clap checks flags on its own, this
    /// is for bodies of `PUT /_sim/faults` and configs built in code.
    pub fn validate(&self) -> Result<(), InvalidRate> {
        let rates = [
            ("fault_5xx_rate", self.fault_5xx_rate),
            ("fault_429_rate", self.fault_429_rate),
            ("fault_slow_rate", self.fault_slow_rate),
            ("fault_hang_rate", self.fault_hang_rate),
            ("fault_capture_failed_rate", self.fault_capture_failed_rate),
            (
                "fault_webhook_duplicate_rate",
                self.fault_webhook_duplicate_rate,
            ),
            ("fault_webhook_delay_rate", self.fault_webhook_delay_rate),
            ("fault_webhook_early_rate", self.fault_webhook_early_rate),
            ("fault_webhook_lost_rate", self.fault_webhook_lost_rate),
            ("fault_create_dropped_rate", self.fault_create_dropped_rate),
            ("fault_create_held_rate", self.fault_create_held_rate),
        ];
        match rates.into_iter().find(|(_, value)| !is_rate(*value)) {
            Some((knob, value)) => Err(InvalidRate { knob, value }),
            None => Ok(()),
        }
    }
}

fn is_rate(value: f64) -> bool {
    (0.0..=1.0).contains(&value)
}

/// clap's parser for the rate flags, so that `--fault-5xx-rate 3` fails at
/// start-up instead of meaning "always".
fn parse_rate(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if is_rate(value) {
        Ok(value)
    } else {
        Err(format!("{value} is not a rate from 0 to 1"))
    }
}

/// The kinds of injected fault, as counted under `faultsInjected` in
/// `GET /_sim/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An API request answered 500, 502 or 503.
    ServerError,
    /// An API request answered 429.
    RateLimited,
    /// An API request answered after an extra delay.
    SlowAnswer,
    /// An API request held and then answered 504.
    Hang,
    /// A capture made to end FAILED.
    CaptureFailed,
    /// A webhook delivered twice.
    WebhookDuplicated,
    /// A webhook sent late.
    WebhookDelayed,
    /// A webhook delivered before the create answer.
    WebhookEarly,
    /// A webhook never sent.
    WebhookLost,
    /// A create accepted but its connection closed without an answer.
    CreateAnswerDropped,
    /// A create accepted but its answer held.
    CreateAnswerHeld,
}

impl FaultKind {
    /// The key under which the kind is counted in the stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerError => "serverError",
            Self::RateLimited => "rateLimited",
            Self::SlowAnswer => "slowAnswer",
            Self::Hang => "hang",
            Self::CaptureFailed => "captureFailed",
            Self::WebhookDuplicated => "webhookDuplicated",
            Self::WebhookDelayed => "webhookDelayed",
            Self::WebhookEarly => "webhookEarly",
            Self::WebhookLost => "webhookLost",
            Self::CreateAnswerDropped => "createAnswerDropped",
            Self::CreateAnswerHeld => "createAnswerHeld",
        }
    }
}

/// So that a fault kind can be named in logs by the same key as in the stats.
impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which sequence a decision belongs to; part of the dice's seed so that API
/// requests and accepted captures each have their own repeatable numbering.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Every request under `/api/v1`, in order of arrival.
    ApiRequest = 1,
    /// Every accepted create, in order of acceptance.
    Capture = 2,
}

/// Seeded dice: one fresh generator per decision, keyed by stream and index.
#[derive(Debug, Clone, Copy)]
pub struct Dice {
    seed: u64,
}

impl Dice {
    /// Dice that repeat their decisions for the same `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The seed, logged at start-up so that a run can be replayed.
    pub fn seed(self) -> u64 {
        self.seed
    }

    /// The generator for the `index`-th decision of `stream`. The 32-byte
    /// ChaCha key holds seed, stream and index side by side, so no two
    /// decisions share a generator.
    pub fn rng(self, stream: Stream, index: u64) -> StdRng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&(stream as u64).to_le_bytes());
        key[16..24].copy_from_slice(&index.to_le_bytes());
        StdRng::from_seed(key)
    }
}

/// What happens to one API request before it reaches its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayFault {
    /// Answer with this 5xx status and do nothing else.
    ServerError(StatusCode),
    /// Answer 429 with `Retry-After: secs` and do nothing else.
    RateLimited {
        /// Seconds for the `Retry-After` header.
        secs: u64,
    },
    /// Hold the connection this long, then answer 504 and do nothing else.
    Hang(Duration),
    /// Wait this long, then handle the request normally.
    Slow(Duration),
}

impl GatewayFault {
    /// The kind under which this fault is counted.
    pub fn kind(self) -> FaultKind {
        match self {
            Self::ServerError(_) => FaultKind::ServerError,
            Self::RateLimited { .. } => FaultKind::RateLimited,
            Self::Hang(_) => FaultKind::Hang,
            Self::Slow(_) => FaultKind::SlowAnswer,
        }
    }
}

/// Decides the fault, if any, for one API request. Refusals (5xx, 429) come
/// before delays because a refused request has nothing left to delay.
pub fn decide_gateway_fault(faults: &Faults, rng: &mut StdRng) -> Option<GatewayFault> {
    let server_error = rng.random::<f64>() < faults.fault_5xx_rate;
    let status = match rng.random_range(0..3u8) {
        0 => StatusCode::INTERNAL_SERVER_ERROR,
        1 => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let rate_limited = rng.random::<f64>() < faults.fault_429_rate;
    let hang = rng.random::<f64>() < faults.fault_hang_rate;
    let slow = rng.random::<f64>() < faults.fault_slow_rate;

    if server_error {
        Some(GatewayFault::ServerError(status))
    } else if rate_limited {
        Some(GatewayFault::RateLimited {
            secs: faults.retry_after_secs,
        })
    } else if hang {
        Some(GatewayFault::Hang(Duration::from_millis(faults.hang_ms)))
    } else if slow {
        Some(GatewayFault::Slow(Duration::from_millis(faults.slow_ms)))
    } else {
        None
    }
}

/// Reasons given to captures failed by `fault_capture_failed_rate`, worded as
/// a capture service words them.
pub const CAPTURE_FAILURE_REASONS: [&str; 3] = [
    "Capture failed: the site could not be reached (DNS lookup or connection refused)",
    "Capture failed: navigation timed out after 30 seconds",
    crate::reserved::BOT_PROTECTION_REASON,
];

/// What goes wrong, on purpose, with one accepted capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFaults {
    /// The capture ends FAILED with this reason.
    pub failure: Option<&'static str>,
    /// The webhook is delivered twice.
    pub webhook_duplicated: bool,
    /// The webhook is sent this much later.
    pub webhook_delay: Option<Duration>,
    /// The capture finishes at once and its webhook is delivered before the
    /// create answer.
    pub webhook_early: bool,
    /// The webhook is never sent.
    pub webhook_lost: bool,
    /// What happens to the create answer.
    pub answer: AnswerFault,
}

/// What happens to the answer of an accepted create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AnswerFault {
    /// Answered at once.
    #[default]
    None,
    /// The connection is closed without an answer.
    Dropped,
    /// Answered after this hold.
    Held(Duration),
}

impl CaptureFaults {
    /// The kinds of fault this decision injects, for the stats.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut kinds = Vec::new();
        if self.failure.is_some() {
            kinds.push(FaultKind::CaptureFailed);
        }
        if self.webhook_duplicated {
            kinds.push(FaultKind::WebhookDuplicated);
        }
        if self.webhook_delay.is_some() {
            kinds.push(FaultKind::WebhookDelayed);
        }
        if self.webhook_early {
            kinds.push(FaultKind::WebhookEarly);
        }
        if self.webhook_lost {
            kinds.push(FaultKind::WebhookLost);
        }
        match self.answer {
            AnswerFault::None => {}
            AnswerFault::Dropped => kinds.push(FaultKind::CreateAnswerDropped),
            AnswerFault::Held(_) => kinds.push(FaultKind::CreateAnswerHeld),
        }
        kinds
    }
}

/// Decides the faults of one accepted capture. A lost webhook makes the
/// duplicate and delay knobs moot, so they are not reported alongside it; a
/// dropped answer wins over a held one.
pub fn decide_capture_faults(faults: &Faults, rng: &mut StdRng) -> CaptureFaults {
    let failed = rng.random::<f64>() < faults.fault_capture_failed_rate;
    let reason = CAPTURE_FAILURE_REASONS[rng.random_range(0..CAPTURE_FAILURE_REASONS.len())];
    let duplicated = rng.random::<f64>() < faults.fault_webhook_duplicate_rate;
    let delayed = rng.random::<f64>() < faults.fault_webhook_delay_rate;
    let early = rng.random::<f64>() < faults.fault_webhook_early_rate;
    let lost = rng.random::<f64>() < faults.fault_webhook_lost_rate;
    let dropped = rng.random::<f64>() < faults.fault_create_dropped_rate;
    let held = rng.random::<f64>() < faults.fault_create_held_rate;

    let answer = if dropped {
        AnswerFault::Dropped
    } else if held {
        AnswerFault::Held(Duration::from_millis(faults.hang_ms))
    } else {
        AnswerFault::None
    };
    CaptureFaults {
        failure: failed.then_some(reason),
        webhook_duplicated: duplicated && !lost,
        webhook_delay: (delayed && !lost).then(|| Duration::from_millis(faults.webhook_delay_ms)),
        webhook_early: early,
        webhook_lost: lost,
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_stream_and_index_give_the_same_decisions() {
        let faults = Faults {
            fault_5xx_rate: 0.5,
            fault_capture_failed_rate: 0.5,
            ..Faults::default()
        };
        let dice = Dice::new(7);
        for index in 0..50 {
            assert_eq!(
                decide_gateway_fault(&faults, &mut dice.rng(Stream::ApiRequest, index)),
                decide_gateway_fault(&faults, &mut dice.rng(Stream::ApiRequest, index)),
            );
            assert_eq!(
                decide_capture_faults(&faults, &mut dice.rng(Stream::Capture, index)),
                decide_capture_faults(&faults, &mut dice.rng(Stream::Capture, index)),
            );
        }
    }

    #[test]
    fn zero_rates_never_fire_and_full_rates_always_fire() {
        let dice = Dice::new(1);
        let calm = Faults::default();
        let stormy = Faults {
            fault_5xx_rate: 1.0,
            fault_capture_failed_rate: 1.0,
            fault_webhook_lost_rate: 1.0,
            ..Faults::default()
        };
        for index in 0..50 {
            let mut rng = dice.rng(Stream::ApiRequest, index);
            assert_eq!(decide_gateway_fault(&calm, &mut rng), None);
            let mut rng = dice.rng(Stream::ApiRequest, index);
            assert!(matches!(
                decide_gateway_fault(&stormy, &mut rng),
                Some(GatewayFault::ServerError(_))
            ));
            let mut rng = dice.rng(Stream::Capture, index);
            let decided = decide_capture_faults(&stormy, &mut rng);
            assert!(decided.failure.is_some() && decided.webhook_lost);
        }
    }

    #[test]
    fn turning_one_knob_does_not_shift_another() {
        let dice = Dice::new(99);
        let only_failures = Faults {
            fault_capture_failed_rate: 0.5,
            ..Faults::default()
        };
        let failures_and_duplicates = Faults {
            fault_webhook_duplicate_rate: 0.5,
            ..only_failures.clone()
        };
        for index in 0..50 {
            let a = decide_capture_faults(&only_failures, &mut dice.rng(Stream::Capture, index));
            let b = decide_capture_faults(
                &failures_and_duplicates,
                &mut dice.rng(Stream::Capture, index),
            );
            assert_eq!(a.failure, b.failure);
        }
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        let faults = Faults {
            fault_429_rate: 1.5,
            ..Faults::default()
        };
        let error = faults.validate().err().map(|e| e.knob);
        assert_eq!(error, Some("fault_429_rate"));
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("NaN").is_err());
        assert_eq!(parse_rate("0.25"), Ok(0.25));
    }
}
