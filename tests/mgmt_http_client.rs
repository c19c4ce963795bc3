//! A third-party client of the management API, the `rabbitmq_http_client` crate (the
//! library rabbitmqadmin-ng is built on), driven against Warren: it deserialises every
//! answer into strict types, so a field it requires that Warren leaves out fails here.
//! A test per area. Also passes against RabbitMQ 3.10 (see mgmt_api.rs).

mod common;

use common::{TestBroker, unique};
use rabbitmq_http_client::api::{Client, ClientBuilder};
use rabbitmq_http_client::commons::QueueType;
use rabbitmq_http_client::password_hashing;
use rabbitmq_http_client::requests::{
    ExchangeParams, MessageProperties, Permissions, QueueParams, UserParams, VirtualHostParams,
};

type Http = Client<String, &'static str, &'static str>;

fn client(b: &TestBroker) -> Http {
    common::mgmt::install_crypto_provider();
    ClientBuilder::new()
        .with_endpoint(format!("{}/api", b.mgmt_url()))
        .with_basic_auth_credentials("guest", "guest")
        .build()
        .expect("a client")
}

fn id(prefix: &str) -> String {
    format!("mt-{prefix}-{}", unique())
}

#[tokio::test]
async fn nodes_and_overview_deserialise() {
    let b = TestBroker::start().await;
    let c = client(&b);
    let o = c.overview().await.expect("overview");
    assert!(o.rabbitmq_version.starts_with("3.10"));
    // The client requires node fields of RabbitMQ 3.13+ (being_drained) that 3.10
    // lacks: against RabbitMQ 3.10 these calls fail, so they are Warren's alone.
    if b.is_warren() {
        let nodes = c.list_nodes().await.expect("list_nodes");
        assert_eq!(nodes.len(), 1);
        let node = c
            .get_node_info(&nodes[0].name)
            .await
            .expect("get_node_info");
        assert_eq!(node.name, nodes[0].name);
        assert!(node.uptime > 0);
        assert_eq!(o.node, nodes[0].name);
    }
    let me = c.current_user().await.expect("current_user");
    assert_eq!(me.name, "guest");
    c.health_check_cluster_wide_alarms()
        .await
        .expect("no alarms");
}

#[tokio::test]
async fn queues_exchanges_and_bindings_are_declared_listed_and_deleted() {
    let b = TestBroker::start().await;
    let c = client(&b);
    let (q, x) = (id("q"), id("x"));
    c.declare_queue(
        "/",
        &QueueParams::new(&q, QueueType::Classic, true, false, None),
    )
    .await
    .expect("declare_queue");
    c.declare_exchange("/", &ExchangeParams::direct(&x, true, false, None))
        .await
        .expect("declare_exchange");
    c.bind_queue("/", &q, &x, Some("rk"), None)
        .await
        .expect("bind_queue");

    let info = c.get_queue_info("/", &q).await.expect("get_queue_info");
    assert_eq!(info.name, q);
    assert!(info.durable);
    let queues = c.list_queues().await.expect("list_queues");
    assert!(queues.iter().any(|i| i.name == q));
    assert!(
        c.list_queues_in("/")
            .await
            .expect("list_queues_in")
            .iter()
            .any(|i| i.name == q)
    );
    // (list_queues_with_details reads /api/queues/detailed, a RabbitMQ 4 endpoint that
    // 3.10 does not have either.)
    let exchanges = c.list_exchanges().await.expect("list_exchanges");
    assert!(exchanges.iter().any(|e| e.name == x));
    c.list_exchanges_in("/").await.expect("list_exchanges_in");
    let bindings = c.list_bindings().await.expect("list_bindings");
    assert!(
        bindings
            .iter()
            .any(|bi| bi.source == x && bi.destination == q && bi.routing_key == "rk")
    );
    c.list_bindings_in("/").await.expect("list_bindings_in");

    c.delete_exchange("/", &x, false)
        .await
        .expect("delete_exchange");
    c.delete_queue("/", &q, false).await.expect("delete_queue");
    assert!(c.get_queue_info("/", &q).await.is_err());
    c.delete_queue("/", &q, true)
        .await
        .expect("idempotent delete");
}

#[tokio::test]
async fn messages_are_published_and_got() {
    let b = TestBroker::start().await;
    let c = client(&b);
    let q = id("q");
    c.declare_queue(
        "/",
        &QueueParams::new(&q, QueueType::Classic, false, false, None),
    )
    .await
    .unwrap();
    let routed = c
        .publish_message("/", "", &q, "hello", MessageProperties::default())
        .await
        .expect("publish_message");
    assert!(routed.routed);
    let got = c
        .get_messages("/", &q, 1, "ack_requeue_false")
        .await
        .expect("get_messages");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, "hello");
    assert_eq!(got[0].message_count, 0);
    c.delete_queue("/", &q, false).await.unwrap();
}

