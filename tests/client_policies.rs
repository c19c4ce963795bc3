//! Policies and operator policies seen by a lapin client: queues and exchanges act on the
//! settings RabbitMQ 3.10 derives from their arguments and the policies that match them,
//! and a policy change reaches existing queues at once.
//!
//! Each test works in a vhost of its own (policies are per vhost), made and removed
//! through `common::admin`: Warren's operations in-process, or RabbitMQ's management API
//! with `AMQP_TEST_URL` set (its queues apply a policy asynchronously; the admin helper
//! waits a moment after each change there).

mod common;

use common::admin::Admin;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use serde_json::json;
use std::time::Duration;
use warren::broker::policy::PolicyKind;

/// A test's own vhost and a connection to it.
struct Env {
    admin: Admin,
    vhost: String,
    conn: Connection,
    ch: Channel,
    _broker: TestBroker,
}

impl Env {
    async fn new() -> Env {
        let b = TestBroker::start().await;
        let admin = b.admin();
        let vhost = format!("policies-{}", unique());
        admin.add_vhost(&vhost).await;
        let conn = b.connect_as("guest", "guest", &vhost).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        Env {
            admin,
            vhost,
            conn,
            ch,
            _broker: b,
        }
    }

    async fn policy(&self, name: &str, body: serde_json::Value) {
        self.admin.put_policy(&self.vhost, name, body).await;
    }

    async fn operator_policy(&self, name: &str, body: serde_json::Value) {
        self.admin
            .put_operator_policy(&self.vhost, name, body)
            .await;
    }

    async fn declare(&self, name: &str, arguments: FieldTable) {
        self.ch
            .queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
            .await
            .unwrap();
    }

    async fn exchange(&self, name: &str, kind: ExchangeKind, arguments: FieldTable) {
        self.ch
            .exchange_declare(
                name.into(),
                kind,
                ExchangeDeclareOptions::default(),
                arguments,
            )
            .await
            .unwrap();
    }

