//! Retry timing and rate ceilings shared by every AWS caller in dynabridge: exponential backoff with *full
//! jitter* (`sleep = random(0, min(cap, base * 2^attempt))`), which spreads concurrent
//! retries out instead of synchronising them. Jitter is injectable so tests are
//! deterministic.

use std::sync::Mutex;
use std::time::Duration;

/// A source of jitter for backoff.
pub trait Jitter: std::fmt::Debug + Send + Sync {
    /// A number in `[0, 1)`.
    fn fraction(&self) -> f64;
}

/// Pseudo-random jitter (SplitMix64 seeded from the process's random hasher keys). Backoff
/// only needs decorrelation between concurrent callers, not cryptographic randomness.
#[derive(Debug)]
pub struct RandomJitter {
    state: Mutex<u64>,
}

impl Default for RandomJitter {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(crate::clock::Clock::now_ms(&crate::clock::SystemClock));
        RandomJitter {
            state: Mutex::new(h.finish()),
        }
    }
}

impl Jitter for RandomJitter {
    fn fraction(&self) -> f64 {
        let mut state = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Always the same fraction (tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn fraction(&self) -> f64 {
        self.0.clamp(0.0, 1.0)
    }
}

/// The full-jitter delay before retry number `attempt` (1 = first retry).
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, jitter: &dyn Jitter) -> Duration {
    let base = base.as_secs_f64();
    let exp = base * 2f64.powi(attempt.min(30) as i32);
    Duration::from_secs_f64(jitter.fraction().clamp(0.0, 1.0) * exp.min(cap.as_secs_f64()))
}

/// Spaces requests so items sent stay under a per-second ceiling.
#[derive(Debug)]
pub struct RateLimiter {
    ms_per_item: f64,
    next_free_ms: Mutex<f64>,
}

impl RateLimiter {
    /// A limiter admitting `per_second` items per second (must be > 0).
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            ms_per_item: 1000.0 / per_second,
            next_free_ms: Mutex::new(0.0),
        }
    }

    /// Reserves a slot for `items` and returns how long to wait for it.
    pub fn reserve(&self, items: usize, now_ms: u64) -> Duration {
        let now = now_ms as f64;
        let mut next = match self.next_free_ms.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let start = next.max(now);
        *next = start + self.ms_per_item * items as f64;
        Duration::from_millis((start - now).max(0.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_is_capped_and_scaled() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(500);
        assert_eq!(
            full_jitter(1, base, cap, &FixedJitter(1.0)),
            Duration::from_millis(20)
        );
        assert_eq!(full_jitter(20, base, cap, &FixedJitter(1.0)), cap);
        assert_eq!(full_jitter(3, base, cap, &FixedJitter(0.0)), Duration::ZERO);
        let r = RandomJitter::default();
        assert!(
            (0..1000)
                .map(|_| r.fraction())
                .all(|f| (0.0..1.0).contains(&f))
        );
    }
}
