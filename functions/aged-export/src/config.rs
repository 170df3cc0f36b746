//! `aged-export` configuration, read once at cold start (table in
//! `docs/functions/aged-export.md`).

use std::collections::HashMap;
use std::time::Duration;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::boot::FunctionConfig;
use dynabridge_shared::config::{CommonConfig, ConfigError, Env};
use dynabridge_shared::lake::ParquetOptions;
use dynabridge_shared::schema::{FieldType, Registry, TimestampEncoding};

/// Names of the variables read here.
pub mod vars {
    /// Items older than this many days are exported (default 90).
    pub const AGE_DAYS: &str = "DYNABRIDGE_EXPORT_AGE_DAYS";
    /// The age attribute of every entity (default `created_at`).
    pub const AGE_ATTRIBUTE: &str = "DYNABRIDGE_EXPORT_AGE_ATTRIBUTE";
    /// Per-entity age attributes: `Entity=attribute,...`.
    pub const AGE_ATTRIBUTES: &str = "DYNABRIDGE_EXPORT_AGE_ATTRIBUTES";
    /// Encoding of age attributes the registry does not declare as timestamps.
    pub const AGE_FORMAT: &str = "DYNABRIDGE_EXPORT_AGE_FORMAT";
    /// Parallel-scan segments (default 4).
    pub const SEGMENTS: &str = "DYNABRIDGE_EXPORT_SEGMENTS";
    /// Optional (sparse) index to read instead of the table.
    pub const INDEX: &str = "DYNABRIDGE_EXPORT_INDEX";
    /// With `INDEX`: the index partition key attribute to Query.
    pub const INDEX_KEY: &str = "DYNABRIDGE_EXPORT_INDEX_KEY";
    /// With `INDEX_KEY`: the partitions to Query (one segment each).
    pub const INDEX_VALUES: &str = "DYNABRIDGE_EXPORT_INDEX_VALUES";
    /// `none | ttl | delete` (default `none`).
    pub const ACTION: &str = "DYNABRIDGE_EXPORT_ACTION";
    /// Grace period in days (default 0).
    pub const GRACE_DAYS: &str = "DYNABRIDGE_EXPORT_GRACE_DAYS";
    /// The table's TTL attribute (default `ttl`).
    pub const TTL_ATTRIBUTE: &str = "DYNABRIDGE_EXPORT_TTL_ATTRIBUTE";
    /// Optional version attribute the unchanged-guard compares instead of the whole item.
    pub const VERSION_ATTRIBUTE: &str = "DYNABRIDGE_EXPORT_VERSION_ATTRIBUTE";
    /// Most exported items per part (default 200,000).
    pub const PART_MAX_ITEMS: &str = "DYNABRIDGE_EXPORT_PART_MAX_ITEMS";
    /// Most bytes of pending post-export actions / quarantine per part (default 16 MiB).
    pub const PART_MAX_BYTES: &str = "DYNABRIDGE_EXPORT_PART_MAX_BYTES";
    /// Rows per Arrow batch handed to the Parquet writer (default 4,096).
    pub const BATCH_ROWS: &str = "DYNABRIDGE_EXPORT_BATCH_ROWS";
    /// Rows per Parquet row group at most (default 16,384).
    pub const ROW_GROUP_ROWS: &str = "DYNABRIDGE_EXPORT_ROW_GROUP_ROWS";
    /// Bytes per Parquet row group at most (default 1 MiB).
    pub const ROW_GROUP_BYTES: &str = "DYNABRIDGE_EXPORT_ROW_GROUP_BYTES";
    /// Multipart part size (default and minimum 5 MiB).
    pub const UPLOAD_PART_BYTES: &str = "DYNABRIDGE_EXPORT_UPLOAD_PART_BYTES";
    /// Folder for the parts being filled and their pending post-export actions (default
    /// `/tmp`; `memory` keeps them in memory).
    pub const SPILL_DIR: &str = "DYNABRIDGE_EXPORT_SPILL_DIR";
    /// Optional `Limit` of each Scan/Query page.
    pub const PAGE_LIMIT: &str = "DYNABRIDGE_EXPORT_PAGE_LIMIT";
    /// Time kept free before the Lambda deadline, in ms (default 60,000).
    pub const DEADLINE_RESERVE_MS: &str = "DYNABRIDGE_EXPORT_DEADLINE_RESERVE_MS";
    /// Concurrent guarded post-export requests (default 16).
    pub const ACTION_CONCURRENCY: &str = "DYNABRIDGE_EXPORT_ACTION_CONCURRENCY";
    /// `lambda | response` (default `lambda`).
    pub const DISPATCH: &str = "DYNABRIDGE_EXPORT_DISPATCH";
    /// A duplicate schedule event re-dispatches a segment idle for this long (default 900 s).
    pub const REDISPATCH_AFTER_S: &str = "DYNABRIDGE_EXPORT_REDISPATCH_AFTER_S";
    /// Test hook: pause this long after a part is durable, before its actions (default 0).
    pub const PAUSE_BEFORE_ACTIONS_MS: &str = "DYNABRIDGE_EXPORT_PAUSE_BEFORE_ACTIONS_MS";
}

