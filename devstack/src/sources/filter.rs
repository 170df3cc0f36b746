//! Lambda event filtering (`FilterCriteria`), as applied by an event source mapping before it
//! invokes the function.
//!
//! A mapping has up to N patterns; a record is delivered when it matches *any* of them.
//! Supported pattern syntax (the subset Lambda documents for DynamoDB streams): nested
//! objects; arrays of alternatives holding literals (string, number, boolean, null) or
//! operators `{"prefix"}`, `{"suffix"}`, `{"equals-ignore-case"}`, `{"exists"}`,
//! `{"anything-but"}` (value, list or `{"prefix"}`), `{"numeric": [op, n, ...]}`.
//! Numbers stored as DynamoDB `N` strings compare numerically. When the record's value is an
//! array, the pattern matches if any element matches.

use serde_json::Value;

/// Whether `record` matches any of `patterns` (no patterns: everything matches).
pub fn matches_any(patterns: &[Value], record: &Value) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, record))
}

/// Whether `record` matches one pattern.
pub fn matches(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, sub)| {
            let value = record.get(key);
            match sub {
                Value::Object(_) => value.is_some_and(|v| matches(sub, v)),
                Value::Array(alternatives) => leaf_matches(alternatives, value),
                // A bare literal is shorthand for a one-element list.
                literal => leaf_matches(std::slice::from_ref(literal), value),
            }
        }),
        _ => false,
    }
}

fn leaf_matches(alternatives: &[Value], value: Option<&Value>) -> bool {
    alternatives.iter().any(|alt| match value {
        Some(Value::Array(items)) => {
            // exists / anything-but apply to the field, not its elements.
            if is_exists(alt) {
                return alt_matches(alt, value);
            }
            items.iter().any(|item| alt_matches(alt, Some(item)))
        }
        _ => alt_matches(alt, value),
    })
}

fn is_exists(alt: &Value) -> bool {
    alt.get("exists").is_some()
}

fn alt_matches(alt: &Value, value: Option<&Value>) -> bool {
    match alt {
        Value::Object(op) => {
            if let Some(want) = op.get("exists").and_then(Value::as_bool) {
                return value.is_some() == want;
            }
            let Some(value) = value else {
                return false;
            };
            if let Some(prefix) = op.get("prefix") {
                return match (prefix, value) {
                    (Value::String(p), Value::String(s)) => s.starts_with(p.as_str()),
                    _ => false,
                };
            }
            if let Some(Value::String(suffix)) = op.get("suffix") {
                return value.as_str().is_some_and(|s| s.ends_with(suffix.as_str()));
            }
            if let Some(Value::String(want)) = op.get("equals-ignore-case") {
                return value.as_str().is_some_and(|s| s.eq_ignore_ascii_case(want));
            }
            if let Some(but) = op.get("anything-but") {
                return match but {
                    Value::Array(list) => !list.iter().any(|b| literal_eq(b, value)),
                    Value::Object(inner) => match inner.get("prefix") {
                        Some(Value::String(p)) => {
                            !value.as_str().is_some_and(|s| s.starts_with(p.as_str()))
                        }
                        _ => false,
                    },
                    single => !literal_eq(single, value),
                };
            }
            if let Some(Value::Array(conds)) = op.get("numeric") {
                return numeric_matches(conds, value);
            }
            false
        }
        literal => value.is_some_and(|v| literal_eq(literal, v)),
    }
}

fn literal_eq(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Number(a), Value::String(s)) => {
            // DynamoDB N values arrive as strings.
            s.parse::<f64>().ok() == a.as_f64()
        }
        _ => want == got,
    }
}

fn numeric_matches(conds: &[Value], value: &Value) -> bool {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    let Some(n) = n else {
        return false;
    };
    conds.chunks(2).all(|pair| match pair {
        [Value::String(op), bound] => {
            let Some(b) = bound.as_f64() else {
                return false;
            };
            match op.as_str() {
                "=" => n == b,
                "<" => n < b,
                "<=" => n <= b,
                ">" => n > b,
                ">=" => n >= b,
                _ => false,
            }
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ttl_remove() -> Value {
        json!({
            "eventName": "REMOVE",
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "dynamodb": {"Keys": {"pk": {"S": "ORDER#1"}}, "OldImage": {"amount": {"N": "12.5"}, "tags": {"SS": ["a", "b"]}}}
        })
    }

    #[test]
    fn ttl_filter_matches_only_service_removes() {
        let pattern = json!({
            "eventName": ["REMOVE"],
            "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}
        });
        assert!(matches(&pattern, &ttl_remove()));
        let user_delete = json!({"eventName": "REMOVE", "dynamodb": {}});
        assert!(!matches(&pattern, &user_delete));
        let insert = json!({"eventName": "INSERT"});
        assert!(!matches(&pattern, &insert));
    }

    #[test]
    fn operators() {
        let r = ttl_remove();
        assert!(matches(
            &json!({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "ORDER#"}]}}}}),
            &r
        ));
        assert!(!matches(
            &json!({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "CUST#"}]}}}}),
            &r
        ));
        assert!(matches(
            &json!({"dynamodb": {"OldImage": {"amount": {"N": [{"numeric": [">", 10, "<=", 12.5]}]}}}}),
            &r
        ));
        assert!(matches(&json!({"userIdentity": [{"exists": true}]}), &r));
        assert!(matches(
            &json!({"eventName": [{"anything-but": ["INSERT", "MODIFY"]}]}),
            &r
        ));
        assert!(matches(
            &json!({"dynamodb": {"OldImage": {"tags": {"SS": ["b"]}}}}),
            &r
        ));
        assert!(matches(
            &json!({"eventName": [{"equals-ignore-case": "remove"}]}),
            &r
        ));
        assert!(matches(&json!({"missing": [{"exists": false}]}), &r));
        assert!(matches_any(&[], &r));
        assert!(matches_any(
            &[
                json!({"eventName": ["INSERT"]}),
                json!({"eventName": ["REMOVE"]})
            ],
            &r
        ));
    }
}
