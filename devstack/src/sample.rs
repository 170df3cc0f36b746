//! A realistic, deterministic sample dataset for the local runner and tests, conforming to
//! `schemas/example.json` (the registry the runner deploys).
//!
//! | entity | pk / sk | notable attributes |
//! |---|---|---|
//! | `Customer` (v1, v2) | `CUSTOMER#<id>` / `PROFILE` | `entity_type`, ISO `created_at`, `tags` (SS), `prefs` (M, dynamic keys), `address` (M struct); v1 `name` + int `loyalty_points`, v2 `full_name` + `tier` + `birthday` (date) |
//! | `Order` (v1, v2) | `ORDER#<id>` / `ORDER` | decimal `total`, epoch-ms `placed_at`, `lines` (L of M, stored as JSON); v1 `legacy_code`, v2 `currency`, `weights` (NS), `gift` |
//! | `Session` (v1) | `SESSION#<id>` / `SESSION` | `ttl` (epoch seconds; a third already past), `token` (B) |
//!
//! Every tenth customer carries an attribute the registry does not name (`nickname`), which
//! the lake keeps in `_extra`. The generator is a seeded SplitMix64: the same seed always
//! gives the same items.

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

fn money(rng: &mut Rng, max_units: u64) -> String {
    format!("{}.{:02}", rng.below(max_units), rng.below(100))
}

fn customer(rng: &mut Rng, id: &str, now: DateTime<Utc>, index: usize) -> Item {
    let created =
        now - Duration::days(rng.below(720) as i64) - Duration::seconds(rng.below(86_400) as i64);
    let version = if index.is_multiple_of(3) { 1 } else { 2 };
    let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
    let mut item: Item = HashMap::new();
    item.insert("pk".into(), s(format!("CUSTOMER#{id}")));
    item.insert("sk".into(), s("PROFILE"));
    item.insert("entity_type".into(), s("Customer"));
    item.insert("schema_version".into(), n(version));
    item.insert("email".into(), s(format!("customer{id}@example.com")));
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
        "prefs".into(),
        AttributeValue::M(HashMap::from([
            ("lang".to_string(), s(*rng.pick(&["en", "pt", "de", "ja"]))),
            ("theme".to_string(), s(*rng.pick(&["dark", "light"]))),
        ])),
    );
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
    if version == 1 {
        item.insert("name".into(), s(name));
        item.insert("loyalty_points".into(), n(rng.below(50_000)));
    } else {
        item.insert("full_name".into(), s(name));
        item.insert("tier".into(), s(*rng.pick(&["basic", "silver", "gold"])));
        item.insert("loyalty_points".into(), n(rng.below(5_000_000)));
        let birthday = chrono::NaiveDate::from_ymd_opt(
            1950 + rng.below(55) as i32,
            1 + rng.below(12) as u32,
            1 + rng.below(28) as u32,
        );
        if let Some(b) = birthday {
            item.insert("birthday".into(), s(b.format("%Y-%m-%d").to_string()));
        }
    }
    if index.is_multiple_of(10) {
        item.insert("nickname".into(), s(format!("nick-{id}")));
    }
    item
}

fn order(rng: &mut Rng, id: &str, customer_id: &str, now: DateTime<Utc>, version: u32) -> Item {
    let placed = now
        - Duration::days(rng.below(720) as i64)
        - Duration::milliseconds(rng.below(86_400_000) as i64);
    let lines: Vec<AttributeValue> = (0..1 + rng.below(3))
        .map(|_| {
            AttributeValue::M(HashMap::from([
                ("sku".to_string(), s(*rng.pick(SKUS))),
                ("qty".to_string(), n(1 + rng.below(5))),
                ("unit_price".to_string(), n(money(rng, 200))),
            ]))
        })
        .collect();
    let mut item: Item = HashMap::new();
    item.insert("pk".into(), s(format!("ORDER#{id}")));
    item.insert("sk".into(), s("ORDER"));
    item.insert("schema_version".into(), n(version));
    item.insert("customer_id".into(), s(customer_id));
    item.insert("total".into(), n(money(rng, 5_000)));
    item.insert("placed_at".into(), n(placed.timestamp_millis()));
    item.insert("lines".into(), AttributeValue::L(lines));
    item.insert(
        "status".into(),
        s(*rng.pick(&["PLACED", "SHIPPED", "DELIVERED", "CANCELLED"])),
    );
    if version == 1 {
        item.insert("legacy_code".into(), s(format!("L{}", rng.below(1000))));
    } else {
        item.insert("currency".into(), s(*rng.pick(&["EUR", "USD", "JPY"])));
        let mut weights: Vec<String> = (0..1 + rng.below(3))
            .map(|i| format!("{}.{:03}", i + 1 + rng.below(9), rng.below(1000)))
            .collect();
        weights.sort();
        weights.dedup();
        item.insert("weights".into(), AttributeValue::Ns(weights));
        item.insert("gift".into(), AttributeValue::Bool(rng.below(5) == 0));
    }
    item
}

