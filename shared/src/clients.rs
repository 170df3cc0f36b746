//! AWS SDK clients, built once per cold start.
//!
//! `main.rs` of each function calls [`AwsClients::from_env`] once and hands the clients to its
//! handler; the SDK clients are cheap to clone (they share one connection pool).
//!
//! Endpoints are *not* configured here: `aws-config` already honours `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` (`_DYNAMODB`, `_DYNAMODB_STREAMS`, `_S3`, `_EVENTBRIDGE`), which
//! is how tests and the local runner point the real binaries at the local stack. The one
//! knob the SDK has no variable for is S3 path-style addressing, which a 127.0.0.1 endpoint
//! needs; it comes from [`crate::config::CommonConfig::s3_force_path_style`].

use aws_config::{BehaviorVersion, SdkConfig};

/// Attempts per control-table call (the SDK's default is 3).
pub const CONTROL_MAX_ATTEMPTS: u32 = 10;

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
    /// Loads `aws-config` from the environment and builds every client.
    pub async fn from_env(s3_force_path_style: bool) -> Self {
        let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(sdk_config, s3_force_path_style)
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
            eventbridge: aws_sdk_eventbridge::Client::new(&sdk_config),
            sdk_config,
        }
    }
}
