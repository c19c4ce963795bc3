//! The management HTTP API, the broker as a whole: overview, whoami, nodes, extensions,
//! cluster-name, connections / channels / consumers (with a lapin client on the other
//! side), health checks, listing parameters, statistics and HTTPS.
//!
//! Every test also runs against RabbitMQ 3.10 (`AMQP_TEST_URL` and `AMQP_TEST_MGMT_URL`
//! set), where the broker is shared: names are unique, counts compared relatively. Where
//! Warren deliberately differs, the assertion is skipped against RabbitMQ with the reason.

mod common;

use common::mgmt::{Api, names, seg};
use common::{TestBroker, unique, within};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

/// A lapin connection named `name` (its `connection_name` client property).
async fn named_connection(b: &TestBroker, name: &str) -> Connection {
    Connection::connect(
        b.url(),
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .expect("connects")
}

/// The connection whose client gave it `name`, once the API lists it.
async fn listed_connection(api: &Api, name: &str) -> Value {
    let list = api
        .wait_for("/connections", "the connection", |l| {
            l.as_array()
                .unwrap()
                .iter()
                .any(|c| c["user_provided_name"] == name)
        })
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["user_provided_name"] == name)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn overview_has_rabbitmqs_fields_and_object_totals_follow_declarations() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let o = api.json("/overview").await;
    for field in [
        "management_version",
        "rates_mode",
        "exchange_types",
        "rabbitmq_version",
        "cluster_name",
        "erlang_version",
        "message_stats",
        "queue_totals",
        "object_totals",
        "node",
        "listeners",
        "contexts",
        "statistics_db_event_queue",
        "product_version",
        "product_name",
        "sample_retention_policies",
    ] {
        assert!(o.get(field).is_some(), "overview lacks {field}: {o}");
    }
    assert_eq!(o["rabbitmq_version"].as_str().unwrap()[..4], *"3.10");
    let types = names(&o["exchange_types"]);
    for t in ["direct", "fanout", "headers", "topic"] {
        assert!(types.contains(&t.to_string()), "{types:?}");
    }
    if b.is_warren() {
        // Warren names itself here (clients read rabbitmq_version for features).
        assert_eq!(o["product_name"], "Warren");
    }
    let amqp_listener = o["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["protocol"] == "amqp")
        .expect("an amqp listener");
    assert_eq!(
        amqp_listener["port"].as_u64().unwrap().to_string(),
        b.host().rsplit(':').next().unwrap()
    );
    let before = o["object_totals"]["queues"].as_u64().unwrap();

    let q = format!("mt-ov-{}", unique());
    api.put(&format!("/queues/%2F/{q}"), json!({"durable": false}))
        .await
        .expect(201);
    let after = api.json("/overview").await["object_totals"]["queues"]
        .as_u64()
        .unwrap();
    if b.is_warren() {
        assert_eq!(after, before + 1);
    } else {
        // Shared with other test runs: others may declare queues meanwhile.
        assert!(after > before, "{before} -> {after}");
    }
    api.delete(&format!("/queues/%2F/{q}")).await.expect(204);
    if b.is_warren() {
        let o = api.json("/overview").await;
        assert_eq!(o["object_totals"]["queues"], before);
    }
}

#[tokio::test]
async fn churn_rates_count_connections_channels_and_queues() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let churn = |o: &Value, k: &str| o["churn_rates"][k].as_u64().unwrap_or(0);
    let o = api.json("/overview").await;
    for k in [
        "connection_created",
        "connection_closed",
        "channel_created",
        "channel_closed",
        "queue_declared",
        "queue_created",
        "queue_deleted",
    ] {
        assert!(o["churn_rates"][k].is_u64(), "churn_rates lacks {k}: {o}");
        assert!(o["churn_rates"][format!("{k}_details")]["rate"].is_number());
    }
    let before = o;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = format!("mt-churn-{}", unique());
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_delete(q.as_str().into(), Default::default())
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    // Every counter moved by at least what this test did (RabbitMQ a moment later).
    api.wait_for("/overview", "the churn counters", |o| {
        [
            "connection_created",
            "connection_closed",
            "channel_created",
            "channel_closed",
            "queue_declared",
            "queue_created",
            "queue_deleted",
        ]
        .iter()
        .all(|k| churn(o, k) > churn(&before, k))
    })
    .await;
}