fn session(rng: &mut Rng, id: &str, customers: usize, now: DateTime<Utc>, expired: bool) -> Item {
    let created = now - Duration::hours(rng.below(96) as i64);
    let ttl = if expired {
        now - Duration::hours(1 + rng.below(48) as i64)
    } else {
        now + Duration::days(1 + rng.below(30) as i64)
    };
    let token: Vec<u8> = (0..16).map(|_| rng.below(256) as u8).collect();
    let mut item: Item = HashMap::new();
    item.insert("pk".into(), s(format!("SESSION#{id}")));
    item.insert("sk".into(), s("SESSION"));
    item.insert("schema_version".into(), n(1));
    item.insert(
        "customer_id".into(),
        s(format!(
            "CUSTOMER#{:05}",
            1 + rng.below(customers.max(1) as u64)
        )),
    );
    item.insert(
        "created_at".into(),
        s(created.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    item.insert("ttl".into(), n(ttl.timestamp()));
    item.insert("token".into(), AttributeValue::B(token.into()));
    item
}

/// Generates the dataset.
pub fn generate(spec: &SampleSpec) -> Vec<Item> {
    let mut rng = Rng::new(spec.seed);
    let mut items = Vec::new();
    let mut order_no = 0usize;
    for c in 0..spec.customers {
        let id = format!("{:05}", c + 1);
        items.push(customer(&mut rng, &id, spec.now, c));
        for _ in 0..rng.below(5) {
            order_no += 1;
            let version = if order_no.is_multiple_of(4) { 1 } else { 2 };
            let oid = format!("{order_no:06}");
            items.push(order(
                &mut rng,
                &oid,
                &format!("CUSTOMER#{id}"),
                spec.now,
                version,
            ));
        }
    }
    for i in 0..spec.sessions {
        let id = format!("{:06}", i + 1);
        items.push(session(
            &mut rng,
            &id,
            spec.customers,
            spec.now,
            i.is_multiple_of(3),
        ));
    }
    items
}

/// An endless, deterministic stream of sample items for benchmarks and large loads: the
/// same entities and mix as [`generate`] (each customer followed by its 0–4 orders; a session
/// after every other customer), enriched with the optional fields of the latest versions
/// (`address.geo` decimals, `avatar` / `attachments` binaries, `discount` doubles,
/// `shipped_on` dates, 38-digit `ref_number`s, `expires_at` epochs) so every column type of
/// `schemas/example.json` is exercised. Items are ~0.3–1 KB. The same seed and `now` always
/// give the same sequence, whatever length is taken from it.
#[derive(Debug, Clone)]
pub struct SampleStream {
    rng: Rng,
    now: DateTime<Utc>,
    customers: usize,
    orders: usize,
    sessions: usize,
    pending: std::collections::VecDeque<Item>,
}

impl SampleStream {
    /// A stream for `seed`, with ages and TTLs relative to `now`.
    pub fn new(seed: u64, now: DateTime<Utc>) -> Self {
        SampleStream {
            rng: Rng::new(seed),
            now,
            customers: 0,
            orders: 0,
            sessions: 0,
            pending: std::collections::VecDeque::new(),
        }
    }

    fn refill(&mut self) {
        let rng = &mut self.rng;
        let c = self.customers;
        self.customers += 1;
        let id = format!("{:07}", c + 1);
        let mut cust = customer(rng, &id, self.now, c);
        enrich_customer(rng, &mut cust);
        self.pending.push_back(cust);
        for _ in 0..rng.below(5) {
            self.orders += 1;
            let version = if self.orders.is_multiple_of(4) { 1 } else { 2 };
            let oid = format!("{:08}", self.orders);
            let mut o = order(rng, &oid, &format!("CUSTOMER#{id}"), self.now, version);
            enrich_order(rng, &mut o, self.now);
            self.pending.push_back(o);
        }
        if c % 2 == 1 {
            self.sessions += 1;
            let sid = format!("{:07}", self.sessions);
            let expired = self.sessions.is_multiple_of(3);
            self.pending
                .push_back(session(rng, &sid, self.customers, self.now, expired));
        }
    }
}

impl Iterator for SampleStream {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while self.pending.is_empty() {
            self.refill();
        }
        self.pending.pop_front()
    }
}

fn decimal(rng: &mut Rng, whole: u64, scale: u32) -> String {
    let frac = rng.below(10u64.pow(scale));
    let sign = if rng.below(2) == 0 { "" } else { "-" };
    format!(
        "{sign}{}.{frac:0width$}",
        rng.below(whole),
        width = scale as usize
    )
}

fn bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.below(256) as u8).collect()
}

