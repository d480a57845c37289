//! The global pace of creates at PeekShot, shared by every submitter invocation.
//!
//! PeekShot publishes no rate limit, but it has one (it answers 429). The event source's
//! `MaximumConcurrency` and `SUBMIT_CONCURRENCY` bound the calls *in flight*, not the calls
//! *per second*: against a fast PeekShot they submit as fast as it answers. So every create
//! first takes a slot from one shared token bucket, kept in a single store item.
//!
//! The bucket is GCRA (the generic cell rate algorithm), which keeps one number: the
//! *theoretical arrival time* `tat`, the moment at which the bucket would be empty again if
//! nobody took another slot. At the configured rate each slot costs one `interval`; a burst of
//! `burst` slots is allowed at once (`tolerance = (burst - 1) * interval`). A slot taken when
//! the bucket stands at `base = max(tat, now)` may start at `base - tolerance`, and moves `tat`
//! to `base + interval`.
//!
//! Slots are *reserved*, not only granted: a batch asks for as many slots as it has valid
//! messages, in one conditional update, and gets each one's start time, up to `max_wait`
//! ahead. Its messages wait for their slot inside the invocation, so a steady backlog is paced
//! without sending messages back to the queue (each return would use up one of their receives
//! and push them towards the dead-letter queue). Only what does not fit in `max_wait` is
//! deferred: put back on the queue until about when its slot would come.
//!
//! The update is one of two, with conditions that never both hold ([`PaceStep`]): *extend* a
//! bucket that is in use (`tat` not too far in the past, not too far in the future), or
//! *restart* one that stood idle. Each answer carries the item as it now is, so a refused
//! update tells the next attempt which of the two to send; a process keeps the last state it
//! saw to guess right the first time.
//!
//! A 429 from PeekShot slows the pace down ([`Pacer::slow_down`]): no slot starts before the
//! `Retry-After` has passed, and the interval is multiplied by a factor that doubles with each
//! 429 (at most once per [`SLOW_STEP`], up to [`MAX_SLOW_FACTOR`]), holds for [`SLOW_HOLD`],
//! then halves with every further [`SLOW_HOLD`] without a 429: multiplicative decrease, and a
//! recovery that needs no writes, since every reader computes the factor from the time.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::failure::Failure;

/// The most a run of 429s can slow the pace down: to one sixteenth of the configured rate.
pub const MAX_SLOW_FACTOR: u32 = 16;
/// How long a slow-down lasts at full strength, and how long each halving of it takes after.
pub const SLOW_HOLD: Duration = Duration::from_secs(10);
/// The shortest time between two doublings: a burst of 429s answering the same burst of
/// creates counts as one signal.
pub const SLOW_STEP: Duration = Duration::from_secs(1);
/// How long the pace pauses after a 429 that named no `Retry-After`.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// How often a reservation tries again after the bucket moved under it.
const STEP_ATTEMPTS: usize = 4;

/// The configured pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacePolicy {
    /// Creates per second across every submitter invocation.
    pub rate_per_second: f64,
    /// Creates that may start at once after the bucket stood idle.
    pub burst: u32,
    /// How far ahead a batch may reserve slots; its messages wait that long at most.
    pub max_wait: Duration,
}

impl PacePolicy {
    /// Milliseconds between two slots at the configured rate (at least 1).
    fn base_interval_ms(&self) -> u64 {
        let rate = self.rate_per_second.max(f64::MIN_POSITIVE);
        ((1000.0 / rate).round() as u64).max(1)
    }
}

/// The bucket as the store holds it. All times are epoch milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceState {
    /// The theoretical arrival time; `None` for a bucket never used.
    pub tat_ms: Option<u64>,
    /// The slow-down factor the last 429 set (1 when none).
    pub slow_factor: u32,
    /// Until when that factor holds at full strength.
    pub slow_until_ms: u64,
}

