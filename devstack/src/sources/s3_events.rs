//! S3 "Object Created" events as delivered through EventBridge (S3 bucket notifications with
//! EventBridge enabled), and a notifier that emits them for new objects under a prefix.

use std::collections::HashSet;

use anyhow::{Context, Result};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::stack::{ACCOUNT_ID, REGION};

/// An object as S3 describes it in the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bucket name.
    pub bucket: String,
    /// Object key (not URL-encoded: EventBridge events carry the plain key).
    pub key: String,
    /// Size in bytes.
    pub size: i64,
    /// ETag without quotes.
    pub etag: String,
}

/// The EventBridge event S3 sends for a new object.
pub fn object_created_event(obj: &ObjectInfo, reason: &str) -> Value {
    let now = Utc::now();
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": REGION,
        "resources": [format!("arn:aws:s3:::{}", obj.bucket)],
        "detail": {
            "version": "0",
            "bucket": { "name": obj.bucket },
            "object": {
                "key": obj.key,
                "size": obj.size,
                "etag": obj.etag,
                "sequencer": format!("{:016X}", now.timestamp_micros()),
            },
            "request-id": uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase(),
            "requester": ACCOUNT_ID,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
        }
    })
}

/// Reads an object's size and ETag (HeadObject) to build its event.
pub async fn object_info(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<ObjectInfo> {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .with_context(|| format!("HeadObject s3://{bucket}/{key}"))?;
    Ok(ObjectInfo {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: head.content_length().unwrap_or_default(),
        etag: head
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
    })
}

/// Emits "Object Created" events for objects that appear under a prefix, like an S3 bucket
/// with EventBridge notifications and a rule on that prefix.
#[derive(Debug)]
pub struct PrefixNotifier {
    bucket: String,
    prefix: String,
    seen: HashSet<(String, String)>,
}

impl PrefixNotifier {
    /// Watches `s3://bucket/prefix`.
    pub fn new(bucket: &str, prefix: &str) -> Self {
        PrefixNotifier {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            seen: HashSet::new(),
        }
    }

    /// Events for objects (key + ETag) not seen before, oldest listing order first.
    pub async fn poll(&mut self, s3: &aws_sdk_s3::Client) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        let mut pages = s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.context("ListObjectsV2")?;
            for obj in page.contents() {
                let key = obj.key().unwrap_or_default().to_string();
                let etag = obj
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string();
                if self.seen.insert((key.clone(), etag.clone())) {
                    events.push(object_created_event(
                        &ObjectInfo {
                            bucket: self.bucket.clone(),
                            key,
                            size: obj.size().unwrap_or_default(),
                            etag,
                        },
                        "PutObject",
                    ));
                }
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape_matches_eventbridge_s3() {
        let e = object_created_event(
            &ObjectInfo {
                bucket: "lake".into(),
                key: "inbound/orders/part-0000.parquet".into(),
                size: 1234,
                etag: "abc".into(),
            },
            "PutObject",
        );
        assert_eq!(e["detail-type"], "Object Created");
        assert_eq!(e["source"], "aws.s3");
        assert_eq!(e["detail"]["bucket"]["name"], "lake");
        assert_eq!(
            e["detail"]["object"]["key"],
            "inbound/orders/part-0000.parquet"
        );
        assert_eq!(e["detail"]["object"]["size"], 1234);
        assert_eq!(e["detail"]["reason"], "PutObject");
    }
}
