//! The simulator's shared state: configuration fixed at start-up, and behind
//! one lock the records, the counters, the current fault knobs and the
//! numbering that feeds the fault dice.
//!
//! The lock is a `std::sync::Mutex`, not Tokio's: it is never held across an
//! `.await`, every critical section is a few map operations, and a blocking
//! lock is cheaper for that. Each method takes it once, so a create's record,
//! counters and fault decisions change together.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use url::Url;

use crate::SimError;
use crate::config::SimConfig;
use crate::faults::AnswerFault;
use crate::faults::{
    CaptureFaults, Dice, Faults, GatewayFault, InvalidRate, Stream, decide_capture_faults,
    decide_gateway_fault,
};
use crate::lifecycle::Outcome;
use crate::request::CreateRequest;
use crate::reserved::{BOT_PROTECTION_REASON, ReservedHost};
use crate::stats::Stats;
use crate::store::{CaptureStatus, ListPage, ListQuery, Record, Store};

/// A handle on the simulator's state; cheap to clone into handlers and tasks.
#[derive(Clone)]
pub struct SimState {
    shared: Arc<Shared>,
}

struct Shared {
    config: SimConfig,
    public_url: Url,
    http: reqwest::Client,
    live: Mutex<Live>,
}

/// What changes while the simulator runs.
struct Live {
    store: Store,
    stats: Stats,
    faults: Faults,
    /// The fault dice; a reset may seed them anew.
    dice: Dice,
    /// API requests seen since the last reset: the index of the next one's dice.
    api_requests: u64,
    /// Captures accepted since the last reset: the index of the next one's dice.
    captures: u64,
    /// Bumped by each reset, so that webhook deliveries still running for
    /// cleared captures stop and leave the fresh counters alone.
    generation: u64,
}

/// A create that was accepted, with everything decided about its future.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The new request id.
    pub id: u64,
    /// What the capture costs.
    pub credits: u32,
    /// How the capture will end.
    pub outcome: Outcome,
    /// Whether it finishes at once, its webhook before the create answer.
    pub early: bool,
    /// The injected faults it meets.
    pub faults: CaptureFaults,
    /// Whether its webhook is never sent because its host is `lost-webhook.test`. Kept apart
    /// from the lost-webhook fault so that it is not counted as an injected fault.
    pub webhook_withheld: bool,
    /// The capture's URL as submitted, for the per-URL webhook counter.
    pub url: String,
    /// The reset generation it was accepted in.
    pub generation: u64,
}

