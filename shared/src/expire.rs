//! Guarded expiry: set an item's TTL or delete it, **only if it is unchanged since it was
//! read** — so a write that lands between the read (an export, a sweep) and the expiry is never
//! lost: the item is kept and handled next time.
//!
//! The guard is one DynamoDB condition expression, evaluated atomically with the write:
//!
//! - [`Unchanged::Version`]: the item's version (or `updated_at`) attribute still holds the
//!   value read (or is still absent). Cheap and complete when every writer maintains it.
//! - [`Unchanged::Item`]: every attribute read still holds the value read (`#a = :v` per
//!   attribute; DynamoDB compares maps, lists and sets by value). A write that only *adds* an
//!   attribute is not detected (DynamoDB cannot count attributes): prefer a version attribute
//!   when writers add attributes to old items. An item whose condition would exceed
//!   DynamoDB's 4 KB expression limit is not touched ([`ExpireOutcome::Unguardable`]).
//!
//! The item must still exist (`attribute_exists` on its partition key), so an expiry never
//! re-creates a deleted item. Setting the TTL is idempotent: the guard also accepts the TTL
//! value being written (a retry after a crash applies again), and ignores the TTL attribute's
//! old value only in that sense — a TTL someone else changed meanwhile counts as a change.
//!
//! Every call ends as exactly one [`ExpireOutcome`]; nothing is retried silently beyond the
//! SDK's own retries, and a failure leaves the item in place (the safe side).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::error::render_chain;

/// DynamoDB's limit on the length of one expression string.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// A DynamoDB item or key (SDK types).
pub type Item = HashMap<String, AttributeValue>;

/// What to do with an item.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpireAction {
    /// `SET <attribute> = epoch_seconds`, for DynamoDB's TTL process to delete it later.
    Ttl {
        /// The table's TTL attribute.
        attribute: String,
        /// The expiry, epoch seconds.
        epoch_seconds: i64,
    },
    /// `DeleteItem`.
    Delete,
}

/// What "unchanged since read" means for one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Unchanged {
    /// The version attribute holds `value` (`None`: it was absent).
    Version {
        /// The attribute writers bump on every change.
        attribute: String,
        /// The value read.
        value: Option<AttributeValue>,
    },
    /// Every attribute of `item` (key attributes included or not) holds its value.
    Item(Item),
}

/// How one guarded expiry ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// The TTL was set or the item deleted.
    Applied,
    /// The item changed since it was read: kept.
    Changed,
    /// The item no longer exists (deleted meanwhile, or by an earlier attempt of this expiry).
    Absent,
    /// The guard would exceed DynamoDB's expression limits: kept.
    Unguardable,
    /// The request failed after the SDK's retries: kept.
    Failed(String),
}

/// A condition expression with its name and value placeholders.
pub type Condition = (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
);

/// Builds the condition (and placeholders) of a guarded expiry of the item with `key`;
/// `None` when it would exceed DynamoDB's expression limit (or the key is empty).
pub fn condition(key: &Item, unchanged: &Unchanged, action: &ExpireAction) -> Option<Condition> {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut clauses = Vec::new();
    // Keys sorted so the expression text is deterministic.
    let mut key_names: Vec<&String> = key.keys().collect();
    key_names.sort();
    let first_key = key_names.first()?;
    names.insert("#k".to_string(), (*first_key).clone());
    clauses.push("attribute_exists(#k)".to_string());
    let ttl = match action {
        ExpireAction::Ttl {
            attribute,
            epoch_seconds,
        } => {
            names.insert("#ttl".to_string(), attribute.clone());
            values.insert(
                ":ttl".to_string(),
                AttributeValue::N(epoch_seconds.to_string()),
            );
            Some(attribute.as_str())
        }
        ExpireAction::Delete => None,
    };
    let mut add = |i: usize, name: &str, value: Option<&AttributeValue>| {
        if Some(name) == ttl {
            match value {
                Some(v) => {
                    values.insert(":ttl_old".to_string(), v.clone());
                    clauses.push("(#ttl = :ttl_old OR #ttl = :ttl)".to_string());
                }
                None => clauses.push("(attribute_not_exists(#ttl) OR #ttl = :ttl)".to_string()),
            }
            return;
        }
        names.insert(format!("#a{i}"), name.to_string());
        match value {
            Some(v) => {
                values.insert(format!(":v{i}"), v.clone());
                clauses.push(format!("#a{i} = :v{i}"));
            }
            None => clauses.push(format!("attribute_not_exists(#a{i})")),
        }
    };
    match unchanged {
        Unchanged::Version { attribute, value } => add(0, attribute, value.as_ref()),
        Unchanged::Item(item) => {
            let mut attrs: Vec<(&String, &AttributeValue)> =
                item.iter().filter(|(k, _)| !key.contains_key(*k)).collect();
            attrs.sort_by(|a, b| a.0.cmp(b.0));
            let mut ttl_seen = false;
            for (i, (name, value)) in attrs.into_iter().enumerate() {
                ttl_seen |= Some(name.as_str()) == ttl;
                add(i, name, Some(value));
            }
            if let (Some(t), false) = (ttl, ttl_seen) {
                add(usize::MAX, t, None);
            }
        }
    }
    let expression = clauses.join(" AND ");
    if expression.len() > MAX_EXPRESSION_BYTES {
        return None;
    }
    Some((expression, names, values))
}

