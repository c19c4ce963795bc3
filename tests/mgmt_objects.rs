//! The management HTTP API's exchanges, queues and bindings (GET, PUT, POST, DELETE, with
//! RabbitMQ's status codes and texts), queue contents, and the REST publish and get.
//! Also run against RabbitMQ 3.10 (see mgmt_api.rs); names are unique per run.

mod common;

use common::mgmt::{Api, names, seg};
use common::{TestBroker, passive, unique};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{Value, json};

fn id(prefix: &str) -> String {
    format!("mt-{prefix}-{}", unique())
}

/// Publishes one message through the API; whether it was routed.
async fn publish(api: &Api, vhost: &str, exchange: &str, key: &str, body: Value) -> bool {
    let mut req = json!({"properties": {}, "routing_key": key});
    for (k, v) in body.as_object().unwrap() {
        req[k] = v.clone();
    }
    let r = api
        .post(
            &format!("/exchanges/{}/{}/publish", seg(vhost), seg(exchange)),
            req,
        )
        .await
        .expect(200);
    r.json["routed"].as_bool().expect("routed")
}

async fn get(api: &Api, q: &str, body: Value) -> Vec<Value> {
    let r = api
        .post(&format!("/queues/%2F/{}/get", seg(q)), body)
        .await
        .expect(200);
    r.json.as_array().expect("a list").clone()
}

#[tokio::test]
async fn queues_are_created_201_updated_204_listed_and_deleted() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = id("q");
    let path = format!("/queues/%2F/{q}");
    api.put(
        &path,
        json!({"durable": true, "auto_delete": false, "arguments": {"x-max-length": 10, "x-queue-mode": "lazy"}}),
    )
    .await
    .expect(201);
    // RabbitMQ adds the queue's state and counts from its statistics, a moment later.
    let v = api
        .wait_for(&path, "the queue's state", |v| v["state"] == "running")
        .await;
    assert_eq!(v["name"], q.as_str());
    assert_eq!(v["vhost"], "/");
    assert_eq!(v["durable"], true);
    assert_eq!(v["auto_delete"], false);
    assert_eq!(v["exclusive"], false);
    assert_eq!(v["type"], "classic");
    assert_eq!(v["state"], "running");
    assert_eq!(
        v["arguments"],
        json!({"x-max-length": 10, "x-queue-mode": "lazy"})
    );
    assert_eq!(v["messages"], 0);
    assert_eq!(v["consumers"], 0);
    assert!(v["consumer_details"].is_array());
    for f in [
        "node",
        "messages_ready",
        "messages_unacknowledged",
        "idle_since",
    ] {
        assert!(v.get(f).is_some(), "queue lacks {f}: {v}");
    }
    // The queue is real: AMQP sees it.
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..passive()
        },
        FieldTable::default(),
    )
    .await
    .expect("declared over HTTP, seen over AMQP");
    // The same declaration again: 204.
    api.put(
        &path,
        json!({"durable": true, "arguments": {"x-max-length": 10, "x-queue-mode": "lazy"}}),
    )
    .await
    .expect(204);
    assert!(names(&api.json("/queues").await).contains(&q));
    assert!(names(&api.json("/queues/%2F").await).contains(&q));

    api.delete(&path).await.expect(204);
    api.get(&path).await.expect_not_found();
    api.delete(&path).await.expect_not_found();
}

#[tokio::test]
async fn an_empty_body_declares_what_queue_declare_s_defaults_declare() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    for what in ["queues", "exchanges"] {
        let path = format!("/{what}/%2F/{}", id("defaults"));
        api.put(&path, json!({})).await.expect(201);
        let v = api
            .wait_for(&path, "the object", |v| v["name"].is_string())
            .await;
        // As queue.declare's and exchange.declare's fields default: not durable, not
        // auto-delete (and a direct exchange).
        assert_eq!(v["durable"], false, "{what}: {v}");
        assert_eq!(v["auto_delete"], false, "{what}: {v}");
        if what == "exchanges" {
            assert_eq!(v["type"], "direct");
        }
        api.delete(&path).await.expect(204);
    }
}

#[tokio::test]
async fn inequivalent_queue_redeclarations_are_400_with_rabbitmqs_text() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = id("q");
    let path = format!("/queues/%2F/{q}");
    api.put(&path, json!({"durable": true})).await.expect(201);
    for (body, reason) in [
        (
            json!({"durable": false}),
            format!(
                "inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'false' but current is 'true'"
            ),
        ),
        (
            json!({"durable": true, "arguments": {"x-max-length": 5}}),
            format!(
                "inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received the value '5' of type 'long' but current is none"
            ),
        ),
    ] {
        api.put(&path, body)
            .await
            .expect_error(400, "bad_request", &reason);
    }
    api.delete(&path).await.expect(204);
}

