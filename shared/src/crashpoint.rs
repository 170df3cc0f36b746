//! Named crash points for the reliability suite.
//!
//! Functions call [`hit`] at the points where a crash is most dangerous (after the lake write
//! and before the DynamoDB delete, after PutEvents and before the checkpoint, ...). When the
//! environment variable [`CRASH_AT`] names that point, the process aborts right there — no
//! unwinding, no response, exactly like a Lambda killed by a timeout or an out-of-memory —
//! so tests can prove that a retry loses nothing and duplicates nothing. Unset (always, in a
//! deployment) it is a no-op costing one cached lookup.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the crash point, e.g. `sweep-after-archive`.
pub const CRASH_AT: &str = "DYNABRIDGE_CRASH_AT";
/// Optional marker file: when set, the process crashes only if the file does not exist yet
/// (and creates it first), so a retry after the crash goes through.
pub const CRASH_ONCE_FILE: &str = "DYNABRIDGE_CRASH_ONCE_FILE";
/// Optional: how many times the process passes the point before it crashes there (default
/// 0: the first time). Lets a seeded test pick the n-th batch, the n-th checkpoint, ...
pub const CRASH_SKIP: &str = "DYNABRIDGE_CRASH_SKIP";

/// Aborts the process if [`CRASH_AT`] names `point`.
pub fn hit(point: &str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(CRASH_AT).ok().filter(|v| !v.is_empty()));
    if target.as_deref() == Some(point) {
        static SKIP: OnceLock<u64> = OnceLock::new();
        static PASSED: AtomicU64 = AtomicU64::new(0);
        let skip = *SKIP.get_or_init(|| {
            std::env::var(CRASH_SKIP)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        });
        if PASSED.fetch_add(1, Ordering::SeqCst) < skip {
            return;
        }
        if let Ok(marker) = std::env::var(CRASH_ONCE_FILE) {
            if std::path::Path::new(&marker).exists() {
                return;
            }
            let _ = std::fs::write(&marker, point);
        }
        tracing::error!(
            point,
            "crash point reached: aborting (test hook {CRASH_AT})"
        );
        std::process::abort();
    }
}