/// What happens to an exported item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the export is a copy.
    None,
    /// Set the TTL attribute to the run's snapshot time plus the grace period.
    Ttl,
    /// Delete it (once older than the age threshold plus the grace period).
    Delete,
}

impl Action {
    /// The configuration text.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Ttl => "ttl",
            Action::Delete => "delete",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Action::None),
            "ttl" => Ok(Action::Ttl),
            "delete" => Ok(Action::Delete),
            other => Err(format!("expected none, ttl or delete, got {other:?}")),
        }
    }
}

/// How an age attribute's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeFormat {
    /// `S` RFC 3339 / ISO-8601.
    Iso8601,
    /// `N` seconds since the epoch.
    EpochSeconds,
    /// `N` milliseconds since the epoch.
    EpochMillis,
    /// `S` as ISO-8601; `N` as milliseconds when ≥ 10^11, else seconds.
    Auto,
}

impl std::str::FromStr for AgeFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "iso8601" => Ok(AgeFormat::Iso8601),
            "epoch_seconds" => Ok(AgeFormat::EpochSeconds),
            "epoch_millis" => Ok(AgeFormat::EpochMillis),
            "auto" => Ok(AgeFormat::Auto),
            other => Err(format!(
                "expected iso8601, epoch_seconds, epoch_millis or auto, got {other:?}"
            )),
        }
    }
}

/// Where an entity's age is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeRule {
    /// The attribute.
    pub attribute: String,
    /// Its encoding.
    pub format: AgeFormat,
}

/// How segments are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadMode {
    /// Parallel scan of the table (or of `index`) in `segments` segments.
    Scan {
        /// Optional sparse index.
        index: Option<String>,
        /// Segments.
        segments: u32,
    },
    /// One Query per partition value of a sparse index.
    Query {
        /// The index.
        index: String,
        /// Its partition key attribute.
        key_attribute: String,
        /// The partitions; one segment each.
        values: Vec<String>,
    },
}

impl ReadMode {
    /// Number of segments of a run.
    pub fn segments(&self) -> u32 {
        match self {
            ReadMode::Scan { segments, .. } => *segments,
            ReadMode::Query { values, .. } => values.len() as u32,
        }
    }
}

/// How follow-up invocations are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// `lambda:InvokeFunction` with `InvocationType=Event` on this function.
    Lambda,
    /// Returned in the response's `dispatch` list, for a local driver to invoke.
    Response,
}

