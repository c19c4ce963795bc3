//! The Prometheus endpoint (RabbitMQ's rabbitmq_prometheus plugin): `/metrics`,
//! `/metrics/per-object`, `/metrics/detailed`, parsed with a Prometheus text-format parser.
//!
//! Also run against RabbitMQ 3.10: `AMQP_TEST_URL=amqp://guest:guest@127.0.0.1:5673/
//! AMQP_TEST_MGMT_URL=http://127.0.0.1:15673 AMQP_TEST_PROMETHEUS_URL=http://127.0.0.1:15693`.
//! What 3.10 lacks and Warren has in the form later RabbitMQ versions give it (the
//! `rabbitmq_endpoint` label, the message size histogram) is checked on Warren only.

mod common;

use common::{Deliveries, TestBroker, unique, within};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use prometheus_parse::{Scrape, Value};
use std::time::{Duration, Instant};

/// One HTTP answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    allow: String,
    body: String,
}

async fn request(b: &TestBroker, method: reqwest::Method, path: &str) -> Answer {
    common::mgmt::install_crypto_provider();
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", b.prometheus_url()))
        .send()
        .await
        .expect("the endpoint answers");
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, allow) = (header("content-type"), header("allow"));
    Answer {
        status: r.status().as_u16(),
        content_type,
        allow,
        body: r.text().await.unwrap(),
    }
}

async fn text(b: &TestBroker, path: &str) -> String {
    let a = request(b, reqwest::Method::GET, path).await;
    assert_eq!(a.status, 200, "GET {path}: {}", a.body);
    a.body
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("a valid exposition")
}