fn enrich_customer(rng: &mut Rng, item: &mut Item) {
    let v2 = matches!(item.get("schema_version"), Some(AttributeValue::N(v)) if v == "2");
    if !v2 {
        return;
    }
    if let Some(AttributeValue::M(address)) = item.get_mut("address") {
        address.insert(
            "geo".into(),
            AttributeValue::M(HashMap::from([
                ("lat".to_string(), n(decimal(rng, 90, 6))),
                ("lon".to_string(), n(decimal(rng, 180, 6))),
            ])),
        );
    }
    if rng.below(2) == 0 {
        let len = 48 + rng.below(48) as usize;
        item.insert("avatar".into(), AttributeValue::B(bytes(rng, len).into()));
    }
    if rng.below(4) == 0 {
        let mut docs: Vec<Vec<u8>> = (0..1 + rng.below(3))
            .map(|i| {
                let mut b = bytes(rng, 24);
                b[0] = i as u8;
                b
            })
            .collect();
        docs.sort();
        docs.dedup();
        item.insert(
            "attachments".into(),
            AttributeValue::Bs(docs.into_iter().map(Into::into).collect()),
        );
    }
}

fn enrich_order(rng: &mut Rng, item: &mut Item, now: DateTime<Utc>) {
    let v2 = matches!(item.get("schema_version"), Some(AttributeValue::N(v)) if v == "2");
    if !v2 {
        return;
    }
    if rng.below(3) == 0 {
        item.insert("discount".into(), n(format!("0.{:02}", 1 + rng.below(60))));
    }
    if matches!(item.get("status"), Some(AttributeValue::S(s)) if s == "SHIPPED" || s == "DELIVERED")
    {
        let day = (now - Duration::days(rng.below(365) as i64)).date_naive();
        item.insert("shipped_on".into(), s(day.format("%Y-%m-%d").to_string()));
    }
    // Payment references are 38-digit numbers: exact, never a float.
    let digits: String = (0..38)
        .map(|i| {
            let d = if i == 0 {
                1 + rng.below(9)
            } else {
                rng.below(10)
            };
            char::from(b'0' + d as u8)
        })
        .collect();
    item.insert("ref_number".into(), n(digits));
    if rng.below(5) == 0 {
        item.insert(
            "expires_at".into(),
            n((now + Duration::days(30 + rng.below(365) as i64)).timestamp()),
        );
    }
}

/// The entity of a sample item (by key prefix / `entity_type`, as the registry selects it).
pub fn entity_of(item: &Item) -> &'static str {
    match item.get("pk") {
        Some(AttributeValue::S(pk)) if pk.starts_with("ORDER#") => "Order",
        Some(AttributeValue::S(pk)) if pk.starts_with("SESSION#") => "Session",
        _ => "Customer",
    }
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
        let count = |e: &str| a.iter().filter(|i| entity_of(i) == e).count();
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
