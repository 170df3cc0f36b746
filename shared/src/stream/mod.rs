//! DynamoDB Streams batches as Lambda delivers them, decoded into [`ChangeRecord`]s, and the
//! batch response that keeps a shard in order.
//!
//! ## Envelopes
//! Lambda sends either the plain stream event (`{"Records": [...]}`) or, when the event
//! source mapping has a tumbling window, the same records plus `shardId`, `window` and
//! `state`. DynamoDB stream records do not say which shard they came from, and checkpoints
//! are per shard, so dynabridge's template enables a tumbling window to get `shardId`
//! (see `docs/decisions.md`). Without it the stream ARN stands in for the shard, which is
//! only safe for a stream read by one concurrent batch at a time.
//!
//! ## Records
//! Each record becomes a [`ChangeRecord`] with its operation — `REMOVE` made by DynamoDB's
//! TTL process (`userIdentity` = `Service` / `dynamodb.amazonaws.com`) is [`Op::Expire`] —,
//! sequence number, event time (µs), keys and images. A record that cannot be decoded but
//! has a sequence number is kept as a [`Poison`] with the reason, so the caller quarantines
//! it instead of blocking the shard. A record without a sequence number cannot be
//! checkpointed or reported: the whole batch is refused with a typed error.
//!
//! ## Cost
//! The batch is parsed from the raw payload text once, borrowing: keys, images and their
//! strings point into the payload (`codec::ItemRef`), and each record keeps its raw JSON for
//! quarantine without a copy. [`StreamBatch::resolve`] then selects every record's entity and
//! upcasts its images in place, once, for both sinks (CDC files and events).
//!
//! ## Response
//! [`batch_response`] reports the first failed record *and every record after it*, so
//! Lambda retries from there and nothing after it is processed out of order.

pub mod publish;
pub mod sink;

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::codec::{ItemRef, Op};
use crate::error::DynabridgeError;
use crate::schema::{ItemError, Registry};

/// The DynamoDB item size limit; an image larger than this cannot come from DynamoDB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// One decodable change, borrowing from the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord<'a> {
    /// `eventID`.
    pub event_id: Cow<'a, str>,
    /// `dynamodb.SequenceNumber` as received (digits).
    pub sequence_number: Cow<'a, str>,
    /// INSERT, MODIFY, REMOVE or EXPIRE.
    pub op: Op,
    /// `dynamodb.Keys`.
    pub keys: ItemRef<'a>,
    /// `dynamodb.NewImage`, when the stream view type carries it.
    pub new_image: Option<ItemRef<'a>>,
    /// `dynamodb.OldImage`, when the stream view type carries it.
    pub old_image: Option<ItemRef<'a>>,
    /// `ApproximateCreationDateTime` in µs since the epoch.
    pub event_time_micros: i64,
}

impl<'a> ChangeRecord<'a> {
    /// The image that describes the item after the change: the new image for INSERT/MODIFY,
    /// the old (last) image for REMOVE/EXPIRE. `None` when the stream view type omits it.
    pub fn image(&self) -> Option<&ItemRef<'a>> {
        match self.op {
            Op::Insert | Op::Modify | Op::Snapshot => self.new_image.as_ref(),
            Op::Remove | Op::Expire => self.old_image.as_ref(),
        }
    }

    /// [`image`](Self::image) and the other image, mutable.
    fn images_mut(&mut self) -> (Option<&mut ItemRef<'a>>, Option<&mut ItemRef<'a>>) {
        match self.op {
            Op::Insert | Op::Modify | Op::Snapshot => {
                (self.new_image.as_mut(), self.old_image.as_mut())
            }
            Op::Remove | Op::Expire => (self.old_image.as_mut(), self.new_image.as_mut()),
        }
    }
}

/// A record that could not be decoded, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Poison {
    /// `dynamodb.SequenceNumber`.
    pub sequence_number: String,
    /// Short reason class, e.g. `MalformedRecord`, `ImageTooLarge`.
    pub kind: String,
    /// Human-readable reason.
    pub reason: String,
}