    async fn bind(&self, queue: &str, exchange: &str) {
        self.ch
            .queue_bind(
                queue.into(),
                exchange.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// Publishes each body to the default exchange, confirmed one by one.
    async fn publish(&self, queue: &str, bodies: &[&str]) {
        let ch = confirming_channel(&self.conn).await;
        for body in bodies {
            publish_confirmed(&ch, "", queue, body.as_bytes(), BasicProperties::default())
                .await
                .unwrap();
        }
    }

    /// Takes every ready message of a queue (acknowledged), in order.
    async fn drain(&self, queue: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = self
            .ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        }
        out
    }

    async fn count(&self, queue: &str) -> u32 {
        self.ch
            .queue_declare(queue.into(), passive(), FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }

    async fn done(self) {
        let _ = self.conn.close(200, "OK".into()).await;
        self.admin.delete_vhost(&self.vhost).await;
    }
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn long_str(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn header<'a>(d: &'a lapin::message::Delivery, key: &str) -> Option<&'a AMQPValue> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
}

fn header_str(d: &lapin::message::Delivery, key: &str) -> String {
    match header(d, key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {key}: expected a long string, got {other:?}"),
    }
}

/// `^name$`, for a policy on one queue or exchange.
fn exactly(name: &str) -> String {
    format!("^{}$", name.replace('.', "\\."))
}

const BODIES: [&str; 6] = ["m1", "m2", "m3", "m4", "m5", "m6"];

#[tokio::test]
async fn a_policys_message_ttl_applies_to_messages_published_after_it() {
    let env = Env::new().await;
    env.declare("q", FieldTable::default()).await;
    env.publish("q", &["before"]).await;
    env.policy(
        "ttl",
        json!({"pattern": "^q$", "definition": {"message-ttl": 50}, "apply-to": "queues"}),
    )
    .await;
    env.publish("q", &["after"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // As RabbitMQ: a queued message keeps the deadline it was published with.
    assert_eq!(env.drain("q").await, vec!["before"]);
    env.done().await;
}

#[tokio::test]
async fn a_policys_dead_letter_exchange_receives_what_expires() {
    let env = Env::new().await;
    env.exchange("dlx", ExchangeKind::Fanout, FieldTable::default())
        .await;
    env.declare("dead", FieldTable::default()).await;
    env.bind("dead", "dlx").await;
    env.declare("q", FieldTable::default()).await;
    env.policy(
        "dl",
        json!({"pattern": "^q$", "definition": {"message-ttl": 50, "dead-letter-exchange": "dlx"}}),
    )
    .await;
    env.publish("q", &["m"]).await;
    let consumer = env
        .ch
        .basic_consume(
            "dead".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut dead = Deliveries::new(consumer);
    let d = dead.next().await;
    assert_eq!(body(&d), "m");
    assert_eq!(header_str(&d, "x-first-death-reason"), "expired");
    assert_eq!(header_str(&d, "x-first-death-queue"), "q");
    env.done().await;
}

#[tokio::test]
async fn a_lower_max_length_drops_and_dead_letters_the_head_at_once() {
    let env = Env::new().await;
    env.exchange("dlx", ExchangeKind::Fanout, FieldTable::default())
        .await;
    env.declare("dead", FieldTable::default()).await;
    env.bind("dead", "dlx").await;
    env.declare("q", FieldTable::default()).await;
    env.publish("q", &BODIES[..5]).await;
    env.policy(
        "len",
        json!({"pattern": "^q$", "definition": {"max-length": 2, "dead-letter-exchange": "dlx"}}),
    )
    .await;
    assert_eq!(env.drain("q").await, vec!["m4", "m5"]);
    let dead = env.drain("dead").await;
    assert_eq!(dead, vec!["m1", "m2", "m3"]);
    env.done().await;
}

#[tokio::test]
async fn reject_publish_by_policy_nacks_what_does_not_fit() {
    let env = Env::new().await;
    env.declare("q", FieldTable::default()).await;
    env.policy(
        "full",
        json!({"pattern": "^q$", "definition": {"max-length": 1, "overflow": "reject-publish"}}),
    )
    .await;
    let ch = confirming_channel(&env.conn).await;
    let publish = |b: &'static [u8]| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap()
        }
    };
    assert_eq!(publish(b"fits").await, Confirmation::Ack(None));
    assert_eq!(publish(b"overflows").await, Confirmation::Nack(None));
    assert_eq!(env.drain("q").await, vec!["fits"]);
    env.done().await;
}

#[tokio::test]
async fn the_lower_of_argument_policy_and_operator_policy_wins() {
    /// x-max-length, policy max-length, operator policy max-length (None: not set).
    type Limits = (Option<i64>, Option<i64>, Option<i64>);
    // (limits, messages kept of 6)
    let cases: [(Limits, usize); 6] = [
        ((Some(3), Some(5), None), 3),
        ((Some(5), Some(2), None), 2),
        ((None, Some(5), Some(2)), 2),
        ((None, Some(2), Some(5)), 2),
        ((Some(1), Some(5), Some(3)), 1),
        ((None, None, Some(4)), 4),
    ];
    let env = Env::new().await;
    for (i, ((arg, policy, operator), kept)) in cases.into_iter().enumerate() {
        let q = format!("q{i}");
        let a = match arg {
            Some(n) => args(&[("x-max-length", AMQPValue::LongLongInt(n))]),
            None => FieldTable::default(),
        };
        env.declare(&q, a).await;
        if let Some(n) = policy {
            env.policy(
                &format!("p{i}"),
                json!({"pattern": exactly(&q), "definition": {"max-length": n}}),
            )
            .await;
        }
        if let Some(n) = operator {
            env.operator_policy(
                &format!("o{i}"),
                json!({"pattern": exactly(&q), "definition": {"max-length": n}}),
            )
            .await;
        }
        env.publish(&q, &BODIES).await;
        let got = env.drain(&q).await;
        assert_eq!(
            got,
            BODIES[6 - kept..].to_vec(),
            "argument {arg:?}, policy {policy:?}, operator policy {operator:?}"
        );
    }
    env.done().await;
}

#[tokio::test]
async fn the_highest_priority_policy_applies_and_deleting_it_falls_back() {
    let env = Env::new().await;
    env.declare("q", FieldTable::default()).await;
    env.policy(
        "low",
        json!({"pattern": "^q", "definition": {"max-length": 4}, "priority": 0}),
    )
    .await;
    env.policy(
        "high",
        json!({"pattern": "^q$", "definition": {"max-length": 1}, "priority": 1}),
    )
    .await;
    // Higher still, but for exchanges only: queues do not see it.
    env.policy(
        "exchanges",
        json!({"pattern": "^q$", "definition": {"max-length": 3}, "priority": 9, "apply-to": "exchanges"}),
    )
    .await;
    env.publish("q", &BODIES).await;
    assert_eq!(env.count("q").await, 1);
    env.admin.delete_policy(&env.vhost, "high").await;
    env.publish("q", &BODIES).await;
    assert_eq!(env.drain("q").await, BODIES[2..].to_vec());
    env.done().await;
}

#[tokio::test]
async fn deleting_the_policy_restores_the_argument() {
    let env = Env::new().await;
    env.declare("q", args(&[("x-max-length", AMQPValue::LongInt(4))]))
        .await;
    env.policy(
        "p",
        json!({"pattern": "^q$", "definition": {"max-length": 2}}),
    )
    .await;
    env.publish("q", &BODIES).await;
    assert_eq!(env.count("q").await, 2);
    env.admin.delete_policy(&env.vhost, "p").await;
    env.publish("q", &BODIES).await;
    assert_eq!(env.drain("q").await, BODIES[2..].to_vec());
    env.done().await;
}

#[tokio::test]
async fn a_policy_with_a_setting_the_queue_type_refuses_does_not_apply() {
    // delivery-limit is for quorum queues: RabbitMQ does not apply a policy holding it to
    // a classic queue at all, and the next matching policy applies.
    let env = Env::new().await;
    env.declare("q", FieldTable::default()).await;
    env.policy(
        "quorum-only",
        json!({"pattern": "^q$", "definition": {"max-length": 1, "delivery-limit": 5}, "priority": 1}),
    )
    .await;
    env.policy(
        "classic",
        json!({"pattern": "^q$", "definition": {"max-length": 3}}),
    )
    .await;
    env.publish("q", &BODIES).await;
    assert_eq!(env.count("q").await, 3);
    env.done().await;
}

#[tokio::test]
async fn alternate_exchange_by_policy_the_argument_first() {
    let env = Env::new().await;
    for (ae, q) in [
        ("ae-policy", "from-policy"),
        ("ae-argument", "from-argument"),
    ] {
        env.exchange(ae, ExchangeKind::Fanout, FieldTable::default())
            .await;
        env.declare(q, FieldTable::default()).await;
        env.bind(q, ae).await;
    }
    env.policy(
        "ae",
        json!({"pattern": "^ex-", "definition": {"alternate-exchange": "ae-policy"}, "apply-to": "exchanges"}),
    )
    .await;
    env.exchange("ex-plain", ExchangeKind::Direct, FieldTable::default())
        .await;
    env.exchange(
        "ex-with-argument",
        ExchangeKind::Direct,
        args(&[("alternate-exchange", long_str("ae-argument"))]),
    )
    .await;
    let ch = confirming_channel(&env.conn).await;
    for ex in ["ex-plain", "ex-with-argument"] {
        publish_confirmed(
            &ch,
            ex,
            "nowhere",
            ex.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    assert_eq!(env.drain("from-policy").await, vec!["ex-plain"]);
    assert_eq!(env.drain("from-argument").await, vec!["ex-with-argument"]);
    env.done().await;
}

#[tokio::test]
async fn policies_apply_to_exclusive_server_named_queues() {
    let env = Env::new().await;
    env.policy(
        "gen",
        json!({"pattern": "^amq\\.gen-", "definition": {"max-length": 1}, "apply-to": "queues"}),
    )
    .await;
    let q = env
        .ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let name = q.name().as_str().to_string();
    env.publish(&name, &BODIES[..3]).await;
    assert_eq!(env.drain(&name).await, vec!["m3"]);
    env.done().await;
}

#[tokio::test]
async fn a_policys_expires_deletes_the_unused_queue() {
    let env = Env::new().await;
    env.declare("q", FieldTable::default()).await;
    env.declare("kept", FieldTable::default()).await;
    env.policy(
        "exp",
        json!({"pattern": "^q$", "definition": {"expires": 200}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = env
        .ch
        .queue_declare("q".into(), passive(), FieldTable::default())
        .await;
    expect_code(r, 404);
    let ch = env.conn.create_channel().await.unwrap();
    ch.queue_declare("kept".into(), passive(), FieldTable::default())
        .await
        .expect("a queue the policy does not match stays");
    env.done().await;
}

#[tokio::test]
async fn invalid_policies_are_refused_with_rabbitmqs_texts() {
    let env = Env::new().await;
    use PolicyKind::*;
    let cases = [
        (
            Policy,
            json!({"definition": {"message-ttl": 1}}),
            "[{key_missing,pattern}]",
        ),
        (
            Policy,
            json!({}),
            "[{key_missing,pattern},{key_missing,definition}]",
        ),
        (
            Policy,
            json!({"pattern": "^q", "definition": {}}),
            "Validation failed\n\nno policy provided\n",
        ),
        (
            Policy,
            json!({"pattern": "^q", "definition": {"foo": "bar"}}),
            "Validation failed\n\n[{<<\"foo\">>,<<\"bar\">>}] are not recognised policy settings\n",
        ),
        (
            Policy,
            json!({"pattern": "^q", "definition": {"message-ttl": -1}}),
            "Validation failed\n\n-1 is not a valid message TTL\n",
        ),
        (
            Policy,
            json!({"pattern": "^q", "definition": {"overflow": "x"}}),
            "Validation failed\n\n<<\"x\">> is not a valid overflow value\n",
        ),
        (
            Policy,
            json!({"pattern": "(", "definition": {"max-length": 1}}),
            "Validation failed\n\npattern should be regular expression but is invalid: {\"missing )\",1}\n",
        ),
        (
            Policy,
            json!({"pattern": "^q", "definition": {"max-length": 1}, "apply-to": "classic_queues"}),
            "Validation failed\n\napply-to 'classic_queues' unrecognised; should be 'queues', 'exchanges' or 'all'\n",
        ),
        (
            Policy,
            json!({"pattern": "^q", "definition": {"max-length": 1}, "priority": "x"}),
            "Validation failed\n\npriority should be a number, actually was <<\"x\">>\n",
        ),
        (
            Policy,
            json!({"pattern": "^q", "definition": {"ha-mode": "exactly"}}),
            "Validation failed\n\nha-mode=\"exactly\" takes an integer, none given\n",
        ),
        (
            Operator,
            json!({"pattern": "^q", "definition": {"overflow": "drop-head"}}),
            "Validation failed\n\n[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings\n",
        ),
    ];
    for (kind, body, text) in cases {
        let r = env
            .admin
            .try_put_any_policy(kind, &env.vhost, "bad", body.clone())
            .await;
        assert_eq!(r, Err((400, text.to_string())), "{kind:?} {body}");
    }
    // An unknown vhost is a 404 (RabbitMQ's reason: vhost_not_found).
    let r = env
        .admin
        .try_put_any_policy(
            Policy,
            "no-such-vhost",
            "p",
            json!({"pattern": "^q", "definition": {"max-length": 1}}),
        )
        .await;
    assert_eq!(r.map_err(|(status, _)| status), Err(404));
    env.done().await;
}