#[tokio::test]
async fn whoami_names_the_caller_and_its_tags() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let me = api.json("/whoami").await;
    assert_eq!(me["name"], "guest");
    assert_eq!(me["tags"], json!(["administrator"]));

    let user = format!("mt-who-{}", unique());
    api.put(
        &format!("/users/{user}"),
        json!({"password": "pw", "tags": "monitoring,management"}),
    )
    .await
    .expect(201);
    let me = api.as_user(&user, "pw").json("/whoami").await;
    assert_eq!(me["name"], user.as_str());
    let mut tags: Vec<String> = serde_json::from_value(me["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["management", "monitoring"]);
    api.delete(&format!("/users/{user}")).await.expect(204);
}

/// The node fields rabbitmqadmin-ng and rabbitmq_http_client require.
const NODE_FIELDS: [&str; 13] = [
    "name",
    "uptime",
    "run_queue",
    "processors",
    "os_pid",
    "fd_total",
    "proc_total",
    "mem_limit",
    "mem_alarm",
    "disk_free_limit",
    "disk_free_alarm",
    "rates_mode",
    "enabled_plugins",
];

#[tokio::test]
async fn feature_flags_and_the_node_memory_breakdown() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let flags = api.json("/feature-flags").await;
    let flags = flags.as_array().expect("a list");
    for name in [
        "quorum_queue",
        "stream_queue",
        "user_limits",
        "virtual_host_metadata",
    ] {
        let f = flags
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no feature flag {name}"));
        assert_eq!(f["state"], "enabled", "{f}");
    }
    let node = api.json("/overview").await["node"]
        .as_str()
        .unwrap()
        .to_string();
    let mem = api.json(&format!("/nodes/{}/memory", seg(&node))).await;
    assert!(mem["memory"]["total"]["rss"].as_u64().unwrap() > 0, "{mem}");
    assert!(mem["memory"]["queue_procs"].is_u64(), "{mem}");
}

#[tokio::test]
async fn nodes_list_this_node_with_the_fields_tools_require() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let nodes = api.json("/nodes").await;
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    for f in NODE_FIELDS {
        assert!(n.get(f).is_some(), "node lacks {f}: {n}");
    }
    assert!(n.get("being_drained").is_some() || !b.is_warren());
    assert_eq!(n["running"], true);
    assert_eq!(n["mem_alarm"], false);
    assert_eq!(n["disk_free_alarm"], false);
    assert!(n["uptime"].as_u64().unwrap() > 0);
    assert!(n["processors"].as_u64().unwrap() >= 1);
    assert!(n["mem_limit"].as_u64().unwrap() > 0);
    assert!(
        n["enabled_plugins"]
            .as_array()
            .unwrap()
            .contains(&json!("rabbitmq_management"))
    );
    let name = n["name"].as_str().unwrap();
    assert_eq!(api.json("/overview").await["node"], name);

    let one = api.json(&format!("/nodes/{}", seg(name))).await;
    assert_eq!(one["name"], name);
    for f in NODE_FIELDS {
        assert!(one.get(f).is_some(), "nodes/{name} lacks {f}");
    }
    if b.is_warren() {
        // RabbitMQ 3.10 answers 500 (a crash) for a node it does not know.
        api.get("/nodes/nobody%40nowhere").await.expect_not_found();
    }
}

#[tokio::test]
async fn extensions_and_cluster_name_answer() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    assert!(api.json("/extensions").await.is_array());
    let name = api.json("/cluster-name").await;
    assert!(name["name"].as_str().is_some_and(|n| !n.is_empty()));
}

/// The connection.start a client reads first (frame header and payload).
async fn connection_start(amqp_url: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = amqp_url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in the URL");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let mut header = [0u8; 7];
    s.read_exact(&mut header).await.unwrap();
    let size = u32::from_be_bytes(header[3..7].try_into().unwrap()) as usize;
    let mut payload = vec![0u8; size + 1];
    s.read_exact(&mut payload).await.unwrap();
    payload
}