impl PaceState {
    /// The slow-down factor in force at `now_ms`: the stored one until `slow_until_ms`, then
    /// halved for every [`SLOW_HOLD`] that has passed since.
    pub fn factor_at(&self, now_ms: u64) -> u32 {
        let factor = self.slow_factor.clamp(1, MAX_SLOW_FACTOR);
        if now_ms < self.slow_until_ms {
            return factor;
        }
        let hold_ms = SLOW_HOLD.as_millis() as u64;
        let halvings = 1 + (now_ms - self.slow_until_ms) / hold_ms;
        (factor >> halvings.min(31)).max(1)
    }

    /// Whether the last slow-down was set less than [`SLOW_STEP`] before `now_ms`.
    fn slowed_just_now(&self, now_ms: u64) -> bool {
        let set_at_ms = self
            .slow_until_ms
            .saturating_sub(SLOW_HOLD.as_millis() as u64);
        self.slow_factor > 1 && now_ms < set_at_ms + SLOW_STEP.as_millis() as u64
    }
}

/// One conditional update of the bucket. The two conditions are disjoint: at any moment the
/// store accepts at most one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceStep {
    /// If `tat` exists and lies in `lowest_ms..=highest_ms`, add `cost_ms` to it.
    Extend {
        /// The bucket's lowest acceptable `tat` (now, less the burst tolerance).
        lowest_ms: u64,
        /// Its highest acceptable `tat`, so that the last slot still starts within the wait.
        highest_ms: u64,
        /// Slots times interval.
        cost_ms: u64,
    },
    /// If `tat` is absent or below `below_ms` (the bucket stood idle), set it to `tat_ms`.
    Restart {
        /// The same bound as `Extend::lowest_ms`.
        below_ms: u64,
        /// The new `tat`: the idle bucket's base plus the cost of the slots taken.
        tat_ms: u64,
    },
}

/// What the store did with a [`PaceStep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceAnswer {
    /// The condition held; the bucket as it is after the update.
    Moved(PaceState),
    /// The condition failed; the bucket as it is, unchanged.
    Refused(PaceState),
}

/// The store item behind the bucket. Every method is one conditional write that returns the
/// item, so no read ever precedes a write.
#[async_trait]
pub trait PaceStore: Send + Sync {
    /// Applies `step` if its condition holds.
    async fn step(&self, step: PaceStep) -> Result<PaceAnswer, Failure>;

    /// Sets the slow-down (`factor` until `until_ms`) and moves `tat` to at least
    /// `tat_at_least_ms`.
    async fn slow_down(
        &self,
        factor: u32,
        until_ms: u64,
        tat_at_least_ms: u64,
    ) -> Result<(), Failure>;
}

/// The slots a batch got.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reservation {
    /// When each granted create may start, earliest first (epoch milliseconds).
    pub starts_ms: Vec<u64>,
    /// For each message that got no slot, in order: how long to keep it off the queue so that
    /// it comes back about when a slot would be free for it.
    pub deferrals: Vec<Duration>,
}

/// What the submitter asks of the pace: slots before creates, and a slow-down after a 429.
#[async_trait]
pub trait Pace: Send + Sync {
    /// Reserves up to `wanted` slots starting no later than `wait` from now.
    async fn reserve(&self, wanted: usize, wait: Duration) -> Result<Reservation, Failure>;

    /// Slows the pace after PeekShot answered 429, pausing for `retry_after` (or
    /// [`DEFAULT_PAUSE`]).
    async fn slow_down(&self, retry_after: Option<Duration>) -> Result<(), Failure>;
}

/// No global pace: every slot starts now. For deployments that set no rate, and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unpaced;

#[async_trait]
impl Pace for Unpaced {
    async fn reserve(&self, wanted: usize, _wait: Duration) -> Result<Reservation, Failure> {
        Ok(Reservation {
            starts_ms: vec![epoch_ms(SystemTime::now()); wanted],
            deferrals: Vec::new(),
        })
    }

    async fn slow_down(&self, _retry_after: Option<Duration>) -> Result<(), Failure> {
        Ok(())
    }
}

