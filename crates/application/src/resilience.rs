//! The circuit breaker in front of the data platform, so that a dead platform costs
//! payments only, and costs them nothing but a fast refusal.
//!
//! A payment holds a database connection and two row locks while it waits for the
//! platform. After `failure_threshold` consecutive failed sends, the breaker opens:
//! payments are refused at once, before they begin a transaction, for `cooldown`; then
//! one trial payment is let through, and its send decides: success closes the breaker,
//! failure opens it for another cooldown. (How many payments may wait on the platform
//! at once — the bulkhead — is the [`crate::ports::PaymentSlots`] port, whose slot the
//! payment holds until it ends.)
//!
//! The state is per instance and only ever refuses work, so it is never needed for
//! correctness (several instances each keep their own).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::Clock;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed sends that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long an open breaker refuses before it lets one trial through.
    pub cooldown: Duration,
}

/// The breaker's state, as metrics and readiness report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Sends go through.
    Closed,
    /// Payments are refused until the cooldown ends.
    Open,
    /// One trial payment is (or may now be) in flight; its outcome decides.
    HalfOpen,
}

impl BreakerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A payment refused before it began: the breaker is open, or its trial is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the data platform has been failing; payments are paused")]
pub struct BreakerOpen {
    /// When a payment may be admitted again.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
    },
    /// The trial is out; everyone else is refused until it reports.
    Trial,
}

/// The circuit breaker in front of payments. Share it with an [`Arc`].
pub struct CircuitBreaker {
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    in_flight: AtomicUsize,
    breaker: Mutex<Breaker>,
    refused: AtomicU64,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("settings", &self.settings)
            .field("in_flight", &self.in_flight)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings, clock: Arc<dyn Clock>) -> Self {
        let settings = BreakerSettings { failure_threshold: settings.failure_threshold.max(1), ..settings };
        Self {
            settings,
            clock,
            in_flight: AtomicUsize::new(0),
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            refused: AtomicU64::new(0),
        }
    }

    /// A breaker that never opens (for a platform that cannot fail, such as the
    /// logging stand-in).
    pub fn never_open(clock: Arc<dyn Clock>) -> Self {
        Self::new(BreakerSettings { failure_threshold: u32::MAX, cooldown: Duration::ZERO }, clock)
    }

    fn lock_state(&self) -> MutexGuard<'_, Breaker> {
        // The state is a plain value that no panic leaves half-written.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        match *self.lock_state() {
            Breaker::Closed { .. } => BreakerState::Closed,
            Breaker::Open { until } if self.clock.now() < until => BreakerState::Open,
            Breaker::Open { .. } | Breaker::Trial => BreakerState::HalfOpen,
        }
    }

    /// Payments admitted and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Payments refused so far because the breaker was open.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Admits one payment, or refuses it at once.
    ///
    /// # Errors
    /// [`BreakerOpen`] while the breaker is open or its trial is out.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, BreakerOpen> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut admission = Admission { breaker: Arc::clone(self), trial: false, reported: false };
        let mut breaker = self.lock_state();
        match *breaker {
            Breaker::Closed { .. } => {}
            Breaker::Open { until } => {
                let now = self.clock.now();
                if now < until {
                    drop(breaker);
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    let retry_after = (until - now).to_std().unwrap_or(Duration::ZERO);
                    return Err(BreakerOpen { retry_after });
                }
                *breaker = Breaker::Trial;
                admission.trial = true;
            }
            Breaker::Trial => {
                drop(breaker);
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(BreakerOpen { retry_after: Duration::from_secs(1) });
            }
        }
        Ok(admission)
    }

    fn report(&self, trial: bool, sent: bool) {
        let mut breaker = self.lock_state();
        *breaker = match (*breaker, sent) {
            (_, true) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false)
                if failures.saturating_add(1) < self.settings.failure_threshold && !trial =>
            {
                Breaker::Closed { failures: failures.saturating_add(1) }
            }
            // A late report from before the breaker opened changes nothing.
            (open @ Breaker::Open { .. }, false) if !trial => open,
            (_, false) => Breaker::Open { until: self.clock.now() + self.cooldown() },
        };
    }

    fn cooldown(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.cooldown).unwrap_or(chrono::Duration::MAX)
    }
}