/// Settings of `aged-export`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every function.
    pub common: CommonConfig,
    /// The schema registry.
    pub registry: Registry,
    /// Age threshold.
    pub age_days: u32,
    /// Age rule of entities without an override (and of items no entity matches).
    pub default_age: AgeRule,
    /// Per-entity age rules.
    pub entity_age: HashMap<String, AgeRule>,
    /// Segment reads.
    pub read_mode: ReadMode,
    /// Post-export action.
    pub action: Action,
    /// Grace period.
    pub grace_days: u32,
    /// TTL attribute.
    pub ttl_attribute: String,
    /// Version attribute for the unchanged guard.
    pub version_attribute: Option<String>,
    /// Most items per part.
    pub part_max_items: u64,
    /// Most pending-action / quarantine bytes per part.
    pub part_max_bytes: usize,
    /// Rows per Arrow batch.
    pub batch_rows: usize,
    /// Row group rows.
    pub row_group_rows: usize,
    /// Row group bytes.
    pub row_group_bytes: usize,
    /// Multipart part size.
    pub upload_part_bytes: usize,
    /// Where the parts being filled wait for upload, and the part's pending post-export
    /// actions for its commit: a folder (anonymous temporary files,
    /// `shared::lake::LakeFileWriter::spilling`, `shared::lake::PartBuffer`) or `None` for memory.
    pub spill_dir: Option<std::path::PathBuf>,
    /// `Limit` of each Scan/Query page (default 1,000 items).
    pub page_limit: Option<i32>,
    /// Deadline reserve.
    pub deadline_reserve: Duration,
    /// Concurrent guarded requests.
    pub action_concurrency: usize,
    /// Dispatch mode.
    pub dispatch: DispatchMode,
    /// Idle time before a duplicate schedule event re-dispatches a segment.
    pub redispatch_after: Duration,
    /// Test hook.
    pub pause_before_actions: Duration,
}

fn invalid(name: &str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// The age rule of `entity` (`None`: an item no entity matches).
    pub fn age_rule(&self, entity: Option<&str>) -> &AgeRule {
        entity
            .and_then(|e| self.entity_age.get(e))
            .unwrap_or(&self.default_age)
    }
}

/// The format of `attribute` as the registry declares it for `entity`'s latest version.
fn declared_format(registry: &Registry, entity: &str, attribute: &str) -> Option<AgeFormat> {
    let e = registry.entity(entity).ok()?;
    let field = e.latest().fields().iter().find(|f| f.name == attribute)?;
    match field.ty {
        FieldType::Timestamp(TimestampEncoding::Iso8601) => Some(AgeFormat::Iso8601),
        FieldType::Timestamp(TimestampEncoding::EpochSeconds) => Some(AgeFormat::EpochSeconds),
        FieldType::Timestamp(TimestampEncoding::EpochMillis) => Some(AgeFormat::EpochMillis),
        _ => None,
    }
}