impl SimState {
    /// State for a simulator bound to `bound`. Fails if the fault knobs are
    /// not rates or the webhook client cannot be built.
    pub fn new(config: SimConfig, bound: SocketAddr) -> Result<Self, SimError> {
        config.faults.validate()?;
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{bound}"))
                .map_err(|source| SimError::PublicUrl { bound, source })?,
        };
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .user_agent(concat!("peekshot-sim/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SimError::HttpClient)?;
        let seed = config.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, "fault dice seeded (pass --seed to repeat this run)");

        let live = Live {
            store: Store::new(config.first_request_id),
            stats: Stats::default(),
            faults: config.faults.clone(),
            dice: Dice::new(seed),
            api_requests: 0,
            captures: 0,
            generation: 0,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                public_url,
                http,
                live: Mutex::new(live),
            }),
        })
    }

    /// The configuration the simulator started with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// The base of reported file URLs.
    pub fn public_url(&self) -> &Url {
        &self.shared.public_url
    }

    /// The client that delivers webhooks.
    pub fn http(&self) -> &reqwest::Client {
        &self.shared.http
    }

    /// A poisoned lock only means a panic elsewhere left a counter half
    /// updated; the simulator keeps serving with the data as it is.
    fn live(&self) -> MutexGuard<'_, Live> {
        self.shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers the next API request, decides its fault and counts it.
    pub fn next_gateway_fault(&self) -> Option<GatewayFault> {
        let mut live = self.live();
        let index = live.api_requests;
        live.api_requests += 1;
        let mut rng = live.dice.rng(Stream::ApiRequest, index);
        let fault = decide_gateway_fault(&live.faults, &mut rng)?;
        live.stats.fault(fault.kind());
        Some(fault)
    }

    /// Counts a request refused for its API key.
    pub fn count_rejected_api_key(&self) {
        self.live().stats.rejected_api_key += 1;
    }

    /// Counts a create refused for its project.
    pub fn count_rejected_project(&self) {
        self.live().stats.rejected_project += 1;
    }

    /// Records an accepted create: makes the PENDING record, counts it, and
    /// decides its outcome and faults. A reserved host fixes the outcome or
    /// timing it names, whatever the dice say.
    pub fn accept(&self, request: CreateRequest) -> Accepted {
        let reserved = ReservedHost::of(&request.parsed_url);
        let mut live = self.live();

        let index = live.captures;
        live.captures += 1;
        let mut rng = live.dice.rng(Stream::Capture, index);
        let mut faults = decide_capture_faults(&live.faults, &mut rng);
        if reserved == Some(ReservedHost::BotBlocked) {
            faults.failure = None;
        }
        if reserved == Some(ReservedHost::EarlyWebhook) {
            faults.webhook_early = false;
        }
        if reserved == Some(ReservedHost::AnswerLost) {
            faults.failure = None;
            faults.answer = AnswerFault::Dropped;
        }
        let webhook_withheld = reserved == Some(ReservedHost::LostWebhook);
        if webhook_withheld {
            // The point of the host is one dependable outcome that only a read can tell: it
            // completes, in its own time, and nothing is sent.
            faults.failure = None;
            faults.webhook_early = false;
            faults.webhook_lost = false;
            faults.webhook_delay = None;
            faults.webhook_duplicated = false;
        }
        for kind in faults.kinds() {
            live.stats.fault(kind);
        }

        let outcome = match (reserved, faults.failure) {
            (Some(ReservedHost::BotBlocked), _) => Outcome::Failed(BOT_PROTECTION_REASON),
            (_, Some(reason)) => Outcome::Failed(reason),
            _ => Outcome::Complete,
        };
        let early = reserved == Some(ReservedHost::EarlyWebhook) || faults.webhook_early;

        live.stats.create(&request.url);
        let url = request.url.clone();
        let id = live.store.insert(
            request.project_id,
            request.url,
            request.options,
            request.credits,
        );
        Accepted {
            id,
            credits: request.credits,
            outcome,
            early,
            faults,
            webhook_withheld,
            url,
            generation: live.generation,
        }
    }

    /// Counts a read and returns the record, if there is one.
    pub fn read(&self, id: u64) -> Option<Record> {
        let mut live = self.live();
        live.stats.reads += 1;
        live.store.get(id).cloned()
    }

    /// Counts a list request and returns its page.
    pub fn list(&self, query: &ListQuery) -> ListPage {
        let mut live = self.live();
        live.stats.lists += 1;
        live.store.list(query)
    }

    /// The record, without counting a read; for the file endpoint.
    pub fn peek(&self, id: u64) -> Option<Record> {
        self.live().store.get(id).cloned()
    }

    /// Moves a PENDING capture to PROCESSING; nothing if it is gone.
    pub fn mark_processing(&self, id: u64) {
        self.live().store.update(id, |record| {
            if record.status == CaptureStatus::Pending {
                record.status = CaptureStatus::Processing;
            }
        });
    }

    /// Applies a finished capture's outcome to its record and returns the
    /// record as finished, or `None` if it was cleared by a reset.
    pub fn finish(&self, id: u64, outcome: Outcome, duration: String) -> Option<Record> {
        let file_url = format!(
            "{}/files/{id}.png",
            self.shared.public_url.as_str().trim_end_matches('/')
        );
        self.live().store.update(id, |record| {
            match outcome {
                Outcome::Complete => {
                    record.status = CaptureStatus::Complete;
                    record.screenshot_url = Some(file_url);
                    record.screenshot_image_size = Some(crate::files::PLACEHOLDER_PNG.len() as u64);
                }
                Outcome::Failed(reason) => {
                    record.status = CaptureStatus::Failed;
                    record.error = Some(reason.to_owned());
                }
            }
            record.duration = Some(duration);
            record.clone()
        })
    }

    /// Counts a webhook attempt; `false`, counting nothing, when a reset
    /// happened since the capture was accepted and the delivery should stop.
    pub fn count_webhook_attempt(&self, generation: u64) -> bool {
        let mut live = self.live();
        if live.generation != generation {
            return false;
        }
        live.stats.webhook_attempts += 1;
        true
    }

    /// Counts a webhook delivery answered 2xx for a capture of `capture_url`.
    pub fn count_webhook_sent(&self, generation: u64, capture_url: &str) {
        let mut live = self.live();
        if live.generation == generation {
            live.stats.webhooks_sent += 1;
            *live
                .stats
                .webhooks_sent_by_url
                .entry(capture_url.to_owned())
                .or_default() += 1;
        }
    }

    /// Counts a webhook not sent because the capture's host is `lost-webhook.test`.
    pub fn count_webhook_withheld(&self, generation: u64) {
        let mut live = self.live();
        if live.generation == generation {
            live.stats.webhooks_withheld += 1;
        }
    }

    /// Counts a webhook delivery given up.
    pub fn count_webhook_failed(&self, generation: u64) {
        let mut live = self.live();
        if live.generation == generation {
            live.stats.webhooks_failed += 1;
        }
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        self.live().stats.clone()
    }

    /// Every capture record, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.live().store.all()
    }

    /// Clears records and counters and restarts the dice numbering, so a test
    /// run after a reset meets the same faults as one on a fresh simulator
    /// (started with `seed`, when one is given). Request ids keep counting up;
    /// the fault knobs stay as they are.
    pub fn reset(&self, seed: Option<u64>) {
        let mut live = self.live();
        if let Some(seed) = seed {
            live.dice = Dice::new(seed);
        }
        live.store.clear();
        live.stats = Stats::default();
        live.api_requests = 0;
        live.captures = 0;
        live.generation += 1;
    }

    /// The current fault knobs.
    pub fn faults(&self) -> Faults {
        self.live().faults.clone()
    }

    /// Replaces the fault knobs.
    pub fn set_faults(&self, faults: Faults) -> Result<(), InvalidRate> {
        faults.validate()?;
        self.live().faults = faults;
        Ok(())
    }
}
