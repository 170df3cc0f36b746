//! Item codec: an arbitrary DynamoDB item (or DynamoDB-JSON text) → the registry's entity
//! selection, validation and Arrow encoding → Parquet → read back → decoded.
//!
//! Invariants: nothing panics; an item the encoder accepts must build its batch, be written,
//! read back and decode again (the lake contract: what is written can be read).
#![no_main]

use dynabridge_fuzz::{ItemInput, registry};
use dynabridge_shared::codec::{
    BatchDecoder, EntityEncoders, Op, RowMeta, check_storable, dynamodb_json_map, item_size,
};
use dynabridge_shared::lake::{
    FileMeta, ParquetOptions, read_parquet, write_parquet, writer_properties,
};
use dynabridge_shared::schema::Attributes;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, arbitrary::Arbitrary)]
enum Input {
    /// A structured item.
    Item(ItemInput, u8),
    /// DynamoDB-JSON text, as a stream image carries it.
    Json(String, u8),
}

fuzz_target!(|input: Input| {
    let (item, op) = match &input {
        Input::Item(i, op) => (i.to_item(), *op),
        Input::Json(text, op) => match serde_json::from_str::<serde_dynamo::Item>(text) {
            Ok(i) => (i.into_inner(), *op),
            Err(_) => return,
        },
    };
    roundtrip(&item, op);
});

fn roundtrip(item: &Attributes, op: u8) {
    let _ = item_size(item);
    let _ = dynamodb_json_map(item.iter());
    for v in item.values() {
        let _ = check_storable(v);
    }
    let registry = registry();
    let op = [Op::Insert, Op::Modify, Op::Remove, Op::Expire, Op::Snapshot][usize::from(op % 5)];
    let meta = RowMeta {
        op,
        seq: "0000000000000000000000000000000000000001",
        event_time_micros: 1_795_316_400_000_000,
    };
    let mut encoders = EntityEncoders::new(registry);
    if encoders.append(item, &meta).is_err() {
        return;
    }
    let batches = encoders
        .finish()
        .expect("a validated row must build its record batch");
    for (entity_name, batch) in batches {
        let entity = registry.entity(&entity_name).expect("entity");
        let props = writer_properties(
            &ParquetOptions::default(),
            &FileMeta::for_entity(registry, entity),
        )
        .expect("writer properties");
        let bytes = write_parquet(&batch.schema(), &[batch], props)
            .expect("a validated batch must be writable");
        let back = read_parquet(bytes).expect("a file we wrote must read");
        let decoder = BatchDecoder::new(entity);
        for b in &back {
            for row in decoder.decode(b) {
                if let Err(e) = row {
                    panic!("an accepted item does not decode: {e}\nitem: {item:?}");
                }
            }
        }
    }
}
