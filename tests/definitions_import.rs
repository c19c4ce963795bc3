//! Definitions import at start-up (`definitions.import_file`, RabbitMQ's `load_definitions`)
//! and export, against a real Warren on a free port.
//!
//! `tests/fixtures/rabbitmq-3.10-definitions.json` is RabbitMQ 3.10.8's own `GET
//! /api/definitions`, made by `tests/fixtures/make-rabbitmq-definitions.py` (which creates
//! the entities through the management API, exports, keeps only `guest`, `/` and the
//! `defs-fixture-*` entries of the shared reference broker, and deletes what it created).
//! The passwords (never in the JSON):
//!
//! | user                  | password        | hash        | tags                       |
//! |-----------------------|-----------------|-------------|----------------------------|
//! | `guest`               | `guest`         | SHA-256     | administrator              |
//! | `defs-fixture-admin`  | `admin-secret`  | SHA-256     | administrator              |
//! | `defs-fixture-sha512` | `sha512-secret` | SHA-512     | monitoring, management     |
//! | `defs-fixture-md5`    | `md5-secret`    | MD5         | policymaker, impersonator  |
//! | `defs-fixture-nopass` | (none)          | -           | management                 |

mod common;

use common::{expect_code, within};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::path::{Path, PathBuf};
use warren::broker::definitions_json;
use warren::server::ServerHandle;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rabbitmq-3.10-definitions.json"
);

const A: &str = "defs-fixture-a";
const B: &str = "defs-fixture-b";

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("warren-defs-{}", common::unique()))
}

fn config(dir: &Path, import: &str) -> warren::config::Config {
    let mut config = warren::config::Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.mgmt.listen = "127.0.0.1:0".into();
    config.prometheus.listen = "127.0.0.1:0".into();
    config.storage.dir = dir.to_path_buf();
    config.definitions.import_file = import.to_string();
    config
}

async fn start(dir: &Path, import: &str) -> ServerHandle {
    match warren::server::start(config(dir, import)).await {
        Ok(h) => h,
        Err(e) => panic!("broker does not start: {e}"),
    }
}

async fn login(
    h: &ServerHandle,
    user: &str,
    pass: &str,
    vhost: &str,
) -> Result<Connection, lapin::Error> {
    let vhost = if vhost == "/" { "%2f" } else { vhost };
    let url = format!("amqp://{user}:{pass}@{}/{vhost}", h.local_addr);
    within(
        "connection",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
}

const USERS: [(&str, &str, &str); 4] = [
    ("guest", "guest", "/"),
    ("defs-fixture-admin", "admin-secret", A),
    ("defs-fixture-sha512", "sha512-secret", A),
    ("defs-fixture-md5", "md5-secret", A),
];

#[tokio::test]
async fn the_fixture_imports_and_every_user_logs_in_with_its_password() {
    let dir = temp_dir();
    let h = start(&dir, FIXTURE).await;
    for (user, pass, vhost) in USERS {
        let c = login(&h, user, pass, vhost).await;
        assert!(c.is_ok(), "{user} logs in: {:?}", c.err());
        let wrong = login(&h, user, &format!("{pass}-wrong"), vhost).await;
        assert!(wrong.is_err(), "{user} with a wrong password is refused");
    }
    // No password: no password logs in.
    for pass in ["", "anything"] {
        assert!(login(&h, "defs-fixture-nopass", pass, B).await.is_err());
    }
    let alice = h.broker.auth.user("defs-fixture-md5").unwrap();
    assert_eq!(alice.tags, vec!["policymaker", "impersonator"]);
    let sha512 = h.broker.auth.user("defs-fixture-sha512").unwrap();
    assert_eq!(sha512.max_connections.0, Some(5));
    assert_eq!(sha512.max_channels.0, Some(10));
    h.shutdown().await;
}

#[tokio::test]
async fn importing_again_changes_nothing() {
    let dir = temp_dir();
    let h = start(&dir, FIXTURE).await;
    let before = definitions_json::export(&h.broker);
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let report = definitions_json::import(&h.broker, &text).unwrap();
    assert_eq!(report.users, 5);
    assert_eq!(report.vhosts, 3);
    assert_eq!(report.permissions, 8);
    assert_eq!(report.topic_permissions, 1);
    // Existing exchanges and queues are left as they are; bindings are not doubled.
    assert_eq!((report.exchanges, report.queues), (0, 0));
    assert_eq!((report.policies, report.global_parameters), (1, 1));
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(definitions_json::export(&h.broker), before);
    h.shutdown().await;
}

#[tokio::test]
async fn imported_permissions_are_enforced() {
    let dir = temp_dir();
    let h = start(&dir, FIXTURE).await;
    // md5: configure "" (nothing), write "^defs-fixture-ex$", read ".*".
    let c = login(&h, "defs-fixture-md5", "md5-secret", A)
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    let r = ch
        .queue_declare(
            "defs-fixture-mine".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    expect_code(r, 403);
    // sha512: configure "^defs-fixture-own-.*".
    let c = login(&h, "defs-fixture-sha512", "sha512-secret", A)
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare("defs-fixture-own-1".into(), opts, FieldTable::default())
        .await
        .unwrap();
    let r = ch
        .queue_declare("defs-fixture-else".into(), opts, FieldTable::default())
        .await;
    expect_code(r, 403);
    // Not granted on vhost B at all.
    assert!(
        login(&h, "defs-fixture-sha512", "sha512-secret", B)
            .await
            .is_err()
    );
    h.shutdown().await;
}

async fn get_body(ch: &lapin::Channel, queue: &str) -> Option<String> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned())
}

