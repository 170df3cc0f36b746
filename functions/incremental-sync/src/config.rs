//! `incremental-sync` configuration, read once at cold start (see
//! `docs/functions/incremental-sync.md` for the table of variables and their defaults).

use std::time::Duration;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::boot::FunctionConfig;
use dynabridge_shared::config::{CommonConfig, ConfigError, Env};
use dynabridge_shared::continuation::DispatchMode;
use dynabridge_shared::schema::{FieldType, Registry, TimestampEncoding};

/// Variable names read by this function.
pub mod vars {
    /// Folder of the lake (under `DYNABRIDGE_LAKE_PREFIX`) that Databricks writes into.
    pub const INBOUND_PREFIX: &str = "DYNABRIDGE_SYNC_INBOUND_PREFIX";
    /// Entity of files whose path does not name one.
    pub const ENTITY: &str = "DYNABRIDGE_SYNC_ENTITY";
    /// `upsert` or `guarded`.
    pub const MODE: &str = "DYNABRIDGE_SYNC_MODE";
    /// The version/timestamp attribute guarded writes compare.
    pub const GUARD_ATTRIBUTE: &str = "DYNABRIDGE_SYNC_GUARD_ATTRIBUTE";
    /// Largest object processed, in bytes.
    pub const MAX_OBJECT_BYTES: &str = "DYNABRIDGE_SYNC_MAX_OBJECT_BYTES";
    /// Rows decoded and written per write call.
    pub const BATCH_ROWS: &str = "DYNABRIDGE_SYNC_BATCH_ROWS";
    /// Time kept in reserve before the deadline, in ms.
    pub const DEADLINE_MARGIN_MS: &str = "DYNABRIDGE_SYNC_DEADLINE_MARGIN_MS";
    /// Rows between durable position saves.
    pub const CHECKPOINT_ROWS: &str = "DYNABRIDGE_SYNC_CHECKPOINT_ROWS";
    /// Ceiling on DynamoDB write units per second (unset: none).
    pub const MAX_WCU_PER_SECOND: &str = "DYNABRIDGE_SYNC_MAX_WRITE_UNITS_PER_SECOND";
    /// Starting number of write requests in flight.
    pub const INITIAL_CONCURRENCY: &str = "DYNABRIDGE_SYNC_INITIAL_CONCURRENCY";
    /// Most write requests in flight.
    pub const MAX_CONCURRENCY: &str = "DYNABRIDGE_SYNC_MAX_CONCURRENCY";
    /// How long a file stays recorded as synced, in days.
    pub const RECORD_TTL_DAYS: &str = "DYNABRIDGE_SYNC_RECORD_TTL_DAYS";
    /// How far back (by LastModified) the catch-up schedule looks, in hours.
    pub const CATCH_UP_LOOKBACK_HOURS: &str = "DYNABRIDGE_SYNC_CATCH_UP_LOOKBACK_HOURS";
    /// How long a file's claim is held for its continuation, in seconds.
    pub const HANDOFF_LEASE_SECONDS: &str = "DYNABRIDGE_SYNC_HANDOFF_LEASE_SECONDS";
    /// Most continuations of one chain.
    pub const MAX_HOPS: &str = "DYNABRIDGE_SYNC_MAX_HOPS";
    /// Rejected rows buffered before they are flushed to a rejects file.
    pub const REJECTS_FLUSH_ROWS: &str = "DYNABRIDGE_SYNC_REJECTS_FLUSH_ROWS";
}

/// How rows are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Batched `BatchWriteItem` puts and deletes (idempotent: the last row per key wins).
    Upsert,
    /// Conditional single-item writes that apply only when the row's `attribute` is newer
    /// than the stored item's.
    Guarded {
        /// The version or timestamp attribute compared.
        attribute: String,
    },
}

impl WriteMode {
    /// `upsert` or `guarded`.
    pub fn name(&self) -> &'static str {
        match self {
            WriteMode::Upsert => "upsert",
            WriteMode::Guarded { .. } => "guarded",
        }
    }
}

/// Settings of `incremental-sync`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every function.
    pub common: CommonConfig,
    /// The schema registry.
    pub registry: Registry,
    /// Full key prefix of the inbound folder (lake prefix + inbound prefix), ending in `/`.
    pub inbound_prefix: String,
    /// Entity of files whose path names none.
    pub default_entity: Option<String>,
    /// Upsert or guarded.
    pub mode: WriteMode,
    /// Largest object processed.
    pub max_object_bytes: u64,
    /// Rows per write call.
    pub batch_rows: usize,
    /// Reserve before the deadline.
    pub deadline_margin: Duration,
    /// Rows between position saves.
    pub checkpoint_rows: u64,
    /// Write-unit ceiling.
    pub max_write_units_per_second: Option<f64>,
    /// Starting write concurrency.
    pub initial_concurrency: usize,
    /// Most write concurrency.
    pub max_concurrency: usize,
    /// How long a synced file stays recorded.
    pub record_ttl: Duration,
    /// Catch-up lookback.
    pub catch_up_lookback: Duration,
    /// Claim held for a continuation.
    pub handoff_lease: Duration,
    /// Most continuations per chain.
    pub max_hops: u32,
    /// Rejected rows buffered before a flush.
    pub rejects_flush_rows: usize,
    /// How continuations are started.
    pub continuation: DispatchMode,
}

