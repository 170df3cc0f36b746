//! Cascade deletes: when a parent item expires, its dependent items (same partition key,
//! optionally a sort-key prefix) go too — archived to `expired/` first, then deleted one by
//! one, each only if it is unchanged since it was archived.
//!
//! Per parent, the control table holds a *pending cascade* record (the children's keys and
//! content fingerprints) from the moment their archive is durable until every child is
//! handled; a failure before that re-queries and re-archives them (same object key).
//! Archive mode runs the cascade before it commits the range's checkpoint, so a crash at
//! any point is retried: the pending record says exactly which children were archived, and
//! a child is deleted only if its current content still matches. A child written after the
//! parent expired is archived and deleted by the retry like the others (it shares the
//! parent's partition), which is what a cascade means.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use dynabridge_shared::codec::{Op, RowMeta, from_sdk_item, stream_seq, to_sdk_item};
use dynabridge_shared::condition::item_fingerprint;

use crate::guarded_delete::{Outcome, delete_if_unchanged};
use dynabridge_shared::lake::items::{ItemsTarget, write_items};
use dynabridge_shared::lake::layout::{Area, LakeLayout, day_of_micros, safe_segment};
use dynabridge_shared::stream::ChangeRecord;

use crate::config::{CascadeConfig, Config};

type Item = HashMap<String, AttributeValue>;

/// What cascading one parent did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CascadeReport {
    /// Children archived.
    pub archived: usize,
    /// Children deleted.
    pub deleted: usize,
    /// Children kept because they changed after being archived.
    pub kept_changed: usize,
}

/// Cascades the expiry of `parent` (a TTL deletion) to its children.
pub async fn cascade(
    config: &Config,
    cascade: &CascadeConfig,
    clients: &AwsClients,
    shard: &str,
    parent: &ChangeRecord<'_>,
) -> Result<CascadeReport, DynabridgeError> {
    let keys = config.registry.keys();
    let (Some(pk_def), sk_def) = (keys.first(), keys.get(1)) else {
        return Ok(CascadeReport::default());
    };
    let Some(pk) = parent
        .keys
        .get(&pk_def.name)
        .map(|v| v.to_attribute_value())
    else {
        return Ok(CascadeReport::default());
    };
    let pending_key = HashMap::from([
        (
            "pk".to_string(),
            AttributeValue::S(format!("cascade#{}#{shard}", config.consumer)),
        ),
        (
            "sk".to_string(),
            AttributeValue::S(format!("seq#{}", parent.sequence_number)),
        ),
    ]);
    let mut report = CascadeReport::default();
    let children = match load_pending(config, clients, &pending_key).await? {
        Some(children) => children,
        None => {
            let found = query_children(
                config,
                cascade,
                clients,
                &pk_def.name,
                sk_def.map(|d| d.name.as_str()),
                &to_sdk_item(HashMap::from([(pk_def.name.clone(), pk)])),
                &parent.keys.to_attributes(),
            )
            .await?;
            if found.is_empty() {
                return Ok(report);
            }
            let list: Vec<(Item, String)> = found
                .iter()
                .map(|c| {
                    (
                        key_of(c, &pk_def.name, sk_def.map(|d| d.name.as_str())),
                        item_fingerprint(c),
                    )
                })
                .collect();
            // The archive first: children are pending (deleted by a retry) only once their
            // archive is durable. A failure in between re-queries and re-archives them.
            report.archived = archive(config, clients, shard, parent, &found).await?;
            save_pending(config, clients, &pending_key, &list).await?;
            dynabridge_shared::crashpoint::hit("cascade-after-archive");
            list
        }
    };
    for (key, fingerprint) in &children {
        let table = &config.common.table_name;
        match delete_if_unchanged(&clients.dynamodb, table, key, fingerprint, None, None).await? {
            Outcome::Deleted => report.deleted += 1,
            Outcome::Changed => report.kept_changed += 1,
            Outcome::Gone => {}
        }
    }
    clients
        .control
        .delete_item()
        .table_name(&config.common.control_table)
        .set_key(Some(pending_key))
        .send()
        .await
        .map_err(|e| DynabridgeError::aws("DynamoDB", "DeleteItem", e))?;
    Ok(report)
}