/// The sum of the samples of `name` whose labels include `labels` (None: no sample).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for x in s.samples.iter().filter(|x| x.metric == name) {
        if labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)) {
            let v = match &x.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
                Value::Summary(_) => continue,
            };
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Scrapes `path` until `ready` holds (RabbitMQ updates queue and channel metrics every
/// statistics interval), or fails after 30 s with `what`.
async fn wait_until(b: &TestBroker, path: &str, what: &str, ready: impl Fn(&Scrape) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = text(b, path).await;
        if ready(&parse(&body)) {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what} in GET {path}:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn declare(ch: &Channel, q: &str, args: FieldTable) {
    ch.queue_declare(q.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
}

async fn publish(ch: &Channel, q: &str, body: &[u8]) {
    let confirm = ch
        .basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    within("confirm", confirm).await.unwrap();
}

/// Consumes from `q` with manual acknowledgements.
async fn consume(ch: &Channel, q: &str) -> Deliveries {
    Deliveries::new(
        ch.basic_consume(
            q.into(),
            "prom".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap(),
    )
}

#[tokio::test]
async fn families_carry_rabbitmqs_type_and_help() {
    let b = TestBroker::start().await;
    let a = request(&b, reqwest::Method::GET, "/metrics").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "text/plain; version=0.0.4");
    let mut cases = vec![
        (
            "rabbitmq_connections",
            "gauge",
            "Connections currently open",
        ),
        ("rabbitmq_queues", "gauge", "Queues available"),
        (
            "rabbitmq_connections_opened_total",
            "counter",
            "Total number of connections opened",
        ),
        (
            "rabbitmq_queue_messages_ready",
            "gauge",
            "Messages ready to be delivered to consumers",
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "gauge",
            "Messages delivered to consumers but not yet acknowledged",
        ),
        (
            "rabbitmq_process_resident_memory_bytes",
            "gauge",
            "Memory used in bytes",
        ),
        (
            "rabbitmq_resident_memory_limit_bytes",
            "gauge",
            "Memory high watermark in bytes",
        ),
        (
            "rabbitmq_disk_space_available_bytes",
            "gauge",
            "Disk space available in bytes",
        ),
        (
            "rabbitmq_disk_space_available_limit_bytes",
            "gauge",
            "Free disk space low watermark in bytes",
        ),
        (
            "rabbitmq_process_open_fds",
            "gauge",
            "Open file descriptors",
        ),
        (
            "rabbitmq_process_max_fds",
            "gauge",
            "Open file descriptors limit",
        ),
        ("rabbitmq_erlang_uptime_seconds", "gauge", "Node uptime"),
        (
            "rabbitmq_alarms_memory_used_watermark",
            "untyped",
            "is 1 if VM memory watermark alarm is in effect",
        ),
        (
            "rabbitmq_identity_info",
            "untyped",
            "RabbitMQ node & cluster identity info",
        ),
        (
            "rabbitmq_build_info",
            "untyped",
            "RabbitMQ & Erlang/OTP version info",
        ),
        (
            "rabbitmq_global_messages_received_total",
            "counter",
            "Total number of messages received from publishers",
        ),
        (
            "rabbitmq_global_messages_routed_total",
            "counter",
            "Total number of messages routed to queues or streams",
        ),
        (
            "rabbitmq_global_publishers",
            "gauge",
            "Current number of publishers",
        ),
        (
            "rabbitmq_global_messages_dead_lettered_maxlen_total",
            "counter",
            "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx",
        ),
    ];
    if b.is_warren() {
        // RabbitMQ 4.0's; 3.10 has no message size histogram.
        cases.push((
            "rabbitmq_message_size_bytes",
            "histogram",
            "Size of messages received from publishers",
        ));
    }
    for (name, kind, help) in cases {
        let header = format!("# TYPE {name} {kind}\n# HELP {name} {help}\n");
        assert!(a.body.contains(&header), "{header:?} missing");
    }
    let s = parse(&a.body);
    assert!(s.samples.len() > 50, "samples parsed: {}", s.samples.len());
}

#[tokio::test]
async fn counters_move_when_messages_flow() {
    let b = TestBroker::start().await;
    let before = parse(&text(&b, "/metrics").await);
    let conn = b.connect().await;
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = format!("prom-flow-{}", unique());
    declare(&publisher, &q, FieldTable::default()).await;
    const N: f64 = 5.0;
    for _ in 0..N as usize {
        publish(&publisher, &q, &[b'x'; 500]).await;
    }
    let consumer = conn.create_channel().await.unwrap();
    let mut deliveries = consume(&consumer, &q).await;
    for _ in 0..N as usize {
        let d = deliveries.next().await;
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    // A queue of one: the second message pushes the first out (no dead-letter exchange).
    let short = format!("prom-maxlen-{}", unique());
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    declare(&publisher, &short, args).await;
    publish(&publisher, &short, b"1").await;
    publish(&publisher, &short, b"2").await;

    let classic = [
        ("protocol", "amqp091"),
        ("queue_type", "rabbit_classic_queue"),
    ];
    let amqp = [("protocol", "amqp091")];
    let dropped = [
        ("queue_type", "rabbit_classic_queue"),
        ("dead_letter_strategy", "disabled"),
    ];
    // (metric, labels, how much it must grow)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
    let mut cases: Vec<Case> = vec![
        ("rabbitmq_global_messages_received_total", &amqp, N + 2.0),
        ("rabbitmq_global_messages_routed_total", &amqp, N + 2.0),
        (
            "rabbitmq_global_messages_received_confirm_total",
            &amqp,
            N + 2.0,
        ),
        ("rabbitmq_global_messages_confirmed_total", &amqp, N + 2.0),
        ("rabbitmq_global_messages_delivered_total", &classic, N),
        (
            "rabbitmq_global_messages_delivered_consume_manual_ack_total",
            &classic,
            N,
        ),
        ("rabbitmq_global_messages_acknowledged_total", &classic, N),
        (
            "rabbitmq_global_messages_dead_lettered_maxlen_total",
            &dropped,
            1.0,
        ),
        ("rabbitmq_connections_opened_total", &[], 1.0),
        ("rabbitmq_channels_opened_total", &[], 2.0),
        ("rabbitmq_queues_declared_total", &[], 2.0),
    ];
    if b.is_warren() {
        cases.push(("rabbitmq_message_size_bytes_count", &amqp, N + 2.0));
        cases.push(("rabbitmq_message_size_bytes_sum", &amqp, 500.0 * N + 2.0));
    }
    let base: Vec<f64> = cases
        .iter()
        .map(|(n, l, _)| value(&before, n, l).unwrap_or(0.0))
        .collect();
    wait_until(&b, "/metrics", "every counter to move", |s| {
        cases
            .iter()
            .zip(&base)
            .all(|((n, l, delta), before)| value(s, n, l).is_some_and(|now| now - before >= *delta))
    })
    .await;
    if b.is_warren() {
        // The broker is ours alone: the counts are exact, and the 500-byte messages
        // are in the (100, 1000] bucket.
        let s = parse(&text(&b, "/metrics").await);
        for ((n, l, delta), before) in cases.iter().zip(&base) {
            assert_eq!(value(&s, n, l).unwrap() - before, *delta, "{n}");
        }
        let h = s
            .samples
            .iter()
            .find(|x| x.metric == "rabbitmq_message_size_bytes")
            .expect("the histogram");
        let Value::Histogram(buckets) = &h.value else {
            panic!("not a histogram")
        };
        let count = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
        assert_eq!((count(100.0), count(1000.0)), (2.0, 7.0));
    }
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn per_object_shows_each_queue_channel_and_connection() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = format!("prom-per-object-{}", unique());
    declare(&ch, &q, FieldTable::default()).await;
    for _ in 0..5 {
        publish(&ch, &q, b"m").await;
    }
    let consumer = conn.create_channel().await.unwrap();
    consumer
        .basic_qos(2, BasicQosOptions::default())
        .await
        .unwrap();
    let _deliveries = consume(&consumer, &q).await;
    let labels = [("vhost", "/"), ("queue", q.as_str())];
    let cases: [(&str, f64); 4] = [
        ("rabbitmq_queue_messages_ready", 3.0),
        ("rabbitmq_queue_messages_unacked", 2.0),
        ("rabbitmq_queue_messages", 5.0),
        ("rabbitmq_queue_consumers", 1.0),
    ];
    wait_until(&b, "/metrics/per-object", "the queue's gauges", |s| {
        cases.iter().all(|(n, v)| value(s, n, &labels) == Some(*v))
    })
    .await;
    let s = parse(&text(&b, "/metrics/per-object").await);
    for (name, label) in [
        ("rabbitmq_channel_consumers", "channel"),
        ("rabbitmq_channel_messages_published_total", "channel"),
        ("rabbitmq_connection_incoming_bytes_total", "channel"),
    ] {
        assert!(
            s.samples
                .iter()
                .any(|x| x.metric == name && x.labels.get(label).is_some()),
            "{name} per object"
        );
    }
    // The aggregated endpoint sums them: no per-object labels.
    let s = parse(&text(&b, "/metrics").await);
    let ready: Vec<_> = s
        .samples
        .iter()
        .filter(|x| x.metric == "rabbitmq_queue_messages_ready")
        .collect();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].labels.get("queue"), None);
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn detailed_filters_by_family_and_vhost() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = format!("prom-detailed-{}", unique());
    declare(&ch, &q, FieldTable::default()).await;
    let queue = [("vhost", "/"), ("queue", q.as_str())];
    let coarse = "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F";
    wait_until(&b, coarse, "the queue", |s| {
        value(s, "rabbitmq_detailed_queue_messages_ready", &queue).is_some()
    })
    .await;
    struct Case {
        query: &'static str,
        present: &'static [&'static str],
        absent: &'static [&'static str],
    }
    const READY: &str = "rabbitmq_detailed_queue_messages_ready";
    const OPENED: &str = "rabbitmq_detailed_connections_opened_total";
    let ready = READY;
    let cases = [
        Case {
            query: "family=queue_coarse_metrics&vhost=%2F",
            present: &[READY, "rabbitmq_identity_info"],
            absent: &[OPENED, "rabbitmq_queue_messages_READY", "rabbitmq_queues"],
        },
        Case {
            query: "family=queue_coarse_metrics&vhost=no-such-vhost",
            present: &["rabbitmq_identity_info"],
            absent: &[READY],
        },
        Case {
            query: "family=connection_churn_metrics",
            present: &[OPENED],
            absent: &[READY],
        },
        Case {
            query: "family=queue_coarse_metrics&family=connection_churn_metrics",
            present: &[OPENED, READY],
            absent: &[],
        },
        Case {
            query: "family=no_such_family",
            present: &["rabbitmq_identity_info", "rabbitmq_build_info"],
            absent: &[READY, OPENED],
        },
    ];
    for c in cases {
        let s = parse(&text(&b, &format!("/metrics/detailed?{}", c.query)).await);
        let has = |n: &str| match n {
            n if n == ready => value(&s, n, &queue).is_some(),
            n => s.samples.iter().any(|x| x.metric == n),
        };
        for n in c.present {
            assert!(has(n), "{}: {n} missing", c.query);
        }
        for n in c.absent {
            assert!(!has(n), "{}: {n} present", c.query);
        }
    }
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_answered_as_rabbitmq_does() {
    let b = TestBroker::start().await;
    let cases = [
        (
            reqwest::Method::GET,
            "/metrics/detailed?family=queue_coarse_metrics&vhost=%ZZ",
            400,
            "",
        ),
        (
            reqwest::Method::GET,
            "/metrics/no-such-registry",
            404,
            "Unknown Registry",
        ),
        (reqwest::Method::POST, "/metrics", 405, ""),
        (reqwest::Method::DELETE, "/metrics/per-object", 405, ""),
    ];
    for (method, path, status, body) in cases {
        let a = request(&b, method.clone(), path).await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (status, body),
            "{method} {path}"
        );
        if status == 405 {
            assert_eq!(a.allow, "HEAD, GET, OPTIONS");
        }
    }
}

