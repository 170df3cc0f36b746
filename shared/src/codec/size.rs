//! DynamoDB's item size rule (attribute names + values, UTF-8 bytes; numbers ~1 byte per two
//! digits + 1; containers 3 bytes + 1 per element), for both attribute representations the
//! code base holds: the Lambda event / serde_dynamo one and the AWS SDK one.
//!
//! Used to spot images that cannot come from DynamoDB (over 400 KB) and to size
//! BatchWriteItem calls under 16 MB.

/// Generates `$name(&HashMap<String, $av>) -> usize` for one attribute-value type.
macro_rules! item_size_fn {
    ($(#[$doc:meta])* $name:ident, $value_size:ident, $av:ty) => {
        $(#[$doc])*
        pub fn $name<S: std::hash::BuildHasher>(item: &std::collections::HashMap<String, $av, S>) -> usize {
            item.iter().map(|(k, v)| k.len() + $value_size(v)).sum()
        }

        fn $value_size(v: &$av) -> usize {
            type V = $av;
            match v {
                V::S(s) => s.len(),
                V::N(n) => n.len().div_ceil(2) + 1,
                V::B(b) => AsRef::<[u8]>::as_ref(b).len(),
                V::Bool(_) | V::Null(_) => 1,
                V::Ss(v) => v.iter().map(String::len).sum(),
                V::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
                V::Bs(v) => v.iter().map(|b| AsRef::<[u8]>::as_ref(b).len()).sum(),
                V::L(v) => 3 + v.iter().map(|x| 1 + $value_size(x)).sum::<usize>(),
                V::M(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + $value_size(x)).sum::<usize>(),
                #[allow(unreachable_patterns)]
                _ => 0,
            }
        }
    };
}

item_size_fn!(
    /// Size of a Lambda-event / serde_dynamo item by DynamoDB's rule.
    item_size,
    value_size,
    serde_dynamo::AttributeValue
);

item_size_fn!(
    /// Size of an AWS SDK item by DynamoDB's rule.
    sdk_item_size,
    sdk_value_size,
    aws_sdk_dynamodb::types::AttributeValue
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn both_representations_agree() {
        let item: HashMap<String, serde_dynamo::AttributeValue> = serde_json::from_value::<serde_dynamo::Item>(
            serde_json::json!({"pk": {"S": "ORDER#1"}, "n": {"N": "12345"}, "l": {"L": [{"S": "ab"}, {"M": {"k": {"BOOL": true}}}]}}),
        )
        .unwrap()
        .into_inner();
        let sdk = crate::codec::to_sdk_item(item.clone());
        assert_eq!(item_size(&item), sdk_item_size(&sdk));
        // pk(2)+7, n(1)+4, l(1)+3+(1+2)+(1+3+(1+1+1))
        assert_eq!(item_size(&item), 9 + 5 + 1 + 3 + 3 + 7);
    }
}
