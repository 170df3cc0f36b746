//! What the fuzz targets share: the example registry, a CDC sink for classification, and
//! structured generators of DynamoDB items that reach the typed paths of the codec (field
//! names of the registry, number-like texts) far more often than raw bytes would.
//!
//! Invariant every target checks: no input panics; every refusal is a typed error.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Result, Unstructured};
use dynabridge_shared::lake::layout::{Area, LakeLayout};
use dynabridge_shared::schema::{Attributes, Registry};
use dynabridge_shared::stream::sink::RangeSink;
use serde_dynamo::AttributeValue;

/// The example registry (`schemas/example.json`), parsed once.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        Registry::from_json_str(include_str!("../../schemas/example.json"), "example")
            .expect("the example registry is valid")
    })
}

/// A CDC sink over the example registry; only its S3-free `classify` is used.
pub fn sink() -> &'static RangeSink {
    static S: OnceLock<RangeSink> = OnceLock::new();
    S.get_or_init(|| {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        RangeSink::new(
            aws_sdk_s3::Client::from_conf(conf),
            "lake",
            LakeLayout::new(""),
            Area::Cdc,
            "fuzz",
            Arc::new(registry().clone()),
        )
    })
}

/// Field names of the example registry, so generated items hit typed columns.
const NAMES: &[&str] = &[
    "pk",
    "sk",
    "entity_type",
    "schema_version",
    "email",
    "name",
    "full_name",
    "created_at",
    "tags",
    "loyalty_points",
    "prefs",
    "address",
    "tier",
    "avatar",
    "attachments",
    "birthday",
    "customer_id",
    "total",
    "placed_at",
    "lines",
    "status",
    "legacy_code",
    "currency",
    "shipped_on",
    "weights",
    "discount",
    "ref_number",
    "gift",
    "expires_at",
    "ttl",
    "token",
    "street",
    "city",
    "zip",
    "geo",
    "lat",
    "lon",
];

/// An attribute name: mostly one of the registry's, sometimes anything.
#[derive(Debug, Clone)]
pub struct Name(pub String);

impl<'a> Arbitrary<'a> for Name {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let pick: u8 = u.arbitrary()?;
        Ok(Name(if usize::from(pick) < NAMES.len() * 4 {
            NAMES[usize::from(pick) % NAMES.len()].to_string()
        } else {
            u.arbitrary()?
        }))
    }
}

/// A number text: mostly shaped like one (sign, digits, point, exponent), sometimes anything.
#[derive(Debug, Clone)]
pub struct NumText(pub String);

impl<'a> Arbitrary<'a> for NumText {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        if u.ratio(1, 8)? {
            return Ok(NumText(u.arbitrary()?));
        }
        let mut s = String::new();
        if u.ratio(1, 4)? {
            s.push('-');
        }
        let int_digits = u.int_in_range(0..=45)?;
        for _ in 0..int_digits {
            s.push(char::from(b'0' + u.int_in_range(0..=9)?));
        }
        if u.ratio(1, 2)? {
            s.push('.');
            for _ in 0..u.int_in_range(0..=40)? {
                s.push(char::from(b'0' + u.int_in_range(0..=9)?));
            }
        }
        if u.ratio(1, 3)? {
            s.push(if u.arbitrary()? { 'E' } else { 'e' });
            let e: i16 = u.arbitrary()?;
            s.push_str(&(i32::from(e) % 300).to_string());
        }
        Ok(NumText(s))
    }
}

/// An attribute value tree.
#[derive(Debug, Clone, Arbitrary)]
pub enum Av {
    /// S, sometimes a timestamp/date-like text.
    S(String),
    /// S shaped like an RFC 3339 timestamp or a date.
    Time(u16, u8, u8, u8, u8, u8, u32, bool),
    /// N.
    N(NumText),
    /// B.
    B(Vec<u8>),
    /// BOOL.
    Bool(bool),
    /// NULL.
    Null,
    /// M.
    M(Vec<(Name, Av)>),
    /// L.
    L(Vec<Av>),
    /// SS.
    Ss(Vec<String>),
    /// NS.
    Ns(Vec<NumText>),
    /// BS.
    Bs(Vec<Vec<u8>>),
}

/// Deeper than any value a Lambda event can carry (serde_json stops at 128 JSON levels, 64
/// DynamoDB levels): deeper generated trees are cut there.
const MAX_DEPTH: usize = 64;

impl Av {
    /// The serde_dynamo value.
    pub fn to_value(&self, depth: usize) -> AttributeValue {
        if depth > MAX_DEPTH {
            return AttributeValue::S("cut".into());
        }
        match self {
            Av::S(s) => AttributeValue::S(s.clone()),
            Av::Time(y, mo, d, h, mi, s, frac, date_only) => AttributeValue::S(if *date_only {
                format!("{:04}-{:02}-{:02}", y % 10000, mo % 14, d % 33)
            } else {
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z",
                    y % 10000,
                    mo % 14,
                    d % 33,
                    h % 25,
                    mi % 61,
                    s % 61,
                    frac
                )
            }),
            Av::N(n) => AttributeValue::N(n.0.clone()),
            Av::B(b) => AttributeValue::B(b.clone()),
            Av::Bool(b) => AttributeValue::Bool(*b),
            Av::Null => AttributeValue::Null(true),
            Av::M(m) => AttributeValue::M(
                m.iter()
                    .map(|(k, v)| (k.0.clone(), v.to_value(depth + 1)))
                    .collect::<HashMap<_, _>>(),
            ),
            Av::L(l) => AttributeValue::L(l.iter().map(|v| v.to_value(depth + 1)).collect()),
            Av::Ss(s) => AttributeValue::Ss(s.clone()),
            Av::Ns(n) => AttributeValue::Ns(n.iter().map(|x| x.0.clone()).collect()),
            Av::Bs(b) => AttributeValue::Bs(b.clone()),
        }
    }
}

/// An item aimed at one entity of the registry (its selector attributes set first, so the
/// generated attributes may also break them).
#[derive(Debug, Clone, Arbitrary)]
pub struct ItemInput {
    /// 0: Customer, 1: Order, 2: Session, else none.
    pub entity: u8,
    /// The `schema_version` attribute, when set.
    pub version: Option<u8>,
    /// The attributes.
    pub attrs: Vec<(Name, Av)>,
}

impl ItemInput {
    /// The item.
    pub fn to_item(&self) -> Attributes {
        let mut item = Attributes::new();
        let s = |v: &str| AttributeValue::S(v.to_string());
        match self.entity % 4 {
            0 => {
                item.insert("pk".into(), s("CUSTOMER#1"));
                item.insert("sk".into(), s("PROFILE"));
                item.insert("entity_type".into(), s("Customer"));
            }
            1 => {
                item.insert("pk".into(), s("ORDER#1"));
                item.insert("sk".into(), s("ORDER"));
            }
            2 => {
                item.insert("pk".into(), s("SESSION#1"));
                item.insert("sk".into(), s("S"));
            }
            _ => {}
        }
        if let Some(v) = self.version {
            item.insert(
                "schema_version".into(),
                AttributeValue::N((v % 4).to_string()),
            );
        }
        for (k, v) in &self.attrs {
            item.insert(k.0.clone(), v.to_value(1));
        }
        item
    }
}