#[tokio::test]
async fn put_cluster_name_renames_the_cluster_in_the_api_and_in_connection_start() {
    let b = TestBroker::start().await;
    if !b.is_warren() {
        // Renaming the shared reference broker would disturb other runs.
        return;
    }
    let api = b.mgmt();
    let name = format!("mt-cluster-{}", unique());
    api.put("/cluster-name", json!({ "name": name }))
        .await
        .expect(204);
    assert_eq!(api.json("/cluster-name").await["name"], name.as_str());
    assert_eq!(api.json("/overview").await["cluster_name"], name.as_str());
    // connection.start's server properties: cluster_name, a long string (S).
    let start = connection_start(b.url()).await;
    let mut expected = b"\x0ccluster_nameS".to_vec();
    expected.extend_from_slice(&(name.len() as u32).to_be_bytes());
    expected.extend_from_slice(name.as_bytes());
    assert!(
        start.windows(expected.len()).any(|w| w == expected),
        "connection.start does not name the cluster {name}"
    );
    // Only administrators rename it.
    let u = format!("mt-mon-{}", unique());
    api.put(
        &format!("/users/{u}"),
        json!({"password": "pw", "tags": "monitoring"}),
    )
    .await
    .expect(201);
    api.as_user(&u, "pw")
        .put("/cluster-name", json!({"name": "x"}))
        .await
        .expect_error(401, "not_authorised", "Not administrator user");
}

#[tokio::test]
async fn connections_channels_and_consumers_show_a_lapin_client() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let name = format!("mt-conn-{}", unique());
    let conn = named_connection(&b, &name).await;
    let ch = conn.create_channel().await.unwrap();
    let q = format!("mt-cq-{}", unique());
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            q.as_str().into(),
            "mt-ctag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let c = listed_connection(&api, &name).await;
    assert_eq!(c["user"], "guest");
    assert_eq!(c["vhost"], "/");
    assert_eq!(c["protocol"], "AMQP 0-9-1");
    assert_eq!(c["state"], "running");
    assert_eq!(c["client_properties"]["connection_name"], name.as_str());
    assert_eq!(c["client_properties"]["product"], "lapin");
    assert!(c["client_properties"]["capabilities"].is_object());
    assert_eq!(c["auth_mechanism"], "PLAIN");
    assert_eq!(c["ssl"], false);
    let cname = c["name"].as_str().unwrap().to_string();
    assert!(cname.contains(" -> "), "{cname}");

    let one = api.json(&format!("/connections/{}", seg(&cname))).await;
    assert_eq!(one["name"], cname.as_str());
    let by_user = api.json("/connections/username/guest").await;
    assert!(names(&by_user).contains(&cname));
    let in_vhost = api.json("/vhosts/%2F/connections").await;
    assert!(names(&in_vhost).contains(&cname));
    // The vhost counts its connections' traffic.
    api.wait_for("/vhosts/%2F", "the vhost's traffic", |v| {
        v["recv_oct"].as_u64().is_some_and(|n| n > 0)
            && v["send_oct"].as_u64().is_some_and(|n| n > 0)
    })
    .await;

    let chans = api
        .wait_for(
            &format!("/connections/{}/channels", seg(&cname)),
            "the channel",
            |l| l.as_array().is_some_and(|a| a.len() == 1),
        )
        .await;
    let chan = &chans[0];
    assert_eq!(chan["number"], 1);
    assert_eq!(chan["connection_details"]["name"], cname.as_str());
    let chan_name = chan["name"].as_str().unwrap().to_string();
    assert_eq!(chan_name, format!("{cname} (1)"));
    let one = api.json(&format!("/channels/{}", seg(&chan_name))).await;
    assert_eq!(one["number"], 1);
    assert!(names(&api.json("/channels").await).contains(&chan_name));
    assert!(names(&api.json("/vhosts/%2F/channels").await).contains(&chan_name));

    let consumers = api
        .wait_for("/consumers/%2F", "the consumer", |l| {
            l.as_array()
                .unwrap()
                .iter()
                .any(|c| c["queue"]["name"] == q.as_str())
        })
        .await;
    let k = consumers
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["queue"]["name"] == q.as_str())
        .unwrap();
    assert_eq!(k["consumer_tag"], "mt-ctag");
    assert_eq!(k["ack_required"], true);
    assert_eq!(k["exclusive"], false);
    assert_eq!(k["queue"]["vhost"], "/");
    assert_eq!(k["channel_details"]["connection_name"], cname.as_str());
    let all = api.json("/consumers").await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|c| c["consumer_tag"] == "mt-ctag" && c["queue"]["name"] == q.as_str())
    );
    // RabbitMQ fills the queue's consumer fields from its statistics, a moment later.
    let queue = api
        .wait_for(&format!("/queues/%2F/{q}"), "the queue's consumer", |v| {
            v["consumers"] == 1
        })
        .await;
    assert_eq!(queue["consumer_details"][0]["consumer_tag"], "mt-ctag");
    drop(consumer);
    conn.close(200, "bye".into()).await.unwrap();
    api.wait_for("/connections", "the connection to go", |l| {
        !names(l).contains(&cname)
    })
    .await;
    api.get(&format!("/connections/{}", seg(&cname)))
        .await
        .expect_not_found();
}

