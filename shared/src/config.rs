//! Typed configuration from environment variables.
//!
//! Each function has one config struct, read and validated once at cold start with an
//! [`Env`]. A missing or unparsable variable becomes a [`ConfigError`] that names the variable,
//! so a misconfigured deployment fails its first invocation with an actionable message
//! instead of misbehaving later.
//!
//! [`CommonConfig`] holds the settings every function shares (lake bucket, control table,
//! event bus); function crates embed it in their own struct.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

/// A setting that is missing or cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("missing required environment variable {name}")]
    Missing {
        /// The variable's name.
        name: String,
    },
    /// A variable is set but its value cannot be used.
    #[error("invalid value {value:?} for environment variable {name}: {reason}")]
    Invalid {
        /// The variable's name.
        name: String,
        /// The value found.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

/// A source of settings: the process environment, or a fixed map in tests.
///
/// Reading through `Env` (rather than `std::env::var` scattered around) keeps every lookup
/// testable without mutating the process environment, which is `unsafe` in edition 2024.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Option<HashMap<String, String>>,
}

impl Env {
    /// Reads from the process environment.
    pub fn process() -> Self {
        Env { vars: None }
    }

    /// Reads from the given pairs only (for tests and the local runner).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// The raw value of `name`; empty values count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.vars {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// A required string setting.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::Missing {
            name: name.to_string(),
        })
    }

    /// An optional string setting.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.get(name)
    }

    /// A required setting parsed with [`FromStr`].
    pub fn parse<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.required(name)?;
        parse_value(name, &raw)
    }

    /// An optional setting parsed with [`FromStr`], `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            Some(raw) => parse_value(name, &raw),
            None => Ok(default),
        }
    }

    /// An optional setting parsed with [`FromStr`].
    pub fn parse_opt<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(name)
            .map(|raw| parse_value(name, &raw))
            .transpose()
    }

    /// A boolean flag: `true/false`, `1/0`, `yes/no`, `on/off` (case-insensitive).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name: name.to_string(),
                value: raw,
                reason: "expected true/false".to_string(),
            }),
        }
    }

    /// A comma-separated list; empty entries are ignored.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn parse_value<T>(name: &str, raw: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw.trim().parse::<T>().map_err(|e| ConfigError::Invalid {
        name: name.to_string(),
        value: raw.to_string(),
        reason: e.to_string(),
    })
}

/// Names of the environment variables every function reads.
pub mod vars {
    /// The application table whose stream and items dynabridge handles.
    pub const TABLE_NAME: &str = "DYNABRIDGE_TABLE_NAME";
    /// The control table holding idempotency records and checkpoints.
    pub const CONTROL_TABLE: &str = "DYNABRIDGE_CONTROL_TABLE";
    /// The lake bucket.
    pub const LAKE_BUCKET: &str = "DYNABRIDGE_LAKE_BUCKET";
    /// Optional key prefix inside the lake bucket (no leading or trailing slash).
    pub const LAKE_PREFIX: &str = "DYNABRIDGE_LAKE_PREFIX";
    /// The EventBridge bus name or ARN for domain events.
    pub const EVENT_BUS: &str = "DYNABRIDGE_EVENT_BUS";
    /// The `Source` of published events; default `dynabridge.<table>`.
    pub const EVENT_SOURCE: &str = "DYNABRIDGE_EVENT_SOURCE";
    /// Force S3 path-style addressing (needed for a 127.0.0.1 endpoint); default false.
    pub const S3_FORCE_PATH_STYLE: &str = "DYNABRIDGE_S3_FORCE_PATH_STYLE";
}

/// Settings every function shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonConfig {
    /// The application table.
    pub table_name: String,
    /// The control table (idempotency records, checkpoints).
    pub control_table: String,
    /// The lake bucket.
    pub lake_bucket: String,
    /// Key prefix inside the lake bucket, without surrounding slashes; empty for the root.
    pub lake_prefix: String,
    /// EventBridge bus for domain events.
    pub event_bus: String,
    /// `Source` of published events.
    pub event_source: String,
    /// Whether S3 requests use path-style addressing.
    pub s3_force_path_style: bool,
}

impl CommonConfig {
    /// Reads and validates the shared settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let table_name = env.required(vars::TABLE_NAME)?;
        let lake_prefix = env
            .optional(vars::LAKE_PREFIX)
            .unwrap_or_default()
            .trim_matches('/')
            .to_string();
        if lake_prefix.split('/').any(|seg| seg == "..") {
            return Err(ConfigError::Invalid {
                name: vars::LAKE_PREFIX.to_string(),
                value: lake_prefix,
                reason: "must not contain '..' segments".to_string(),
            });
        }
        let event_source = env
            .optional(vars::EVENT_SOURCE)
            .unwrap_or_else(|| format!("dynabridge.{table_name}"));
        Ok(CommonConfig {
            control_table: env.required(vars::CONTROL_TABLE)?,
            lake_bucket: env.required(vars::LAKE_BUCKET)?,
            lake_prefix,
            event_bus: env
                .optional(vars::EVENT_BUS)
                .unwrap_or_else(|| "default".into()),
            event_source,
            s3_force_path_style: env.flag(vars::S3_FORCE_PATH_STYLE, false)?,
            table_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            (vars::TABLE_NAME, "orders"),
            (vars::CONTROL_TABLE, "dynabridge-control"),
            (vars::LAKE_BUCKET, "lake"),
        ]
    }

    #[test]
    fn common_config_defaults() {
        let cfg = CommonConfig::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(cfg.event_source, "dynabridge.orders");
        assert_eq!(cfg.event_bus, "default");
        assert_eq!(cfg.lake_prefix, "");
        assert!(!cfg.s3_force_path_style);
    }

    #[test]
    fn missing_variable_is_named() {
        let env = Env::from_pairs([(vars::TABLE_NAME, "orders")]);
        let err = CommonConfig::from_env(&env).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: vars::CONTROL_TABLE.into()
            }
        );
        assert!(err.to_string().contains("DYNABRIDGE_CONTROL_TABLE"));
    }

    #[test]
    fn invalid_values_are_named_with_reason() {
        let mut pairs = base();
        pairs.push((vars::S3_FORCE_PATH_STYLE, "maybe"));
        let err = CommonConfig::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref name, .. } if name == vars::S3_FORCE_PATH_STYLE)
        );

        let env = Env::from_pairs([("N", "12x")]);
        let err = env.parse::<u32>("N").unwrap_err();
        assert!(err.to_string().contains("\"12x\""), "{err}");
        assert_eq!(env.parse_or::<u32>("M", 7).unwrap(), 7);
    }

    #[test]
    fn prefix_is_normalised_and_traversal_refused() {
        let mut pairs = base();
        pairs.push((vars::LAKE_PREFIX, "/team/lake/"));
        let cfg = CommonConfig::from_env(&Env::from_pairs(pairs)).unwrap();
        assert_eq!(cfg.lake_prefix, "team/lake");

        let mut pairs = base();
        pairs.push((vars::LAKE_PREFIX, "a/../b"));
        assert!(CommonConfig::from_env(&Env::from_pairs(pairs)).is_err());
    }

    #[test]
    fn list_and_flag() {
        let env = Env::from_pairs([("L", " a, ,b "), ("F", "ON")]);
        assert_eq!(env.list("L"), vec!["a", "b"]);
        assert!(env.flag("F", false).unwrap());
        assert!(!env.flag("G", false).unwrap());
    }
}
