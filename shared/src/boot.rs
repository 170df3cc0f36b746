//! Cold start, the same for every function: logging first, then the function's config
//! (validated once; an invalid setting fails the cold start naming the variable), then the AWS
//! clients (built once and reused by every invocation of this execution environment).

use crate::clients::AwsClients;
use crate::config::{CommonConfig, Env};
use crate::error::DynabridgeError;
use crate::telemetry;

/// A function's configuration, read once at cold start.
pub trait FunctionConfig: Sized {
    /// Reads and validates the configuration (settings, and files they name such as the
    /// schema registry).
    fn from_env(env: &Env) -> Result<Self, DynabridgeError>;

    /// The settings shared by all functions.
    fn common(&self) -> &CommonConfig;
}

/// Initialises logging, reads `C` from the process environment and builds the AWS clients.
///
/// On an invalid configuration the error is logged (JSON, with the variable's name) and
/// returned, so `main` exits before asking the Runtime API for work and Lambda reports the
/// failed initialisation with that log line.
pub async fn cold_start<C: FunctionConfig>() -> Result<(C, AwsClients), DynabridgeError> {
    telemetry::init();
    let config = C::from_env(&Env::process()).inspect_err(|e| {
        tracing::error!(error = %e, "cold start failed: invalid configuration");
    })?;
    let clients = AwsClients::from_env(config.common().s3_force_path_style).await;
    Ok((config, clients))
}

/// The global allocator of every function binary (installed by [`lambda_main!`]).
///
/// mimalloc instead of the system allocator: decoding stream images, DynamoDB-JSON and Arrow
/// buffers is allocation-heavy, and a profile of stream-fanout on glibc spent about 40% of
/// its CPU in `malloc`/`free` (docs/decisions.md, "Allocator"). It is built with mimalloc's
/// `override` feature, so C code linked in (ZSTD's compression contexts, one per Parquet
/// column chunk) allocates from it too instead of glibc's `mmap`-backed large blocks, which
/// were zeroed by the kernel afresh for every column of every file.
pub type Allocator = mimalloc::MiMalloc;

/// The allocator value for `#[global_allocator]`.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// mimalloc's option numbers (`mi_option_e` in the `mimalloc.h` that `libmimalloc-sys`
/// 0.1.49 builds: mimalloc v3).
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
const MI_OPTION_ALLOW_THP: std::ffi::c_int = 43;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Sets the [`ALLOCATOR`]'s memory options for a Lambda function, unless the environment
/// already sets them: freed memory goes back to the OS at once (`purge_delay` 0, instead of
/// keeping it for later allocations), arenas are committed on demand
/// (`arena_eager_commit` 0) and without transparent huge pages (`allow_thp` 0: with
/// immediate purging, every re-used 2 MiB region was zeroed whole by the kernel again).
/// mimalloc's defaults doubled peak RSS (docs/decisions.md, "Allocator"); built into the
/// binary, the settings hold however the function is deployed or started. Called first thing
/// by [`lambda_main!`] (and the benchmark programs).
pub fn tune_allocator() {
    for (option, var) in [
        (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY"),
        (MI_OPTION_ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT"),
        (MI_OPTION_ALLOW_THP, "MIMALLOC_ALLOW_THP"),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table
            // (thread-safe, valid at any time); the option numbers are those of the bundled
            // mimalloc version (checked by the `allocator_options` test).
            unsafe { mi_option_set(option, 0) };
        }
    }
    // mimalloc reads `allow_thp` when it initialises, before `main`; its arena is already
    // advised for huge pages by then. The process-wide switch still applies to every later
    // page fault.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours; a
        // kernel without it returns an error, which changes nothing.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// The current value of the [`ALLOCATOR`]'s `purge_delay`, `arena_eager_commit` and
/// `allow_thp` options.
pub fn allocator_options() -> (std::ffi::c_long, std::ffi::c_long, std::ffi::c_long) {
    // SAFETY: reads mimalloc's option table (thread-safe).
    unsafe {
        (
            mi_option_get(MI_OPTION_PURGE_DELAY),
            mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
            mi_option_get(MI_OPTION_ALLOW_THP),
        )
    }
}

/// Defines `main` for a function crate: [`tune_allocator`], [`cold_start`] with the given
/// config type, then the Lambda runtime loop calling `handler(&config, &clients, event)` for
/// each invocation. It also installs [`ALLOCATOR`] as the global allocator.
///
/// ```ignore
/// mod config;
/// mod handler;
/// dynabridge_shared::lambda_main!(config::Config, handler::handle);
/// ```
#[macro_export]
macro_rules! lambda_main {
    ($config:ty, $handler:path) => {
        #[global_allocator]
        static GLOBAL_ALLOCATOR: $crate::boot::Allocator = $crate::boot::ALLOCATOR;

        #[tokio::main(flavor = "current_thread")]
        async fn main() -> Result<(), lambda_runtime::Error> {
            $crate::boot::tune_allocator();
            let (config, clients) = $crate::boot::cold_start::<$config>().await?;
            lambda_runtime::run(lambda_runtime::service_fn(|event| {
                $handler(&config, &clients, event)
            }))
            .await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_options() {
        let env_set = ["PURGE_DELAY", "ARENA_EAGER_COMMIT", "ALLOW_THP"]
            .iter()
            .any(|o| std::env::var_os(format!("MIMALLOC_{o}")).is_some());
        if !env_set {
            // mimalloc v3's defaults: the option numbers point at the right options.
            assert_eq!(super::allocator_options(), (1000, 2, 1));
        }
        tune_allocator();
        if !env_set {
            assert_eq!(super::allocator_options(), (0, 0, 0));
        }
    }
}
