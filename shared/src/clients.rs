//! AWS SDK clients, built once per cold start.
//!
//! `main.rs` of each function calls [`AwsClients::from_env`] once and hands the clients to its
//! handler; the SDK clients are cheap to clone (they share one connection pool).
//!
//! The configuration comes from the process environment only, which is where Lambda puts
//! it: region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), credentials (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and endpoints (`AWS_ENDPOINT_URL_<SERVICE>`
//! (`_DYNAMODB`, `_DYNAMODB_STREAMS`, `_S3`, `_EVENTBRIDGE`, `_LAMBDA`), else
//! `AWS_ENDPOINT_URL`), which is how tests and the local runner point the real binaries at the
//! local stack. Retries, timeouts, sleep and time source are the SDK clients' defaults
//! (standard retries, 3 attempts; 3.1 s connect timeout). `aws-config`'s default chain
//! (profile files, SSO, web identity via STS, ECS/IMDS credentials) is deliberately not
//! used: none of it applies inside Lambda and it is over a MiB of code in every artifact
//! (docs/deploy.md, "Artifact size"). The one knob the SDK has no variable for is S3
//! path-style addressing, which a 127.0.0.1 endpoint needs; it comes from
//! [`crate::config::CommonConfig::s3_force_path_style`].

use aws_config::Region;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::identity::IdentityCache;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

/// Attempts per control-table call (the SDK's default is 3).
pub const CONTROL_MAX_ATTEMPTS: u32 = 10;

/// The HTTP(S) client every SDK client of a function uses: hyper + rustls with the *ring*
/// crypto provider.
///
/// Chosen explicitly instead of the SDK's `default-https-client` feature, which links rustls
/// with aws-lc-rs: a much larger crypto library (docs/deploy.md, "Artifact size"). Plain
/// `http://` endpoints (the local stack) work too.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The shared SDK configuration of a function, from the process environment only (see the
/// module docs).
pub fn sdk_config_from_env() -> SdkConfig {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok()
        .filter(|r| !r.is_empty())
        .map(Region::new);
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .identity_cache(IdentityCache::lazy().build())
        .http_client(https_client())
        .service_config(EnvServiceConfig)
        .build()
}

/// Per-service settings the SDK clients look up by environment variable (the endpoint URL):
/// `<VAR>_<SERVICE_ID>` first (`AWS_ENDPOINT_URL_DYNAMODB_STREAMS`), then `<VAR>`, as
/// `aws-config` does minus the profile files.
#[derive(Debug)]
struct EnvServiceConfig;

impl LoadServiceConfig for EnvServiceConfig {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        service_setting(key.env(), key.service_id(), |var| std::env::var(var).ok())
    }
}

/// `<var>_<SERVICE_ID>` (upper case, spaces as `_`), else `<var>`; empty values are unset.
fn service_setting(
    var: &str,
    service_id: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let service = service_id.to_uppercase().replace(' ', "_");
    let set = |v: Option<String>| v.filter(|v| !v.is_empty());
    set(get(&format!("{var}_{service}"))).or_else(|| set(get(var)))
}

/// The clients a function may use. Build once, clone freely.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// The loaded shared configuration (region, credentials, endpoints).
    pub sdk_config: SdkConfig,
    /// DynamoDB (the application table).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// DynamoDB for the control table: the same endpoint with a more patient retry policy
    /// (10 attempts), because a checkpoint or idempotency write that fails *after* its side
    /// effect happened turns into a duplicate on the retry.
    pub control: aws_sdk_dynamodb::Client,
    /// S3 (the lake).
    pub s3: aws_sdk_s3::Client,
    /// EventBridge (domain events).
    pub eventbridge: aws_sdk_eventbridge::Client,
}

impl AwsClients {
    /// Loads the configuration from the environment ([`sdk_config_from_env`]) and builds
    /// every client.
    pub async fn from_env(s3_force_path_style: bool) -> Self {
        Self::from_sdk_config(sdk_config_from_env(), s3_force_path_style)
    }

    /// Builds every client from an already loaded configuration.
    pub fn from_sdk_config(sdk_config: SdkConfig, s3_force_path_style: bool) -> Self {
        let s3_conf = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(s3_force_path_style)
            .build();
        let control_conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(CONTROL_MAX_ATTEMPTS),
            )
            .build();
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk_config),
            control: aws_sdk_dynamodb::Client::from_conf(control_conf),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(&sdk_config)
                    .stalled_stream_protection(
                        aws_sdk_eventbridge::config::StalledStreamProtectionConfig::disabled(),
                    )
                    .build(),
            ),
            sdk_config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_specific_setting_wins_over_global() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = env(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://streams"),
        ]);
        assert_eq!(
            service_setting("AWS_ENDPOINT_URL", "DynamoDB Streams", both).as_deref(),
            Some("http://streams")
        );
        assert_eq!(
            service_setting("AWS_ENDPOINT_URL", "S3", both).as_deref(),
            Some("http://global")
        );
        let empty = env(&[("AWS_ENDPOINT_URL_S3", "")]);
        assert_eq!(service_setting("AWS_ENDPOINT_URL", "S3", empty), None);
    }

    #[test]
    fn sdk_config_has_the_ring_client_and_env_credentials() {
        let conf = sdk_config_from_env();
        assert!(conf.http_client().is_some());
        assert!(conf.credentials_provider().is_some());
        assert!(conf.service_config().is_some());
        assert!(conf.identity_cache().is_some());
    }
}
