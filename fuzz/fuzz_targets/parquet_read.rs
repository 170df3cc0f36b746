//! Parquet reader: arbitrary bytes as an inbound file → `shared::lake::read_parquet` (INT96
//! hints included) → `BatchDecoder` for every entity of the registry, as incremental-sync
//! reads what Databricks writes. Invariant: no panic; failures are `LakeError` / `ItemError`.
#![no_main]

use bytes::Bytes;
use dynabridge_fuzz::registry;
use dynabridge_shared::codec::BatchDecoder;
use dynabridge_shared::lake::read_parquet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batches) = read_parquet(Bytes::copy_from_slice(data)) else {
        return;
    };
    for entity in registry().entities() {
        let decoder = BatchDecoder::new(entity);
        for batch in &batches {
            for (row, _) in decoder.decode(batch).into_iter().enumerate() {
                let _ = decoder.decode_columns(batch, row, &["total", "placed_at"]);
            }
        }
    }
});
