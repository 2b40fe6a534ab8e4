//! The wall clock, as a seam: backup times are wall-clock times (they go
//! into headers), while waiting uses tokio's monotonic timers.

use jiff::Timestamp;

/// Tells the current wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