#[tokio::test]
async fn users_vhosts_and_permissions_are_created_listed_and_deleted() {
    let b = TestBroker::start().await;
    let c = client(&b);
    let (u, v) = (id("u"), id("v"));
    let salt = password_hashing::salt();
    let hash = password_hashing::base64_encoded_salted_password_hash_sha256(&salt, "pw");
    c.create_user(&UserParams::new(&u, &hash, "management"))
        .await
        .expect("create_user");
    c.create_vhost(&VirtualHostParams::named(&v))
        .await
        .expect("create_vhost");
    c.declare_permissions(&Permissions::full_access(&u, &v))
        .await
        .expect("declare_permissions");

    let users = c.list_users().await.expect("list_users");
    let found = users.iter().find(|x| x.name == u).expect("the user");
    assert!(found.password_hash.is_some());
    c.get_user(&u).await.expect("get_user");
    c.list_users_without_permissions()
        .await
        .expect("list_users_without_permissions");
    let vhosts = c.list_vhosts().await.expect("list_vhosts");
    assert!(vhosts.iter().any(|x| x.name == v));
    c.get_vhost(&v).await.expect("get_vhost");
    let perms = c.list_permissions().await.expect("list_permissions");
    assert!(perms.iter().any(|p| p.user == u && p.vhost == v));
    c.list_permissions_in(&v)
        .await
        .expect("list_permissions_in");
    c.list_permissions_of(&u)
        .await
        .expect("list_permissions_of");
    c.get_permissions(&v, &u).await.expect("get_permissions");

    // The user logs in over AMQP with the password hashed by the client.
    b.connect_as(&u, "pw", &v).await.expect("logs in");

    c.delete_vhost(&v, false).await.expect("delete_vhost");
    c.delete_user(&u, false).await.expect("delete_user");
    assert!(c.get_user(&u).await.is_err());
}

#[tokio::test]
async fn connections_channels_and_consumers_deserialise() {
    let b = TestBroker::start().await;
    let c = client(&b);
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = id("q");
    ch.queue_declare(
        q.as_str().into(),
        lapin::options::QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    let _consumer = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let conns = c.list_connections().await.expect("list_connections");
        // RabbitMQ 3.10 lists a new channel with "connection_details": [] until its
        // statistics catch up, which the client cannot read: retried there.
        let chans = match c.list_channels().await {
            Ok(chans) => chans,
            Err(e) if !b.is_warren() && std::time::Instant::now() < deadline => {
                eprintln!("list_channels, retried: {e:?}");
                Vec::new()
            }
            Err(e) => panic!("list_channels: {e:?}"),
        };
        // Consumers need consumer_timeout (RabbitMQ 3.12+), which 3.10 does not send.
        let consumers = if b.is_warren() {
            c.list_consumers().await.expect("list_consumers")
        } else {
            let raw = b.mgmt().json("/consumers").await;
            assert!(
                raw.as_array()
                    .unwrap()
                    .iter()
                    .all(|k| k.get("consumer_timeout").is_none())
            );
            Vec::new()
        };
        let listed = !b.is_warren() || consumers.iter().any(|k| k.queue.name == q);
        if !conns.is_empty() && !chans.is_empty() && listed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not listed in time");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.list_connections_in("/")
        .await
        .expect("list_connections_in");
    c.list_channels_in("/").await.expect("list_channels_in");
    if b.is_warren() {
        c.list_consumers_in("/").await.expect("list_consumers_in");
    }
}

#[tokio::test]
async fn definitions_are_exported_as_data() {
    let b = TestBroker::start().await;
    let c = client(&b);
    let q = id("q");
    c.declare_queue(
        "/",
        &QueueParams::new(&q, QueueType::Classic, true, false, None),
    )
    .await
    .unwrap();
    let defs = c
        .export_cluster_wide_definitions_as_data()
        .await
        .expect("export_cluster_wide_definitions_as_data");
    assert!(defs.queues.iter().any(|d| d.name == q));
    assert!(defs.users.iter().any(|u| u.name == "guest"));
    let vdefs = c
        .export_vhost_definitions_as_data("/")
        .await
        .expect("export_vhost_definitions_as_data");
    assert!(vdefs.queues.iter().any(|d| d.name == q));
    c.delete_queue("/", &q, false).await.unwrap();
}
