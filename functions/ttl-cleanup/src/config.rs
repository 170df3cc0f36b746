//! `ttl-cleanup` configuration, read once at cold start (see the README's configuration
//! table).

use std::collections::BTreeSet;
use std::sync::Arc;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::boot::FunctionConfig;
use dynabridge_shared::config::{CommonConfig, ConfigError, Env};
use dynabridge_shared::schema::Registry;
use dynabridge_shared::stream::publish::PublishFilter;

/// TTL attribute of the application table (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "DYNABRIDGE_TTL_ATTRIBUTE";
/// Publish "<Entity> Expired" events for archived expiries (default false).
pub const PUBLISH_EXPIRED: &str = "DYNABRIDGE_PUBLISH_EXPIRED";
/// Checkpoint consumer name (default: the function name).
pub const CONSUMER: &str = "DYNABRIDGE_CONSUMER";
/// Parallel scan segments of the sweep (default 4).
pub const SWEEP_SEGMENTS: &str = "DYNABRIDGE_SWEEP_SEGMENTS";
/// Items per scan page of the sweep (default 100, at most 1000).
pub const SWEEP_PAGE_SIZE: &str = "DYNABRIDGE_SWEEP_PAGE_SIZE";
/// A sparse index holding only items with a TTL, scanned instead of the table.
pub const SWEEP_INDEX: &str = "DYNABRIDGE_SWEEP_INDEX";
/// Ceiling on sweep deletes per second (default: none).
pub const SWEEP_MAX_DELETES_PER_SECOND: &str = "DYNABRIDGE_SWEEP_MAX_DELETES_PER_SECOND";
/// Also purge expired control-table records (default true).
pub const SWEEP_PURGE_CONTROL: &str = "DYNABRIDGE_SWEEP_PURGE_CONTROL";
/// Stop a sweep this long before the Lambda deadline (default 10000 ms).
pub const SWEEP_DEADLINE_MARGIN_MS: &str = "DYNABRIDGE_SWEEP_DEADLINE_MARGIN_MS";

/// Parent entities whose expiry cascades to their children (comma list; default: none).
pub const CASCADE_ENTITIES: &str = "DYNABRIDGE_CASCADE_ENTITIES";
/// Only children whose sort key starts with this prefix are cascaded (default: all items
/// sharing the parent's partition key).
pub const CASCADE_SK_PREFIX: &str = "DYNABRIDGE_CASCADE_SK_PREFIX";

/// Cascade-delete settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeConfig {
    /// Parent entities.
    pub parents: BTreeSet<String>,
    /// Sort-key prefix of the children.
    pub sk_prefix: Option<String>,
}

/// Sweep-mode settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// Parallel scan segments.
    pub segments: u32,
    /// Items per scan page.
    pub page_size: i32,
    /// Sparse index to scan instead of the table.
    pub index: Option<String>,
    /// Deletes per second at most.
    pub max_deletes_per_second: Option<f64>,
    /// Purge expired control-table records.
    pub purge_control: bool,
    /// Safety margin before the deadline, in ms.
    pub deadline_margin_ms: i64,
}

/// Settings of `ttl-cleanup`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every function.
    pub common: CommonConfig,
    /// The schema registry.
    pub registry: Arc<Registry>,
    /// TTL attribute name.
    pub ttl_attribute: String,
    /// Which expiries are published.
    pub publish: PublishFilter,
    /// Checkpoint consumer name.
    pub consumer: String,
    /// Sweep settings.
    pub sweep: SweepConfig,
    /// Cascade deletes, when configured.
    pub cascade: Option<CascadeConfig>,
}

impl FunctionConfig for Config {
    fn from_env(env: &Env) -> Result<Self, DynabridgeError> {
        let common = CommonConfig::from_env(env)?;
        let registry = Arc::new(Registry::from_env(env)?);
        let publish = if env.flag(PUBLISH_EXPIRED, false)? {
            PublishFilter {
                entities: None,
                ops: BTreeSet::from(["EXPIRE"]),
            }
        } else {
            PublishFilter::off()
        };
        let segments: u32 = env.parse_or(SWEEP_SEGMENTS, 4)?;
        let page_size: i32 = env.parse_or(SWEEP_PAGE_SIZE, 100)?;
        if segments == 0 || segments > 1000 {
            return Err(invalid(SWEEP_SEGMENTS, segments, "expected 1..=1000").into());
        }
        if !(1..=1000).contains(&page_size) {
            return Err(invalid(SWEEP_PAGE_SIZE, page_size, "expected 1..=1000").into());
        }
        let max_deletes_per_second: Option<f64> = env.parse_opt(SWEEP_MAX_DELETES_PER_SECOND)?;
        if let Some(r) = max_deletes_per_second
            && !(r > 0.0 && r.is_finite())
        {
            return Err(invalid(
                SWEEP_MAX_DELETES_PER_SECOND,
                r,
                "expected a positive number",
            )
            .into());
        }
        let parents: BTreeSet<String> = env.list(CASCADE_ENTITIES).into_iter().collect();
        if let Some(unknown) = parents.iter().find(|p| registry.entity(p).is_err()) {
            return Err(invalid(
                CASCADE_ENTITIES,
                unknown,
                "not an entity of the schema registry",
            )
            .into());
        }
        let cascade = (!parents.is_empty()).then(|| CascadeConfig {
            parents,
            sk_prefix: env.optional(CASCADE_SK_PREFIX),
        });
        Ok(Config {
            cascade,
            registry,
            ttl_attribute: env.optional(TTL_ATTRIBUTE).unwrap_or_else(|| "ttl".into()),
            publish,
            consumer: env
                .optional(CONSUMER)
                .or_else(|| env.optional("AWS_LAMBDA_FUNCTION_NAME"))
                .unwrap_or_else(|| "ttl-cleanup".into()),
            sweep: SweepConfig {
                segments,
                page_size,
                index: env.optional(SWEEP_INDEX),
                max_deletes_per_second,
                purge_control: env.flag(SWEEP_PURGE_CONTROL, true)?,
                deadline_margin_ms: env.parse_or(SWEEP_DEADLINE_MARGIN_MS, 10_000)?,
            },
            common,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

fn invalid(name: &str, value: impl ToString, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}