/// One admitted payment. Report whether its send succeeded; dropping it without a
/// report (the payment ended before it reached the platform) tells the breaker
/// nothing, and a trial that ends so lets the next payment be the trial.
#[derive(Debug)]
#[must_use = "report the send's outcome, or drop the admission if nothing was sent"]
pub struct Admission {
    breaker: Arc<CircuitBreaker>,
    trial: bool,
    reported: bool,
}

impl Admission {
    /// The platform acknowledged the send (or, with `false`, did not: refused, an
    /// error status, or no answer in time). Only the first report counts. The slot
    /// stays taken until the admission is dropped, when the payment's transaction has
    /// ended.
    pub fn report(&mut self, sent: bool) {
        if !self.reported {
            self.reported = true;
            self.breaker.report(self.trial, sent);
        }
    }

    pub fn sent(mut self) {
        self.report(true);
    }

    pub fn failed(mut self) {
        self.report(false);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.trial && !self.reported {
            let mut state = self.breaker.lock_state();
            if matches!(*state, Breaker::Trial) {
                // Open, with the cooldown already over: the next payment is the trial.
                *state = Breaker::Open { until: self.breaker.clock.now() };
            }
        }
        self.breaker.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use chrono::TimeZone;

    use super::*;

    /// A clock the test moves by hand.
    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap();
            *now += chrono::Duration::from_std(by).unwrap();
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn breaker(failure_threshold: u32) -> (Arc<CircuitBreaker>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock(Mutex::new(Utc.timestamp_opt(1_000_000, 0).unwrap())));
        let settings = BreakerSettings { failure_threshold, cooldown: Duration::from_secs(5) };
        (Arc::new(CircuitBreaker::new(settings, clock.clone())), clock)
    }

    #[test]
    fn admitted_payments_are_counted_until_they_end() {
        let (breaker, _) = breaker(5);
        let first = breaker.admit().unwrap();
        let _second = breaker.admit().unwrap();
        assert_eq!(breaker.in_flight(), 2);
        first.sent();
        assert_eq!(breaker.in_flight(), 1);
    }

    #[test]
    fn consecutive_failures_open_the_breaker_and_a_success_between_them_resets_the_count() {
        let (breaker, _) = breaker(3);
        breaker.admit().unwrap().failed();
        breaker.admit().unwrap().failed();
        breaker.admit().unwrap().sent();
        breaker.admit().unwrap().failed();
        breaker.admit().unwrap().failed();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.admit().unwrap().failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        let refused = breaker.admit().unwrap_err();
        assert_eq!(refused, BreakerOpen { retry_after: Duration::from_secs(5) });
        assert_eq!(breaker.in_flight(), 0, "a refusal is not counted in flight");
        assert_eq!(breaker.refused(), 1);
    }

    #[test]
    fn after_the_cooldown_one_trial_goes_through_and_its_success_closes_the_breaker() {
        let (breaker, clock) = breaker(1);
        breaker.admit().unwrap().failed();
        clock.advance(Duration::from_secs(4));
        assert_eq!(breaker.admit().unwrap_err(), BreakerOpen { retry_after: Duration::from_secs(1) });
        clock.advance(Duration::from_secs(1));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let trial = breaker.admit().unwrap();
        assert!(matches!(breaker.admit(), Err(BreakerOpen { .. })), "one trial at a time");
        trial.sent();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn a_failed_trial_opens_the_breaker_for_another_cooldown() {
        let (breaker, clock) = breaker(1);
        breaker.admit().unwrap().failed();
        clock.advance(Duration::from_secs(5));
        breaker.admit().unwrap().failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit().unwrap_err(), BreakerOpen { retry_after: Duration::from_secs(5) });
    }

    #[test]
    fn a_trial_that_never_reached_the_platform_hands_the_trial_to_the_next_payment() {
        let (breaker, clock) = breaker(1);
        breaker.admit().unwrap().failed();
        clock.advance(Duration::from_secs(5));
        drop(breaker.admit().unwrap());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.admit().unwrap().sent();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_breaker_that_never_opens_admits_everything() {
        let clock: Arc<dyn Clock> = Arc::new(crate::ports::SystemClock);
        let breaker = Arc::new(CircuitBreaker::never_open(clock));
        let admitted: Vec<_> = (0..1000).map(|_| breaker.admit().unwrap()).collect();
        admitted.into_iter().for_each(Admission::failed);
        assert!(breaker.admit().is_ok());
    }
}
