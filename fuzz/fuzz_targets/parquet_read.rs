//! Parquet reader: arbitrary bytes as an inbound file → `shared::lake::read_parquet` (INT96
//! hints included) → `BatchDecoder` for every entity of the registry, as incremental-sync
//! reads what Databricks writes. Invariant: no panic escapes; failures are `LakeError` /
//! `ItemError`.
//!
//! libFuzzer's panic hook aborts even on panics that are caught. The reader deliberately
//! catches panics raised while decoding pages (`GuardedReader`: the parquet and arrow crates
//! still panic on some corrupt pages) and turns them into errors, so this target lets a
//! dependency's panic unwind while reading; one the guard does not catch still reaches
//! libFuzzer's own catch and aborts, and any panic in our code aborts at once.
#![no_main]

use std::sync::Once;

use bytes::Bytes;
use dynabridge_fuzz::registry;
use dynabridge_shared::codec::BatchDecoder;
use dynabridge_shared::lake::read_parquet;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A dependency's panic (parquet, arrow-buffer, ...) while reading: the guard
            // catches it if it is inside `GuardedReader`; if not, it still reaches
            // libFuzzer's own catch and aborts.
            let in_dependency = info
                .location()
                .is_some_and(|l| l.file().contains("/registry/src/"));
            if !(in_dependency && IN_GUARD.with(|g| g.get())) {
                abort_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    IN_GUARD.with(|g| g.set(true));
    let read = read_parquet(Bytes::copy_from_slice(data));
    IN_GUARD.with(|g| g.set(false));
    let Ok(batches) = read else {
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