/// The GCRA bucket over a [`PaceStore`], with the last state this process saw.
#[derive(Debug)]
pub struct Pacer<S> {
    store: S,
    policy: PacePolicy,
    seen: Mutex<PaceState>,
}

impl<S: PaceStore> Pacer<S> {
    /// A pacer for `policy` over `store`.
    pub fn new(store: S, policy: PacePolicy) -> Self {
        Self {
            store,
            policy,
            seen: Mutex::new(PaceState::default()),
        }
    }

    /// The policy this pacer applies.
    pub fn policy(&self) -> &PacePolicy {
        &self.policy
    }

    /// [`Pace::reserve`] at an explicit time, for tests.
    pub async fn reserve_at(
        &self,
        now_ms: u64,
        wanted: usize,
        wait: Duration,
    ) -> Result<Reservation, Failure> {
        let wait = wait.min(self.policy.max_wait);
        let mut state = self.seen();
        for _ in 0..STEP_ATTEMPTS {
            let plan = Plan::new(&self.policy, &state, now_ms, wanted, wait);
            let Some(step) = plan.step else {
                return Ok(plan.reservation(now_ms, 0));
            };
            match self.store.step(step).await? {
                PaceAnswer::Moved(after) => {
                    self.remember(after);
                    let base = match step {
                        PaceStep::Extend { cost_ms, .. } => {
                            after.tat_ms.unwrap_or(now_ms).saturating_sub(cost_ms)
                        }
                        PaceStep::Restart { .. } => plan.base_ms,
                    };
                    return Ok(plan.with_base(base).reservation(now_ms, plan.granted));
                }
                PaceAnswer::Refused(current) => {
                    self.remember(current);
                    state = current;
                }
            }
        }
        // Other invocations kept moving the bucket: defer everything to a little later.
        let plan = Plan::new(&self.policy, &state, now_ms, wanted, Duration::ZERO);
        Ok(plan.reservation(now_ms, 0))
    }

    /// [`Pace::slow_down`] at an explicit time, for tests.
    pub async fn slow_down_at(
        &self,
        now_ms: u64,
        retry_after: Option<Duration>,
    ) -> Result<(), Failure> {
        let seen = self.seen();
        let factor = if seen.slowed_just_now(now_ms) {
            seen.factor_at(now_ms)
        } else {
            (seen.factor_at(now_ms) * 2).min(MAX_SLOW_FACTOR)
        };
        let until_ms = now_ms + SLOW_HOLD.as_millis() as u64;
        let pause_ms = retry_after.unwrap_or(DEFAULT_PAUSE).as_millis() as u64;
        let tolerance_ms = Plan::tolerance_ms(
            &self.policy,
            self.policy.base_interval_ms() * u64::from(factor),
        );
        self.store
            .slow_down(factor, until_ms, now_ms + pause_ms + tolerance_ms)
            .await?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.slow_factor = factor;
        seen.slow_until_ms = until_ms;
        Ok(())
    }

    fn seen(&self) -> PaceState {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, state: PaceState) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }
}

#[async_trait]
impl<S: PaceStore> Pace for Pacer<S> {
    async fn reserve(&self, wanted: usize, wait: Duration) -> Result<Reservation, Failure> {
        self.reserve_at(epoch_ms(SystemTime::now()), wanted, wait)
            .await
    }

    async fn slow_down(&self, retry_after: Option<Duration>) -> Result<(), Failure> {
        self.slow_down_at(epoch_ms(SystemTime::now()), retry_after)
            .await
    }
}

/// One attempt's arithmetic: from the bucket as last seen, how many slots fit and which update
/// takes them.
#[derive(Debug, Clone, Copy)]
struct Plan {
    wanted: usize,
    granted: usize,
    interval_ms: u64,
    tolerance_ms: u64,
    /// `max(tat, now)`: the bucket's level the slots are taken from.
    base_ms: u64,
    step: Option<PaceStep>,
}

