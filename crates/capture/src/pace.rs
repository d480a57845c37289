//! The global pace of creates at PeekShot, shared by every submitter invocation.
//!
//! PeekShot publishes no rate limit, but it has one (it answers 429). The event source's
//! `MaximumConcurrency` and `SUBMIT_CONCURRENCY` bound the calls *in flight*, not the calls
//! *per second*: against a fast PeekShot they submit as fast as it answers. So every create
//! first takes a slot from one shared token bucket, kept in a single store item.
//!
//! The bucket is GCRA (the generic cell rate algorithm), which keeps one number: the
//! *theoretical arrival time* `tat`, the moment at which the bucket would be empty again if
//! nobody took another slot. Each slot costs one `interval`; a burst of `burst` slots is
//! allowed at once (`tolerance = (burst - 1)` intervals at the configured rate). A slot taken
//! when the bucket stands at `base = max(tat, now)` may start at `base - tolerance` (or now, if
//! that is later), and moves `tat` to `base + interval`.
//!
//! Slots are *reserved*, not only granted: a batch asks for as many slots as it has valid
//! messages, in one conditional update, and gets each one's start time, up to `max_wait`
//! ahead. Its messages wait for their slot inside the invocation, so a steady backlog is paced
//! without sending messages back to the queue. Only what does not fit in `max_wait` is
//! deferred: put back on the queue until about when its slot would come.
//!
//! The update is one of two, with conditions that never both hold ([`PaceStep`]): *extend* a
//! bucket in use (`tat` not in the past, and not so far ahead that the last slot would start
//! after the wait), or *restart* one that stood idle (`tat` in the past, or no bucket yet).
//! Each answer carries the item as it now is, so a refused update tells the next attempt which
//! of the two to send; a process keeps the last state it saw to guess right the first time.
//!
//! A 429 from PeekShot slows the pace down ([`Pacer::slow_down`]): the rate is multiplied by
//! [`SLOW_FACTOR`] (the *slow level* rises by one, up to [`MAX_SLOW_LEVEL`]), the multiplicative
//! decrease the AWS SDKs' adaptive retry mode applies to throttling. The level holds for
//! [`SLOW_HOLD`], then falls by one with every further [`SLOW_HOLD`] without a 429, a recovery
//! that needs no writes because every reader computes the level from the time. A gentle
//! factor keeps the pace useful against sporadic 429s; a sustained rate limit still drives it
//! down step by step, each 429 one more step. A burst of 429s answering one burst
//! of creates counts once: the level rises at most once per [`SLOW_STEP`], a compare-and-set on
//! the time of the last rise (`slowed_at`), which every reservation also checks, so that no
//! process reserves at a pace older than the last rise. The 429's `Retry-After` pushes `tat`
//! forward so that no slot reserved afterwards starts before it has passed; slots this process
//! reserved earlier are checked against it before their create ([`Pace::paused_for`]). Slots
//! other invocations reserved earlier (one batch each at most) are not: they may meet a 429 of
//! their own, which they handle the same way.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::failure::Failure;

/// What each rise of the slow level multiplies the rate by.
pub const SLOW_FACTOR: f64 = 0.7;
/// The most a run of 429s can slow the pace down: 0.7^8, about a seventeenth of the rate.
pub const MAX_SLOW_LEVEL: u32 = 8;
/// How long a slow-down lasts at full strength, and how long each step back takes after.
pub const SLOW_HOLD: Duration = Duration::from_secs(5);
/// The shortest time between two rises of the slow level.
pub const SLOW_STEP: Duration = Duration::from_secs(1);
/// How long the pace pauses after a 429 that named no `Retry-After`.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The highest rate the pace keeps exactly: intervals are whole milliseconds.
pub const MAX_RATE_PER_SECOND: f64 = 200.0;
/// How often a reservation or a slow-down tries again after the bucket moved under it.
const STEP_ATTEMPTS: usize = 4;

/// The configured pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacePolicy {
    /// Creates per second across every submitter invocation (at most
    /// [`MAX_RATE_PER_SECOND`]).
    pub rate_per_second: f64,
    /// Creates that may start at once after the bucket stood idle.
    pub burst: u32,
    /// How far ahead a batch may reserve slots; its messages wait that long at most.
    pub max_wait: Duration,
}

