//! `incremental-sync` configuration, read once at cold start (see the README's configuration table).

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::boot::FunctionConfig;
use dynabridge_shared::config::{CommonConfig, Env};

/// Settings of `incremental-sync`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every function.
    pub common: CommonConfig,
}

impl FunctionConfig for Config {
    fn from_env(env: &Env) -> Result<Self, DynabridgeError> {
        Ok(Config {
            common: CommonConfig::from_env(env)?,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
