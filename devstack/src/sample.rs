//! A realistic, deterministic sample dataset for the local runner and tests.
//!
//! A single-table design with three entities, two schema versions, a spread of ages and TTLs:
//!
//! | entity | pk / sk | notable attributes |
//! |---|---|---|
//! | `Customer` | `CUSTOMER#<id>` / `PROFILE` | decimal `balance`, ISO `created_at`, `tags` (SS), `address` (M), `preferences` (M, dynamic keys); v2 renamed `name` → `full_name` |
//! | `Order` | `CUSTOMER#<id>` / `ORDER#<n>` | decimal `total`, epoch-seconds `created_at`, `quantities` (NS), `lines` (L of M); v2 added `channel` |
//! | `Session` | `SESSION#<id>` / `SESSION` | `ttl` (epoch seconds; some already past), `token` (B) |
//!
//! Items carry `entity` and `schema_version` attributes. The generator is a seeded
//! SplitMix64, so the same seed always gives the same items.

use std::collections::HashMap;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Deterministic pseudo-random numbers (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Picks one element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Number of customers; each has 0–4 orders.
    pub customers: usize,
    /// Number of sessions.
    pub sessions: usize,
    /// Seed.
    pub seed: u64,
    /// "Now" for ages and TTLs.
    pub now: DateTime<Utc>,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            customers: 40,
            sessions: 20,
            seed: 42,
            now: Utc::now(),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

const FIRST: &[&str] = &[
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Zoë", "José", "Åsa", "Chidi",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Müller", "Núñez",
];
const CITIES: &[&str] = &["Lisbon", "Berlin", "Osaka", "Nairobi", "Austin", "Montréal"];
const TAGS: &[&str] = &["vip", "newsletter", "b2b", "beta", "churn-risk"];
const SKUS: &[&str] = &["SKU-APPLE", "SKU-PEAR", "SKU-KIWI", "SKU-MANGO", "SKU-FIG"];

/// Generates the dataset.
pub fn generate(spec: &SampleSpec) -> Vec<Item> {
    let mut rng = Rng::new(spec.seed);
    let mut items = Vec::new();
    for c in 0..spec.customers {
        let id = format!("{:05}", c + 1);
        let age_days = rng.below(720) as i64;
        let created =
            spec.now - Duration::days(age_days) - Duration::seconds(rng.below(86_400) as i64);
        let version = if c.is_multiple_of(3) { 1 } else { 2 };
        let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), s(format!("CUSTOMER#{id}")));
        item.insert("sk".into(), s("PROFILE"));
        item.insert("entity".into(), s("Customer"));
        item.insert("schema_version".into(), n(version));
        item.insert(
            if version == 1 { "name" } else { "full_name" }.into(),
            s(name),
        );
        item.insert("email".into(), s(format!("customer{id}@example.com")));
        item.insert(
            "balance".into(),
            n(format!("{}.{:02}", rng.below(100_000), rng.below(100))),
        );
        item.insert(
            "created_at".into(),
            s(created.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        let mut tags: Vec<String> = (0..1 + rng.below(3))
            .map(|_| rng.pick(TAGS).to_string())
            .collect();
        tags.sort();
        tags.dedup();
        item.insert("tags".into(), AttributeValue::Ss(tags));
        item.insert(
            "address".into(),
            AttributeValue::M(HashMap::from([
                (
                    "street".to_string(),
                    s(format!("{} Main St", 1 + rng.below(999))),
                ),
                ("city".to_string(), s(*rng.pick(CITIES))),
                ("zip".to_string(), s(format!("{:05}", rng.below(99_999)))),
            ])),
        );
        item.insert(
            "preferences".into(),
            AttributeValue::M(HashMap::from([
                ("lang".to_string(), s(*rng.pick(&["en", "pt", "de", "ja"]))),
                ("theme".to_string(), s(*rng.pick(&["dark", "light"]))),
            ])),
        );
        item.insert("active".into(), AttributeValue::Bool(rng.below(10) > 1));
        items.push(item);

        for o in 0..rng.below(5) {
            let order_created = created + Duration::days(rng.below(age_days.max(1) as u64) as i64);
            let over_version = if (c + o as usize).is_multiple_of(4) {
                1
            } else {
                2
            };
            let lines: Vec<AttributeValue> = (0..1 + rng.below(3))
                .map(|_| {
                    AttributeValue::M(HashMap::from([
                        ("sku".to_string(), s(*rng.pick(SKUS))),
                        ("qty".to_string(), n(1 + rng.below(5))),
                        (
                            "unit_price".to_string(),
                            n(format!("{}.{:02}", 1 + rng.below(200), rng.below(100))),
                        ),
                    ]))
                })
                .collect();
            let mut qty: Vec<String> = (0..1 + rng.below(3))
                .map(|i| (i + 1 + rng.below(9)).to_string())
                .collect();
            qty.sort();
            qty.dedup();
            let mut order: Item = HashMap::new();
            order.insert("pk".into(), s(format!("CUSTOMER#{id}")));
            order.insert("sk".into(), s(format!("ORDER#{:04}", o + 1)));
            order.insert("entity".into(), s("Order"));
            order.insert("schema_version".into(), n(over_version));
            order.insert(
                "total".into(),
                n(format!("{}.{:02}", rng.below(5_000), rng.below(100))),
            );
            order.insert("currency".into(), s(*rng.pick(&["EUR", "USD", "JPY"])));
            order.insert(
                "status".into(),
                s(*rng.pick(&["PLACED", "SHIPPED", "DELIVERED", "CANCELLED"])),
            );
            order.insert("created_at".into(), n(order_created.timestamp()));
            order.insert("quantities".into(), AttributeValue::Ns(qty));
            order.insert("lines".into(), AttributeValue::L(lines));
            if over_version == 2 {
                order.insert("channel".into(), s(*rng.pick(&["web", "app", "store"])));
            }
            items.push(order);
        }
    }
    for i in 0..spec.sessions {
        let id = format!("{:06}", i + 1);
        let created = spec.now - Duration::hours(rng.below(96) as i64);
        // A third already expired (TTL in the past), the rest expire later.
        let ttl = if i.is_multiple_of(3) {
            spec.now - Duration::hours(1 + rng.below(48) as i64)
        } else {
            spec.now + Duration::days(1 + rng.below(30) as i64)
        };
        let token: Vec<u8> = (0..16).map(|_| rng.below(256) as u8).collect();
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), s(format!("SESSION#{id}")));
        item.insert("sk".into(), s("SESSION"));
        item.insert("entity".into(), s("Session"));
        item.insert("schema_version".into(), n(1));
        item.insert(
            "customer".into(),
            s(format!(
                "CUSTOMER#{:05}",
                1 + rng.below(spec.customers.max(1) as u64)
            )),
        );
        item.insert(
            "created_at".into(),
            s(created.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
        item.insert("ttl".into(), n(ttl.timestamp()));
        item.insert("token".into(), AttributeValue::B(token.into()));
        items.push(item);
    }
    items
}

/// Writes items with BatchWriteItem (25 per call), retrying unprocessed items.
pub async fn load(ddb: &aws_sdk_dynamodb::Client, table: &str, items: &[Item]) -> Result<()> {
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                Ok(WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item.clone())).build()?)
                    .build())
            })
            .collect::<Result<_>>()?;
        for _ in 0..10 {
            let out = ddb
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .context("BatchWriteItem")?;
            requests = out
                .unprocessed_items()
                .and_then(|m| m.get(table))
                .cloned()
                .unwrap_or_default();
            if requests.is_empty() {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let spec = SampleSpec {
            now,
            ..Default::default()
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a, b);
        let count = |e: &str| a.iter().filter(|i| i.get("entity") == Some(&s(e))).count();
        assert_eq!(count("Customer"), 40);
        assert_eq!(count("Session"), 20);
        assert!(count("Order") > 20);
        let expired = a
            .iter()
            .filter_map(|i| i.get("ttl"))
            .filter(|t| matches!(t, AttributeValue::N(v) if v.parse::<i64>().unwrap() < now.timestamp()))
            .count();
        assert_eq!(expired, 7);
        let versions: std::collections::BTreeSet<String> = a
            .iter()
            .map(|i| format!("{:?}", i["schema_version"]))
            .collect();
        assert_eq!(versions.len(), 2);
    }
}