impl PacePolicy {
    /// Milliseconds between two slots at the configured rate (at least 5).
    fn base_interval_ms(&self) -> u64 {
        let rate = self
            .rate_per_second
            .clamp(f64::MIN_POSITIVE, MAX_RATE_PER_SECOND);
        (1000.0 / rate).round() as u64
    }

    /// How far before its place in the bucket a slot may start: `burst - 1` intervals at the
    /// configured rate. It does not grow with the slow level, so a slow-down never lets a
    /// slot start earlier than the bucket already promised.
    fn tolerance_ms(&self) -> u64 {
        u64::from(self.burst.max(1) - 1) * self.base_interval_ms()
    }
}

/// The bucket as the store holds it. All times are epoch milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceState {
    /// The theoretical arrival time; `None` for a bucket never used.
    pub tat_ms: Option<u64>,
    /// The slow level the last rise set (0: the configured rate).
    pub slow_level: u32,
    /// Until when that level holds at full strength.
    pub slow_until_ms: u64,
    /// When the slow level last rose; `None` when it never did. Every write is conditional
    /// on it, so a process acts only on the latest slow-down.
    pub slowed_at_ms: Option<u64>,
}

impl PaceState {
    /// The slow level in force at `now_ms`: the stored one until `slow_until_ms`, then one
    /// less for every [`SLOW_HOLD`] that has passed since.
    pub fn level_at(&self, now_ms: u64) -> u32 {
        let level = self.slow_level.min(MAX_SLOW_LEVEL);
        if now_ms < self.slow_until_ms {
            return level;
        }
        let hold_ms = SLOW_HOLD.as_millis() as u64;
        let drops = 1 + (now_ms - self.slow_until_ms) / hold_ms;
        level.saturating_sub(u32::try_from(drops).unwrap_or(u32::MAX))
    }

    /// Whether the level rose less than [`SLOW_STEP`] before `now_ms`.
    fn rose_just_now(&self, now_ms: u64) -> bool {
        self.slowed_at_ms
            .is_some_and(|at| now_ms < at + SLOW_STEP.as_millis() as u64)
    }
}

/// One conditional update of the bucket's `tat`. Both kinds also require the item's
/// `slowed_at` to be `slowed_at_ms` (absent for `None`), the slow-down the plan was made with.
/// The two `tat` conditions are disjoint: at any moment the store accepts at most one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceStep {
    /// If `tat` exists and lies in `lowest_ms..=highest_ms`, add `cost_ms` to it.
    Extend {
        /// The lowest acceptable `tat`: now.
        lowest_ms: u64,
        /// The highest acceptable `tat`, so that the last slot still starts within the wait.
        highest_ms: u64,
        /// Slots times interval.
        cost_ms: u64,
        /// The expected `slowed_at`.
        slowed_at_ms: Option<u64>,
    },
    /// If `tat` is absent or below `below_ms`, set it to `tat_ms`.
    Restart {
        /// Now, for an idle bucket; the pause's end, for a pause.
        below_ms: u64,
        /// The new `tat`.
        tat_ms: u64,
        /// The expected `slowed_at`.
        slowed_at_ms: Option<u64>,
    },
}

/// A rise of the slow level: applied if the item's `slowed_at` is still `expected_slowed_at_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowDown {
    /// The `slowed_at` the new level was computed from (absent for `None`).
    pub expected_slowed_at_ms: Option<u64>,
    /// The new slow level.
    pub level: u32,
    /// Until when it holds at full strength.
    pub until_ms: u64,
    /// Now: the new `slowed_at`.
    pub at_ms: u64,
}

/// What the store did with a conditional update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceAnswer {
    /// The condition held; the bucket as it is after the update.
    Moved(PaceState),
    /// The condition failed; the bucket as it is, unchanged.
    Refused(PaceState),
}

impl PaceAnswer {
    fn state(self) -> PaceState {
        match self {
            PaceAnswer::Moved(state) | PaceAnswer::Refused(state) => state,
        }
    }
}

/// The store item behind the bucket. Every method is one conditional write that returns the
/// item, so no read ever precedes a write.
#[async_trait]
pub trait PaceStore: Send + Sync {
    /// Applies `step` if its condition holds.
    async fn step(&self, step: PaceStep) -> Result<PaceAnswer, Failure>;

    /// Raises the slow level if nobody raised it since the state it was computed from.
    async fn slow_down(&self, slow_down: SlowDown) -> Result<PaceAnswer, Failure>;
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

