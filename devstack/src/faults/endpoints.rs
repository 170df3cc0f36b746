//! A whole [`LocalStack`] behind fault proxies: one per endpoint, one plan for all.

use anyhow::{Result, anyhow};
use aws_config::SdkConfig;

use super::plan::{FaultPlan, Service};
use super::proxy::{FaultProxy, FaultStats, InjectedFault};
use crate::stack::LocalStack;

/// Fault proxies in front of every endpoint of a [`LocalStack`]: DynamoDB (+ Streams), S3,
/// and EventBridge + SQS when moto runs. Hand [`FaultyEndpoints::aws_env`] to a function
/// process, or use the clients built here, and every call goes through the proxies.
///
/// Every proxy gets the same plan; a rule's [`Service`](super::Service) decides which
/// proxy's requests it can hit. The proxies forward to the stack's servers, so keep the
/// stack alive as long as this.
#[derive(Debug)]
pub struct FaultyEndpoints {
    dynamodb: FaultProxy,
    s3: FaultProxy,
    eventbridge: Option<FaultProxy>,
    stack_env: Vec<(String, String)>,
    sdk_config: SdkConfig,
}

impl FaultyEndpoints {
    /// Starts the proxies for `stack` with `plan`.
    pub fn start(stack: &LocalStack, plan: FaultPlan) -> Result<Self> {
        let dynamodb =
            FaultProxy::start(stack.dynamodb_endpoint(), Service::DynamoDb, plan.clone())?;
        let s3 = FaultProxy::start(stack.s3_endpoint(), Service::S3, plan.clone())?;
        let eventbridge = stack
            .eventbridge_endpoint()
            .map(|ep| FaultProxy::start(ep, Service::EventBridge, plan))
            .transpose()?;
        Ok(FaultyEndpoints {
            dynamodb,
            s3,
            eventbridge,
            stack_env: stack.aws_env(),
            sdk_config: stack.sdk_config(),
        })
    }

    /// Makes the clients built here use `retry` (e.g. `RetryConfig::disabled()` to see each
    /// injected fault as the SDK reports it, or fast standard retries).
    pub fn with_retry_config(mut self, retry: aws_config::retry::RetryConfig) -> Self {
        self.sdk_config = self.sdk_config.into_builder().retry_config(retry).build();
        self
    }

    /// Replaces the plan on every proxy (e.g. [`FaultPlan::none`] after a scenario).
    pub fn set_plan(&self, plan: FaultPlan) -> Result<()> {
        self.dynamodb.set_plan(plan.clone())?;
        self.s3.set_plan(plan.clone())?;
        if let Some(eb) = &self.eventbridge {
            eb.set_plan(plan)?;
        }
        Ok(())
    }

    /// The proxies, in a fixed order (DynamoDB, S3, EventBridge/SQS).
    pub fn proxies(&self) -> impl Iterator<Item = &FaultProxy> {
        [&self.dynamodb, &self.s3]
            .into_iter()
            .chain(&self.eventbridge)
    }

    /// The proxy in front of DynamoDB and DynamoDB Streams.
    pub fn dynamodb_proxy(&self) -> &FaultProxy {
        &self.dynamodb
    }

    /// The proxy in front of S3.
    pub fn s3_proxy(&self) -> &FaultProxy {
        &self.s3
    }

    /// The proxy in front of EventBridge and SQS (moto), if the stack runs it.
    pub fn eventbridge_proxy(&self) -> Option<&FaultProxy> {
        self.eventbridge.as_ref()
    }

    /// All proxies' statistics added up.
    pub fn stats(&self) -> FaultStats {
        let mut all = FaultStats::default();
        for p in self.proxies() {
            all.merge(&p.stats());
        }
        all
    }

    /// All proxies' journals, one after the other (DynamoDB, S3, EventBridge/SQS).
    pub fn journal(&self) -> Vec<InjectedFault> {
        self.proxies().flat_map(FaultProxy::journal).collect()
    }

    /// Clears every proxy's statistics and journal.
    pub fn reset_stats(&self) {
        self.proxies().for_each(FaultProxy::reset_stats);
    }

    /// [`LocalStack::aws_env`] with every endpoint replaced by its proxy.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        self.stack_env
            .iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    "AWS_ENDPOINT_URL_DYNAMODB" | "AWS_ENDPOINT_URL_DYNAMODB_STREAMS" => {
                        self.dynamodb.endpoint()
                    }
                    "AWS_ENDPOINT_URL_S3" => self.s3.endpoint(),
                    "AWS_ENDPOINT_URL_EVENTBRIDGE" | "AWS_ENDPOINT_URL_SQS" => self
                        .eventbridge
                        .as_ref()
                        .map_or_else(|| v.clone(), FaultProxy::endpoint),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The stack's SDK config (region, credentials); endpoints are set per client.
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config.clone()
    }

    /// A DynamoDB client through the proxy (the SDK's default retries unless
    /// [`with_retry_config`](Self::with_retry_config) said otherwise).
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config)
            .endpoint_url(self.dynamodb.endpoint())
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// A DynamoDB Streams client through the proxy.
    pub fn dynamodb_streams(&self) -> aws_sdk_dynamodbstreams::Client {
        let conf = aws_sdk_dynamodbstreams::config::Builder::from(&self.sdk_config)
            .endpoint_url(self.dynamodb.endpoint())
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(conf)
    }

    /// An S3 client through the proxy (path-style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config)
            .endpoint_url(self.s3.endpoint())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An EventBridge client through the proxy.
    pub fn eventbridge(&self) -> Result<aws_sdk_eventbridge::Client> {
        let conf = aws_sdk_eventbridge::config::Builder::from(&self.sdk_config)
            .endpoint_url(self.moto_endpoint()?)
            .build();
        Ok(aws_sdk_eventbridge::Client::from_conf(conf))
    }

    /// An SQS client through the proxy.
    pub fn sqs(&self) -> Result<aws_sdk_sqs::Client> {
        let conf = aws_sdk_sqs::config::Builder::from(&self.sdk_config)
            .endpoint_url(self.moto_endpoint()?)
            .build();
        Ok(aws_sdk_sqs::Client::from_conf(conf))
    }

    fn moto_endpoint(&self) -> Result<String> {
        self.eventbridge
            .as_ref()
            .map(FaultProxy::endpoint)
            .ok_or_else(|| anyhow!("stack started without EventBridge/SQS"))
    }
}