impl FunctionConfig for Config {
    fn from_env(env: &Env) -> Result<Self, DynabridgeError> {
        let common = CommonConfig::from_env(env)?;
        let registry = Registry::from_env(env)?;
        let fallback: AgeFormat = env.parse_or(vars::AGE_FORMAT, AgeFormat::Auto)?;
        let default_attr = env
            .optional(vars::AGE_ATTRIBUTE)
            .unwrap_or_else(|| "created_at".into());
        let mut overrides = HashMap::new();
        for pair in env.list(vars::AGE_ATTRIBUTES) {
            let Some((entity, attr)) = pair.split_once('=') else {
                return Err(
                    invalid(vars::AGE_ATTRIBUTES, pair, "expected Entity=attribute").into(),
                );
            };
            let (entity, attr) = (entity.trim(), attr.trim());
            if registry.entity(entity).is_err() || attr.is_empty() {
                return Err(invalid(
                    vars::AGE_ATTRIBUTES,
                    pair.clone(),
                    "unknown entity or empty attribute",
                )
                .into());
            }
            overrides.insert(entity.to_string(), attr.to_string());
        }
        // Every entity gets a rule: its attribute, in the encoding its schema declares.
        let mut entity_age = HashMap::new();
        for e in registry.entities() {
            let attribute = overrides
                .get(e.name())
                .cloned()
                .unwrap_or_else(|| default_attr.clone());
            let format = declared_format(&registry, e.name(), &attribute).unwrap_or(fallback);
            entity_age.insert(e.name().to_string(), AgeRule { attribute, format });
        }

        let segments: u32 = env.parse_or(vars::SEGMENTS, 4)?;
        if !(1..=1000).contains(&segments) {
            return Err(invalid(vars::SEGMENTS, segments.to_string(), "must be 1..=1000").into());
        }
        let index = env.optional(vars::INDEX);
        let read_mode = match (index, env.optional(vars::INDEX_KEY)) {
            (Some(index), Some(key_attribute)) => {
                let values = env.list(vars::INDEX_VALUES);
                if values.is_empty() || values.len() > 1000 {
                    return Err(invalid(
                        vars::INDEX_VALUES,
                        env.optional(vars::INDEX_VALUES).unwrap_or_default(),
                        "1 to 1000 partition values are required with DYNABRIDGE_EXPORT_INDEX_KEY",
                    )
                    .into());
                }
                ReadMode::Query {
                    index,
                    key_attribute,
                    values,
                }
            }
            (None, Some(k)) => {
                return Err(invalid(vars::INDEX_KEY, k, "needs DYNABRIDGE_EXPORT_INDEX").into());
            }
            (index, None) => ReadMode::Scan { index, segments },
        };

        let upload_part_bytes: usize = env.parse_or(vars::UPLOAD_PART_BYTES, 5 * 1024 * 1024)?;
        if upload_part_bytes < 5 * 1024 * 1024 {
            return Err(invalid(
                vars::UPLOAD_PART_BYTES,
                upload_part_bytes.to_string(),
                "S3's minimum part size is 5 MiB",
            )
            .into());
        }
        // 1,000 items per page (about half of DynamoDB's 1 MB page for 0.5 KB items): a
        // whole page is decoded before it is encoded, and with 1 MB pages it was the biggest
        // part of the peak RSS (67 → 54 MiB at 100k items, throughput within noise; the
        // read capacity used is the same, only the request count grows).
        let page_limit: i32 = env.parse_or(vars::PAGE_LIMIT, 1000)?;
        if page_limit < 1 {
            return Err(invalid(vars::PAGE_LIMIT, page_limit.to_string(), "must be ≥ 1").into());
        }
        let page_limit = Some(page_limit);
        let positive = |name: &str, v: usize| -> Result<usize, ConfigError> {
            if v == 0 {
                Err(invalid(name, "0", "must be ≥ 1"))
            } else {
                Ok(v)
            }
        };
        let dispatch = match env
            .optional(vars::DISPATCH)
            .unwrap_or_else(|| "lambda".into())
            .to_ascii_lowercase()
            .as_str()
        {
            "lambda" => DispatchMode::Lambda,
            "response" => DispatchMode::Response,
            other => {
                return Err(invalid(vars::DISPATCH, other, "expected lambda or response").into());
            }
        };
        Ok(Config {
            age_days: env.parse_or(vars::AGE_DAYS, 90)?,
            default_age: AgeRule {
                attribute: default_attr,
                format: fallback,
            },
            entity_age,
            read_mode,
            action: env.parse_or(vars::ACTION, Action::None)?,
            grace_days: env.parse_or(vars::GRACE_DAYS, 0)?,
            ttl_attribute: env
                .optional(vars::TTL_ATTRIBUTE)
                .unwrap_or_else(|| "ttl".into()),
            version_attribute: env.optional(vars::VERSION_ATTRIBUTE),
            part_max_items: env.parse_or::<u64>(vars::PART_MAX_ITEMS, 200_000)?.max(1),
            part_max_bytes: positive(
                vars::PART_MAX_BYTES,
                env.parse_or(vars::PART_MAX_BYTES, 16 * 1024 * 1024)?,
            )?,
            // Rows buffered per entity before Arrow encoding (4096 cost ~6 MiB more peak RSS
            // with three entities, for no measurable throughput).
            batch_rows: positive(vars::BATCH_ROWS, env.parse_or(vars::BATCH_ROWS, 1024)?)?,
            row_group_rows: positive(
                vars::ROW_GROUP_ROWS,
                env.parse_or(
                    vars::ROW_GROUP_ROWS,
                    ParquetOptions::streaming().max_row_group_rows,
                )?,
            )?,
            // 1 MiB row groups (not the 4 MiB of `ParquetOptions::streaming`): each entity
            // holds one open row group beside its 5 MiB upload part, and with three entities
            // 4 MiB groups put the 100k-item export at ~68 MiB peak RSS against ~56 MiB with
            // 1 MiB (bench/README.md, aged-export); Spark reads either without a difference.
            row_group_bytes: positive(
                vars::ROW_GROUP_BYTES,
                env.parse_or(vars::ROW_GROUP_BYTES, 1024 * 1024)?,
            )?,
            upload_part_bytes,
            // Parts wait in Lambda's /tmp by default: with one open file per entity, parts in
            // memory cost up to 5 MiB + a row group per entity (peak RSS at 1M items: see
            // bench/README.md, aged-export); spilled, one part is in memory only while it
            // is uploaded.
            spill_dir: match env.optional(vars::SPILL_DIR).as_deref().map(str::trim) {
                None | Some("") => Some(std::path::PathBuf::from("/tmp")),
                Some(v) if v.eq_ignore_ascii_case("memory") => None,
                Some(v) => Some(std::path::PathBuf::from(v)),
            },
            page_limit,
            deadline_reserve: Duration::from_millis(
                env.parse_or(vars::DEADLINE_RESERVE_MS, 60_000)?,
            ),
            action_concurrency: positive(
                vars::ACTION_CONCURRENCY,
                env.parse_or(vars::ACTION_CONCURRENCY, 16)?,
            )?,
            dispatch,
            redispatch_after: Duration::from_secs(env.parse_or(vars::REDISPATCH_AFTER_S, 900)?),
            pause_before_actions: Duration::from_millis(
                env.parse_or(vars::PAUSE_BEFORE_ACTIONS_MS, 0)?,
            ),
            registry,
            common,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(String, String)> {
        let registry = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/example.json");
        vec![
            ("DYNABRIDGE_TABLE_NAME".into(), "app".into()),
            ("DYNABRIDGE_CONTROL_TABLE".into(), "control".into()),
            ("DYNABRIDGE_LAKE_BUCKET".into(), "lake".into()),
            ("DYNABRIDGE_SCHEMA_PATH".into(), registry.into()),
        ]
    }

    #[test]
    fn age_rules_come_from_overrides_and_the_registry() {
        let mut env = base();
        env.push((vars::AGE_ATTRIBUTES.into(), "Order=placed_at".into()));
        let c = Config::from_env(&Env::from_pairs(env)).unwrap();
        assert_eq!(
            c.age_rule(Some("Order")),
            &AgeRule {
                attribute: "placed_at".into(),
                format: AgeFormat::EpochMillis
            }
        );
        assert_eq!(c.age_rule(Some("Customer")).format, AgeFormat::Iso8601);
        assert_eq!(c.age_rule(None).format, AgeFormat::Auto);
        assert_eq!(c.action, Action::None);
        assert_eq!(c.spill_dir.as_deref(), Some(std::path::Path::new("/tmp")));
        let mut env = base();
        env.push((vars::SPILL_DIR.into(), "memory".into()));
        assert_eq!(
            Config::from_env(&Env::from_pairs(env)).unwrap().spill_dir,
            None
        );
        assert_eq!(
            c.read_mode,
            ReadMode::Scan {
                index: None,
                segments: 4
            }
        );
    }

    #[test]
    fn invalid_settings_name_the_variable() {
        for (name, value) in [
            (vars::ACTION, "purge"),
            (vars::SEGMENTS, "0"),
            (vars::AGE_ATTRIBUTES, "Nope=x"),
            (vars::UPLOAD_PART_BYTES, "1024"),
            (vars::INDEX_KEY, "gsi_pk"),
            (vars::DISPATCH, "sqs"),
        ] {
            let mut env = base();
            env.push((name.into(), value.into()));
            let err = Config::from_env(&Env::from_pairs(env)).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
