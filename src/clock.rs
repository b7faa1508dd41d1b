//! The clock as a value: the system's, or a fixed time in unit tests.

use std::time::{SystemTime, UNIX_EPOCH};

/// The time: the system's, or a fixed Unix time (unit tests).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    /// The system clock.
    System,
    /// A fixed Unix time.
    #[cfg(test)]
    Fixed(u64),
}

impl Clock {
    /// Seconds since the Unix epoch.
    pub(crate) fn now(self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            #[cfg(test)]
            Clock::Fixed(now) => now,
        }
    }
}
