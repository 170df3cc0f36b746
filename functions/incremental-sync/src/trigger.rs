//! What started the invocation, and whether an object may be synced at all.
//!
//! Three triggers reach the function:
//! - an EventBridge S3 **"Object Created"** event for one object;
//! - the **catch-up schedule** (`"Scheduled Event"`), which lists the inbound folder and syncs
//!   every file not synced yet, so a lost S3 event never loses a file;
//! - a **continuation** this function dispatched itself before its deadline.
//!
//! [`check_object`] is the gate every object passes before anything is read: the lake
//! bucket only, keys under the inbound prefix only, no `.`/`..` segments, Parquet only (by
//! name; the bytes are checked when the footer is read), hidden files (`_SUCCESS`,
//! `_committed_*`, `.crc`) ignored, and a size ceiling. A refused object is logged with its
//! reason and counted as an EMF metric; it is never read and never a failure to retry.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::continuation::{self, Continuation};
use dynabridge_shared::idempotency::Lease;

use crate::config::Config;

/// One object version in the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Bucket.
    pub bucket: String,
    /// Key (plain, not URL-encoded).
    pub key: String,
    /// ETag without quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

impl ObjectRef {
    /// The idempotency key: bucket + key + ETag (a changed object is a new key). Keys too
    /// long for the control table's partition key are hashed.
    pub fn idempotency_key(&self) -> String {
        let plain = format!("s3://{}/{}#{}", self.bucket, self.key, self.etag);
        if plain.len() <= 900 {
            return plain;
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}/{}", self.bucket, self.key));
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}#{}", self.etag)
    }

    /// The payload the claim is made with (a duplicate must present the same one).
    pub fn payload(&self) -> Value {
        serde_json::json!({"bucket": self.bucket, "key": self.key, "etag": self.etag})
    }
}

/// What a continuation carries: the file being synced and its claim, and for a catch-up run
/// where its listing had got to. The file's position is *not* here: it is read from the
/// progress store, so a duplicated or lost continuation cannot skip or repeat rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuationState {
    /// The file in progress, with the claim to extend.
    pub file: Option<FileInProgress>,
    /// For a catch-up run: list on after this key.
    pub catch_up_after: Option<String>,
    /// Whether this chain is a catch-up run.
    pub catch_up: bool,
}

/// A file handed to a continuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInProgress {
    /// The object.
    pub object: ObjectRef,
    /// The claim on its idempotency key.
    pub lease: Lease,
}

/// A decoded trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// One object was created.
    ObjectCreated(ObjectRef),
    /// The catch-up schedule fired.
    CatchUp,
    /// A continuation of an earlier invocation.
    Continue(Continuation<ContinuationState>),
}

/// Decodes the invocation payload.
pub fn parse(event: &Value) -> Result<Trigger, DynabridgeError> {
    if let Some(c) = continuation::from_event::<ContinuationState>(event) {
        let c = c.map_err(|e| DynabridgeError::InvalidEvent(format!("continuation: {e}")))?;
        return Ok(Trigger::Continue(c));
    }
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    let source = event.get("source").and_then(Value::as_str);
    match (detail_type, source) {
        (Some("Object Created"), Some("aws.s3")) => {
            let detail = event.get("detail").ok_or_else(|| {
                DynabridgeError::InvalidEvent("Object Created without detail".into())
            })?;
            let field = |path: &[&str]| -> Option<&Value> {
                path.iter().try_fold(detail, |v, p| v.get(*p))
            };
            let text = |path: &[&str]| -> Result<String, DynabridgeError> {
                field(path)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        DynabridgeError::InvalidEvent(format!(
                            "Object Created without detail.{}",
                            path.join(".")
                        ))
                    })
            };
            let size = field(&["object", "size"])
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    DynabridgeError::InvalidEvent(
                        "Object Created without detail.object.size".into(),
                    )
                })?;
            Ok(Trigger::ObjectCreated(ObjectRef {
                bucket: text(&["bucket", "name"])?,
                key: text(&["object", "key"])?,
                etag: text(&["object", "etag"])?.trim_matches('"').to_string(),
                size,
            }))
        }
        (Some("Scheduled Event"), _) => Ok(Trigger::CatchUp),
        _ => Err(DynabridgeError::InvalidEvent(format!(
            "expected an S3 \"Object Created\" event, a \"Scheduled Event\" or a continuation; \
             got detail-type {detail_type:?} from source {source:?}"
        ))),
    }
}

/// Why an object is not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not the lake bucket.
    ForeignBucket,
    /// Not under the inbound prefix.
    OutsidePrefix,
    /// A `.` or `..` segment, or a backslash.
    Traversal,
    /// A folder marker or a hidden file (Spark's `_SUCCESS`, `.crc`).
    Hidden,
    /// Not named `*.parquet`.
    NotParquet,
    /// Larger than the configured ceiling.
    Oversize,
}

impl Refusal {
    /// The metric dimension / log value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ForeignBucket => "ForeignBucket",
            Refusal::OutsidePrefix => "OutsidePrefix",
            Refusal::Traversal => "Traversal",
            Refusal::Hidden => "Hidden",
            Refusal::NotParquet => "NotParquet",
            Refusal::Oversize => "Oversize",
        }
    }
}