#[tokio::test]
async fn queue_arguments_are_validated_as_a_declare_validates_them() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = id("q");
    let r = api
        .put(
            &format!("/queues/%2F/{q}"),
            json!({"arguments": {"x-max-length": -1}}),
        )
        .await
        .expect(400);
    assert_eq!(r.json["error"], "bad_request");
    // RabbitMQ shows the Erlang term of the problem ("{value_negative,-1}"); Warren
    // its AMQP 406 text after the same prefix.
    let prefix = format!("invalid arg 'x-max-length' for queue '{q}' in vhost '/'");
    assert!(
        r.json["reason"].as_str().unwrap().starts_with(&prefix),
        "{}",
        r.text
    );
    api.get(&format!("/queues/%2F/{q}"))
        .await
        .expect_not_found();
}

#[tokio::test]
async fn exchanges_are_created_updated_refused_when_inequivalent_and_deleted() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let x = id("x");
    let path = format!("/exchanges/%2F/{x}");
    api.put(
        &path,
        json!({"type": "topic", "durable": true, "arguments": {"alternate-exchange": "amq.fanout"}}),
    )
    .await
    .expect(201);
    let v = api.json(&path).await;
    assert_eq!(v["name"], x.as_str());
    assert_eq!(v["type"], "topic");
    assert_eq!(v["durable"], true);
    assert_eq!(v["auto_delete"], false);
    assert_eq!(v["internal"], false);
    assert_eq!(v["vhost"], "/");
    assert_eq!(v["arguments"], json!({"alternate-exchange": "amq.fanout"}));
    api.put(
        &path,
        json!({"type": "topic", "durable": true, "arguments": {"alternate-exchange": "amq.fanout"}}),
    )
    .await
    .expect(204);
    api.put(&path, json!({"type": "direct", "durable": true}))
        .await
        .expect_error(
            400,
            "bad_request",
            &format!(
                "inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'direct' but current is 'topic'"
            ),
        );
    // A type name never seen before (RabbitMQ says "invalid" for one whose name is
    // already an Erlang atom).
    let kind = id("type");
    api.put(
        &format!("/exchanges/%2F/{}", id("x")),
        json!({"type": kind}),
    )
    .await
    .expect_error(
        400,
        "bad_request",
        &format!("unknown exchange type '{kind}'"),
    );

    let listed = api.json("/exchanges/%2F").await;
    let all = names(&listed);
    for n in [
        "",
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        x.as_str(),
    ] {
        assert!(all.contains(&n.to_string()), "{n} missing from {all:?}");
    }
    let default = api.json("/exchanges/%2F/amq.default").await;
    assert_eq!(default["name"], "");
    assert_eq!(default["type"], "direct");

    api.delete(&path).await.expect(204);
    api.get(&path).await.expect_not_found();
}

