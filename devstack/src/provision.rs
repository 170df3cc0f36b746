//! Creates, on the local stack, the resources `template.yaml` declares: the application table
//! (stream `NEW_AND_OLD_IMAGES`, TTL on `ttl`), the control table (TTL on `ttl_epoch_s`), the
//! lake bucket, the event bus with a rule routing dynabridge's domain events to an SQS queue
//! (so tests and the runner can read what was delivered), and the stream mapping's on-failure
//! queue.

use anyhow::{Context, Result, anyhow};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use crate::stack::LocalStack;

/// Names of the resources to create.
#[derive(Debug, Clone)]
pub struct ResourceNames {
    /// Application table.
    pub table: String,
    /// Control table.
    pub control_table: String,
    /// Lake bucket.
    pub lake_bucket: String,
    /// Event bus.
    pub event_bus: String,
    /// Queue receiving domain events (EventBridge rule target).
    pub events_queue: String,
    /// On-failure destination of the stream mappings.
    pub stream_failure_queue: String,
}

impl Default for ResourceNames {
    fn default() -> Self {
        ResourceNames {
            table: "dynabridge-app".into(),
            control_table: "dynabridge-control".into(),
            lake_bucket: "dynabridge-lake".into(),
            event_bus: "dynabridge-bus".into(),
            events_queue: "dynabridge-events".into(),
            stream_failure_queue: "dynabridge-stream-failures".into(),
        }
    }
}

/// Application table key attributes.
pub const TABLE_PK: &str = "pk";
/// Application table sort key.
pub const TABLE_SK: &str = "sk";
/// Application table TTL attribute (epoch seconds).
pub const TABLE_TTL_ATTRIBUTE: &str = "ttl";
/// Control table TTL attribute (epoch seconds).
pub const CONTROL_TTL_ATTRIBUTE: &str = "ttl_epoch_s";

/// What was created.
#[derive(Debug, Clone)]
pub struct Resources {
    /// The names used.
    pub names: ResourceNames,
    /// The application table's stream ARN.
    pub stream_arn: String,
    /// URL of the domain-events queue (when EventBridge is running).
    pub events_queue_url: Option<String>,
    /// URL of the on-failure queue (when SQS is running).
    pub stream_failure_queue_url: Option<String>,
}

impl Resources {
    /// Function environment variables pointing at these resources.
    pub fn function_env(&self) -> Vec<(String, String)> {
        vec![
            ("DYNABRIDGE_TABLE_NAME".into(), self.names.table.clone()),
            (
                "DYNABRIDGE_CONTROL_TABLE".into(),
                self.names.control_table.clone(),
            ),
            (
                "DYNABRIDGE_LAKE_BUCKET".into(),
                self.names.lake_bucket.clone(),
            ),
            ("DYNABRIDGE_EVENT_BUS".into(), self.names.event_bus.clone()),
            ("DYNABRIDGE_SCHEMA_PATH".into(), example_registry_path()),
        ]
    }
}

/// Absolute path of `schemas/example.json`, the registry the sample dataset conforms to.
pub fn example_registry_path() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/example.json")
        .canonicalize()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/example.json").to_string()
        })
}

/// Creates everything (idempotent only on a fresh stack).
pub async fn provision(stack: &LocalStack, names: ResourceNames) -> Result<Resources> {
    let ddb = stack.dynamodb();
    let stream_arn = create_pk_sk_table(&ddb, &names.table, true, TABLE_TTL_ATTRIBUTE)
        .await?
        .ok_or_else(|| anyhow!("table {} has no stream", names.table))?;
    create_pk_sk_table(&ddb, &names.control_table, false, CONTROL_TTL_ATTRIBUTE).await?;

    stack
        .s3()
        .create_bucket()
        .bucket(&names.lake_bucket)
        .send()
        .await
        .with_context(|| format!("CreateBucket {}", names.lake_bucket))?;

    let (events_queue_url, stream_failure_queue_url) = if stack.eventbridge_endpoint().is_some() {
        let sqs = stack.sqs()?;
        let events_url = create_queue(&sqs, &names.events_queue).await?;
        let failure_url = create_queue(&sqs, &names.stream_failure_queue).await?;
        let queue_arn = queue_arn(&sqs, &events_url).await?;
        let eb = stack.eventbridge()?;
        eb.create_event_bus()
            .name(&names.event_bus)
            .send()
            .await
            .context("CreateEventBus")?;
        eb.put_rule()
            .name("dynabridge-domain-events")
            .event_bus_name(&names.event_bus)
            .event_pattern(r#"{"source":[{"prefix":"dynabridge."}]}"#)
            .send()
            .await
            .context("PutRule")?;
        eb.put_targets()
            .rule("dynabridge-domain-events")
            .event_bus_name(&names.event_bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("events-queue")
                    .arn(queue_arn)
                    .build()
                    .context("target")?,
            )
            .send()
            .await
            .context("PutTargets")?;
        (Some(events_url), Some(failure_url))
    } else {
        (None, None)
    };

    Ok(Resources {
        names,
        stream_arn,
        events_queue_url,
        stream_failure_queue_url,
    })
}

/// Creates a `pk`/`sk` string-keyed, on-demand table with TTL; returns its stream ARN.
pub async fn create_pk_sk_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    stream: bool,
    ttl_attribute: &str,
) -> Result<Option<String>> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(TABLE_PK)?)
        .attribute_definitions(attr(TABLE_SK)?)
        .key_schema(key(TABLE_PK, KeyType::Hash)?)
        .key_schema(key(TABLE_SK, KeyType::Range)?);
    if stream {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()?,
        );
    }
    let out = req
        .send()
        .await
        .with_context(|| format!("CreateTable {name}"))?;
    ddb.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(ttl_attribute)
                .build()?,
        )
        .send()
        .await
        .with_context(|| format!("UpdateTimeToLive {name}"))?;
    Ok(out
        .table_description()
        .and_then(|d| d.latest_stream_arn())
        .map(str::to_string))
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    let out = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("CreateQueue {name}"))?;
    out.queue_url()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("CreateQueue {name} returned no URL"))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .context("GetQueueAttributes")?;
    out.attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| anyhow!("queue {url} has no ARN"))
}

/// Receives and deletes every message currently in a queue (bounded wait).
pub async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    wait: std::time::Duration,
) -> Result<Vec<String>> {
    let deadline = std::time::Instant::now() + wait;
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .context("ReceiveMessage")?;
        let msgs = out.messages();
        if msgs.is_empty() {
            if std::time::Instant::now() >= deadline {
                return Ok(bodies);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        for m in msgs {
            bodies.push(m.body().unwrap_or_default().to_string());
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(h)
                    .send()
                    .await
                    .context("DeleteMessage")?;
            }
        }
    }
}
