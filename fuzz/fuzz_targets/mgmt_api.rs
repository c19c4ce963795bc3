//! The management HTTP API as a client reaches it: a real broker (in-process, on scratch
//! storage) and real HTTP/1.1 over a socket, with the method, the resource, names, query
//! and JSON body taken from the input. Whatever arrives, the broker must answer (any
//! status) and keep answering: a panic in a handler, or a broker that stops answering,
//! is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

/// The broker, started once on its own runtime thread; its API's address.
fn api() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut config = warren::config::Config::default();
                config.amqp.listen = "127.0.0.1:0".parse().unwrap();
                config.mgmt.listen = "127.0.0.1:0".into();
                config.prometheus.listen = "127.0.0.1:0".into();
                config.storage.sync = false;
                config.storage.dir =
                    std::env::temp_dir().join(format!("warren-fuzz-mgmt-{}", std::process::id()));
                let server = warren::server::start(config).await.expect("broker starts");
                tx.send(server.mgmt_addr.unwrap()).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().unwrap()
    })
}

const METHODS: [&str; 4] = ["GET", "PUT", "POST", "DELETE"];
const PATHS: [&str; 16] = [
    "queues/%2F/{}",
    "queues/%2F/{}/get",
    "queues/%2F/{}/contents",
    "exchanges/%2F/{}",
    "exchanges/%2F/{}/publish",
    "bindings/%2F/e/amq.direct/q/{}",
    "vhosts/{}",
    "users/{}",
    "permissions/%2F/{}",
    "topic-permissions/%2F/{}",
    "vhost-limits/%2F/{}",
    "policies/%2F/{}",
    "operator-policies/%2F/{}",
    "parameters/{}/%2F/x",
    "definitions",
    "queues?{}",
];

fn encode(s: &[u8]) -> String {
    s.iter()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (*b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let method = METHODS[data[0] as usize % METHODS.len()];
    let template = PATHS[data[1] as usize % PATHS.len()];
    let name_len = (data[2] as usize).min(data.len() - 3).min(64);
    let name = &data[3..3 + name_len];
    let body = &data[3 + name_len..];
    let segment = if template.ends_with('?') || template.ends_with("?{}") {
        // Query strings pass through as given (minus what breaks the request line).
        String::from_utf8_lossy(name).replace([' ', '\r', '\n', '#'], "")
    } else {
        encode(name)
    };
    let path = format!("/api/{}", template.replace("{}", &segment));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let mut s = TcpStream::connect(api()).expect("the API accepts connections");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&req).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("the API answers");
    assert!(answer.starts_with(b"HTTP/1.1 "), "no HTTP answer");
});
