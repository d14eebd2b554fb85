use chrono::{DateTime, SubsecRound, Utc};

/// The current instant. A port so that expiry and the daily ranking can be tested at
/// any instant.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Truncated to microseconds, the precision PostgreSQL stores, so that an instant
    /// a use case returns is the one a later read gives back.
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}