#[tokio::test]
async fn bindings_are_created_with_a_location_listed_and_deleted_by_properties_key() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let (x, q, x2) = (id("x"), id("q"), id("x2"));
    api.put(&format!("/exchanges/%2F/{x}"), json!({"type": "direct"}))
        .await
        .expect(201);
    api.put(&format!("/exchanges/%2F/{x2}"), json!({"type": "fanout"}))
        .await
        .expect(201);
    api.put(&format!("/queues/%2F/{q}"), json!({"durable": false}))
        .await
        .expect(201);

    let to_q = format!("/bindings/%2F/e/{x}/q/{q}");
    let r = api
        .post(&to_q, json!({"routing_key": "a b/c~d"}))
        .await
        .expect(201);
    // Relative to the request's path, the new binding's key quoted once more.
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("{q}/a%2Bb%252Fc%257Ed").as_str())
    );
    // RabbitMQ relativises against the path as sent: "%2f" differs from its "%2F".
    let r = api
        .post(
            &format!("/bindings/%2f/e/{x}/q/{q}"),
            json!({"routing_key": "lower"}),
        )
        .await
        .expect(201);
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("../../../../%2F/e/{x}/q/{q}/lower").as_str())
    );
    api.delete(&format!("{to_q}/lower")).await.expect(204);
    let r = api
        .post(
            &to_q,
            json!({"routing_key": "", "arguments": {"x-match": "any"}}),
        )
        .await
        .expect(201);
    let with_args_location = r.header("location").unwrap();
    let listed = api.json(&to_q).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let plain = listed
        .iter()
        .find(|b| b["routing_key"] == "a b/c~d")
        .unwrap();
    assert_eq!(plain["properties_key"], "a+b%2Fc%7Ed");
    assert_eq!(plain["source"], x.as_str());
    assert_eq!(plain["destination"], q.as_str());
    assert_eq!(plain["destination_type"], "queue");
    assert_eq!(plain["vhost"], "/");
    assert_eq!(plain["arguments"], json!({}));
    let with_args = listed.iter().find(|b| b["routing_key"] == "").unwrap();
    let key = with_args["properties_key"].as_str().unwrap().to_string();
    assert!(key.starts_with('~'), "{key}");
    // Quoted once more, but "~" is safe there.
    assert_eq!(with_args_location, format!("{q}/{key}"));
    if !b.is_warren() {
        // RabbitMQ hashes the Erlang term of the arguments; Warren their JSON. Clients
        // take the key from listings or Location, never compute it.
        assert_eq!(key, "~QOF8eg");
    }

    // GET and DELETE one binding by its properties key.
    let one = api.json(&format!("{to_q}/{}", seg(&key))).await;
    assert_eq!(one["arguments"], json!({"x-match": "any"}));
    api.get(&format!("{to_q}/nope")).await.expect_not_found();

    // Exchange to exchange.
    let to_x = format!("/bindings/%2F/e/{x}/e/{x2}");
    api.post(&to_x, json!({"routing_key": "k"}))
        .await
        .expect(201);
    let e2e = api.json(&to_x).await;
    assert_eq!(e2e[0]["destination_type"], "exchange");
    assert_eq!(e2e[0]["properties_key"], "k");
    let source = api
        .json(&format!("/exchanges/%2F/{x}/bindings/source"))
        .await;
    assert_eq!(source.as_array().unwrap().len(), 3);
    let dest = api
        .json(&format!("/exchanges/%2F/{x2}/bindings/destination"))
        .await;
    assert_eq!(dest.as_array().unwrap().len(), 1);
    // A queue's bindings include the default exchange's.
    let of_q = api.json(&format!("/queues/%2F/{q}/bindings")).await;
    let of_q = of_q.as_array().unwrap();
    assert_eq!(of_q.len(), 3);
    assert!(
        of_q.iter()
            .any(|b| b["source"] == "" && b["routing_key"] == q.as_str())
    );
    let in_vhost = api.json("/bindings/%2F").await;
    assert!(
        in_vhost
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["source"] == x.as_str() && b["destination"] == x2.as_str())
    );

    // Routing follows: a message with routing key "a b/c~d" reaches the queue.
    assert!(
        publish(
            &api,
            "/",
            &x,
            "a b/c~d",
            json!({"payload": "p", "payload_encoding": "string"})
        )
        .await
    );

    api.delete(&format!("{to_q}/{}", seg(&key)))
        .await
        .expect(204);
    api.delete(&format!("{to_q}/{}", seg("a+b%2Fc%7Ed")))
        .await
        .expect(204);
    api.delete(&format!("{to_x}/k")).await.expect(204);
    assert_eq!(api.json(&to_q).await, json!([]));
    api.delete(&format!("{to_q}/a")).await.expect_not_found();

    // Binding to something that does not exist.
    api.post(
        &format!("/bindings/%2F/e/{x}/q/mt-no-such-queue"),
        json!({}),
    )
    .await
    .expect_error(404, "not_found", "no queue 'mt-no-such-queue' in vhost '/'");
    api.post(
        &format!("/bindings/%2F/e/mt-no-such-exchange/q/{q}"),
        json!({}),
    )
    .await
    .expect_error(
        404,
        "not_found",
        "no exchange 'mt-no-such-exchange' in vhost '/'",
    );
    for path in [
        format!("/exchanges/%2F/{x}"),
        format!("/exchanges/%2F/{x2}"),
        format!("/queues/%2F/{q}"),
    ] {
        api.delete(&path).await.expect(204);
    }
}

