//! RabbitMQ definitions files (JSON) as the start-up import (and, later, the management
//! API's POST /api/definitions) reads them: any input is either imported or refused with
//! an error, never a panic. One broker, on a scratch directory without fsync, serves every
//! input; what a valid input creates stays, as it would on a real broker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use warren::broker::{Broker, Seed, definitions_json};
use warren::store::Store;

fn broker() -> &'static Broker {
    static B: OnceLock<Broker> = OnceLock::new();
    B.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("warren-fuzz-defs-{}", std::process::id()));
        let (store, mut recovery) = Store::open(&dir, false, 1 << 20).expect("scratch store");
        let seed = Seed {
            user: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
        };
        Broker::new(Some(&seed), store, &mut recovery)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = definitions_json::import(broker(), text);
    }
});