impl Plan {
    fn new(
        policy: &PacePolicy,
        state: &PaceState,
        now_ms: u64,
        wanted: usize,
        wait: Duration,
    ) -> Self {
        let interval_ms = policy.base_interval_ms() * u64::from(state.factor_at(now_ms));
        let tolerance_ms = Self::tolerance_ms(policy, interval_ms);
        let idle = state.tat_ms.is_none_or(|tat| tat < now_ms);
        let base_ms = state.tat_ms.unwrap_or(now_ms).max(now_ms);

        // Slot i starts at base + i * interval - tolerance (or now, if that is earlier), and
        // the last slot granted must start by now + wait.
        let horizon_ms = now_ms + wait.as_millis() as u64 + tolerance_ms;
        let fits = horizon_ms
            .checked_sub(base_ms)
            .map_or(0, |room| 1 + room / interval_ms);
        let granted = wanted.min(usize::try_from(fits).unwrap_or(usize::MAX));

        let step = (granted > 0).then(|| {
            let cost_ms = granted as u64 * interval_ms;
            if idle {
                PaceStep::Restart {
                    below_ms: now_ms,
                    tat_ms: now_ms + cost_ms,
                }
            } else {
                PaceStep::Extend {
                    lowest_ms: now_ms,
                    highest_ms: horizon_ms - (granted as u64 - 1) * interval_ms,
                    cost_ms,
                }
            }
        });
        Self {
            wanted,
            granted,
            interval_ms,
            tolerance_ms,
            base_ms,
            step,
        }
    }

    fn tolerance_ms(policy: &PacePolicy, interval_ms: u64) -> u64 {
        u64::from(policy.burst.max(1) - 1) * interval_ms
    }

    fn with_base(mut self, base_ms: u64) -> Self {
        self.base_ms = base_ms;
        self
    }