/// Why a record cannot be written to the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Reason class (`MalformedRecord`, `ImageTooLarge`, `NoEntity`, `WrongType`, ...).
    pub kind: String,
    /// Human-readable reason.
    pub reason: String,
    /// The attribute at fault, when one is.
    pub attribute: Option<String>,
}

impl From<&ItemError> for Rejection {
    fn from(e: &ItemError) -> Self {
        Rejection {
            kind: e.kind().to_string(),
            reason: e.to_string(),
            attribute: e.attribute().map(str::to_string),
        }
    }
}

/// One record of the batch, decoded or not, with its raw JSON kept for quarantine.
#[derive(Debug, Clone)]
pub struct BatchRecord<'a> {
    /// The decoded change, or why it could not be decoded.
    pub change: Result<ChangeRecord<'a>, Poison>,
    /// The record exactly as received.
    pub raw: &'a RawValue,
    /// The record's entity (index into `Registry::entities`) or why it has none, once
    /// [`StreamBatch::resolve`] ran.
    pub entity: Option<Result<usize, Rejection>>,
}

impl BatchRecord<'_> {
    /// The record's sequence number (present for every record of a parsed batch).
    pub fn sequence_number(&self) -> &str {
        match &self.change {
            Ok(c) => &c.sequence_number,
            Err(p) => &p.sequence_number,
        }
    }

    /// `ApproximateCreationDateTime` in µs (read from the raw record for a poison record; 0
    /// when absent).
    pub fn event_time_micros(&self) -> i64 {
        match &self.change {
            Ok(c) => c.event_time_micros,
            Err(_) => serde_json::from_str::<Value>(self.raw.get())
                .ok()
                .and_then(|v| {
                    v.pointer("/dynamodb/ApproximateCreationDateTime")
                        .and_then(Value::as_f64)
                })
                .map_or(0, secs_to_micros),
        }
    }

    /// The entity the record resolved to, or why it has none (resolving now when
    /// [`StreamBatch::resolve`] has not run: the images are then not upcast in place).
    pub fn entity_in(&self, registry: &Registry) -> Result<usize, Rejection> {
        match &self.entity {
            Some(r) => r.clone(),
            None => {
                let mut copy = self.change.clone();
                resolve_change(registry, &mut copy)
            }
        }
    }
}

/// A stream batch, borrowing from the payload text.
#[derive(Debug, Clone)]
pub struct StreamBatch<'a> {
    /// The records in stream order.
    pub records: Vec<BatchRecord<'a>>,
    /// `shardId` (tumbling-window envelope only).
    pub shard_id: Option<String>,
    /// The stream ARN (`eventSourceARN` of the envelope or of the records).
    pub event_source_arn: Option<String>,
    /// Whether the payload used the tumbling-window envelope (the response must then carry
    /// `state`).
    pub windowed: bool,
}

/// The envelope: records kept raw (each is decoded on its own, so one malformed record
/// becomes a poison record instead of failing the batch).
#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<&'a RawValue>>,
    #[serde(rename = "shardId", borrow, default)]
    shard_id: Option<Lenient<'a>>,
    #[serde(default)]
    window: Option<Present>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    event_source_arn: Option<Lenient<'a>>,
}

/// A record as Lambda sends it (fields dynabridge does not read are skipped).
#[derive(Deserialize)]
struct RecordIn<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Lenient<'a>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Lenient<'a>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    event_source_arn: Lenient<'a>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Identity<'a>,
    #[serde(borrow, default)]
    dynamodb: Option<StreamRecordIn<'a>>,
}

#[derive(Deserialize)]
struct StreamRecordIn<'a> {
    #[serde(rename = "ApproximateCreationDateTime", default)]
    approximate_creation: Option<LenientF64>,
    #[serde(rename = "Keys", borrow, default)]
    keys: Option<ItemRef<'a>>,
    #[serde(rename = "NewImage", borrow, default)]
    new_image: Option<ItemRef<'a>>,
    #[serde(rename = "OldImage", borrow, default)]
    old_image: Option<ItemRef<'a>>,
    #[serde(rename = "SequenceNumber", borrow, default)]
    sequence_number: Lenient<'a>,
}