#[tokio::test]
async fn deleting_a_connection_closes_it_with_320_and_the_x_reason() {
    use futures_lite::StreamExt;
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let name = format!("mt-kill-{}", unique());
    let conn = named_connection(&b, &name).await;
    let mut events = Box::pin(conn.events_listener());
    let cname = listed_connection(&api, &name).await["name"]
        .as_str()
        .unwrap()
        .to_string();
    api.request(
        reqwest::Method::DELETE,
        &format!("/connections/{}", seg(&cname)),
        None,
        &[("X-Reason", "mt says goodbye")],
    )
    .await
    .expect(204);
    let err = within("connection.close", async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e))
                    if matches!(e.kind(), lapin::ErrorKind::ProtocolError(_)) =>
                {
                    return e;
                }
                Some(_) => continue,
                None => panic!("the connection's events ended without an error"),
            }
        }
    })
    .await;
    assert_eq!(
        common::amqp_error(&err),
        (320, "CONNECTION_FORCED - mt says goodbye".to_string())
    );
    api.wait_for("/connections", "the connection to go", |l| {
        !names(l).contains(&cname)
    })
    .await;
    api.delete(&format!("/connections/{}", seg(&cname)))
        .await
        .expect_not_found();
}

#[tokio::test]
async fn health_checks_answer_ok_and_503_as_rabbitmq() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    // Other tests create and delete vhosts meanwhile; RabbitMQ counts one that is still
    // starting as down (503), so this one is polled.
    api.wait_for("/health/checks/virtual-hosts", "all vhosts up", |v| {
        v["status"] == "ok"
    })
    .await;
    for path in [
        "/health/checks/alarms",
        "/health/checks/local-alarms",
        "/health/checks/certificate-expiration/1/months",
        "/aliveness-test/%2F",
    ] {
        let r = api.get(path).await.expect(200);
        assert_eq!(r.json["status"], "ok", "{path}: {}", r.text);
    }
    let r = api
        .get("/health/checks/node-is-quorum-critical")
        .await
        .expect(200);
    assert_eq!(
        r.json,
        json!({"status": "ok", "reason": "single node cluster"})
    );
    let r = api
        .get("/health/checks/node-is-mirror-sync-critical")
        .await
        .expect(200);
    assert_eq!(
        r.json,
        json!({"status": "ok", "reason": "single node cluster"})
    );

    let port: u16 = b.host().rsplit(':').next().unwrap().parse().unwrap();
    let r = api
        .get(&format!("/health/checks/port-listener/{port}"))
        .await
        .expect(200);
    assert_eq!(r.json, json!({"status": "ok", "port": port}));
    let r = api.get("/health/checks/port-listener/1").await.expect(503);
    assert_eq!(r.json["status"], "failed");
    assert_eq!(r.json["reason"], "No active listener");
    assert_eq!(r.json["missing"], 1);
    assert!(r.json["ports"].as_array().unwrap().contains(&json!(port)));
    api.get("/health/checks/port-listener/abc")
        .await
        .expect_error(400, "bad_request", "Invalid port");

    for (asked, answered) in [("amqp", "amqp"), ("amqp091", "amqp"), ("http", "http")] {
        let r = api
            .get(&format!("/health/checks/protocol-listener/{asked}"))
            .await
            .expect(200);
        assert_eq!(r.json, json!({"status": "ok", "protocol": answered}));
    }
    let r = api
        .get("/health/checks/protocol-listener/stomp")
        .await
        .expect(503);
    assert_eq!(r.json["reason"], "No active listener");
    assert_eq!(r.json["missing"], "stomp");
    assert!(
        r.json["protocols"]
            .as_array()
            .unwrap()
            .contains(&json!("amqp"))
    );

    api.get("/aliveness-test/mt-no-such-vhost")
        .await
        .expect_not_found();
}