/// Applies `action` to the item with `key` if it is unchanged.
pub async fn guarded_expire(
    client: &Client,
    table: &str,
    key: Item,
    unchanged: &Unchanged,
    action: &ExpireAction,
) -> ExpireOutcome {
    let Some((expression, names, values)) = condition(&key, unchanged, action) else {
        return ExpireOutcome::Unguardable;
    };
    match action {
        ExpireAction::Ttl { .. } => {
            let res = client
                .update_item()
                .table_name(table)
                .set_key(Some(key))
                .update_expression("SET #ttl = :ttl")
                .condition_expression(expression)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match res {
                Ok(_) => ExpireOutcome::Applied,
                Err(SdkError::ServiceError(e)) => match e.err() {
                    UpdateItemError::ConditionalCheckFailedException(ccf) => {
                        refused(ccf.item().is_some())
                    }
                    other => ExpireOutcome::Failed(render_chain(other)),
                },
                Err(e) => ExpireOutcome::Failed(render_chain(&e)),
            }
        }
        ExpireAction::Delete => {
            let res = client
                .delete_item()
                .table_name(table)
                .set_key(Some(key))
                .condition_expression(expression)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(if values.is_empty() {
                    None
                } else {
                    Some(values)
                })
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match res {
                Ok(_) => ExpireOutcome::Applied,
                Err(SdkError::ServiceError(e)) => match e.err() {
                    DeleteItemError::ConditionalCheckFailedException(ccf) => {
                        refused(ccf.item().is_some())
                    }
                    other => ExpireOutcome::Failed(render_chain(other)),
                },
                Err(e) => ExpireOutcome::Failed(render_chain(&e)),
            }
        }
    }
}

fn refused(item_exists: bool) -> ExpireOutcome {
    if item_exists {
        ExpireOutcome::Changed
    } else {
        ExpireOutcome::Absent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn full_item_guard_compares_every_non_key_attribute() {
        let key = Item::from([("pk".into(), s("A")), ("sk".into(), s("B"))]);
        let mut item = key.clone();
        item.insert("name".into(), s("x"));
        item.insert("ttl".into(), AttributeValue::N("5".into()));
        let action = ExpireAction::Ttl {
            attribute: "ttl".into(),
            epoch_seconds: 99,
        };
        let (expr, names, values) = condition(&key, &Unchanged::Item(item), &action).unwrap();
        assert_eq!(
            expr,
            "attribute_exists(#k) AND #a0 = :v0 AND (#ttl = :ttl_old OR #ttl = :ttl)"
        );
        assert_eq!(names["#a0"], "name");
        assert_eq!(values[":ttl"], AttributeValue::N("99".into()));

        let (expr, _, _) = condition(&key, &Unchanged::Item(key.clone()), &action).unwrap();
        assert_eq!(
            expr,
            "attribute_exists(#k) AND (attribute_not_exists(#ttl) OR #ttl = :ttl)"
        );
    }

    #[test]
    fn version_guard_and_limits() {
        let key = Item::from([("pk".into(), s("A"))]);
        let (expr, _, _) = condition(
            &key,
            &Unchanged::Version {
                attribute: "updated_at".into(),
                value: None,
            },
            &ExpireAction::Delete,
        )
        .unwrap();
        assert_eq!(expr, "attribute_exists(#k) AND attribute_not_exists(#a0)");

        let mut big = key.clone();
        for i in 0..400 {
            big.insert(format!("attribute_{i}"), s("v"));
        }
        assert!(condition(&key, &Unchanged::Item(big), &ExpireAction::Delete).is_none());
        assert!(
            condition(
                &Item::new(),
                &Unchanged::Item(Item::new()),
                &ExpireAction::Delete
            )
            .is_none()
        );
    }
}