#[tokio::test]
async fn rest_publish_and_get_with_encodings_and_ack_modes() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = id("q");
    api.put(&format!("/queues/%2F/{q}"), json!({"durable": false}))
        .await
        .expect(201);
    let routed = publish(
        &api,
        "/",
        "amq.default",
        &q,
        json!({
            "properties": {"content_type": "text/plain", "headers": {"h": "v", "n": 1}, "delivery_mode": 2, "priority": 3},
            "payload": "aGVsbG8=", "payload_encoding": "base64",
        }),
    )
    .await;
    assert!(routed);
    assert!(
        publish(
            &api,
            "/",
            "amq.default",
            &q,
            json!({"payload": "two", "payload_encoding": "string"})
        )
        .await
    );
    assert!(
        !publish(
            &api,
            "/",
            "amq.default",
            &id("nowhere"),
            json!({"payload": "x", "payload_encoding": "string"})
        )
        .await
    );

    // Peek at both (requeued), in order, with the count of those left behind each.
    let got = get(
        &api,
        &q,
        json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    )
    .await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["payload"], "hello");
    assert_eq!(got[0]["payload_encoding"], "string");
    assert_eq!(got[0]["payload_bytes"], 5);
    assert_eq!(got[0]["redelivered"], false);
    assert_eq!(got[0]["exchange"], "");
    assert_eq!(got[0]["routing_key"], q.as_str());
    assert_eq!(got[0]["message_count"], 1);
    assert_eq!(
        got[0]["properties"],
        json!({"priority": 3, "delivery_mode": 2, "headers": {"h": "v", "n": 1}, "content_type": "text/plain"})
    );
    assert_eq!(got[1]["payload"], "two");
    assert_eq!(got[1]["message_count"], 0);
    // RabbitMQ shows no properties as [] (an empty Erlang list); Warren as {}.
    assert!(
        got[1]["properties"] == json!({}) || got[1]["properties"] == json!([]),
        "{}",
        got[1]
    );

    // base64 and truncate; ack_requeue_false takes it away.
    let got = get(
        &api,
        &q,
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64", "truncate": 2}),
    )
    .await;
    assert_eq!(got[0]["payload"], "aGU=");
    assert_eq!(got[0]["payload_encoding"], "base64");
    assert_eq!(got[0]["payload_bytes"], 5);
    assert_eq!(got[0]["redelivered"], true);
    assert_eq!(got[0]["message_count"], 1);
    // reject_requeue_false drops the other one.
    let got = get(
        &api,
        &q,
        json!({"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"}),
    )
    .await;
    assert_eq!(got[0]["payload"], "two");
    assert!(
        get(
            &api,
            &q,
            json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
        )
        .await
        .is_empty()
    );

    // A non-UTF-8 payload comes back as base64 even with "auto".
    assert!(
        publish(
            &api,
            "/",
            "amq.default",
            &q,
            json!({"payload": "/w==", "payload_encoding": "base64"})
        )
        .await
    );
    let got = get(
        &api,
        &q,
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    )
    .await;
    assert_eq!(got[0]["payload"], "/w==");
    assert_eq!(got[0]["payload_encoding"], "base64");

    api.post(
        &format!("/queues/%2F/{q}/get"),
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "bogus"}),
    )
    .await
    .expect_error(
        400,
        "bad_request",
        "Unsupported encoding. Please use auto or base64.",
    );
    api.post(
        &format!("/queues/%2F/{q}/get"),
        json!({"ackmode": "ack_requeue_false", "encoding": "auto"}),
    )
    .await
    .expect_error(400, "bad_request", "[{key_missing,count}]");
    api.post(
        "/exchanges/%2F/amq.default/publish",
        json!({"properties": {}, "routing_key": q, "payload": "x"}),
    )
    .await
    .expect_error(400, "bad_request", "[{key_missing,payload_encoding}]");
    api.post(
        "/exchanges/%2F/mt-no-such-exchange/publish",
        json!({"properties": {}, "routing_key": q, "payload": "x", "payload_encoding": "string"}),
    )
    .await
    .expect_error(
        400,
        "bad_request",
        "404 NOT_FOUND - no exchange 'mt-no-such-exchange' in vhost '/'",
    );
    api.delete(&format!("/queues/%2F/{q}")).await.expect(204);
}

#[tokio::test]
async fn purging_empties_a_queue_and_delete_honours_if_empty() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = id("q");
    let path = format!("/queues/%2F/{q}");
    api.put(&path, json!({"durable": false})).await.expect(201);
    for i in 0..3 {
        publish(
            &api,
            "/",
            "amq.default",
            &q,
            json!({"payload": format!("m{i}"), "payload_encoding": "string"}),
        )
        .await;
    }
    api.wait_for(&path, "3 messages", |v| v["messages"] == 3)
        .await;
    api.delete(&format!("{path}?if-empty=true"))
        .await
        .expect_error(
            400,
            "bad_request",
            &format!("queue '{q}' in vhost '/' not empty"),
        );
    api.delete(&format!("{path}/contents")).await.expect(204);
    api.wait_for(&path, "an empty queue", |v| v["messages"] == 0)
        .await;
    let got = get(
        &api,
        &q,
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    )
    .await;
    assert!(got.is_empty());
    api.delete(&format!("{path}?if-empty=true"))
        .await
        .expect(204);
    api.delete(&format!("/queues/%2F/{}/contents", id("none")))
        .await
        .expect_not_found();
}