#[tokio::test]
async fn listings_sort_select_columns_paginate_and_filter() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    // Queues of our own, in their own vhost so that the counts are ours alone.
    let vhost = format!("mt-list-{}", unique());
    api.put(&format!("/vhosts/{vhost}"), json!({}))
        .await
        .expect(201);
    for (name, n) in [("b-two", 2), ("a-three", 3), ("c-one", 1), ("Ab-none", 0)] {
        api.put(
            &format!("/queues/{vhost}/{name}"),
            json!({"durable": false}),
        )
        .await
        .expect(201);
        for i in 0..n {
            api.post(
                &format!("/exchanges/{vhost}/amq.default/publish"),
                json!({"properties": {}, "routing_key": name, "payload": format!("m{i}"), "payload_encoding": "string"}),
            )
            .await
            .expect(200);
        }
    }
    let base = format!("/queues/{vhost}");
    // RabbitMQ's message counts come from its statistics, a moment later.
    api.wait_for(
        &format!("{base}?columns=name,messages"),
        "the counts",
        |l| {
            l.as_array()
                .unwrap()
                .iter()
                .map(|q| q["messages"].as_u64().unwrap_or(9))
                .sum::<u64>()
                == 6
        },
    )
    .await;
    let sorted = api.json(&format!("{base}?sort=name")).await;
    assert_eq!(names(&sorted), ["Ab-none", "a-three", "b-two", "c-one"]);
    let by_messages = api
        .json(&format!("{base}?sort=messages&sort_reverse=true"))
        .await;
    assert_eq!(
        names(&by_messages),
        ["a-three", "b-two", "c-one", "Ab-none"]
    );

    let cols = api
        .json(&format!("{base}?sort=name&columns=name,messages"))
        .await;
    assert_eq!(cols[1], json!({"name": "a-three", "messages": 3}));

    let page = api
        .json(&format!("{base}?page=2&page_size=3&sort=name"))
        .await;
    assert_eq!(page["page"], 2);
    assert_eq!(page["page_size"], 3);
    assert_eq!(page["page_count"], 2);
    assert_eq!(page["total_count"], 4);
    assert_eq!(page["filtered_count"], 4);
    assert_eq!(page["item_count"], 1);
    assert_eq!(names(&page["items"]), ["c-one"]);

    // The name filter: a case-insensitive substring, or a regular expression.
    let filtered = api.json(&format!("{base}?page=1&name=AB&sort=name")).await;
    assert_eq!(names(&filtered["items"]), ["Ab-none"]);
    assert_eq!(filtered["filtered_count"], 1);
    assert_eq!(filtered["total_count"], 4);
    let regex = api
        .json(&format!(
            "{base}?page=1&name=%5E%5Bab%5D-&use_regex=true&sort=name"
        ))
        .await;
    assert_eq!(names(&regex["items"]), ["a-three", "b-two"]);
    let literal = api.json(&format!("{base}?page=1&name=%5E%5Bab%5D-")).await;
    assert_eq!(literal["filtered_count"], 0);

    for (query, error, reason) in [
        (
            "page=0",
            "invalid_pagination_parameters",
            "Invalid pagination parameters: page number 0, page size undefined",
        ),
        (
            "page=1&page_size=600",
            "invalid_pagination_parameters",
            "Invalid pagination parameters: page number 1, page size 600",
        ),
        (
            "page=9",
            "page_out_of_range",
            "Page out of range, page: 9 page size: 100, len: 4",
        ),
        ("page=x", "bad_request", "Pagination parameters are invalid"),
        (
            "page=1&name=(&use_regex=true",
            "bad_request",
            "Pagination parameters are invalid",
        ),
    ] {
        api.get(&format!("{base}?{query}"))
            .await
            .expect_error(400, error, reason);
    }
    api.delete(&format!("/vhosts/{vhost}")).await.expect(204);
}