/// A string field read leniently: any other JSON value is skipped and reads as absent (as a
/// missing field would).
#[derive(Default)]
struct Lenient<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Lenient<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Lenient::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A number field read leniently (anything else reads as absent).
struct LenientF64(Option<f64>);

impl<'de> Deserialize<'de> for LenientF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = IgnoredOrNumber::deserialize(d)?;
        Ok(LenientF64(v.0))
    }
}

struct IgnoredOrNumber(Option<f64>);

impl<'de> Deserialize<'de> for IgnoredOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IgnoredOrNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(IgnoredOrNumber(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(IgnoredOrNumber(Some(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(IgnoredOrNumber(Some(v)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(IgnoredOrNumber(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(IgnoredOrNumber(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(IgnoredOrNumber(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IgnoredOrNumber(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IgnoredOrNumber(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `userIdentity`: only `type` and `principalId` matter (TTL deletions); anything that is not
/// an object reads as no identity.
#[derive(Default)]
struct Identity<'a> {
    kind: Option<Cow<'a, str>>,
    principal: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Identity<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Identity<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut id = Identity::default();
                while let Some(key) = map.next_key::<Lenient<'a>>()? {
                    match key.0.as_deref() {
                        Some("type") => id.kind = map.next_value::<Lenient<'a>>()?.0,
                        Some("principalId") => id.principal = map.next_value::<Lenient<'a>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(id)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Identity::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Identity::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Identity::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Identity::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Identity::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Identity::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Identity::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Whether a field is present at all (even `null`).
struct Present;

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present)
    }
}

fn secs_to_micros(secs: f64) -> i64 {
    (secs * 1_000_000.0).round() as i64
}

fn is_sequence(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Orders two sequence numbers (digit strings) numerically without padding them.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl<'a> StreamBatch<'a> {
    /// Parses a Lambda payload (plain or tumbling-window envelope) from its JSON text.
    pub fn parse(payload: &'a str) -> Result<Self, DynabridgeError> {
        // Every envelope field but `Records` is read leniently, so a failure here means the
        // payload is not an object with a Records array.
        let envelope: EnvelopeIn<'a> = serde_json::from_str(payload).map_err(|e| {
            DynabridgeError::InvalidEvent(format!("stream event without a Records array ({e})"))
        })?;
        let Some(raw_records) = envelope.records else {
            return Err(DynabridgeError::InvalidEvent(
                "stream event without a Records array".into(),
            ));
        };
        let shard_id = envelope.shard_id.as_ref().and_then(|s| s.0.as_deref());
        let windowed = envelope.window.is_some() || envelope.shard_id.is_some();
        let mut event_source_arn = envelope.event_source_arn.and_then(|a| a.0);
        let mut records = Vec::with_capacity(raw_records.len());
        for (i, raw) in raw_records.into_iter().enumerate() {
            let (change, arn) = decode_record(raw, i)?;
            if event_source_arn.is_none() {
                event_source_arn = arn;
            }
            records.push(BatchRecord {
                change,
                raw,
                entity: None,
            });
        }
        // Lambda delivers a shard's records in order; anything else would break the
        // checkpoint's contiguity, so refuse it loudly.
        for pair in records.windows(2) {
            let (a, b) = (pair[0].sequence_number(), pair[1].sequence_number());
            if a.len() > crate::checkpoint::SEQUENCE_DIGITS
                || b.len() > crate::checkpoint::SEQUENCE_DIGITS
                || sequence_order(a, b) != std::cmp::Ordering::Less
            {
                return Err(DynabridgeError::InvalidEvent(format!(
                    "records are not in sequence order ({a} then {b})"
                )));
            }
        }
        Ok(StreamBatch {
            records,
            shard_id: shard_id.map(str::to_string),
            event_source_arn: event_source_arn.map(Cow::into_owned),
            windowed,
        })
    }

    /// Selects every decoded record's entity and upcasts its images to the entity's latest
    /// version in place (see [`crate::schema::Entity::resolve_view`]), once for both sinks.
    /// A record whose image has no entity or an unknown version gets a [`Rejection`].
    pub fn resolve(&mut self, registry: &Registry) {
        for r in &mut self.records {
            r.entity = Some(resolve_change(registry, &mut r.change));
        }
    }

    /// The shard id checkpoints are kept under: `shardId` when the envelope has it, else the
    /// stream ARN (one scope for the whole stream).
    pub fn checkpoint_shard(&self) -> String {
        self.shard_id
            .clone()
            .or_else(|| self.event_source_arn.clone())
            .unwrap_or_else(|| "stream".to_string())
    }

    /// Sequence numbers in order.
    pub fn sequence_numbers(&self) -> Vec<&str> {
        self.records
            .iter()
            .map(BatchRecord::sequence_number)
            .collect()
    }
}

fn resolve_change(
    registry: &Registry,
    change: &mut Result<ChangeRecord<'_>, Poison>,
) -> Result<usize, Rejection> {
    let change = match change {
        Err(p) => {
            return Err(Rejection {
                kind: p.kind.clone(),
                reason: p.reason.clone(),
                attribute: None,
            });
        }
        Ok(c) => c,
    };
    let op = change.op;
    let index_of = |entity: &crate::schema::Entity| {
        registry
            .entities()
            .iter()
            .position(|e| std::ptr::eq(e, entity))
            .unwrap_or(0)
    };
    match change.images_mut() {
        (Some(image), other) => {
            let (entity, _) = registry
                .resolve_view(image)
                .map_err(|e| Rejection::from(&e))?;
            // The other image (a MODIFY's old image) travels in events: upcast it too when it
            // is the same entity; otherwise it is left as it came.
            if let Some(other) = other
                && entity.matches(other)
            {
                let _ = entity.resolve_view(other);
            }
            Ok(index_of(entity))
        }
        // KEYS_ONLY / NEW_IMAGE streams: a keys-only row for deletions.
        (None, _) => {
            if !matches!(op, Op::Remove | Op::Expire) {
                return Err(Rejection {
                    kind: "MissingImage".into(),
                    reason: format!("{op} record without a new image"),
                    attribute: None,
                });
            }
            registry
                .select(&change.keys)
                .map(index_of)
                .map_err(|e| Rejection::from(&e))
        }
    }
}

fn poison(seq: &str, kind: &str, reason: impl Into<String>) -> Poison {
    Poison {
        sequence_number: seq.to_string(),
        kind: kind.to_string(),
        reason: reason.into(),
    }
}

/// Decodes one raw record: the change (or why it is poison) and its `eventSourceARN`. Errs
/// (refusing the batch) only when the record has no numeric sequence number.
#[allow(clippy::type_complexity)]
fn decode_record<'a>(
    raw: &'a RawValue,
    index: usize,
) -> Result<(Result<ChangeRecord<'a>, Poison>, Option<Cow<'a, str>>), DynabridgeError> {
    let no_sequence = || {
        DynabridgeError::InvalidEvent(format!(
            "record {index} has no numeric dynamodb.SequenceNumber; the batch cannot be checkpointed"
        ))
    };
    let record: RecordIn<'a> = match serde_json::from_str(raw.get()) {
        Ok(r) => r,
        // Not the shape of a stream record (an image that is not DynamoDB-JSON, a
        // `dynamodb` that is not an object...): find the sequence number and the part at
        // fault the slow way, and keep the record as poison.
        Err(e) => {
            let (seq, reason) = diagnose(raw, &e).ok_or_else(no_sequence)?;
            return Ok((Err(poison(&seq, "MalformedRecord", reason)), None));
        }
    };
    let Some(dynamodb) = record.dynamodb else {
        return Err(no_sequence());
    };
    let seq = match dynamodb.sequence_number.0 {
        Some(s) if is_sequence(&s) => s,
        _ => return Err(no_sequence()),
    };
    let change = (|| {
        let is_ttl = record.user_identity.kind.as_deref() == Some("Service")
            && record.user_identity.principal.as_deref() == Some("dynamodb.amazonaws.com");
        let op = match record.event_name.0.as_deref().unwrap_or("") {
            "INSERT" => Op::Insert,
            "MODIFY" => Op::Modify,
            "REMOVE" if is_ttl => Op::Expire,
            "REMOVE" => Op::Remove,
            other => {
                return Err(poison(
                    &seq,
                    "MalformedRecord",
                    format!("unknown eventName {other:?}"),
                ));
            }
        };
        let keys = dynamodb.keys.unwrap_or_default();
        if keys.is_empty() {
            return Err(poison(
                &seq,
                "MalformedRecord",
                "dynamodb.Keys is missing or empty",
            ));
        }
        for (name, img) in [
            ("NewImage", &dynamodb.new_image),
            ("OldImage", &dynamodb.old_image),
        ] {
            if let Some(img) = img {
                let size = img.size();
                if size > MAX_ITEM_BYTES {
                    return Err(poison(
                        &seq,
                        "ImageTooLarge",
                        format!(
                            "dynamodb.{name} is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit"
                        ),
                    ));
                }
            }
        }
        Ok(ChangeRecord {
            event_id: record.event_id.0.clone().unwrap_or_default(),
            sequence_number: seq.clone(),
            op,
            keys,
            new_image: dynamodb.new_image,
            old_image: dynamodb.old_image,
            event_time_micros: dynamodb
                .approximate_creation
                .and_then(|t| t.0)
                .map_or(0, secs_to_micros),
        })
    })();
    Ok((change, record.event_source_arn.0))
}

/// For a record that did not parse as a stream record: its sequence number (`None`: there is
/// none, the batch must be refused) and the reason, naming the image at fault when one is.
fn diagnose(raw: &RawValue, error: &serde_json::Error) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(raw.get()).ok()?;
    let seq = v
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .filter(|s| is_sequence(s))?
        .to_string();
    for name in ["Keys", "NewImage", "OldImage"] {
        if let Some(part) = v.pointer(&format!("/dynamodb/{name}"))
            && !part.is_null()
        {
            let text = part.to_string();
            if let Err(e) = serde_json::from_str::<ItemRef<'_>>(&text) {
                return Some((seq, format!("dynamodb.{name}: {e}")));
            }
        }
    }
    Some((seq, format!("record: {error}")))
}

/// The response for a batch: `batchItemFailures` lists the record at `failed_from` and every
/// record after it (none when `failed_from` is `None`). A windowed batch also returns an
/// empty `state`.
pub fn batch_response(batch: &StreamBatch<'_>, failed_from: Option<usize>) -> Value {
    let failures: Vec<Value> = match failed_from {
        Some(i) => batch.records[i.min(batch.records.len())..]
            .iter()
            .map(|r| json!({ "itemIdentifier": r.sequence_number() }))
            .collect(),
        None => Vec::new(),
    };
    if batch.windowed {
        json!({ "state": {}, "batchItemFailures": failures })
    } else {
        json!({ "batchItemFailures": failures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str, name: &str, extra: Value) -> Value {
        let mut r = json!({
            "eventID": format!("e{seq}"),
            "eventName": name,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
            "dynamodb": {
                "ApproximateCreationDateTime": 1795316400.5,
                "Keys": {"pk": {"S": "A"}},
                "SequenceNumber": seq,
            }
        });
        if let (Some(obj), Value::Object(extra)) = (r.as_object_mut(), extra) {
            for (k, v) in extra {
                if k == "dynamodb" {
                    if let (Some(d), Value::Object(dv)) =
                        (obj.get_mut("dynamodb").and_then(Value::as_object_mut), v)
                    {
                        d.extend(dv);
                    }
                } else {
                    obj.insert(k, v);
                }
            }
        }
        r
    }

    #[test]
    fn classifies_ops_and_ttl_expiry() {
        let ttl =
            json!({"userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}});
        let payload = json!({"Records": [
            record("100", "INSERT", json!({"dynamodb": {"NewImage": {"pk": {"S": "A"}}}})),
            record("101", "MODIFY", json!({})),
            record("102", "REMOVE", json!({})),
            record("103", "REMOVE", ttl),
        ]})
        .to_string();
        let b = StreamBatch::parse(&payload).unwrap();
        let ops: Vec<Op> = b
            .records
            .iter()
            .map(|r| r.change.as_ref().unwrap().op)
            .collect();
        assert_eq!(ops, [Op::Insert, Op::Modify, Op::Remove, Op::Expire]);
        let first = b.records[0].change.as_ref().unwrap();
        assert_eq!(first.event_time_micros, 1_795_316_400_500_000);
        assert!(first.image().is_some());
        assert!(!b.windowed);
        assert_eq!(
            b.checkpoint_shard(),
            "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"
        );
        assert_eq!(
            batch_response(&b, Some(2)),
            json!({"batchItemFailures": [{"itemIdentifier": "102"}, {"itemIdentifier": "103"}]})
        );
    }

    #[test]
    fn windowed_envelope_gives_the_shard_and_state() {
        let payload = json!({"Records": [record("5", "INSERT", json!({}))], "shardId": "shardId-0001",
            "window": {"start": "2026-11-21T00:00:00Z", "end": "2026-11-21T00:01:00Z"}, "state": {}})
        .to_string();
        let b = StreamBatch::parse(&payload).unwrap();
        assert_eq!(b.checkpoint_shard(), "shardId-0001");
        assert_eq!(
            batch_response(&b, None),
            json!({"state": {}, "batchItemFailures": []})
        );
    }

    #[test]
    fn bad_records_are_poison_or_refuse_the_batch() {
        let payload = json!({"Records": [
            record("1", "UPSERT", json!({})),
            record("2", "INSERT", json!({"dynamodb": {"NewImage": {"pk": {"X": "?"}}}})),
            record("3", "INSERT", json!({"dynamodb": {"NewImage": {"blob": {"S": "x".repeat(410_000)}}}})),
            record("4", "INSERT", json!({"eventName": 7})),
            record("5", "INSERT", json!({"dynamodb": {"Keys": "nope"}})),
        ]})
        .to_string();
        let b = StreamBatch::parse(&payload).unwrap();
        let kinds: Vec<String> = b
            .records
            .iter()
            .map(|r| r.change.as_ref().unwrap_err().kind.clone())
            .collect();
        assert_eq!(
            kinds,
            [
                "MalformedRecord",
                "MalformedRecord",
                "ImageTooLarge",
                "MalformedRecord",
                "MalformedRecord"
            ]
        );
        let reason = &b.records[1].change.as_ref().unwrap_err().reason;
        assert!(reason.starts_with("dynamodb.NewImage:"), "{reason}");
        assert!(b.records[1].raw.get().contains("\"X\""));

        let no_seq = json!({"Records": [{"eventName": "INSERT", "dynamodb": {}}]}).to_string();
        assert!(matches!(
            StreamBatch::parse(&no_seq),
            Err(DynabridgeError::InvalidEvent(_))
        ));
        assert!(StreamBatch::parse("{}").is_err());
        assert!(StreamBatch::parse(r#"{"Records": 5}"#).is_err());
        let out_of_order = json!({"Records": [record("20", "INSERT", json!({})), record("3", "INSERT", json!({}))]})
            .to_string();
        assert!(StreamBatch::parse(&out_of_order).is_err());
    }

    #[test]
    fn sequence_numbers_order_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(sequence_order("9", "10"), Less);
        assert_eq!(sequence_order("0010", "9"), Greater);
        assert_eq!(sequence_order("123", "123"), Equal);
    }
}