fn invalid(name: &str, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl FunctionConfig for Config {
    fn from_env(env: &Env) -> Result<Self, DynabridgeError> {
        let common = CommonConfig::from_env(env)?;
        let registry = Registry::from_env(env)?;

        let inbound = env
            .optional(vars::INBOUND_PREFIX)
            .unwrap_or_else(|| "inbound/".into());
        let inbound = inbound.trim_matches('/');
        if inbound.is_empty() || inbound.split('/').any(|s| s == ".." || s == ".") {
            return Err(invalid(
                vars::INBOUND_PREFIX,
                inbound,
                "must be a non-empty folder without '.' or '..' segments",
            )
            .into());
        }
        let inbound_prefix = if common.lake_prefix.is_empty() {
            format!("{inbound}/")
        } else {
            format!("{}/{inbound}/", common.lake_prefix)
        };

        let default_entity = env.optional(vars::ENTITY);
        if let Some(name) = &default_entity
            && registry.entity(name).is_err()
        {
            return Err(invalid(vars::ENTITY, name, "not an entity of the registry").into());
        }

        let mode = match env.optional(vars::MODE).as_deref().map(str::trim) {
            None | Some("upsert") => WriteMode::Upsert,
            Some("guarded") => {
                let attribute = env.required(vars::GUARD_ATTRIBUTE)?;
                validate_guard(&registry, &attribute)?;
                WriteMode::Guarded { attribute }
            }
            Some(other) => {
                return Err(invalid(vars::MODE, other, "expected upsert or guarded").into());
            }
        };

        let positive = |name: &str, v: u64| -> Result<u64, ConfigError> {
            if v == 0 {
                Err(invalid(name, v, "must be at least 1"))
            } else {
                Ok(v)
            }
        };
        let max_object_bytes = positive(
            vars::MAX_OBJECT_BYTES,
            env.parse_or(vars::MAX_OBJECT_BYTES, 10u64 * 1024 * 1024 * 1024)?,
        )?;
        let batch_rows = positive(vars::BATCH_ROWS, env.parse_or(vars::BATCH_ROWS, 1000u64)?)?;
        let checkpoint_rows = positive(
            vars::CHECKPOINT_ROWS,
            env.parse_or(vars::CHECKPOINT_ROWS, 50_000u64)?,
        )?;
        let max_write_units_per_second: Option<f64> = env.parse_opt(vars::MAX_WCU_PER_SECOND)?;
        if let Some(r) = max_write_units_per_second
            && !(r.is_finite() && r >= 1.0)
        {
            return Err(invalid(vars::MAX_WCU_PER_SECOND, r, "must be a number ≥ 1").into());
        }
        let max_concurrency = positive(
            vars::MAX_CONCURRENCY,
            env.parse_or(vars::MAX_CONCURRENCY, 16u64)?,
        )?;
        let initial_concurrency = positive(
            vars::INITIAL_CONCURRENCY,
            env.parse_or(vars::INITIAL_CONCURRENCY, 4u64)?,
        )?
        .min(max_concurrency);
        let record_ttl_days = positive(
            vars::RECORD_TTL_DAYS,
            env.parse_or(vars::RECORD_TTL_DAYS, 30u64)?,
        )?;
        let lookback_hours = positive(
            vars::CATCH_UP_LOOKBACK_HOURS,
            env.parse_or(vars::CATCH_UP_LOOKBACK_HOURS, 7 * 24u64)?,
        )?;
        // A file whose record expired could be applied again by the catch-up schedule, so
        // the schedule only looks at files younger than the records' lifetime.
        if lookback_hours >= record_ttl_days * 24 {
            return Err(invalid(
                vars::CATCH_UP_LOOKBACK_HOURS,
                lookback_hours,
                format!(
                    "must be shorter than {} ({record_ttl_days} days), or the catch-up would \
                     apply files whose records have expired a second time",
                    vars::RECORD_TTL_DAYS
                ),
            )
            .into());
        }
        Ok(Config {
            registry,
            inbound_prefix,
            default_entity,
            mode,
            max_object_bytes,
            batch_rows: batch_rows as usize,
            deadline_margin: Duration::from_millis(
                env.parse_or(vars::DEADLINE_MARGIN_MS, 20_000u64)?,
            ),
            checkpoint_rows,
            max_write_units_per_second,
            initial_concurrency: initial_concurrency as usize,
            max_concurrency: max_concurrency as usize,
            record_ttl: Duration::from_secs(record_ttl_days * 86_400),
            catch_up_lookback: Duration::from_secs(lookback_hours * 3_600),
            handoff_lease: Duration::from_secs(positive(
                vars::HANDOFF_LEASE_SECONDS,
                env.parse_or(vars::HANDOFF_LEASE_SECONDS, 900u64)?,
            )?),
            max_hops: env.parse_or(vars::MAX_HOPS, 1000u32)?,
            rejects_flush_rows: positive(
                vars::REJECTS_FLUSH_ROWS,
                env.parse_or(vars::REJECTS_FLUSH_ROWS, 10_000u64)?,
            )? as usize,
            continuation: DispatchMode::from_env(env)?,
            common,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// The guard attribute must be a field some entity declares, of a type whose stored form
/// DynamoDB orders correctly: numbers (`int`, `decimal`, `number`, epoch timestamps) compare
/// numerically. ISO-8601 strings are refused: the codec writes only the fractional digits
/// needed, so `…:00.5Z` sorts before `…:00Z` and a newer item could be taken as older.
fn validate_guard(registry: &Registry, attribute: &str) -> Result<(), ConfigError> {
    let mut found = false;
    for entity in registry.entities() {
        for field in entity.latest().fields() {
            if field.name != attribute {
                continue;
            }
            found = true;
            let ok = matches!(
                field.ty,
                FieldType::Int
                    | FieldType::Decimal { .. }
                    | FieldType::Number
                    | FieldType::Timestamp(TimestampEncoding::EpochMillis)
                    | FieldType::Timestamp(TimestampEncoding::EpochSeconds)
            );
            if !ok {
                return Err(invalid(
                    vars::GUARD_ATTRIBUTE,
                    attribute,
                    format!(
                        "entity {} declares it as {}; guarded writes need a numeric version \
                         or an epoch timestamp (ISO-8601 strings do not sort by time)",
                        entity.name(),
                        field.ty.describe()
                    ),
                ));
            }
        }
    }
    if !found {
        return Err(invalid(
            vars::GUARD_ATTRIBUTE,
            attribute,
            "no entity of the registry declares this field",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_path() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/example.json").to_string()
    }

    fn base() -> Vec<(String, String)> {
        [
            ("DYNABRIDGE_TABLE_NAME", "app"),
            ("DYNABRIDGE_CONTROL_TABLE", "control"),
            ("DYNABRIDGE_LAKE_BUCKET", "lake"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("DYNABRIDGE_SCHEMA_PATH".to_string(), registry_path())])
        .collect()
    }

    fn with(extra: &[(&str, &str)]) -> Result<Config, DynabridgeError> {
        let mut pairs = base();
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn defaults() {
        let c = with(&[]).unwrap();
        assert_eq!(c.inbound_prefix, "inbound/");
        assert_eq!(c.mode, WriteMode::Upsert);
        assert_eq!(c.batch_rows, 1000);
        assert_eq!(c.continuation, DispatchMode::SelfInvoke);
        let c = with(&[
            ("DYNABRIDGE_LAKE_PREFIX", "team"),
            (vars::INBOUND_PREFIX, "/in/db/"),
        ])
        .unwrap();
        assert_eq!(c.inbound_prefix, "team/in/db/");
    }

    #[test]
    fn guarded_mode_needs_an_orderable_attribute() {
        let err = with(&[(vars::MODE, "guarded")]).unwrap_err().to_string();
        assert!(err.contains(vars::GUARD_ATTRIBUTE), "{err}");
        let c = with(&[
            (vars::MODE, "guarded"),
            (vars::GUARD_ATTRIBUTE, "placed_at"),
        ])
        .unwrap();
        assert_eq!(
            c.mode,
            WriteMode::Guarded {
                attribute: "placed_at".into()
            }
        );
        let err = with(&[
            (vars::MODE, "guarded"),
            (vars::GUARD_ATTRIBUTE, "created_at"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("ISO-8601"), "{err}");
        let err = with(&[(vars::MODE, "guarded"), (vars::GUARD_ATTRIBUTE, "nope")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no entity"), "{err}");
    }

    #[test]
    fn invalid_settings_are_named() {
        for (name, value) in [
            (vars::MODE, "merge"),
            (vars::ENTITY, "Invoice"),
            (vars::INBOUND_PREFIX, "a/../b"),
            (vars::BATCH_ROWS, "0"),
            (vars::MAX_WCU_PER_SECOND, "0.5"),
            (vars::CATCH_UP_LOOKBACK_HOURS, "1000"),
            ("DYNABRIDGE_CONTINUATION_MODE", "later"),
        ] {
            let err = with(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }
}
