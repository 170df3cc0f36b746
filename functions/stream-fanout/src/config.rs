//! `stream-fanout` configuration, read once at cold start (see the README's configuration
//! table).

use std::collections::BTreeSet;
use std::sync::Arc;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::boot::FunctionConfig;
use dynabridge_shared::codec::Op;
use dynabridge_shared::config::{CommonConfig, ConfigError, Env};
use dynabridge_shared::schema::Registry;
pub use dynabridge_shared::stream::publish::PublishFilter;

/// Entities whose changes are published (`*` = all, `none` = publishing off).
pub const PUBLISH_ENTITIES: &str = "DYNABRIDGE_PUBLISH_ENTITIES";
/// Operations published (`INSERT,MODIFY,REMOVE,EXPIRE` by default).
pub const PUBLISH_OPS: &str = "DYNABRIDGE_PUBLISH_OPS";
/// Checkpoint consumer name (default: the function name).
pub const CONSUMER: &str = "DYNABRIDGE_CONSUMER";

/// Settings of `stream-fanout`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every function.
    pub common: CommonConfig,
    /// The schema registry.
    pub registry: Arc<Registry>,
    /// Which changes are published.
    pub publish: PublishFilter,
    /// Checkpoint consumer name.
    pub consumer: String,
}

impl FunctionConfig for Config {
    fn from_env(env: &Env) -> Result<Self, DynabridgeError> {
        let common = CommonConfig::from_env(env)?;
        let registry = Arc::new(Registry::from_env(env)?);
        let entities = match env.optional(PUBLISH_ENTITIES).as_deref().map(str::trim) {
            None | Some("*") => None,
            Some(v) if v.eq_ignore_ascii_case("none") => Some(BTreeSet::new()),
            Some(_) => {
                let names: BTreeSet<String> = env.list(PUBLISH_ENTITIES).into_iter().collect();
                if let Some(unknown) = names.iter().find(|n| registry.entity(n).is_err()) {
                    return Err(ConfigError::Invalid {
                        name: PUBLISH_ENTITIES.into(),
                        value: unknown.clone(),
                        reason: "not an entity of the schema registry".into(),
                    }
                    .into());
                }
                Some(names)
            }
        };
        let mut ops = BTreeSet::new();
        let requested = match env.optional(PUBLISH_OPS) {
            Some(_) => env.list(PUBLISH_OPS),
            None => vec![
                "INSERT".into(),
                "MODIFY".into(),
                "REMOVE".into(),
                "EXPIRE".into(),
            ],
        };
        for op in requested {
            let op = match op.to_ascii_uppercase().as_str() {
                "INSERT" => Op::Insert,
                "MODIFY" => Op::Modify,
                "REMOVE" => Op::Remove,
                "EXPIRE" => Op::Expire,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: PUBLISH_OPS.into(),
                        value: op,
                        reason: "expected INSERT, MODIFY, REMOVE or EXPIRE".into(),
                    }
                    .into());
                }
            };
            ops.insert(op.as_str());
        }
        let consumer = env
            .optional(CONSUMER)
            .or_else(|| env.optional("AWS_LAMBDA_FUNCTION_NAME"))
            .unwrap_or_else(|| "stream-fanout".into());
        Ok(Config {
            common,
            registry,
            publish: PublishFilter { entities, ops },
            consumer,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let registry = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/example.json");
        let mut pairs = vec![
            ("DYNABRIDGE_TABLE_NAME", "app"),
            ("DYNABRIDGE_CONTROL_TABLE", "control"),
            ("DYNABRIDGE_LAKE_BUCKET", "lake"),
            ("DYNABRIDGE_SCHEMA_PATH", registry),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_publish_everything() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert!(c.publish.allows("Order", Op::Expire));
        assert!(c.publish.is_enabled());
        assert_eq!(c.consumer, "stream-fanout");
    }

    #[test]
    fn filters_and_errors_name_the_variable() {
        let c = Config::from_env(&env(&[
            (PUBLISH_ENTITIES, "Order"),
            (PUBLISH_OPS, "insert,REMOVE"),
        ]))
        .unwrap();
        assert!(c.publish.allows("Order", Op::Insert));
        assert!(!c.publish.allows("Order", Op::Modify));
        assert!(!c.publish.allows("Customer", Op::Insert));
        let off = Config::from_env(&env(&[(PUBLISH_ENTITIES, "none")])).unwrap();
        assert!(!off.publish.is_enabled());
        let err = Config::from_env(&env(&[(PUBLISH_ENTITIES, "Nope")])).unwrap_err();
        assert!(err.to_string().contains(PUBLISH_ENTITIES), "{err}");
        let err = Config::from_env(&env(&[(PUBLISH_OPS, "UPSERT")])).unwrap_err();
        assert!(err.to_string().contains(PUBLISH_OPS), "{err}");
        let err =
            Config::from_env(&Env::from_pairs([("DYNABRIDGE_TABLE_NAME", "app")])).unwrap_err();
        assert!(
            err.to_string().contains("DYNABRIDGE_CONTROL_TABLE"),
            "{err}"
        );
    }
}
