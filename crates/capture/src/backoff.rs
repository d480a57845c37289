//! How long a kept message waits before its next attempt.
//!
//! The submitter hides each message it keeps for a while (SQS `ChangeMessageVisibility`)
//! instead of letting every failure come back after the queue's fixed visibility timeout.
//! Transient failures back off exponentially with full jitter, from the message's receive
//! count, so a PeekShot outage is not met by synchronised retries; a `Retry-After` from
//! PeekShot is a floor. Deployment faults wait the longest: nothing changes until a person
//! fixes the key or the credits, and the queue dead-letters the message if that takes too long.

use std::time::Duration;

use crate::failure::{Failure, FailureClass};
use crate::submit::RetryCause;

/// SQS does not hide a message for longer than 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first retry's delay; it doubles with each receive.
    pub base: Duration,
    /// The largest delay a transient failure gets.
    pub cap: Duration,
    /// The delay after a deployment fault.
    pub deployment: Duration,
    /// The smallest delay, so that a jitter near zero does not retry at once.
    pub floor: Duration,
}

impl Default for RetryPolicy {
    /// Ceilings of 20 s, 40 s, 80 s, 160 s for the first four retries: with the template's
    /// five receives, a message that meets only transient failures is dead-lettered after
    /// about five minutes on average, long enough to ride out a short PeekShot incident.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(20),
            cap: Duration::from_secs(15 * 60),
            deployment: Duration::from_secs(15 * 60),
            floor: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The delay before a kept message comes back: [`RetryPolicy::delay`] for a failed
    /// attempt; for a message the pace deferred, the time until its slot plus up to
    /// [`RetryPolicy::floor`] of jitter (so deferred messages do not return together), never
    /// less than the floor.
    pub fn delay_for(&self, cause: &RetryCause, receive_count: u32, unit_random: f64) -> Duration {
        match cause {
            RetryCause::Failed(failure) => self.delay(failure, receive_count, unit_random),
            RetryCause::Deferred(after) => (*after
                + self.floor.mul_f64(unit_random.clamp(0.0, 1.0)))
            .max(self.floor)
            .min(MAX_VISIBILITY),
        }
    }

    /// The delay before the next attempt of a message received `receive_count` times (1 on
    /// its first delivery) that met `failure`. `unit_random` is uniform in `[0, 1)`; callers
    /// pass a fresh random number, tests a fixed one.
    pub fn delay(&self, failure: &Failure, receive_count: u32, unit_random: f64) -> Duration {
        let delay = match failure.class {
            FailureClass::Deployment => self.deployment,
            FailureClass::Transient | FailureClass::Permanent => {
                let doublings = receive_count.saturating_sub(1).min(30);
                let ceiling = self.base.saturating_mul(1 << doublings).min(self.cap);
                ceiling.mul_f64(unit_random.clamp(0.0, 1.0)).max(self.floor)
            }
        };
        let delay = failure.retry_after.map_or(delay, |after| delay.max(after));
        delay.min(MAX_VISIBILITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn transient_ceiling_doubles_with_each_receive_up_to_the_cap() {
        let failure = Failure::transient("503");
        let at_top = |count| policy().delay(&failure, count, 0.999_999);
        assert_eq!(at_top(1).as_secs(), 19);
        assert_eq!(at_top(2).as_secs(), 39);
        assert_eq!(at_top(3).as_secs(), 79);
        assert_eq!(at_top(20), Duration::from_secs(15 * 60).mul_f64(0.999_999));
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_range_with_a_floor() {
        let failure = Failure::transient("timeout");
        assert_eq!(policy().delay(&failure, 3, 0.0), Duration::from_secs(1));
        assert_eq!(policy().delay(&failure, 3, 0.5), Duration::from_secs(40));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut failure = Failure::transient("429");
        failure.retry_after = Some(Duration::from_secs(30));
        assert_eq!(policy().delay(&failure, 1, 0.1), Duration::from_secs(30));
        failure.retry_after = Some(Duration::from_secs(1));
        assert_eq!(policy().delay(&failure, 1, 0.5), Duration::from_secs(10));
    }

    #[test]
    fn deployment_faults_wait_the_longest() {
        let failure = Failure::deployment("403");
        assert_eq!(policy().delay(&failure, 1, 0.0), Duration::from_secs(900));
    }

    #[test]
    fn deferred_messages_come_back_when_their_slot_is_due_whatever_their_receive_count() {
        let cause = RetryCause::Deferred(Duration::from_secs(3));
        assert_eq!(policy().delay_for(&cause, 1, 0.0), Duration::from_secs(3));
        assert_eq!(
            policy().delay_for(&cause, 4, 0.5),
            Duration::from_millis(3_500)
        );
        let soon = RetryCause::Deferred(Duration::from_millis(200));
        assert_eq!(policy().delay_for(&soon, 1, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn no_delay_exceeds_what_sqs_allows() {
        let mut failure = Failure::transient("429");
        failure.retry_after = Some(Duration::from_secs(24 * 3600));
        assert_eq!(policy().delay(&failure, 1, 0.5), MAX_VISIBILITY);
    }
}