    /// The start of each of the first `granted` slots from `base_ms`, and deferrals for the
    /// rest that bring each back about when its slot would start, `max_wait` early at most.
    fn reservation(&self, now_ms: u64, granted: usize) -> Reservation {
        let start = |i: usize| {
            (self.base_ms + i as u64 * self.interval_ms)
                .saturating_sub(self.tolerance_ms)
                .max(now_ms)
        };
        Reservation {
            starts_ms: (0..granted).map(start).collect(),
            deferrals: (granted..self.wanted)
                .map(|i| Duration::from_millis(start(i) - now_ms))
                .collect(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    //! The bucket against an in-memory store that applies each step's condition the way the
    //! DynamoDB store's condition expressions do; `tests/pipeline.rs` runs the same steps
    //! against moto.

    use super::*;

    /// One item, updated atomically, conditions checked as DynamoDB would.
    #[derive(Default)]
    struct MemoryStore {
        item: Mutex<PaceState>,
        steps: Mutex<Vec<PaceStep>>,
    }

    impl MemoryStore {
        fn state(&self) -> PaceState {
            *self.item.lock().unwrap()
        }

        fn steps(&self) -> Vec<PaceStep> {
            self.steps.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl PaceStore for MemoryStore {
        async fn step(&self, step: PaceStep) -> Result<PaceAnswer, Failure> {
            self.steps.lock().unwrap().push(step);
            let mut item = self.item.lock().unwrap();
            let holds = match (step, item.tat_ms) {
                (
                    PaceStep::Extend {
                        lowest_ms,
                        highest_ms,
                        ..
                    },
                    Some(tat),
                ) => (lowest_ms..=highest_ms).contains(&tat),
                (PaceStep::Extend { .. }, None) => false,
                (PaceStep::Restart { below_ms, .. }, tat) => tat.is_none_or(|t| t < below_ms),
            };
            if !holds {
                return Ok(PaceAnswer::Refused(*item));
            }
            item.tat_ms = Some(match step {
                PaceStep::Extend { cost_ms, .. } => item.tat_ms.unwrap_or(0) + cost_ms,
                PaceStep::Restart { tat_ms, .. } => tat_ms,
            });
            Ok(PaceAnswer::Moved(*item))
        }

        async fn slow_down(
            &self,
            factor: u32,
            until_ms: u64,
            tat_at_least_ms: u64,
        ) -> Result<(), Failure> {
            let mut item = self.item.lock().unwrap();
            item.slow_factor = factor;
            item.slow_until_ms = until_ms;
            item.tat_ms = Some(item.tat_ms.unwrap_or(0).max(tat_at_least_ms));
            Ok(())
        }
    }

    #[async_trait]
    impl PaceStore for std::sync::Arc<MemoryStore> {
        async fn step(&self, step: PaceStep) -> Result<PaceAnswer, Failure> {
            self.as_ref().step(step).await
        }

        async fn slow_down(
            &self,
            factor: u32,
            until_ms: u64,
            at_least: u64,
        ) -> Result<(), Failure> {
            self.as_ref().slow_down(factor, until_ms, at_least).await
        }
    }

    /// Ten creates a second, bursts of five, up to ten seconds of waiting.
    fn policy() -> PacePolicy {
        PacePolicy {
            rate_per_second: 10.0,
            burst: 5,
            max_wait: Duration::from_secs(10),
        }
    }

    const T0: u64 = 1_800_000_000_000;
    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn an_idle_bucket_starts_a_burst_at_once_then_one_slot_per_interval() {
        let pacer = Pacer::new(MemoryStore::default(), policy());

        let got = pacer.reserve_at(T0, 8, WAIT).await.unwrap();

        let offsets: Vec<u64> = got.starts_ms.iter().map(|s| s - T0).collect();
        assert_eq!(offsets, [0, 0, 0, 0, 0, 100, 200, 300]);
        assert!(got.deferrals.is_empty());
        assert_eq!(pacer.store.state().tat_ms, Some(T0 + 800));
    }

    #[tokio::test]
    async fn a_second_batch_queues_behind_the_first() {
        let pacer = Pacer::new(MemoryStore::default(), policy());
        pacer.reserve_at(T0, 10, WAIT).await.unwrap();

        let got = pacer.reserve_at(T0 + 50, 3, WAIT).await.unwrap();

        // The first batch moved tat to T0 + 1000; with a tolerance of 400 ms the next slot
        // starts at T0 + 600.
        let offsets: Vec<u64> = got.starts_ms.iter().map(|s| s - T0).collect();
        assert_eq!(offsets, [600, 700, 800]);
    }

    #[tokio::test]
    async fn what_does_not_fit_in_the_wait_is_deferred_until_its_slot() {
        let pacer = Pacer::new(MemoryStore::default(), policy());

        let got = pacer
            .reserve_at(T0, 10, Duration::from_millis(300))
            .await
            .unwrap();

        // Five at once, then 100, 200 and 300 ms later; the last two would start at 400 and
        // 500 ms, past the 300 ms wait.
        assert_eq!(got.starts_ms.len(), 8);
        assert_eq!(
            got.deferrals,
            [Duration::from_millis(400), Duration::from_millis(500)]
        );
        assert_eq!(pacer.store.state().tat_ms, Some(T0 + 800));
    }

    #[tokio::test]
    async fn a_full_bucket_grants_nothing_and_defers_everything() {
        let pacer = Pacer::new(MemoryStore::default(), policy());
        pacer.reserve_at(T0, 105, WAIT).await.unwrap();

        let got = pacer.reserve_at(T0, 2, WAIT).await.unwrap();

        assert!(got.starts_ms.is_empty());
        assert_eq!(got.deferrals.len(), 2);
        assert!(got.deferrals[0] > WAIT, "{:?}", got.deferrals);
    }

    #[tokio::test]
    async fn a_bucket_moved_by_another_process_is_retried_with_the_other_step() {
        let store = MemoryStore::default();
        *store.item.lock().unwrap() = PaceState {
            tat_ms: Some(T0 + 2_000),
            ..PaceState::default()
        };
        // This process last saw the bucket idle, so it tries a restart first.
        let pacer = Pacer::new(store, policy());

        let got = pacer.reserve_at(T0, 1, WAIT).await.unwrap();

        assert_eq!(got.starts_ms, [T0 + 1_600]);
        let steps = pacer.store.steps();
        assert!(matches!(steps[0], PaceStep::Restart { .. }), "{steps:?}");
        assert!(matches!(steps[1], PaceStep::Extend { .. }), "{steps:?}");
    }

    #[tokio::test]
    async fn many_processes_together_never_start_more_than_the_rate_allows() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let pacers: Vec<Pacer<std::sync::Arc<MemoryStore>>> = (0..4)
            .map(|_| Pacer::new(store.clone(), policy()))
            .collect();

        // Four processes ask for batches of 1 to 10 every 250 ms for a minute, each from its
        // own (stale) view of the bucket.
        let mut starts = Vec::new();
        for round in 0..240u64 {
            let pacer = &pacers[(round % 4) as usize];
            let wanted = 1 + (round * 7 % 10) as usize;
            let got = pacer
                .reserve_at(T0 + round * 250, wanted, WAIT)
                .await
                .unwrap();
            starts.extend(got.starts_ms);
        }
        starts.sort_unstable();

        // GCRA's promise: in any window of length d, at most burst + d / interval starts.
        for (i, first) in starts.iter().enumerate() {
            for window_ms in [100u64, 1_000, 10_000] {
                let inside = starts[i..]
                    .iter()
                    .take_while(|s| **s < first + window_ms)
                    .count();
                let allowed = 5 + (window_ms / 100) as usize;
                assert!(
                    inside <= allowed,
                    "{inside} starts within {window_ms} ms of {first}, allowed {allowed}"
                );
            }
        }
        // And the pace is used: over the minute nearly every slot was taken.
        assert!(starts.len() >= 590, "only {} starts in 60 s", starts.len());
    }

    #[tokio::test]
    async fn a_429_pauses_the_pace_and_doubles_the_interval() {
        let pacer = Pacer::new(MemoryStore::default(), policy());
        pacer.reserve_at(T0, 1, WAIT).await.unwrap();

        pacer
            .slow_down_at(T0, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        let got = pacer.reserve_at(T0 + 10, 3, WAIT).await.unwrap();

        // Nothing before the Retry-After; then 200 ms apart instead of 100.
        let offsets: Vec<u64> = got.starts_ms.iter().map(|s| s - T0).collect();
        assert_eq!(offsets, [2_000, 2_200, 2_400]);
        assert_eq!(pacer.store.state().slow_factor, 2);
    }

    #[tokio::test]
    async fn repeated_429s_compound_once_per_step_up_to_the_limit() {
        let pacer = Pacer::new(MemoryStore::default(), policy());
        let step = SLOW_STEP.as_millis() as u64;

        for _ in 0..5 {
            pacer.slow_down_at(T0, None).await.unwrap();
        }
        assert_eq!(
            pacer.store.state().slow_factor,
            2,
            "one burst of 429s, one doubling"
        );

        for i in 1..10 {
            pacer.slow_down_at(T0 + i * step, None).await.unwrap();
        }
        assert_eq!(pacer.store.state().slow_factor, MAX_SLOW_FACTOR);
    }

    #[test]
    fn a_slow_down_holds_then_halves_with_each_hold_that_passes() {
        let cooldown = SLOW_HOLD.as_millis() as u64;
        let state = PaceState {
            tat_ms: None,
            slow_factor: 8,
            slow_until_ms: T0,
        };
        assert_eq!(state.factor_at(T0 - 1), 8);
        assert_eq!(state.factor_at(T0), 4);
        assert_eq!(state.factor_at(T0 + cooldown), 2);
        assert_eq!(state.factor_at(T0 + 2 * cooldown), 1);
        assert_eq!(state.factor_at(T0 + 100 * cooldown), 1);
        assert_eq!(PaceState::default().factor_at(T0), 1);
    }

    #[tokio::test]
    async fn unpaced_grants_every_slot_now() {
        let got = Unpaced.reserve(3, WAIT).await.unwrap();
        assert_eq!(got.starts_ms.len(), 3);
        assert!(got.deferrals.is_empty());
    }
}