#[tokio::test]
async fn an_empty_listing_has_one_empty_page() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let vhost = format!("mt-empty-{}", unique());
    api.put(&format!("/vhosts/{vhost}"), json!({}))
        .await
        .expect(201);
    let page = api.json(&format!("/queues/{vhost}?page=1")).await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["total_count"], 0);
    assert_eq!(page["page_count"], 0);
    api.delete(&format!("/vhosts/{vhost}")).await.expect(204);
}

/// Publishes `n` messages to `queue` through `exchange` over AMQP.
async fn publish_amqp(conn: &Connection, exchange: &str, key: &str, n: usize) {
    let ch = common::confirming_channel(conn).await;
    for i in 0..n {
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn message_stats_count_publishes_on_queue_exchange_and_overview() {
    let b = TestBroker::start_with(|c| c.mgmt.stats_interval = 200).await;
    let api = b.mgmt();
    let id = unique();
    let (x, q) = (format!("mt-sx-{id}"), format!("mt-sq-{id}"));
    api.put(
        &format!("/exchanges/%2F/{x}"),
        json!({"type": "fanout", "durable": false}),
    )
    .await
    .expect(201);
    api.put(&format!("/queues/%2F/{q}"), json!({"durable": false}))
        .await
        .expect(201);
    api.post(&format!("/bindings/%2F/e/{x}/q/{q}"), json!({}))
        .await
        .expect(201);
    let before = api.json("/overview").await["message_stats"]["publish"]
        .as_u64()
        .unwrap_or(0);
    let conn = b.connect().await;
    publish_amqp(&conn, &x, "", 5).await;

    api.wait_for(&format!("/queues/%2F/{q}"), "publish on the queue", |v| {
        v["message_stats"]["publish"] == 5 && v["messages"] == 5
    })
    .await;
    api.wait_for(&format!("/exchanges/%2F/{x}"), "publish_in", |v| {
        v["message_stats"]["publish_in"] == 5 && v["message_stats"]["publish_out"] == 5
    })
    .await;
    api.wait_for("/overview", "publish in the overview", |v| {
        v["message_stats"]["publish"].as_u64().unwrap_or(0) >= before + 5
            && v["queue_totals"]["messages"].as_u64().unwrap_or(0) >= 5
    })
    .await;
    let vhost = api.json("/vhosts/%2F").await;
    assert!(vhost["messages"].as_u64().unwrap() >= 5);

    if b.is_warren() {
        // RabbitMQ's rates move every 5 s (collect_statistics_interval); Warren's with
        // mgmt.stats_interval, here 200 ms.
        publish_amqp(&conn, &x, "", 20).await;
        api.wait_for(&format!("/queues/%2F/{q}"), "a publish rate", |v| {
            v["message_stats"]["publish_details"]["rate"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0
        })
        .await;
        // The levels' rates: up while messages arrive, down when they go.
        publish_amqp(&conn, &x, "", 20).await;
        let rate = |v: &Value, k: &str| v[k]["rate"].as_f64().unwrap_or(0.0);
        api.wait_for(&format!("/queues/%2F/{q}"), "a rising ready count", |v| {
            rate(v, "messages_ready_details") > 0.0 && rate(v, "messages_details") > 0.0
        })
        .await;
        api.delete(&format!("/queues/%2F/{q}/contents"))
            .await
            .expect(204);
        api.wait_for(&format!("/queues/%2F/{q}"), "a falling ready count", |v| {
            rate(v, "messages_ready_details") < 0.0
        })
        .await;
    }
    api.delete(&format!("/exchanges/%2F/{x}")).await.expect(204);
    api.delete(&format!("/queues/%2F/{q}")).await.expect(204);
}

#[tokio::test]
async fn unknown_paths_answer_rabbitmqs_404() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    for path in [
        "/queues/%2F/mt-no-such-queue",
        "/exchanges/%2F/mt-no-such-exchange",
        "/queues/mt-no-such-vhost/q",
        "/vhosts/mt-no-such-vhost",
        "/users/mt-no-such-user",
        "/permissions/%2F/mt-no-such-user",
        "/connections/nope",
        "/channels/nope",
    ] {
        api.get(path).await.expect_not_found();
    }
}

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it, as PEM files
/// in a fresh directory: (directory, CA certificate).
fn https_certificates() -> (
    std::path::PathBuf,
    rustls::pki_types::CertificateDer<'static>,
) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let dir = std::env::temp_dir().join(format!("warren-mgmt-tls-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Warren mgmt test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    (dir, ca.der().clone())
}

#[tokio::test]
async fn the_api_is_served_over_https_with_mgmt_tls_listen() {
    let b = TestBroker::start().await;
    if !b.is_warren() {
        // The reference RabbitMQ serves its API over plain HTTP only.
        return;
    }
    let (dir, ca) = https_certificates();
    let b = TestBroker::start_with(|c| {
        c.mgmt.tls_listen = "127.0.0.1:0".into();
        c.mgmt.tls_cert_file = dir.join("server.pem");
        c.mgmt.tls_key_file = dir.join("server.key");
    })
    .await;
    let addr = b
        .server()
        .unwrap()
        .mgmt_tls_addr
        .expect("an HTTPS listener");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let https = Api::with_tls(&format!("https://{addr}"), "guest", "guest", roots);
    let o = https.json("/overview").await;
    assert_eq!(o["node"], b.mgmt().json("/overview").await["node"]);
    assert!(
        o["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["protocol"] == "https" && l["port"] == addr.port())
    );
    // The same rules apply over HTTPS.
    https
        .as_user("guest", "wrong")
        .get("/overview")
        .await
        .expect_error(401, "not_authorized", "Login failed");
    https
        .get(&format!("/health/checks/port-listener/{}", addr.port()))
        .await
        .expect(200);
    // A client that does not trust the CA is refused by TLS itself.
    let stranger = Api::with_tls(
        &format!("https://{addr}"),
        "guest",
        "guest",
        rustls::RootCertStore::empty(),
    );
    let err = stranger.try_get("/overview").await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn connections_are_blocking_then_blocked_under_a_resource_alarm() {
    // Warren only: a test cannot raise a shared RabbitMQ's alarm. Over a 1 MiB memory
    // watermark the alarm is raised at once: every connection is `blocking`, and one
    // that publishes is then `blocked` (RabbitMQ's states), which the web UI's banner
    // counts.
    let b = TestBroker::start_warren_with(|c| c.memory.high_watermark = "1MiB".into()).await;
    let api = b.mgmt();
    let name = unique();
    let conn = named_connection(&b, &name).await;
    assert_eq!(listed_connection(&api, &name).await["state"], "blocking");
    let ch = conn.create_channel().await.unwrap();
    let _ = ch
        .basic_publish(
            "".into(),
            "nowhere".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    api.wait_for("/connections", "the blocked connection", |l| {
        l.as_array()
            .unwrap()
            .iter()
            .any(|c| c["user_provided_name"] == name && c["state"] == "blocked")
    })
    .await;
    let nodes = api.json("/nodes").await;
    assert_eq!(nodes[0]["mem_alarm"], true);
}

#[tokio::test]
async fn connections_are_visible_to_their_user_and_to_monitoring_users() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let id = unique();
    let (owner, other, mon) = (
        format!("mt-own-{id}"),
        format!("mt-oth-{id}"),
        format!("mt-mon-{id}"),
    );
    for (u, tags) in [
        (&owner, "management"),
        (&other, "management"),
        (&mon, "monitoring"),
    ] {
        api.put(
            &format!("/users/{u}"),
            json!({"password": "pw", "tags": tags}),
        )
        .await
        .expect(201);
    }
    api.put(
        &format!("/permissions/%2F/{owner}"),
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await
    .expect(201);
    let label = format!("mt-vis-{id}");
    let conn = Connection::connect(
        &b.url_for(&owner, "pw", "/"),
        ConnectionProperties::default().with_connection_name(label.as_str().into()),
    )
    .await
    .expect("connects");
    let _ch = conn.create_channel().await.unwrap();
    let cname = listed_connection(&api, &label).await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let has = |l: &Value| names(l).contains(&cname);
    let as_owner = api.as_user(&owner, "pw");
    let as_other = api.as_user(&other, "pw");
    let as_mon = api.as_user(&mon, "pw");
    assert!(has(&as_owner.json("/connections").await));
    assert!(has(&as_mon.json("/connections").await));
    assert!(!has(&as_other.json("/connections").await));
    as_other
        .get(&format!("/connections/{}", seg(&cname)))
        .await
        .expect_error(
            401,
            "not_authorised",
            "User not authorised to access object",
        );
    assert!(
        as_mon
            .wait_for("/channels", "the channel", |l| !l
                .as_array()
                .unwrap()
                .is_empty())
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["connection_details"]["name"] == cname.as_str())
    );
    assert!(
        !as_other
            .json("/channels")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["connection_details"]["name"] == cname.as_str())
    );
    // A monitoring user may not close it; its owner may.
    as_mon
        .delete(&format!("/connections/{}", seg(&cname)))
        .await
        .expect_error(
            401,
            "not_authorised",
            "User not authorised to access object",
        );
    as_owner
        .delete(&format!("/connections/{}", seg(&cname)))
        .await
        .expect(204);
    api.wait_for("/connections", "the connection to go", |l| !has(l))
        .await;
    for u in [&owner, &other, &mon] {
        api.delete(&format!("/users/{u}")).await.expect(204);
    }
}

#[tokio::test]
async fn deleting_a_users_connections_closes_them_all() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let u = format!("mt-many-{}", unique());
    api.put(
        &format!("/users/{u}"),
        json!({"password": "pw", "tags": ""}),
    )
    .await
    .expect(201);
    api.put(
        &format!("/permissions/%2F/{u}"),
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await
    .expect(201);
    let c1 = b.connect_as(&u, "pw", "/").await.unwrap();
    let c2 = b.connect_as(&u, "pw", "/").await.unwrap();
    let path = format!("/connections/username/{u}");
    api.wait_for(&path, "two connections", |l| {
        l.as_array().unwrap().len() == 2
    })
    .await;
    api.delete(&path).await.expect(204);
    api.wait_for(&path, "no connections", |l| {
        l.as_array().unwrap().is_empty()
    })
    .await;
    assert!(c1.create_channel().await.is_err());
    assert!(c2.create_channel().await.is_err());
    api.delete(&format!("/users/{u}")).await.expect(204);
}

#[tokio::test]
async fn single_active_consumers_show_which_one_is_active() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = format!("mt-sac-{}", unique());
    api.put(
        &format!("/queues/%2F/{q}"),
        json!({"durable": false, "arguments": {"x-single-active-consumer": true}}),
    )
    .await
    .expect(201);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut keep = Vec::new();
    for tag in ["mt-first", "mt-second"] {
        keep.push(
            ch.basic_consume(
                q.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap(),
        );
    }
    let queue = api
        .wait_for(&format!("/queues/%2F/{q}"), "both consumers", |v| {
            v["consumers"] == 2
        })
        .await;
    assert_eq!(queue["single_active_consumer_tag"], "mt-first");
    let consumers = api.json("/consumers/%2F").await;
    let of = |tag: &str| {
        consumers
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["consumer_tag"] == tag)
            .unwrap()
            .clone()
    };
    assert_eq!(of("mt-first")["active"], true);
    assert_eq!(of("mt-first")["activity_status"], "single_active");
    assert_eq!(of("mt-second")["active"], false);
    assert_eq!(of("mt-second")["activity_status"], "waiting");

    // The channel in detail lists its consumers.
    let chan = of("mt-first")["channel_details"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = api
        .wait_for(&format!("/channels/{}", seg(&chan)), "the consumers", |v| {
            v["consumer_details"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
        .await;
    assert_eq!(detail["consumer_count"], 2);
    drop(keep);
    conn.close(200, "".into()).await.unwrap();
    api.delete(&format!("/queues/%2F/{q}")).await.expect(204);
}

#[tokio::test]
async fn answers_are_json_whatever_the_accept_header_asks_for() {
    let b = TestBroker::start().await;
    if !b.is_warren() {
        // Deliberately better than RabbitMQ 3.10, whose web server answers 406 Not
        // Acceptable to an Accept header without JSON in it (browsers' text/html).
        return;
    }
    let api = b.mgmt();
    for accept in ["text/html", "application/xml", "*/*", "application/json"] {
        for path in ["/overview", "/queues", "/nope-not-a-resource"] {
            let r = api
                .request(reqwest::Method::GET, path, None, &[("accept", accept)])
                .await;
            let ct = r.header("content-type").unwrap_or_default();
            assert!(
                ct.starts_with("application/json"),
                "GET {path} with Accept {accept}: {} {ct}",
                r.status
            );
            assert!(
                r.json.is_object() || r.json.is_array(),
                "{path}: {}",
                r.text
            );
        }
    }
}