fn key_of(item: &Item, pk: &str, sk: Option<&str>) -> Item {
    [Some(pk), sk]
        .into_iter()
        .flatten()
        .filter_map(|k| item.get(k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn query_children(
    config: &Config,
    cascade: &CascadeConfig,
    clients: &AwsClients,
    pk_name: &str,
    sk_name: Option<&str>,
    pk: &Item,
    parent_keys: &dynabridge_shared::schema::Attributes,
) -> Result<Vec<Item>, DynabridgeError> {
    let Some(pk_value) = pk.get(pk_name).cloned() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let mut q = clients
            .dynamodb
            .query()
            .table_name(&config.common.table_name)
            .consistent_read(true)
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_values(":pk", pk_value.clone())
            .set_exclusive_start_key(start);
        q = match (&cascade.sk_prefix, sk_name) {
            (Some(prefix), Some(sk)) => q
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", sk)
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone())),
            _ => q.key_condition_expression("#pk = :pk"),
        };
        let page = q
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("DynamoDB", "Query", e))?;
        let parent_sdk = to_sdk_item(parent_keys.clone());
        out.extend(
            page.items()
                .iter()
                .filter(|i| key_of(i, pk_name, sk_name) != parent_sdk)
                .cloned(),
        );
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(out);
        }
    }
}

async fn load_pending(
    config: &Config,
    clients: &AwsClients,
    key: &Item,
) -> Result<Option<Vec<(Item, String)>>, DynabridgeError> {
    let out = clients
        .control
        .get_item()
        .table_name(&config.common.control_table)
        .set_key(Some(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| DynabridgeError::aws("DynamoDB", "GetItem", e))?;
    let Some(AttributeValue::L(list)) = out.item().and_then(|i| i.get("children")) else {
        return Ok(None);
    };
    Ok(Some(
        list.iter()
            .filter_map(|v| match v {
                AttributeValue::M(m) => match (m.get("key"), m.get("fp")) {
                    (Some(AttributeValue::M(k)), Some(AttributeValue::S(fp))) => {
                        Some((k.clone(), fp.clone()))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect(),
    ))
}

async fn save_pending(
    config: &Config,
    clients: &AwsClients,
    key: &Item,
    children: &[(Item, String)],
) -> Result<(), DynabridgeError> {
    let mut item = key.clone();
    item.insert(
        "children".into(),
        AttributeValue::L(
            children
                .iter()
                .map(|(k, fp)| {
                    AttributeValue::M(HashMap::from([
                        ("key".to_string(), AttributeValue::M(k.clone())),
                        ("fp".to_string(), AttributeValue::S(fp.clone())),
                    ]))
                })
                .collect(),
        ),
    );
    clients
        .control
        .put_item()
        .table_name(&config.common.control_table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| DynabridgeError::aws("DynamoDB", "PutItem", e))?;
    Ok(())
}

/// Writes the children to `expired/` (`_op = EXPIRE`, `_seq` = the parent's), one file per
/// entity; children that fail the schema go to a quarantine file (still in the lake).
async fn archive(
    config: &Config,
    clients: &AwsClients,
    shard: &str,
    parent: &ChangeRecord<'_>,
    children: &[Item],
) -> Result<usize, DynabridgeError> {
    let layout = LakeLayout::new(&config.common.lake_prefix);
    let name = format!("cascade-{}-{}", safe_segment(shard), parent.sequence_number);
    let seq = stream_seq(&parent.sequence_number);
    let meta = RowMeta {
        op: Op::Expire,
        seq: &seq,
        event_time_micros: parent.event_time_micros,
    };
    let items: Vec<_> = children
        .iter()
        .map(|c| (from_sdk_item(c.clone()), meta))
        .collect();
    let target = ItemsTarget {
        s3: &clients.s3,
        bucket: &config.common.lake_bucket,
        layout: &layout,
        area: Area::Expired,
        source: crate::handler::FUNCTION,
        day: day_of_micros(parent.event_time_micros).unwrap_or_default(),
        name: &name,
    };
    let written = write_items(target, &config.registry, &items).await?;
    Ok(written.rows + written.quarantined)
}
