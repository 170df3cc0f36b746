//! The local sample dataset (devstack) conforms to the example registry the runner deploys:
//! every item resolves to an entity version and encodes without a row error.

use chrono::{DateTime, Utc};
use dynabridge_devstack::sample::{self, SampleSpec};
use dynabridge_shared::codec::{EntityEncoders, Op, RowMeta, from_sdk_item};
use dynabridge_shared::schema::Registry;

#[test]
fn every_sample_item_encodes_against_the_example_registry() {
    let registry = Registry::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/example.json"
    ))
    .unwrap();
    let now = DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let items = sample::generate(&SampleSpec {
        customers: 200,
        sessions: 30,
        seed: 7,
        now,
    });
    let mut encoders = EntityEncoders::new(&registry);
    for (i, item) in items.iter().enumerate() {
        let attrs = from_sdk_item(item.clone());
        let seq = format!("{i}");
        let entity = encoders
            .append(
                &attrs,
                &RowMeta {
                    op: Op::Snapshot,
                    seq: &seq,
                    event_time_micros: now.timestamp_micros(),
                },
            )
            .unwrap_or_else(|e| panic!("item {i} ({:?}): {e}", item.get("pk")));
        assert_eq!(entity, sample::entity_of(item));
    }
    let batches = encoders.finish().unwrap();
    let rows: usize = batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(rows, items.len());
    let mut entities: Vec<&str> = batches.iter().map(|(e, _)| e.as_str()).collect();
    entities.sort();
    assert_eq!(entities, ["Customer", "Order", "Session"]);
}

#[test]
fn the_benchmark_stream_encodes_and_is_deterministic() {
    let registry = Registry::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/example.json"
    ))
    .unwrap();
    let now = DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let items: Vec<_> = sample::SampleStream::new(11, now).take(3_000).collect();
    let again: Vec<_> = sample::SampleStream::new(11, now).take(3_000).collect();
    assert_eq!(items, again);
    let mut encoders = EntityEncoders::new(&registry);
    for (i, item) in items.iter().enumerate() {
        let seq = format!("{i}");
        let meta = RowMeta {
            op: Op::Snapshot,
            seq: &seq,
            event_time_micros: now.timestamp_micros(),
        };
        encoders
            .append(&from_sdk_item(item.clone()), &meta)
            .unwrap_or_else(|e| panic!("item {i} ({:?}): {e}", item.get("pk")));
    }
    let batches = encoders.finish().unwrap();
    assert_eq!(batches.len(), 3);
    // Every optional type of the latest versions shows up somewhere.
    for attr in [
        "avatar",
        "attachments",
        "discount",
        "shipped_on",
        "ref_number",
        "expires_at",
        "weights",
        "token",
    ] {
        assert!(
            items.iter().any(|i| i.contains_key(attr)),
            "no item has {attr}"
        );
    }
}
