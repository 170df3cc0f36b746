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
/// its CPU in `malloc`/`free` (docs/decisions.md, "Allocator").
pub type Allocator = mimalloc::MiMalloc;

/// The allocator value for `#[global_allocator]`.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// Defines `main` for a function crate: [`cold_start`] with the given config type, then the
/// Lambda runtime loop calling `handler(&config, &clients, event)` for each invocation. It
/// also installs [`ALLOCATOR`] as the global allocator.
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

        #[tokio::main]
        async fn main() -> Result<(), lambda_runtime::Error> {
            let (config, clients) = $crate::boot::cold_start::<$config>().await?;
            lambda_runtime::run(lambda_runtime::service_fn(|event| {
                $handler(&config, &clients, event)
            }))
            .await
        }
    };
}
