//! Borrowed DynamoDB items: what the codec reads.
//!
//! [`ItemRef`] is an item whose names and strings point into the text or the structure it was
//! read from — a line of DynamoDB-JSON, a Lambda stream event, a `serde_dynamo` or AWS SDK
//! item — instead of owning copies. Parsing DynamoDB-JSON into it allocates one vector per
//! map, list or set and nothing per string (unless the JSON escapes characters in it), which
//! is what makes the conversion and the stream path cheap (bench/README.md, benchmarks 1
//! and 2). Upcasts edit it in place (`schema`), so an old-version item costs no copy either.
//!
//! Attributes keep their order of appearance; names are unique (a JSON object naming an
//! attribute twice is refused: DynamoDB never writes one). Output written from an item —
//! DynamoDB-JSON for `_extra` and quarantine, plain JSON for event details — sorts map keys,
//! so equal items give equal bytes whatever order they arrived in.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_dynamo::AttributeValue;

use super::number;
use crate::schema::Attributes;

/// One attribute value, borrowed where possible.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrRef<'a> {
    /// `S`.
    S(Cow<'a, str>),
    /// `N`: the number's text as received (validated when a column or check reads it).
    N(Cow<'a, str>),
    /// `B`: the bytes (decoded when read from base64 text).
    B(Cow<'a, [u8]>),
    /// `BOOL`.
    Bool(bool),
    /// `NULL` (always `true` when it comes from DynamoDB).
    Null(bool),
    /// `M`.
    M(ItemRef<'a>),
    /// `L`.
    L(Vec<AttrRef<'a>>),
    /// `SS`.
    Ss(Vec<Cow<'a, str>>),
    /// `NS`.
    Ns(Vec<Cow<'a, str>>),
    /// `BS`.
    Bs(Vec<Cow<'a, [u8]>>),
}

/// An item (or an `M` value): named attributes in order of appearance, names unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemRef<'a> {
    attrs: Vec<(Cow<'a, str>, AttrRef<'a>)>,
}

impl<'a> ItemRef<'a> {
    /// An empty item.
    pub fn new() -> Self {
        ItemRef { attrs: Vec::new() }
    }

    /// An empty item with room for `n` attributes.
    pub fn with_capacity(n: usize) -> Self {
        ItemRef {
            attrs: Vec::with_capacity(n),
        }
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// Whether the item has no attribute.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// The attributes in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttrRef<'a>)> {
        self.attrs.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The attribute at `index` (see [`Self::iter`]).
    pub(crate) fn entry(&self, index: usize) -> Option<(&str, &AttrRef<'a>)> {
        self.attrs.get(index).map(|(k, v)| (k.as_ref(), v))
    }

    /// The attribute at `index` as stored (name and value).
    pub(crate) fn raw_entry(&self, index: usize) -> Option<&(Cow<'a, str>, AttrRef<'a>)> {
        self.attrs.get(index)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.attrs.iter().position(|(k, _)| k == name)
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&AttrRef<'a>> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Whether `name` is present (a `NULL` value counts as present).
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name` to `value`, replacing an existing value.
    pub fn insert(&mut self, name: impl Into<Cow<'a, str>>, value: AttrRef<'a>) {
        let name = name.into();
        match self.position(&name) {
            Some(i) => self.attrs[i].1 = value,
            None => self.attrs.push((name, value)),
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<AttrRef<'a>> {
        self.position(name).map(|i| self.attrs.remove(i).1)
    }

    /// Renames `from` to `to` (the caller checked that `to` is absent).
    pub(crate) fn rename(&mut self, from: &str, to: &str) {
        if let Some(i) = self.position(from) {
            self.attrs[i].0 = Cow::Owned(to.to_string());
        }
    }

    /// Borrows a `serde_dynamo` item.
    pub fn from_attributes(item: &'a Attributes) -> Self {
        ItemRef {
            attrs: item
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), AttrRef::from_attribute(v)))
                .collect(),
        }
    }

    /// Borrows an AWS SDK item (GetItem, Query, Scan). Values of an unknown kind (a newer
    /// SDK's) become a `NULL` with the flag `false`, which no column accepts, so they surface
    /// as typed errors instead of vanishing.
    pub fn from_sdk(item: &'a HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> Self {
        ItemRef {
            attrs: item
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), AttrRef::from_sdk(v)))
                .collect(),
        }
    }

    /// An owned `serde_dynamo` item with the same attributes.
    pub fn to_attributes(&self) -> Attributes {
        self.attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_attribute_value()))
            .collect()
    }

    /// DynamoDB's size of the item (names + values, see `codec::size`).
    pub fn size(&self) -> usize {
        self.attrs.iter().map(|(k, v)| k.len() + v.size()).sum()
    }

    /// Writes the item as DynamoDB-JSON (`{"name":{"S":"..."},...}`), keys sorted.
    pub fn write_dynamodb_json(&self, out: &mut Vec<u8>) {
        write_sorted_object(out, self.attrs.iter(), |out, v| v.write_dynamodb_json(out));
    }

    /// Writes the item as plain JSON (see [`AttrRef::write_plain_json`]), keys sorted.
    pub fn write_plain_json(&self, out: &mut Vec<u8>) {
        write_sorted_object(out, self.attrs.iter(), |out, v| v.write_plain_json(out));
    }
}

/// Writes `{"k":<v>,...}` with the keys in sorted order.
pub(crate) fn write_sorted_object<'x, 'a: 'x>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = &'x (Cow<'a, str>, AttrRef<'a>)>,
    mut value: impl FnMut(&mut Vec<u8>, &AttrRef<'a>),
) {
    let mut sorted: Vec<&(Cow<'a, str>, AttrRef<'a>)> = entries.collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.push(b'{');
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, k);
        out.push(b':');
        value(out, v);
    }
    out.push(b'}');
}

impl<'a> AttrRef<'a> {
    /// Borrows a `serde_dynamo` value.
    pub fn from_attribute(v: &'a AttributeValue) -> Self {
        use AttributeValue as A;
        match v {
            A::S(s) => AttrRef::S(Cow::Borrowed(s)),
            A::N(n) => AttrRef::N(Cow::Borrowed(n)),
            A::B(b) => AttrRef::B(Cow::Borrowed(b)),
            A::Bool(b) => AttrRef::Bool(*b),
            A::Null(b) => AttrRef::Null(*b),
            A::M(m) => AttrRef::M(ItemRef::from_attributes(m)),
            A::L(l) => AttrRef::L(l.iter().map(AttrRef::from_attribute).collect()),
            A::Ss(s) => AttrRef::Ss(s.iter().map(|x| Cow::Borrowed(x.as_str())).collect()),
            A::Ns(s) => AttrRef::Ns(s.iter().map(|x| Cow::Borrowed(x.as_str())).collect()),
            A::Bs(s) => AttrRef::Bs(s.iter().map(|x| Cow::Borrowed(x.as_slice())).collect()),
        }
    }

    /// Borrows an AWS SDK value.
    pub fn from_sdk(v: &'a aws_sdk_dynamodb::types::AttributeValue) -> Self {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        match v {
            A::S(s) => AttrRef::S(Cow::Borrowed(s)),
            A::N(n) => AttrRef::N(Cow::Borrowed(n)),
            A::B(b) => AttrRef::B(Cow::Borrowed(b.as_ref())),
            A::Bool(b) => AttrRef::Bool(*b),
            A::Null(b) => AttrRef::Null(*b),
            A::M(m) => AttrRef::M(ItemRef::from_sdk(m)),
            A::L(l) => AttrRef::L(l.iter().map(AttrRef::from_sdk).collect()),
            A::Ss(s) => AttrRef::Ss(s.iter().map(|x| Cow::Borrowed(x.as_str())).collect()),
            A::Ns(s) => AttrRef::Ns(s.iter().map(|x| Cow::Borrowed(x.as_str())).collect()),
            A::Bs(s) => AttrRef::Bs(s.iter().map(|x| Cow::Borrowed(x.as_ref())).collect()),
            _ => AttrRef::Null(false),
        }
    }

    /// An owned `serde_dynamo` value.
    pub fn to_attribute_value(&self) -> AttributeValue {
        use AttributeValue as A;
        match self {
            AttrRef::S(s) => A::S(s.to_string()),
            AttrRef::N(n) => A::N(n.to_string()),
            AttrRef::B(b) => A::B(b.to_vec()),
            AttrRef::Bool(b) => A::Bool(*b),
            AttrRef::Null(b) => A::Null(*b),
            AttrRef::M(m) => A::M(m.to_attributes()),
            AttrRef::L(l) => A::L(l.iter().map(AttrRef::to_attribute_value).collect()),
            AttrRef::Ss(s) => A::Ss(s.iter().map(|x| x.to_string()).collect()),
            AttrRef::Ns(s) => A::Ns(s.iter().map(|x| x.to_string()).collect()),
            AttrRef::Bs(s) => A::Bs(s.iter().map(|x| x.to_vec()).collect()),
        }
    }

    /// An owned copy that no longer borrows.
    pub fn into_owned(self) -> AttrRef<'static> {
        let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        match self {
            AttrRef::S(s) => AttrRef::S(own(s)),
            AttrRef::N(n) => AttrRef::N(own(n)),
            AttrRef::B(b) => AttrRef::B(Cow::Owned(b.into_owned())),
            AttrRef::Bool(b) => AttrRef::Bool(b),
            AttrRef::Null(b) => AttrRef::Null(b),
            AttrRef::M(m) => AttrRef::M(ItemRef {
                attrs: m
                    .attrs
                    .into_iter()
                    .map(|(k, v)| (own(k), v.into_owned()))
                    .collect(),
            }),
            AttrRef::L(l) => AttrRef::L(l.into_iter().map(AttrRef::into_owned).collect()),
            AttrRef::Ss(s) => AttrRef::Ss(s.into_iter().map(own).collect()),
            AttrRef::Ns(s) => AttrRef::Ns(s.into_iter().map(own).collect()),
            AttrRef::Bs(s) => {
                AttrRef::Bs(s.into_iter().map(|b| Cow::Owned(b.into_owned())).collect())
            }
        }
    }

    /// The DynamoDB type tag (`S`, `N`, `M`, ...), for error messages.
    pub fn dynamo_type(&self) -> &'static str {
        match self {
            AttrRef::S(_) => "S",
            AttrRef::N(_) => "N",
            AttrRef::B(_) => "B",
            AttrRef::Bool(_) => "BOOL",
            AttrRef::Null(_) => "NULL",
            AttrRef::M(_) => "M",
            AttrRef::L(_) => "L",
            AttrRef::Ss(_) => "SS",
            AttrRef::Ns(_) => "NS",
            AttrRef::Bs(_) => "BS",
        }
    }

    /// DynamoDB's size of the value (see `codec::size`).
    pub fn size(&self) -> usize {
        let n = |t: &str| t.len().div_ceil(2) + 1;
        match self {
            AttrRef::S(s) => s.len(),
            AttrRef::N(t) => n(t),
            AttrRef::B(b) => b.len(),
            AttrRef::Bool(_) | AttrRef::Null(_) => 1,
            AttrRef::Ss(v) => v.iter().map(|s| s.len()).sum(),
            AttrRef::Ns(v) => v.iter().map(|t| n(t)).sum(),
            AttrRef::Bs(v) => v.iter().map(|b| b.len()).sum(),
            AttrRef::L(v) => 3 + v.iter().map(|x| 1 + x.size()).sum::<usize>(),
            AttrRef::M(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + x.size()).sum::<usize>(),
        }
    }

    /// Checks what the schema does not type against DynamoDB's own rules (see
    /// [`super::check_storable`]); returns the reason.
    pub fn check_storable(&self) -> Result<(), String> {
        self.check_level(1)
    }

    fn check_level(&self, level: usize) -> Result<(), String> {
        if level > super::MAX_NESTING_LEVELS {
            return Err(format!(
                "nested deeper than DynamoDB's {} levels",
                super::MAX_NESTING_LEVELS
            ));
        }
        match self {
            AttrRef::N(n) => number::parse(n).map(drop),
            AttrRef::Ns(ns) => ns.iter().try_for_each(|n| number::parse(n).map(drop)),
            AttrRef::M(m) => m.iter().try_for_each(|(_, x)| x.check_level(level + 1)),
            AttrRef::L(l) => l.iter().try_for_each(|x| x.check_level(level + 1)),
            _ => Ok(()),
        }
    }

    /// Writes the value as DynamoDB-JSON (`{"S":"..."}`; map keys sorted; binaries base64).
    pub fn write_dynamodb_json(&self, out: &mut Vec<u8>) {
        let tagged = |out: &mut Vec<u8>, tag: &str| {
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(b"\":");
        };
        tagged(out, self.dynamo_type());
        match self {
            AttrRef::S(s) | AttrRef::N(s) => write_json_str(out, s),
            AttrRef::B(b) => write_base64(out, b),
            AttrRef::Bool(b) | AttrRef::Null(b) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" })
            }
            AttrRef::M(m) => m.write_dynamodb_json(out),
            AttrRef::L(l) => write_array(out, l.iter(), |out, v| v.write_dynamodb_json(out)),
            AttrRef::Ss(s) | AttrRef::Ns(s) => {
                write_array(out, s.iter(), |out, v| write_json_str(out, v))
            }
            AttrRef::Bs(s) => write_array(out, s.iter(), |out, b| write_base64(out, b)),
        }
        out.push(b'}');
    }

    /// Writes the value as plain JSON: `S` → string, `N` → number when the JSON number is
    /// exactly the same decimal and a double reads it back exactly, else a string with the
    /// original digits; `B` → base64; `BOOL`; `NULL` → null; sets and `L` → arrays; `M` →
    /// object (keys sorted).
    pub fn write_plain_json(&self, out: &mut Vec<u8>) {
        match self {
            AttrRef::S(s) => write_json_str(out, s),
            AttrRef::N(n) => write_plain_number(out, n),
            AttrRef::B(b) => write_base64(out, b),
            AttrRef::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            AttrRef::Null(_) => out.extend_from_slice(b"null"),
            AttrRef::M(m) => m.write_plain_json(out),
            AttrRef::L(l) => write_array(out, l.iter(), |out, v| v.write_plain_json(out)),
            AttrRef::Ss(s) => write_array(out, s.iter(), |out, v| write_json_str(out, v)),
            AttrRef::Ns(s) => write_array(out, s.iter(), |out, v| write_plain_number(out, v)),
            AttrRef::Bs(s) => write_array(out, s.iter(), |out, b| write_base64(out, b)),
        }
    }
}

fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = T>,
    mut each: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

/// Writes `s` as a JSON string, escaped exactly as `serde_json` escapes it (`"`, `\` and
/// control characters; everything else verbatim).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes a DynamoDB number as a JSON number when that is exact (see
/// [`AttrRef::write_plain_json`]), else as a JSON string of its text.
pub fn write_plain_number(out: &mut Vec<u8>, text: &str) {
    match number::exact_json_number(text) {
        Some(p) => number::write_decimal(out, &p),
        None => write_json_str(out, text),
    }
}

// ---- DynamoDB-JSON parsing (serde) ----

/// A string borrowed from the input when it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A list of strings, each borrowed when it can be.
struct CowStrs<'de>(Vec<Cow<'de, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStrs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStrs<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
                while let Some(CowStr(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(CowStrs(out))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

fn decode_base64<E: de::Error>(text: &str) -> Result<Vec<u8>, E> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|err| E::custom(format!("Failed to decode base64: {err}")))
}

impl<'de: 'a, 'a> Deserialize<'de> for AttrRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = AttrRef<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DynamoDB attribute value ({\"S\": ...}, {\"N\": ...}, ...)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                use de::Error;
                let Some(CowStr(tag)) = map.next_key()? else {
                    return Err(A::Error::custom(
                        "Expected exactly one key in the object, found none",
                    ));
                };
                let value = match tag.as_ref() {
                    "S" => AttrRef::S(map.next_value::<CowStr<'a>>()?.0),
                    "N" => AttrRef::N(map.next_value::<CowStr<'a>>()?.0),
                    "BOOL" => AttrRef::Bool(map.next_value()?),
                    "NULL" => AttrRef::Null(map.next_value()?),
                    "B" => {
                        let text = map.next_value::<CowStr<'a>>()?.0;
                        AttrRef::B(Cow::Owned(decode_base64(&text)?))
                    }
                    "M" => AttrRef::M(map.next_value()?),
                    "L" => AttrRef::L(map.next_value()?),
                    "SS" => AttrRef::Ss(map.next_value::<CowStrs<'a>>()?.0),
                    "NS" => AttrRef::Ns(map.next_value::<CowStrs<'a>>()?.0),
                    "BS" => {
                        let texts = map.next_value::<CowStrs<'a>>()?.0;
                        AttrRef::Bs(
                            texts
                                .iter()
                                .map(|t| decode_base64(t).map(Cow::Owned))
                                .collect::<Result<_, _>>()?,
                        )
                    }
                    other => {
                        return Err(A::Error::custom(format!(
                            "The key '{other}' is not a known DynamoDB prefix"
                        )));
                    }
                };
                if map.next_key::<CowStr<'a>>()?.is_some() {
                    return Err(A::Error::custom(
                        "Expected exactly one key in the object, found multiple keys",
                    ));
                }
                Ok(value)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ItemRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ItemRef<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DynamoDB item (an object of attribute values)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut item = ItemRef::with_capacity(map.size_hint().unwrap_or(8).min(64));
                // A 64-bit filter on (length, first and last byte) spares the linear search
                // for a duplicate name in all but the rare colliding case.
                let mut seen = 0u64;
                while let Some(CowStr(name)) = map.next_key()? {
                    let value: AttrRef<'a> = map.next_value()?;
                    let b = name.as_bytes();
                    let key = (b.len() as u64)
                        .wrapping_mul(31)
                        .wrapping_add(u64::from(b.first().copied().unwrap_or(0)) << 2)
                        .wrapping_add(u64::from(b.last().copied().unwrap_or(0)));
                    let bit = 1u64 << (key % 64);
                    let maybe_seen = seen & bit != 0;
                    seen |= bit;
                    if maybe_seen && item.contains(&name) {
                        return Err(de::Error::custom(format!(
                            "attribute {name:?} appears twice"
                        )));
                    }
                    item.attrs.push((name, value));
                }
                Ok(item)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> ItemRef<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn parses_every_type_borrowing_strings() {
        let text = r#"{"s":{"S":"héllo"},"n":{"N":"-12.50"},"b":{"B":"AAE="},"t":{"BOOL":true},
            "z":{"NULL":true},"m":{"M":{"k":{"S":"v"}}},"l":{"L":[{"N":"1"},{"S":"x"}]},
            "ss":{"SS":["a","b"]},"ns":{"NS":["1","2"]},"bs":{"BS":["AA==","AQ=="]},
            "esc":{"S":"a\"b"}}"#;
        let item = parse(text);
        assert_eq!(item.len(), 11);
        assert!(matches!(
            item.get("s"),
            Some(AttrRef::S(Cow::Borrowed("héllo")))
        ));
        assert!(matches!(item.get("esc"), Some(AttrRef::S(Cow::Owned(s))) if s == "a\"b"));
        assert_eq!(item.get("b"), Some(&AttrRef::B(Cow::Owned(vec![0, 1]))));
        let owned: serde_dynamo::Item = serde_json::from_str(text).unwrap();
        assert_eq!(item.to_attributes(), owned.into_inner());
    }

    #[test]
    fn refuses_what_dynamodb_json_cannot_be() {
        for bad in [
            r#"{"a":{}}"#,
            r#"{"a":{"X":"1"}}"#,
            r#"{"a":{"S":"1","N":"1"}}"#,
            r#"{"a":{"S":"1"},"a":{"S":"2"}}"#,
            r#"{"a":{"B":"***"}}"#,
            r#"{"a":{"N":1}}"#,
        ] {
            assert!(serde_json::from_str::<ItemRef<'_>>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dynamodb_json_matches_serde_json_with_sorted_keys() {
        let text = r#"{"z":{"S":"a\u0001\n\"é"},"a":{"M":{"y":{"N":"1"},"b":{"BS":["AAE="]}}},
            "l":{"L":[{"NULL":true},{"BOOL":false},{"SS":["q"]}]},"b":{"B":"AAE="}}"#;
        let item = parse(text);
        let mut out = Vec::new();
        item.write_dynamodb_json(&mut out);
        let expected = r#"{"a":{"M":{"b":{"BS":["AAE="]},"y":{"N":"1"}}},"b":{"B":"AAE="},"l":{"L":[{"NULL":true},{"BOOL":false},{"SS":["q"]}]},"z":{"S":"a\u0001\n\"é"}}"#;
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        // The same text serde_json writes for the equivalent tree.
        let tree: serde_json::Value = serde_json::from_str(expected).unwrap();
        assert_eq!(tree.to_string(), expected);
    }

    #[test]
    fn json_strings_escape_like_serde_json() {
        let all: String = (0u8..=0x7f).map(char::from).chain("é€😀".chars()).collect();
        let mut out = Vec::new();
        write_json_str(&mut out, &all);
        assert_eq!(out, serde_json::to_vec(&all).unwrap());
    }

    #[test]
    fn plain_json_keeps_numbers_exact() {
        let item = parse(
            r#"{"i":{"N":"42"},"f":{"N":"12.50"},"e":{"N":"1E+2"},"big":{"N":"9007199254740993"},
            "p":{"N":"0.30000000000000000001"},"tiny":{"N":"1e-130"},"neg":{"N":"-0"},"x":{"N":"129.90"},
            "m":{"M":{"q":{"NS":["1","2.5"]}}}}"#,
        );
        let mut out = Vec::new();
        item.write_plain_json(&mut out);
        let text = String::from_utf8(out).unwrap();
        // serde_json's default float parser is not correctly rounded at 1e-130, so that one
        // is checked as text.
        assert!(text.contains(r#""tiny":1e-130"#), "{text}");
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("tiny");
        assert_eq!(
            v,
            json!({"i": 42, "f": 12.5, "e": 100, "big": "9007199254740993",
                "p": "0.30000000000000000001", "neg": 0, "x": 129.9, "m": {"q": [1, 2.5]}})
        );
        for (n, want) in [
            ("42", json!(42)),
            ("-7", json!(-7)),
            ("12.50", json!(12.5)),
            ("0.1", json!(0.1)),
            ("1E+2", json!(100)),
            ("9007199254740993", json!("9007199254740993")),
            (
                "12345678901234567890123456789012345678",
                json!("12345678901234567890123456789012345678"),
            ),
            ("-0", json!(0)),
            ("2.71", json!(2.71)),
            ("1E-7", json!(1e-7)),
            ("not-a-number", json!("not-a-number")),
        ] {
            let mut out = Vec::new();
            write_plain_number(&mut out, n);
            let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(got, want, "{n}");
        }
    }

    #[test]
    fn size_and_storable_checks() {
        let item = parse(
            r#"{"pk":{"S":"ORDER#1"},"n":{"N":"12345"},"l":{"L":[{"S":"ab"},{"M":{"k":{"BOOL":true}}}]}}"#,
        );
        assert_eq!(item.size(), 9 + 5 + 1 + 3 + 3 + 7);
        assert!(item.get("n").unwrap().check_storable().is_ok());
        let deep = (0..32).fold(AttrRef::N("1".into()), |v, _| {
            let mut m = ItemRef::new();
            m.insert("k", v);
            AttrRef::M(m)
        });
        assert!(deep.check_storable().is_err());
        assert!(AttrRef::N("1E+126".into()).check_storable().is_err());
    }
}
