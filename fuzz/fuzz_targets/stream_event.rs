//! Stream events: arbitrary bytes as a Lambda payload → JSON text → `StreamBatch::parse` (the
//! envelope, records, DynamoDB-JSON images) → `StreamBatch::resolve` (entities, upcasts in
//! place) → the CDC sink's per-record classification
//! (entity selection, validation, quarantine kind) → the ordered batch response, as
//! stream-fanout and ttl-cleanup handle a batch. Invariant: no panic; a refused batch is a
//! typed `DynabridgeError`, a refused record a quarantine kind.
#![no_main]

use dynabridge_fuzz::{registry, sink};
use dynabridge_shared::stream::{StreamBatch, batch_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The runtime hands the handler valid JSON text only.
    let Ok(payload) = std::str::from_utf8(data) else {
        return;
    };
    if serde_json::from_str::<serde::de::IgnoredAny>(payload).is_err() {
        return;
    }
    let mut batch = match StreamBatch::parse(payload) {
        Ok(b) => b,
        Err(e) => {
            assert!(!e.error_type().is_empty());
            return;
        }
    };
    batch.resolve(registry());
    let _ = batch.checkpoint_shard();
    let mut failed_from = None;
    for (i, record) in batch.records.iter().enumerate() {
        if let Err(q) = sink().classify(record) {
            assert!(!q.kind.is_empty(), "a quarantine always has a kind");
            failed_from.get_or_insert(i);
        }
    }
    let response = batch_response(&batch, failed_from);
    assert!(response["batchItemFailures"].is_array());
});