#[tokio::test]
async fn identity_info_names_node_cluster_and_endpoint() {
    let b = TestBroker::start().await;
    let cluster = b.mgmt().json("/cluster-name").await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let node = b.mgmt().json("/overview").await["node"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, endpoint) in [
        ("/metrics", "aggregated"),
        ("/metrics/per-object", "per-object"),
        ("/metrics/detailed?family=queue_coarse_metrics", "detailed"),
    ] {
        let s = parse(&text(&b, path).await);
        let ids: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.metric == "rabbitmq_identity_info")
            .collect();
        assert_eq!(ids.len(), 1, "{path}");
        let l = &ids[0].labels;
        assert_eq!(l.get("rabbitmq_cluster"), Some(cluster.as_str()), "{path}");
        assert_eq!(l.get("rabbitmq_node"), Some(node.as_str()), "{path}");
        assert!(
            l.get("rabbitmq_cluster_permanent_id")
                .is_some_and(|v| !v.is_empty())
        );
        if b.is_warren() {
            // RabbitMQ 3.11's label (3.10 has none), which the dashboard filters on.
            assert_eq!(l.get("rabbitmq_endpoint"), Some(endpoint), "{path}");
        }
    }
}

/// Each series the RabbitMQ-Overview dashboard queries (tests/fixtures), with the labels
/// it matches or joins on, is in Warren's scrape.
#[tokio::test]
async fn the_overview_dashboards_queries_find_their_series() {
    let b = TestBroker::start().await;
    if !b.is_warren() {
        return; // 3.10 predates the dashboard's rabbitmq_endpoint and histogram
    }
    let body = text(&b, "/metrics").await;
    let s = parse(&body);
    let fixture = include_str!("fixtures/rabbitmq_overview_dashboard.txt");
    let mut checked = 0;
    for line in fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap();
        let histogram = name.strip_suffix("_bucket");
        let series: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.metric == name || histogram == Some(x.metric.as_str()))
            .collect();
        assert!(!series.is_empty(), "{name}: no such series");
        for want in words {
            match want.split_once('=') {
                Some(("le", v)) => {
                    let v = v.trim_matches('"');
                    let le = if v == "+Inf" {
                        f64::INFINITY
                    } else {
                        v.parse().unwrap()
                    };
                    let found = series.iter().any(|x| match &x.value {
                        Value::Histogram(h) => h.iter().any(|b| b.less_than == le),
                        _ => false,
                    });
                    assert!(found, "{name}: no bucket le={v}");
                    // Written as the query writes it, for Prometheus versions that do
                    // not normalise `le`.
                    assert!(
                        body.contains(&format!("le=\"{v}\"")),
                        "{name}: le=\"{v}\" spelled otherwise"
                    );
                }
                Some((k, v)) => {
                    let v = v.trim_matches('"');
                    assert!(
                        series.iter().any(|x| x.labels.get(k) == Some(v)),
                        "{name}: no {k}={v}"
                    );
                }
                None => assert!(
                    series
                        .iter()
                        .all(|x| x.labels.get(want).is_some_and(|v| !v.is_empty())),
                    "{name}: label {want} missing"
                ),
            }
        }
        checked += 1;
    }
    assert!(checked > 40, "fixture lines checked: {checked}");
}
