//! Resumable reads of a whole table (or a sparse index) in independent segments.
//!
//! Exports and sweeps read many items, more than one Lambda invocation can handle. A
//! [`SegmentSource`] names one independently resumable slice of the read: a parallel-scan
//! segment (`Segment`/`TotalSegments`) of the table or of an index, or a `Query` on one
//! partition of a sparse index. [`read_page`] returns one page (≤ 1 MB, DynamoDB's page size)
//! and the position after it, and a [`Cursor`] (the `LastEvaluatedKey`) serialises to a string
//! so it can be checkpointed in the control table and handed to the next invocation.
//!
//! ## Guarantees
//! - Resuming from a checkpointed cursor reads every item after it exactly once, as DynamoDB's
//!   pagination does (items written behind the cursor after it moved are not seen).
//! - The cursor text is the key as DynamoDB-JSON with sorted attribute names, so equal
//!   positions give equal text and a checkpoint can be compared or logged without values
//!   leaking at INFO (it holds key attributes only).
//! - A filter narrows what a page returns (not what it costs: DynamoDB bills the items it
//!   read); callers re-check what they rely on.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue as SdkValue;
use serde_dynamo::AttributeValue;

use crate::codec::{dynamodb_json_map, from_sdk_item, to_sdk_item};
use crate::error::DynabridgeError;
use crate::schema::Attributes;

/// One independently resumable slice of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentSource {
    /// Segment `segment` of a parallel scan in `total` segments (of the index, when given).
    Scan {
        /// Optional index to scan instead of the table (a sparse index holds only candidates).
        index: Option<String>,
        /// This segment, `0..total`.
        segment: i32,
        /// Total segments of the parallel scan (1..=1,000,000).
        total: i32,
    },
    /// Every item of one partition of an index (`key_attribute = key_value`).
    Query {
        /// The index.
        index: String,
        /// The index's partition key attribute.
        key_attribute: String,
        /// The partition queried (a string).
        key_value: String,
    },
}

/// A server-side filter: expression text plus its placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `FilterExpression`.
    pub expression: String,
    /// `ExpressionAttributeNames`.
    pub names: HashMap<String, String>,
    /// `ExpressionAttributeValues`.
    pub values: HashMap<String, SdkValue>,
}

/// Where a read stands: `None` before the first page, else the last evaluated key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cursor(pub Option<HashMap<String, SdkValue>>);

impl Cursor {
    /// The cursor as text (DynamoDB-JSON of the key, sorted), `None` at the start.
    pub fn encode(&self) -> Option<String> {
        let key = self.0.as_ref()?;
        let attrs = from_sdk_item(key.clone());
        Some(dynamodb_json_map(attrs.iter()).to_string())
    }

    /// Parses [`Cursor::encode`]'s text.
    pub fn decode(text: Option<&str>) -> Result<Self, DynabridgeError> {
        let Some(text) = text else {
            return Ok(Cursor(None));
        };
        let attrs: HashMap<String, AttributeValue> = serde_json::from_str(text)?;
        Ok(Cursor(Some(to_sdk_item(attrs))))
    }
}

/// One page of a segment.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The items, in the order DynamoDB returned them.
    pub items: Vec<Attributes>,
    /// Items DynamoDB read for this page (before the filter).
    pub scanned: u64,
    /// Where the next page starts; `Cursor(None)` when the segment is exhausted.
    pub next: Cursor,
}

impl Page {
    /// Whether the segment has no more pages.
    pub fn is_last(&self) -> bool {
        self.next.0.is_none()
    }
}

/// Reads one page of `source` from `start` (strongly consistent for table scans; index reads
/// are eventually consistent by DynamoDB's design).
pub async fn read_page(
    client: &Client,
    table: &str,
    source: &SegmentSource,
    start: &Cursor,
    filter: Option<&Filter>,
    limit: Option<i32>,
) -> Result<Page, DynabridgeError> {
    let (names, values, expression) = match filter {
        Some(f) => (
            Some(f.names.clone()),
            Some(f.values.clone()),
            Some(f.expression.clone()),
        ),
        None => (None, None, None),
    };
    let (items, scanned, next) = match source {
        SegmentSource::Scan {
            index,
            segment,
            total,
        } => {
            let out = client
                .scan()
                .table_name(table)
                .set_index_name(index.clone())
                .segment(*segment)
                .total_segments(*total)
                .set_consistent_read(index.is_none().then_some(true))
                .set_exclusive_start_key(start.0.clone())
                .set_filter_expression(expression)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .set_limit(limit)
                .send()
                .await
                .map_err(|e| DynabridgeError::aws("DynamoDB", "Scan", e))?;
            (
                out.items.unwrap_or_default(),
                out.scanned_count,
                out.last_evaluated_key,
            )
        }
        SegmentSource::Query {
            index,
            key_attribute,
            key_value,
        } => {
            let mut names = names.unwrap_or_default();
            let mut values = values.unwrap_or_default();
            names.insert("#dynabridge_ipk".into(), key_attribute.clone());
            values.insert(":dynabridge_ipk".into(), SdkValue::S(key_value.clone()));
            let out = client
                .query()
                .table_name(table)
                .index_name(index)
                .key_condition_expression("#dynabridge_ipk = :dynabridge_ipk")
                .set_exclusive_start_key(start.0.clone())
                .set_filter_expression(expression)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .set_limit(limit)
                .send()
                .await
                .map_err(|e| DynabridgeError::aws("DynamoDB", "Query", e))?;
            (
                out.items.unwrap_or_default(),
                out.scanned_count,
                out.last_evaluated_key,
            )
        }
    };
    Ok(Page {
        items: items.into_iter().map(from_sdk_item).collect(),
        scanned: u64::try_from(scanned).unwrap_or(0),
        next: Cursor(next.filter(|k| !k.is_empty())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_every_key_type() {
        let key = HashMap::from([
            ("pk".to_string(), SdkValue::S("ORDER#1".into())),
            ("n".to_string(), SdkValue::N("12.50".into())),
            (
                "b".to_string(),
                SdkValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0u8, 255, 7])),
            ),
        ]);
        let cursor = Cursor(Some(key));
        let text = cursor.encode().unwrap();
        assert!(text.starts_with(r#"{"b":{"B":"#), "{text}");
        assert_eq!(Cursor::decode(Some(&text)).unwrap(), cursor);
        assert_eq!(Cursor::decode(None).unwrap(), Cursor(None));
        assert!(Cursor(None).encode().is_none());
    }
}
