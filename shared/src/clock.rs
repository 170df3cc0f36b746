//! Time, as the control-plane code sees it: a wall clock in epoch milliseconds and an async
//! sleep, both behind small traits.
//!
//! Idempotency expiries, checkpoint timestamps and the batch writer's backoff and rate ceiling
//! all depend on time. Reading it through [`Clock`] / [`Sleeper`] lets tests move time
//! deterministically (a claim that must stay locked until its in-progress expiry, a backoff
//! of several seconds) without real waiting.
//!
//! One unit everywhere: **milliseconds since the Unix epoch** (`u64`). The only seconds value
//! in the project is the DynamoDB TTL attribute, which DynamoDB requires in seconds; it is
//! derived with [`ttl_epoch_seconds`] at the point it is written and named `*_epoch_s`.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall clock in epoch milliseconds.
pub trait Clock: Debug + Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// A boxed future returned by [`Sleeper::sleep`].
pub type SleepFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Waits for a duration (backoff, rate ceiling).
pub trait Sleeper: Debug + Send + Sync {
    /// Completes after `duration` has passed on this sleeper's notion of time.
    fn sleep(&self, duration: Duration) -> SleepFuture<'_>;
}

/// The real clock and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a broken host, not bad input; 0 keeps arithmetic defined.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

impl Sleeper for SystemClock {
    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to; its [`Sleeper`] advances the clock instead of
/// waiting, so code under test that backs off for minutes finishes at once while the elapsed
/// (virtual) time stays observable. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicU64>,
    slept_ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            now_ms: Arc::new(AtomicU64::new(start_ms)),
            slept_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }

    /// Sets the time.
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Total virtual time spent in [`Sleeper::sleep`].
    pub fn slept(&self) -> Duration {
        Duration::from_millis(self.slept_ms.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

impl Sleeper for ManualClock {
    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        let ms = duration_ms(duration);
        self.slept_ms.fetch_add(ms, Ordering::SeqCst);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
        // Yield so concurrent tasks interleave as they would around a real sleep.
        Box::pin(tokio::task::yield_now())
    }
}

/// A duration in whole milliseconds, saturating.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The DynamoDB TTL value (epoch **seconds**) for an expiry in epoch milliseconds, rounded
/// up so TTL never deletes a record before its millisecond expiry.
pub fn ttl_epoch_seconds(expires_at_ms: u64) -> u64 {
    expires_at_ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_epoch_seconds(1_000), 1);
        assert_eq!(ttl_epoch_seconds(1_001), 2);
        assert_eq!(ttl_epoch_seconds(0), 0);
    }

    #[tokio::test]
    async fn manual_clock_sleep_advances_time() {
        let c = ManualClock::new(5_000);
        c.sleep(Duration::from_millis(250)).await;
        assert_eq!(c.now_ms(), 5_250);
        assert_eq!(c.slept(), Duration::from_millis(250));
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now_ms(), 6_250);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
