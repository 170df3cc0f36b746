//! Condition expressions for writes that must never lose a change.
//!
//! dynabridge deletes or expires an item only after it is durably in the lake, and only if
//! the item is still what was archived: [`unchanged`] builds a condition that every attribute
//! still has the value read (and that no attribute was added), so an item modified after it
//! was read is kept — and exported or archived the next time.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// A condition expression with its placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    /// The `ConditionExpression`.
    pub expression: String,
    /// `ExpressionAttributeNames`.
    pub names: HashMap<String, String>,
    /// `ExpressionAttributeValues`.
    pub values: HashMap<String, AttributeValue>,
}

impl Condition {
    /// `self AND other`, with `other`'s placeholders renamed so they cannot collide.
    pub fn and(mut self, other: Condition) -> Condition {
        let mut expr = other.expression.clone();
        // Longest placeholders first so `#c1` does not rewrite the start of `#c10`.
        let mut names: Vec<_> = other.names.into_iter().collect();
        names.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
        for (k, v) in names {
            let fresh = format!("#x{}", self.names.len());
            expr = expr.replace(&k, &fresh);
            self.names.insert(fresh, v);
        }
        let mut values: Vec<_> = other.values.into_iter().collect();
        values.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
        for (k, v) in values {
            let fresh = format!(":x{}", self.values.len());
            expr = expr.replace(&k, &fresh);
            self.values.insert(fresh, v);
        }
        self.expression = if self.expression.is_empty() {
            expr
        } else {
            format!("({}) AND ({expr})", self.expression)
        };
        self
    }
}

/// Every attribute of `item` still equals the value read (equality works for every type,
/// including sets, lists and maps). DynamoDB cannot test that no attribute was *added*; a
/// write that only adds an attribute goes undetected, which is why single-table designs that
/// rely on this should bump a version or `updated_at` attribute on every write.
pub fn unchanged(item: &HashMap<String, AttributeValue>) -> Condition {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut parts = Vec::with_capacity(item.len());
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    for (i, name) in keys.into_iter().enumerate() {
        let n = format!("#u{i}");
        let v = format!(":u{i}");
        parts.push(format!("{n} = {v}"));
        names.insert(n, name.clone());
        values.insert(v, item[name].clone());
    }
    Condition {
        expression: parts.join(" AND "),
        names,
        values,
    }
}

/// The numeric attribute `name` exists and is below `bound` (e.g. a TTL still in the past).
pub fn number_below(name: &str, bound: i64) -> Condition {
    Condition {
        expression: "#n < :b".into(),
        names: HashMap::from([("#n".to_string(), name.to_string())]),
        values: HashMap::from([(":b".to_string(), AttributeValue::N(bound.to_string()))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_pins_every_attribute_and_and_renames_placeholders() {
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("A".into())),
            ("ttl".to_string(), AttributeValue::N("5".into())),
        ]);
        let c = unchanged(&item).and(number_below("ttl", 10));
        assert_eq!(c.expression, "(#u0 = :u0 AND #u1 = :u1) AND (#x2 < :x2)");
        assert_eq!(c.names["#x2"], "ttl");
        assert_eq!(c.values[":x2"], AttributeValue::N("10".into()));
        assert_eq!(c.names.len(), 3);
    }
}
