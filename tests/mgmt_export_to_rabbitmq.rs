//! Warren's definitions export is RabbitMQ 3.10's format: everything an operator sets up
//! through Warren's API (a vhost, a user with tags and limits, permissions, topic
//! permissions, a durable exchange, queue and binding, a policy, an operator policy, vhost
//! limits, the cluster name) imports into a real RabbitMQ with `POST /api/definitions` and
//! comes back from its export the same.
//!
//! Needs a RabbitMQ with the management plugin: `RABBITMQ_MGMT_URL` (guest/guest), e.g.
//! `RABBITMQ_MGMT_URL=http://127.0.0.1:15673 cargo test --test mgmt_export_to_rabbitmq`
//! with `../shared/tools/rabbitmq-reference 5673` (RABBITMQ_PLUGINS=rabbitmq_management).
//! Without it the test says so and does nothing: CI has no RabbitMQ.

mod common;

use common::mgmt::Api;
use common::{TestBroker, unique};
use serde_json::{Value, json};

/// The entries of a definitions section that mention `marker`.
fn mine(defs: &Value, section: &str, marker: &str) -> Vec<Value> {
    let mut v: Vec<Value> = defs[section]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter(|e| e.to_string().contains(marker))
        .cloned()
        .collect();
    v.sort_by_key(|e| e.to_string());
    v
}

#[tokio::test]
async fn warren_export_imports_into_rabbitmq_3_10() {
    let Ok(rabbit_url) = std::env::var("RABBITMQ_MGMT_URL") else {
        eprintln!("skipped: set RABBITMQ_MGMT_URL to a RabbitMQ management API to run this");
        return;
    };
    let warren = TestBroker::start_warren_with(|_| {}).await;
    let w = warren.mgmt();
    let m = format!("exp-{}", unique());
    let (v, u) = (format!("{m}-v"), format!("{m}-u"));
    w.put(
        &format!("/vhosts/{v}"),
        json!({"description": "exported", "tags": "a,b"}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/users/{u}"),
        json!({"password": "pw", "tags": "monitoring"}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/user-limits/{u}/max-channels"),
        json!({"value": 5}),
    )
    .await
    .expect(204);
    w.put(
        &format!("/permissions/{v}/{u}"),
        json!({"configure": "^x", "write": ".*", "read": ""}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/topic-permissions/{v}/{u}"),
        json!({"exchange": "amq.topic", "write": "^a", "read": ".*"}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/exchanges/{v}/{m}-x"),
        json!({"type": "topic", "durable": true, "arguments": {"alternate-exchange": "amq.fanout"}}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/queues/{v}/{m}-q"),
        json!({"durable": true, "arguments": {"x-max-length": 10}}),
    )
    .await
    .expect(201);
    w.post(
        &format!("/bindings/{v}/e/{m}-x/q/{m}-q"),
        json!({"routing_key": "a.#", "arguments": {"k": "v"}}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/policies/{v}/{m}-p"),
        json!({"pattern": "^exp", "definition": {"message-ttl": 5000}, "apply-to": "queues"}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/operator-policies/{v}/{m}-op"),
        json!({"pattern": "^exp", "definition": {"max-length": 100}, "apply-to": "queues", "priority": 0}),
    )
    .await
    .expect(201);
    w.put(
        &format!("/vhost-limits/{v}/max-queues"),
        json!({"value": 50}),
    )
    .await
    .expect(204);
    let exported = w.json("/definitions").await;

    let r = Api::new(&rabbit_url, "guest", "guest");
    r.post("/definitions", exported.clone()).await.expect(204);
    let back = r.json("/definitions").await;
    for section in [
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "policies",
        "parameters",
        "queues",
        "exchanges",
        "bindings",
    ] {
        let (ours, theirs) = (mine(&exported, section, &m), mine(&back, section, &m));
        assert!(!ours.is_empty(), "Warren exported no {section} for {m}");
        // RabbitMQ may add fields of its own (vhost metadata, limits); every field Warren
        // wrote must come back with the same value.
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{section}: {ours:?} vs {theirs:?}"
        );
        for (o, t) in ours.iter().zip(&theirs) {
            for (k, val) in o.as_object().unwrap() {
                if section == "vhosts" && (k == "metadata" || k == "description" || k == "tags") {
                    // 3.10's export writes only a vhost's name.
                    continue;
                }
                assert_eq!(
                    &t[k], val,
                    "{section}.{k}: RabbitMQ has {t}, Warren wrote {o}"
                );
            }
        }
    }
    // Leave the shared reference as it was.
    r.delete(&format!("/vhosts/{v}")).await.expect(204);
    r.delete(&format!("/users/{u}")).await.expect(204);
}