async fn publish(ch: &lapin::Channel, exchange: &str, key: &str, body: &str) {
    let props = BasicProperties::default().with_delivery_mode(2);
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

#[tokio::test]
async fn imported_exchanges_queues_and_bindings_route() {
    let dir = temp_dir();
    let h = start(&dir, FIXTURE).await;
    let c = login(&h, "defs-fixture-admin", "admin-secret", A)
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    // main (direct) -"a.main"-> ex (topic) -"a.#"-> q1.
    publish(&ch, "defs-fixture-main", "a.main", "through e2e").await;
    // main has no binding for "other": its alternate exchange (fanout) -> q2.
    publish(&ch, "defs-fixture-main", "other", "through the AE").await;
    assert_eq!(
        get_body(&ch, "defs-fixture-q1").await.as_deref(),
        Some("through e2e")
    );
    assert_eq!(
        get_body(&ch, "defs-fixture-q2").await.as_deref(),
        Some("through the AE")
    );
    // q1's x-max-length (100) came over as a number the queue uses.
    let q1 = h
        .broker
        .vhost(A)
        .unwrap()
        .queue(b"defs-fixture-q1")
        .unwrap();
    assert_eq!(q1.args.max_length, Some(100));
    h.shutdown().await;
}

#[tokio::test]
async fn imported_vhost_limits_are_in_force() {
    let dir = temp_dir();
    let h = start(&dir, FIXTURE).await;
    // B: max-connections 2.
    let _one = login(&h, "defs-fixture-admin", "admin-secret", B)
        .await
        .unwrap();
    let _two = login(&h, "guest", "guest", B).await.unwrap();
    assert!(
        login(&h, "defs-fixture-admin", "admin-secret", B)
            .await
            .is_err()
    );
    let v = h.broker.vhost(B).unwrap();
    assert_eq!(v.limit("max-queues").0, Some(5));
    h.shutdown().await;
}

#[tokio::test]
async fn restarts_with_and_without_the_import_keep_everything() {
    let dir = temp_dir();
    let h = start(&dir, FIXTURE).await;
    let first = definitions_json::export(&h.broker);
    let c = login(&h, "defs-fixture-admin", "admin-secret", A)
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    // Confirmed, so the message is on disk before the broker stops.
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "defs-fixture-ex", "a.kept", "kept").await;
    drop(c);
    h.shutdown().await;

    // The same file again: idempotent, and the queue's message is still there.
    let h = start(&dir, FIXTURE).await;
    assert_eq!(definitions_json::export(&h.broker), first);
    h.shutdown().await;

    // No import: everything is in the definitions log.
    let h = start(&dir, "").await;
    assert_eq!(definitions_json::export(&h.broker), first);
    for (user, pass, vhost) in USERS {
        assert!(login(&h, user, pass, vhost).await.is_ok(), "{user}");
    }
    let c = login(&h, "defs-fixture-admin", "admin-secret", A)
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    assert_eq!(
        get_body(&ch, "defs-fixture-q1").await.as_deref(),
        Some("kept")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn with_an_import_the_default_user_and_vhost_are_not_created() {
    let dir = temp_dir();
    let file = dir.with_extension("json");
    std::fs::write(
        &file,
        r#"{"users": [{"name": "only", "password_hash": "", "tags": ""}],
            "vhosts": [{"name": "defs-fixture-only"}]}"#,
    )
    .unwrap();
    let h = start(&dir, file.to_str().unwrap()).await;
    assert!(h.broker.auth.user("guest").is_none());
    assert!(h.broker.vhost("/").is_none());
    h.shutdown().await;
    // Nor later, without the import.
    let h = start(&dir, "").await;
    assert!(h.broker.auth.user("guest").is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn export_then_import_round_trips() {
    let h = start(&temp_dir(), FIXTURE).await;
    let exported = definitions_json::export(&h.broker);
    h.shutdown().await;
    let file = temp_dir().with_extension("json");
    std::fs::write(&file, serde_json::to_string_pretty(&exported).unwrap()).unwrap();
    let h = start(&temp_dir(), file.to_str().unwrap()).await;
    assert_eq!(definitions_json::export(&h.broker), exported);
    // The fixture's entities are all there.
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    for kind in [
        "users",
        "vhosts",
        "queues",
        "exchanges",
        "bindings",
        "permissions",
    ] {
        assert_eq!(
            exported[kind].as_array().unwrap().len(),
            fixture[kind].as_array().unwrap().len(),
            "{kind}"
        );
    }
    for u in fixture["users"].as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let e = exported["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap();
        assert_eq!(e["password_hash"], u["password_hash"], "{name}");
        assert_eq!(e["hashing_algorithm"], u["hashing_algorithm"], "{name}");
    }
    h.shutdown().await;
}

/// A valid vhost and user first, then the fault: nothing of the file may be applied.
fn bad_file(fault: &str) -> String {
    format!(
        r#"{{"vhosts": [{{"name": "defs-fixture-bad"}}],
  "users": [{{"name": "defs-fixture-u", "password_hash": "", "tags": "management"}}],
  {fault}}}"#
    )
}

#[tokio::test]
async fn a_bad_file_stops_start_up_naming_the_problem_and_changes_nothing() {
    let topic_of_nobody = r#""permissions": [], "topic_permissions": [{"user": "x", "vhost": "/", "exchange": "e", "write": "", "read": ""}]"#;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "JSON syntax",
            "{\n  \"vhosts\": [\n    {\"name\": \"defs-fixture-bad\"},\n  ]\n}".into(),
            "line 4 column 3",
        ),
        (
            "unknown hashing algorithm",
            r#"{"vhosts": [{"name": "defs-fixture-bad"}],
                "users": [{"name": "defs-fixture-sha1", "password_hash": "AAAAAAAA",
                           "hashing_algorithm": "rabbit_password_hashing_sha1", "tags": ""}]}"#
                .into(),
            "unknown hashing_algorithm 'rabbit_password_hashing_sha1' for user 'defs-fixture-sha1'",
        ),
        (
            "hash that does not decode",
            r#"{"vhosts": [{"name": "defs-fixture-bad"}],
                "users": [{"name": "defs-fixture-h", "password_hash": "not base64!",
                           "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}]}"#
                .into(),
            "user 'defs-fixture-h'",
        ),
        (
            "regex that does not compile",
            bad_file(
                r#""permissions": [{"user": "defs-fixture-u", "vhost": "defs-fixture-bad",
                    "configure": "(", "write": ".*", "read": ".*"}]"#,
            ),
            "permissions of user 'defs-fixture-u' in vhost 'defs-fixture-bad': invalid regular expression '('",
        ),
        (
            "topic permission regex",
            bad_file(
                r#""topic_permissions": [{"user": "defs-fixture-u", "vhost": "defs-fixture-bad",
                    "exchange": "amq.topic", "write": "[", "read": ".*"}]"#,
            ),
            "invalid regular expression '['",
        ),
        (
            "unknown vhost limit",
            bad_file(
                r#""parameters": [{"vhost": "defs-fixture-bad", "component": "vhost-limits",
                    "name": "limits", "value": {"max-bananas": 3}}]"#,
            ),
            "unknown limit 'max-bananas'",
        ),
        (
            "invalid policy",
            bad_file(
                r#""policies": [{"vhost": "defs-fixture-bad", "name": "p", "pattern": "^q",
                    "apply-to": "queues", "priority": 0, "definition": {"message-ttl": -1}}]"#,
            ),
            "policy 'p' in vhost 'defs-fixture-bad': Validation failed\n\n-1 is not a valid message TTL",
        ),
        (
            "operator policy with a policy-only setting",
            bad_file(
                r#""parameters": [{"vhost": "defs-fixture-bad", "component": "operator_policy",
                    "name": "o", "value": {"pattern": ".*", "priority": 0, "apply-to": "all",
                    "definition": {"overflow": "drop-head"}}}]"#,
            ),
            "are not recognised policy settings",
        ),
        (
            "policy on a missing vhost",
            bad_file(
                r#""policies": [{"vhost": "nowhere", "name": "p", "pattern": "^q",
                    "apply-to": "queues", "priority": 0, "definition": {"max-length": 1}}]"#,
            ),
            "policy 'p' in vhost 'nowhere' refers to vhost 'nowhere'",
        ),
        (
            "unknown user limit",
            r#"{"vhosts": [{"name": "defs-fixture-bad"}],
                "users": [{"name": "defs-fixture-l", "password_hash": "", "tags": "",
                           "limits": {"max-queues": 3}}]}"#
                .into(),
            "user 'defs-fixture-l': unknown limit 'max-queues'",
        ),
        (
            "permissions on a missing vhost",
            bad_file(
                r#""permissions": [{"user": "defs-fixture-u", "vhost": "nowhere",
                    "configure": ".*", "write": ".*", "read": ".*"}]"#,
            ),
            "refers to vhost 'nowhere', which is neither in the file nor existing",
        ),
        (
            "permissions of a missing user",
            bad_file(
                r#""permissions": [{"user": "nobody", "vhost": "defs-fixture-bad",
                    "configure": ".*", "write": ".*", "read": ".*"}]"#,
            ),
            "refers to user 'nobody'",
        ),
        (
            "topic permissions of a missing user",
            bad_file(topic_of_nobody),
            "user 'x'",
        ),
        (
            "queue in a missing vhost",
            bad_file(r#""queues": [{"name": "q", "vhost": "nowhere", "durable": true}]"#),
            "queue 'q' in vhost 'nowhere' refers to vhost 'nowhere'",
        ),
        (
            "bad exchange type",
            bad_file(
                r#""exchanges": [{"name": "e", "vhost": "defs-fixture-bad", "type": "bogus"}]"#,
            ),
            "exchange 'e' in vhost 'defs-fixture-bad': unknown exchange type 'bogus'",
        ),
        (
            "queue argument the declare refuses",
            bad_file(
                r#""queues": [{"name": "q", "vhost": "defs-fixture-bad", "durable": true,
                    "arguments": {"x-max-length": "ten"}}]"#,
            ),
            "queue 'q' in vhost 'defs-fixture-bad': invalid arg 'x-max-length'",
        ),
        (
            "quorum queue that is not durable",
            bad_file(
                r#""queues": [{"name": "q", "vhost": "defs-fixture-bad", "durable": false,
                    "arguments": {"x-queue-type": "quorum"}}]"#,
            ),
            "invalid property 'non-durable'",
        ),
        (
            "more queues than max-queues",
            bad_file(
                r#""parameters": [{"vhost": "defs-fixture-bad", "component": "vhost-limits",
                    "name": "limits", "value": {"max-queues": 1}}],
                  "queues": [{"name": "q1", "vhost": "defs-fixture-bad"},
                             {"name": "q2", "vhost": "defs-fixture-bad"}]"#,
            ),
            "max-queues limit (1)",
        ),
        (
            "binding to a missing queue",
            bad_file(
                r#""bindings": [{"source": "amq.direct", "vhost": "defs-fixture-bad",
                    "destination": "gone", "destination_type": "queue", "routing_key": "k"}]"#,
            ),
            "no queue 'gone'",
        ),
        (
            "binding from a missing exchange",
            bad_file(
                r#""bindings": [{"source": "gone", "vhost": "defs-fixture-bad",
                    "destination": "amq.fanout", "destination_type": "exchange"}]"#,
            ),
            "no exchange 'gone'",
        ),
        (
            "bad destination type",
            bad_file(
                r#""bindings": [{"source": "amq.direct", "vhost": "defs-fixture-bad",
                    "destination": "amq.fanout", "destination_type": "topic"}]"#,
            ),
            "destination_type must be 'queue' or 'exchange', not 'topic'",
        ),
        (
            "headers binding with a bad x-match",
            bad_file(
                r#""bindings": [{"source": "amq.headers", "vhost": "defs-fixture-bad",
                    "destination": "amq.fanout", "destination_type": "exchange",
                    "arguments": {"x-match": "bogus"}}]"#,
            ),
            "x-match",
        ),
        (
            "arguments that are not an object",
            bad_file(
                r#""exchanges": [{"name": "e", "vhost": "defs-fixture-bad", "type": "direct",
                    "arguments": "x"}]"#,
            ),
            "arguments must be an object",
        ),
    ];
    for (what, text, expected) in cases {
        let dir = temp_dir();
        let file = dir.with_extension("json");
        std::fs::write(&file, &text).unwrap();
        let e = match warren::server::start(config(&dir, file.to_str().unwrap())).await {
            Ok(_) => panic!("{what}: the broker started"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(file.to_str().unwrap()) && e.contains(expected),
            "{what}: expected the file and {expected:?} in: {e}"
        );
        // Nothing was applied: a start without the import finds the default broker only.
        let h = start(&dir, "").await;
        assert!(h.broker.vhost("defs-fixture-bad").is_none(), "{what}");
        assert!(h.broker.auth.user("defs-fixture-u").is_none(), "{what}");
        assert!(h.broker.auth.user("guest").is_some(), "{what}");
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_missing_file_stops_start_up() {
    let dir = temp_dir();
    let e = match warren::server::start(config(&dir, "/nonexistent/defs.json")).await {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("cannot read the definitions file /nonexistent/defs.json"),
        "{e}"
    );
}

const POLICIES_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rabbitmq-3.10-definitions-policies.json"
);

/// `tests/fixtures/rabbitmq-3.10-definitions-policies.json`: RabbitMQ 3.10.8's `GET
/// /api/definitions` with policies (one with priority 1.5 and ha-* settings), an operator
/// policy (which 3.10 exports among the `parameters`), vhost limits and a global parameter,
/// made by `tests/fixtures/make-rabbitmq-policies-definitions.py`.
#[tokio::test]
async fn the_policies_fixture_imports_applies_and_exports_the_same() {
    const V: &str = "defs-policies-vhost";
    let h = start(&temp_dir(), POLICIES_FIXTURE).await;
    let b = &h.broker;
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(POLICIES_FIXTURE).unwrap()).unwrap();
    let names: Vec<String> = b.policies(Some(V)).into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "defs-policies-ae",
            "defs-policies-lazy",
            "defs-policies-len"
        ]
    );
    let lazy = b.policy(V, "defs-policies-lazy").unwrap();
    assert_eq!(lazy.priority.as_f64(), Some(1.5));
    let op = b.operator_policy(V, "defs-policies-op").unwrap();
    assert_eq!(op.definition["message-ttl"], 3600000);
    assert_eq!(
        b.global_parameter("defs-policies-global").unwrap().value,
        serde_json::json!({"owner": "fixture", "list": [1, 2.5, "three"]})
    );
    let fixture_id = fixture["global_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "internal_cluster_id")
        .unwrap()["value"]
        .clone();
    assert_eq!(
        b.global_parameter("internal_cluster_id").unwrap().value,
        fixture_id
    );
    assert_eq!(
        b.vhost(V).unwrap().def().limits,
        vec![("max-queues".to_string(), 100)]
    );

    // The policies act: max-length 3 (below the queue's x-max-length 10) dead-letters the
    // head to the policy's dead-letter exchange; the exchange's alternate comes from its
    // policy.
    let c = login(&h, "guest", "guest", V).await.unwrap();
    let ch = c.create_channel().await.unwrap();
    for body in ["m1", "m2", "m3", "m4", "m5"] {
        publish(&ch, "", "defs-policies-q", body).await;
    }
    publish(&ch, "defs-policies-ex", "nowhere", "unroutable").await;
    let q = b.vhost(V).unwrap().queue(b"defs-policies-q").unwrap();
    assert_eq!(q.policy().as_deref(), Some("defs-policies-len"));
    assert_eq!(q.operator_policy().as_deref(), Some("defs-policies-op"));
    for (queue, bodies) in [
        ("defs-policies-q", vec!["m3", "m4", "m5"]),
        ("defs-policies-dead", vec!["m1", "m2"]),
        ("defs-policies-alt", vec!["unroutable"]),
    ] {
        let mut got = Vec::new();
        while let Some(body) = get_body(&ch, queue).await {
            got.push(body);
        }
        assert_eq!(got, bodies, "{queue}");
    }

    // Exported as RabbitMQ exported them.
    let exported = definitions_json::export(b);
    let sorted = |v: &serde_json::Value| {
        let mut items = v.as_array().unwrap().clone();
        items.sort_by_key(|x| x.to_string());
        items
    };
    for kind in ["policies", "parameters"] {
        assert_eq!(sorted(&exported[kind]), sorted(&fixture[kind]), "{kind}");
    }
    assert_eq!(
        sorted(&exported["global_parameters"]),
        sorted(&fixture["global_parameters"])
    );
    // Importing again changes nothing.
    let text = std::fs::read_to_string(POLICIES_FIXTURE).unwrap();
    let report = definitions_json::import(b, &text).unwrap();
    assert_eq!(
        (
            report.policies,
            report.operator_policies,
            report.global_parameters
        ),
        (3, 1, 2)
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(definitions_json::export(b), exported);
    h.shutdown().await;
}
