//! incremental-sync triggers: arbitrary bytes as the invocation payload → the function's own
//! `trigger::parse` (S3 "Object Created", "Scheduled Event", continuation) → the object gate
//! `check_object` and the entity routing, under the function's real `Config`.
//!
//! The function crate is a binary, so its `config` and `trigger` modules are compiled in
//! here by path: the code fuzzed is the code deployed. Invariant: no panic; a bad event is
//! `DynabridgeError::InvalidEvent`, a bad object a `Refusal`.
#![no_main]

use std::sync::OnceLock;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::boot::FunctionConfig;
use dynabridge_shared::config::Env;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../functions/incremental-sync/src/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../../functions/incremental-sync/src/trigger.rs"]
mod trigger;

fn config() -> &'static config::Config {
    static C: OnceLock<config::Config> = OnceLock::new();
    C.get_or_init(|| {
        let registry = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/example.json");
        config::Config::from_env(&Env::from_pairs([
            ("DYNABRIDGE_TABLE_NAME", "app"),
            ("DYNABRIDGE_CONTROL_TABLE", "control"),
            ("DYNABRIDGE_LAKE_BUCKET", "lake"),
            ("DYNABRIDGE_SCHEMA_PATH", registry),
            ("DYNABRIDGE_SYNC_MAX_OBJECT_BYTES", "1048576"),
        ]))
        .expect("fuzz config")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match trigger::parse(&event) {
        Ok(trigger::Trigger::ObjectCreated(object)) => {
            let _ = object.idempotency_key();
            if trigger::check_object(config(), &object).is_ok() {
                let _ = trigger::entity_for(config(), &object.key);
            }
        }
        Ok(_) => {}
        Err(DynabridgeError::InvalidEvent(_)) => {}
        Err(other) => panic!("a bad trigger must be InvalidEvent, got {other:?}"),
    }
});