/// Whether `object` may be synced under `config`.
pub fn check_object(config: &Config, object: &ObjectRef) -> Result<(), Refusal> {
    if object.bucket != config.common.lake_bucket {
        return Err(Refusal::ForeignBucket);
    }
    if object
        .key
        .split('/')
        .any(|s| s == ".." || s == "." || s.contains('\\'))
    {
        return Err(Refusal::Traversal);
    }
    if !object.key.starts_with(&config.inbound_prefix) {
        return Err(Refusal::OutsidePrefix);
    }
    let name = object.key.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name.starts_with('_') || name.starts_with('.') {
        return Err(Refusal::Hidden);
    }
    if !name.to_ascii_lowercase().ends_with(".parquet") {
        return Err(Refusal::NotParquet);
    }
    if object.size > config.max_object_bytes {
        return Err(Refusal::Oversize);
    }
    Ok(())
}

/// The entity named by the key's first folder under the inbound prefix (`<Entity>/` or
/// Hive-style `entity=<Entity>/`), when that is an entity of the registry; else the
/// configured default.
pub fn entity_for<'c>(config: &'c Config, key: &str) -> Option<&'c str> {
    let rest = key.strip_prefix(&config.inbound_prefix).unwrap_or_default();
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or_default();
    let has_folder = segments.next().is_some();
    if has_folder {
        let name = first.strip_prefix("entity=").unwrap_or(first);
        if let Ok(e) = config.registry.entity(name) {
            return Some(e.name());
        }
    }
    config.default_entity.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynabridge_shared::boot::FunctionConfig;
    use dynabridge_shared::config::Env;
    use serde_json::json;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut pairs: Vec<(String, String)> = [
            ("DYNABRIDGE_TABLE_NAME", "app"),
            ("DYNABRIDGE_CONTROL_TABLE", "control"),
            ("DYNABRIDGE_LAKE_BUCKET", "lake"),
            (
                "DYNABRIDGE_SCHEMA_PATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/example.json"),
            ),
            ("DYNABRIDGE_SYNC_MAX_OBJECT_BYTES", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_env(&Env::from_pairs(pairs)).unwrap()
    }

    fn obj(bucket: &str, key: &str, size: u64) -> ObjectRef {
        ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            etag: "e".into(),
            size,
        }
    }

    #[test]
    fn objects_are_gated() {
        let c = config(&[]);
        let ok = "inbound/Customer/part-0.snappy.parquet";
        assert_eq!(check_object(&c, &obj("lake", ok, 10)), Ok(()));
        let cases = [
            (obj("other", ok, 10), Refusal::ForeignBucket),
            (obj("lake", "cdc/x.parquet", 10), Refusal::OutsidePrefix),
            (
                obj("lake", "inbound/../cdc/x.parquet", 10),
                Refusal::Traversal,
            ),
            (obj("lake", "inbound/./x.parquet", 10), Refusal::Traversal),
            (obj("lake", "inbound/Customer/_SUCCESS", 0), Refusal::Hidden),
            (obj("lake", "inbound/Customer/", 0), Refusal::Hidden),
            (
                obj("lake", "inbound/Customer/.part-0.parquet.crc", 1),
                Refusal::Hidden,
            ),
            (
                obj("lake", "inbound/Customer/data.csv", 1),
                Refusal::NotParquet,
            ),
            (obj("lake", ok, 1001), Refusal::Oversize),
        ];
        for (o, want) in cases {
            assert_eq!(check_object(&c, &o), Err(want), "{o:?}");
        }
    }

    #[test]
    fn entity_comes_from_the_path_or_the_default() {
        let c = config(&[]);
        assert_eq!(
            entity_for(&c, "inbound/Customer/p.parquet"),
            Some("Customer")
        );
        assert_eq!(
            entity_for(&c, "inbound/entity=Order/dt=1/p.parquet"),
            Some("Order")
        );
        assert_eq!(entity_for(&c, "inbound/p.parquet"), None);
        assert_eq!(entity_for(&c, "inbound/Unknown/p.parquet"), None);
        let c = config(&[("DYNABRIDGE_SYNC_ENTITY", "Order")]);
        assert_eq!(entity_for(&c, "inbound/p.parquet"), Some("Order"));
        assert_eq!(
            entity_for(&c, "inbound/Customer/p.parquet"),
            Some("Customer")
        );
    }

    #[test]
    fn triggers_are_decoded() {
        let e = json!({
            "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "lake"},
                       "object": {"key": "inbound/a.parquet", "size": 5, "etag": "\"abc\""}}
        });
        assert_eq!(
            parse(&e).unwrap(),
            Trigger::ObjectCreated(ObjectRef {
                bucket: "lake".into(),
                key: "inbound/a.parquet".into(),
                etag: "abc".into(),
                size: 5
            })
        );
        let e = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(parse(&e).unwrap(), Trigger::CatchUp);
        let e = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}});
        assert!(matches!(parse(&e), Err(DynabridgeError::InvalidEvent(_))));
        assert!(matches!(
            parse(&json!({"x": 1})),
            Err(DynabridgeError::InvalidEvent(_))
        ));
        let e = json!({"dynabridgeContinuation": {"function": "f"}});
        assert!(matches!(parse(&e), Err(DynabridgeError::InvalidEvent(_))));
    }

    #[test]
    fn idempotency_keys_change_with_the_etag_and_stay_short() {
        let a = obj("lake", "inbound/a.parquet", 1);
        let mut b = a.clone();
        b.etag = "f".into();
        assert_ne!(a.idempotency_key(), b.idempotency_key());
        let long = obj("lake", &format!("inbound/{}.parquet", "x".repeat(1000)), 1);
        assert!(long.idempotency_key().len() < 200);
    }
}