    /// How much longer a pause this process heard of lasts: a slot reserved before it should
    /// not start a create until then.
    fn paused_for(&self) -> Option<Duration>;
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

    fn paused_for(&self) -> Option<Duration> {
        None
    }
}

/// The GCRA bucket over a [`PaceStore`], with the last state this process saw.
#[derive(Debug)]
pub struct Pacer<S> {
    store: S,
    policy: PacePolicy,
    seen: Mutex<Seen>,
}

/// What this process last learnt of the bucket, and the pause it heard of.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    state: PaceState,
    paused_until_ms: u64,
}

impl<S: PaceStore> Pacer<S> {
    /// A pacer for `policy` over `store`.
    pub fn new(store: S, policy: PacePolicy) -> Self {
        Self {
            store,
            policy,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// The policy this pacer applies.
    pub fn policy(&self) -> &PacePolicy {
        &self.policy
    }

    /// [`Pace::reserve`] at an explicit time, for tests.
    ///
    /// The slots are the times the bucket booked. A slot whose time passes while the write is
    /// still in flight starts as soon as the answer arrives, so after a write slower than one
    /// interval a few creates may start together; shifting them later instead would push them
    /// into slots booked by the next reservation.
    pub async fn reserve_at(
        &self,
        now_ms: u64,
        wanted: usize,
        wait: Duration,
    ) -> Result<Reservation, Failure> {
        let wait = wait.min(self.policy.max_wait);
        let mut state = self.seen().state;
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
        let mut state = self.seen().state;
        for _ in 0..STEP_ATTEMPTS {
            if state.rose_just_now(now_ms) {
                break;
            }
            let rise = SlowDown {
                expected_slowed_at_ms: state.slowed_at_ms,
                level: (state.level_at(now_ms) + 1).min(MAX_SLOW_LEVEL),
                until_ms: now_ms + SLOW_HOLD.as_millis() as u64,
                at_ms: now_ms,
            };
            let answer = self.store.slow_down(rise).await?;
            state = answer.state();
            self.remember(state);
            if matches!(answer, PaceAnswer::Moved(_)) {
                break;
            }
        }

        let paused_until_ms = now_ms + retry_after.unwrap_or(DEFAULT_PAUSE).as_millis() as u64;
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.paused_until_ms = seen.paused_until_ms.max(paused_until_ms);
        }
        // No slot reserved from now on may start before the pause ends: tat moves to at least
        // the pause's end plus the tolerance. Refused when the bucket is booked beyond that.
        let pause_tat_ms = paused_until_ms + self.policy.tolerance_ms();
        let push = PaceStep::Restart {
            below_ms: pause_tat_ms,
            tat_ms: pause_tat_ms,
            slowed_at_ms: state.slowed_at_ms,
        };
        let answer = self.store.step(push).await?;
        self.remember(answer.state());
        Ok(())
    }

    fn seen(&self) -> Seen {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, state: PaceState) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).state = state;
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

    fn paused_for(&self) -> Option<Duration> {
        let until_ms = self.seen().paused_until_ms;
        let now_ms = epoch_ms(SystemTime::now());
        (until_ms > now_ms).then(|| Duration::from_millis(until_ms - now_ms))
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
        let slowed = SLOW_FACTOR.powi(state.level_at(now_ms) as i32);
        let interval_ms = (policy.base_interval_ms() as f64 / slowed).round() as u64;
        let tolerance_ms = policy.tolerance_ms();
        let idle = state.tat_ms.is_none_or(|tat| tat < now_ms);
        let base_ms = state.tat_ms.unwrap_or(now_ms).max(now_ms);

        // Slot i starts at base + i * interval - tolerance (or now, if that is later), and
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
                    slowed_at_ms: state.slowed_at_ms,
                }
            } else {
                PaceStep::Extend {
                    lowest_ms: now_ms,
                    highest_ms: horizon_ms - (granted as u64 - 1) * interval_ms,
                    cost_ms,
                    slowed_at_ms: state.slowed_at_ms,
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

    fn with_base(mut self, base_ms: u64) -> Self {
        self.base_ms = base_ms;
        self
    }

    /// The start of each of the first `granted` slots from `base_ms`, and deferrals for the
    /// rest that bring each back about when its slot would start.
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
    //! The bucket against an in-memory store that applies each update's condition the way the
    //! DynamoDB store's condition expressions do; `tests/pipeline.rs` runs the same updates
    //! against moto.

    use std::sync::Arc;

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
            let (tat_holds, expected) = match step {
                PaceStep::Extend {
                    lowest_ms,
                    highest_ms,
                    slowed_at_ms,
                    ..
                } => (
                    item.tat_ms
                        .is_some_and(|t| (lowest_ms..=highest_ms).contains(&t)),
                    slowed_at_ms,
                ),
                PaceStep::Restart {
                    below_ms,
                    slowed_at_ms,
                    ..
                } => (item.tat_ms.is_none_or(|t| t < below_ms), slowed_at_ms),
            };
            if !tat_holds || item.slowed_at_ms != expected {
                return Ok(PaceAnswer::Refused(*item));
            }
            item.tat_ms = Some(match step {
                PaceStep::Extend { cost_ms, .. } => item.tat_ms.unwrap_or(0) + cost_ms,
                PaceStep::Restart { tat_ms, .. } => tat_ms,
            });
            Ok(PaceAnswer::Moved(*item))
        }

        async fn slow_down(&self, rise: SlowDown) -> Result<PaceAnswer, Failure> {
            let mut item = self.item.lock().unwrap();
            if item.slowed_at_ms != rise.expected_slowed_at_ms {
                return Ok(PaceAnswer::Refused(*item));
            }
            item.slow_level = rise.level;
            item.slow_until_ms = rise.until_ms;
            item.slowed_at_ms = Some(rise.at_ms);
            Ok(PaceAnswer::Moved(*item))
        }
    }

    #[async_trait]
    impl PaceStore for Arc<MemoryStore> {
        async fn step(&self, step: PaceStep) -> Result<PaceAnswer, Failure> {
            self.as_ref().step(step).await
        }

        async fn slow_down(&self, rise: SlowDown) -> Result<PaceAnswer, Failure> {
            self.as_ref().slow_down(rise).await
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

    fn offsets(reservation: &Reservation) -> Vec<u64> {
        reservation.starts_ms.iter().map(|s| s - T0).collect()
    }

    #[tokio::test]
    async fn an_idle_bucket_starts_a_burst_at_once_then_one_slot_per_interval() {
        let pacer = Pacer::new(MemoryStore::default(), policy());

        let got = pacer.reserve_at(T0, 8, WAIT).await.unwrap();

        assert_eq!(offsets(&got), [0, 0, 0, 0, 0, 100, 200, 300]);
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
        assert_eq!(offsets(&got), [600, 700, 800]);
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
        let store = Arc::new(MemoryStore::default());
        let pacers: Vec<Pacer<Arc<MemoryStore>>> = (0..4)
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

        assert_gcra_holds(&starts, 5, 100);
        // And the pace is used: over the minute nearly every slot was taken.
        assert!(starts.len() >= 590, "only {} starts in 60 s", starts.len());
    }

    /// GCRA's promise: in any window of length d, at most burst + d / interval starts.
    fn assert_gcra_holds(starts: &[u64], burst: usize, interval_ms: u64) {
        for (i, first) in starts.iter().enumerate() {
            for window_ms in [interval_ms, 10 * interval_ms, 100 * interval_ms] {
                let inside = starts[i..]
                    .iter()
                    .take_while(|s| **s < first + window_ms)
                    .count();
                let allowed = burst + (window_ms / interval_ms) as usize;
                assert!(
                    inside <= allowed,
                    "{inside} starts within {window_ms} ms of {first}, allowed {allowed}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_429_pauses_the_pace_and_slows_it_to_seventy_percent() {
        let pacer = Pacer::new(MemoryStore::default(), policy());
        pacer.reserve_at(T0, 1, WAIT).await.unwrap();

        pacer
            .slow_down_at(T0, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        let got = pacer.reserve_at(T0 + 10, 3, WAIT).await.unwrap();

        // Nothing before the Retry-After; then 143 ms apart (100 / 0.7) instead of 100.
        assert_eq!(offsets(&got), [2_000, 2_143, 2_286]);
        assert_eq!(pacer.store.state().slow_level, 1);
    }

    #[tokio::test]
    async fn a_slow_down_never_starts_a_slot_before_one_already_promised() {
        let pacer = Pacer::new(MemoryStore::default(), policy());
        let booked = pacer.reserve_at(T0, 104, WAIT).await.unwrap();
        let last_promised = *booked.starts_ms.last().unwrap();

        pacer.slow_down_at(T0, None).await.unwrap();
        let after = pacer.reserve_at(T0, 5, WAIT).await.unwrap();

        let first_new = after.starts_ms.first().copied().unwrap_or(u64::MAX).min(
            T0 + after
                .deferrals
                .first()
                .map_or(u64::MAX, |d| d.as_millis() as u64),
        );
        assert!(
            first_new >= last_promised + 100,
            "a new slot at +{} ms, the last promised one at +{} ms",
            first_new - T0,
            last_promised - T0
        );
    }

    #[tokio::test]
    async fn a_stream_of_429s_raises_the_level_once_a_step_up_to_the_limit() {
        let pacer = Pacer::new(MemoryStore::default(), policy());

        for i in 0..4 {
            pacer.slow_down_at(T0 + i * 200, None).await.unwrap();
        }
        assert_eq!(
            pacer.store.state().slow_level,
            1,
            "one burst of 429s, one rise"
        );

        for i in 0..20 {
            pacer
                .slow_down_at(T0 + 1_000 + i * 500, None)
                .await
                .unwrap();
        }
        assert_eq!(pacer.store.state().slow_level, MAX_SLOW_LEVEL);
    }

    #[tokio::test]
    async fn a_process_with_a_stale_view_neither_lowers_the_level_nor_reserves_at_the_old_pace() {
        let store = Arc::new(MemoryStore::default());
        let first = Pacer::new(store.clone(), policy());
        let stale = Pacer::new(store.clone(), policy());
        stale.reserve_at(T0, 1, WAIT).await.unwrap();
        for i in 0..3 {
            first.slow_down_at(T0 + i * 1_000, None).await.unwrap();
        }
        assert_eq!(store.state().slow_level, 3);

        stale.slow_down_at(T0 + 2_500, None).await.unwrap();
        assert!(store.state().slow_level >= 3, "{:?}", store.state());

        // A fresh process has seen no slow-down; its first reservation is refused for that and
        // made again at level 3: 292 ms apart (100 / 0.7^3), after the two slots that the
        // 400 ms burst tolerance, the same at every level, lets start at once. At the
        // configured pace the four would all have started at once.
        let other = Pacer::new(store.clone(), policy());
        let got = other.reserve_at(T0 + 5_000, 4, WAIT).await.unwrap();
        let gaps: Vec<u64> = got.starts_ms.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, [0, 184, 292], "at slow level 3");
    }

    #[test]
    fn a_slow_down_holds_then_steps_back_with_each_hold_that_passes() {
        let hold = SLOW_HOLD.as_millis() as u64;
        let state = PaceState {
            tat_ms: None,
            slow_level: 3,
            slow_until_ms: T0,
            slowed_at_ms: Some(T0 - hold),
        };
        assert_eq!(state.level_at(T0 - 1), 3);
        assert_eq!(state.level_at(T0), 2);
        assert_eq!(state.level_at(T0 + hold), 1);
        assert_eq!(state.level_at(T0 + 2 * hold), 0);
        assert_eq!(state.level_at(T0 + 100 * hold), 0);
        assert_eq!(PaceState::default().level_at(T0), 0);
    }

    #[tokio::test]
    async fn this_process_knows_how_long_a_pause_it_heard_of_lasts() {
        let pacer = Pacer::new(MemoryStore::default(), policy());
        assert_eq!(pacer.paused_for(), None);

        pacer
            .slow_down_at(epoch_ms(SystemTime::now()), Some(Duration::from_secs(30)))
            .await
            .unwrap();

        let left = pacer.paused_for().expect("paused");
        assert!(
            left > Duration::from_secs(25) && left <= Duration::from_secs(30),
            "{left:?}"
        );
    }

    #[test]
    fn rates_above_the_exact_limit_are_capped() {
        let fast = PacePolicy {
            rate_per_second: 1000.0,
            ..policy()
        };
        assert_eq!(fast.base_interval_ms(), 5);
    }

    #[tokio::test]
    async fn unpaced_grants_every_slot_now() {
        let got = Unpaced.reserve(3, WAIT).await.unwrap();
        assert_eq!(got.starts_ms.len(), 3);
        assert!(got.deferrals.is_empty());
        assert_eq!(Unpaced.paused_for(), None);
    }
}
