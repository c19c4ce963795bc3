//! The socket-free operations on policies, operator policies and runtime parameters, as
//! the management API calls them, on a Warren started in-process; and what queues and
//! exchanges report of the policies applied to them (`/api/queues`' `policy`,
//! `operator_policy`, `effective_policy_definition`).

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use std::sync::Arc;
use warren::broker::Broker;
use warren::broker::admin::AdminError;
use warren::broker::policy::admin::{
    global_parameter_from_json, parameter_from_json, policy_from_json,
};
use warren::broker::policy::parameters::ParameterDef;
use warren::broker::policy::{GlobalParameterDef, PolicyDef, PolicyKind};
use warren::server::ServerHandle;
use warren::store::definitions::VHostDef;

async fn start(paging_threshold: &str) -> ServerHandle {
    let mut config = warren::config::Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.mgmt.listen = "127.0.0.1:0".into();
    config.prometheus.listen = "127.0.0.1:0".into();
    config.storage.dir = std::env::temp_dir().join(format!("warren-policies-{}", unique()));
    config.memory.paging_threshold = paging_threshold.into();
    warren::server::start(config).await.unwrap()
}

async fn connect(h: &ServerHandle) -> Connection {
    let url = format!("amqp://guest:guest@{}/%2f", h.local_addr);
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap()
}

fn policy(vhost: &str, name: &str, body: serde_json::Value) -> PolicyDef {
    policy_from_json(PolicyKind::Policy, vhost, name, &body).unwrap()
}

fn vhost(name: &str) -> VHostDef {
    VHostDef {
        name: name.into(),
        description: String::new(),
        tags: vec![],
        limits: vec![],
    }
}

fn not_found(r: Result<impl std::fmt::Debug, AdminError>) {
    match r {
        Err(e @ AdminError::NotFound(_)) => assert_eq!(e.status(), 404),
        other => panic!("expected a 404, got {other:?}"),
    }
}

#[tokio::test]
async fn policies_are_created_replaced_listed_and_deleted() {
    let h = start("16MiB").await;
    let b = &h.broker;
    let p = policy(
        "/",
        "p",
        json!({"pattern": "^q", "definition": {"max-length": 1}}),
    );
    assert!(b.put_policy(p.clone()).unwrap(), "created");
    assert!(!b.put_policy(p.clone()).unwrap(), "the same again");
    let p2 = policy(
        "/",
        "p",
        json!({"pattern": "^q", "definition": {"max-length": 2}, "priority": 3, "apply-to": "queues"}),
    );
    assert!(!b.put_policy(p2.clone()).unwrap(), "replaced");
    assert_eq!(b.policy("/", "p"), Some(p2.clone()));
    assert_eq!(b.policies(None), vec![p2.clone()]);
    assert_eq!(b.policies(Some("/")), vec![p2.clone()]);
    assert!(b.policies(Some("nope")).is_empty());
    // Operator policies are a namespace of their own.
    assert!(b.operator_policies(None).is_empty());
    let o = policy_from_json(
        PolicyKind::Operator,
        "/",
        "p",
        &json!({"pattern": "^q", "definition": {"max-length": 5}}),
    )
    .unwrap();
    assert!(b.put_operator_policy(o.clone()).unwrap());
    assert_eq!(b.operator_policies(Some("/")), vec![o]);
    // RabbitMQ's JSON field names, for the management API.
    assert_eq!(
        serde_json::to_value(&p2).unwrap(),
        json!({"vhost": "/", "name": "p", "pattern": "^q", "apply-to": "queues",
               "definition": {"max-length": 2}, "priority": 3})
    );
    // A missing vhost, a missing policy: 404.
    let mut elsewhere = p2.clone();
    elsewhere.vhost = "nope".into();
    not_found(b.put_policy(elsewhere));
    not_found(b.delete_policy("/", "nope"));
    not_found(b.delete_policy("nope", "p"));
    b.delete_policy("/", "p").unwrap();
    assert!(b.policies(None).is_empty());
    b.delete_operator_policy("/", "p").unwrap();
    not_found(b.delete_operator_policy("/", "p"));
    h.shutdown().await;
}

#[tokio::test]
async fn queues_and_exchanges_report_the_policies_applied() {
    let h = start("16MiB").await;
    let b = &h.broker;
    let conn = connect(&h).await;
    let ch = conn.create_channel().await.unwrap();
    for q in ["both", "none"] {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    b.put_policy(policy(
        "/",
        "pol",
        json!({"pattern": "^both$", "definition": {"max-length": 10, "overflow": "reject-publish"}}),
    ))
    .unwrap();
    b.put_operator_policy(
        policy_from_json(
            PolicyKind::Operator,
            "/",
            "op",
            &json!({"pattern": "^both$", "definition": {"max-length": 5, "message-ttl": 1000}}),
        )
        .unwrap(),
    )
    .unwrap();
    b.put_policy(policy(
        "/",
        "ex",
        json!({"pattern": "^amq\\.direct$", "definition": {"alternate-exchange": "ae"}, "apply-to": "exchanges"}),
    ))
    .unwrap();
    let v = b.vhost("/").unwrap();
    let both = v.queue(b"both").unwrap();
    assert_eq!(both.policy().as_deref(), Some("pol"));
    assert_eq!(both.operator_policy().as_deref(), Some("op"));
    // What RabbitMQ 3.10 shows for this pair.
    assert_eq!(
        both.effective_policy_definition(),
        json!({"max-length": 5, "message-ttl": 1000, "overflow": "reject-publish"})
    );
    assert_eq!(both.settings().max_length, Some(5));
    let none = v.queue(b"none").unwrap();
    assert_eq!((none.policy(), none.operator_policy()), (None, None));
    assert_eq!(none.effective_policy_definition(), json!({}));
    let direct = v.exchange(b"amq.direct").unwrap();
    assert_eq!(direct.policy().as_deref(), Some("ex"));
    assert_eq!(direct.alternate().unwrap().as_str(), Some("ae"));
    assert_eq!(v.exchange(b"amq.fanout").unwrap().policy(), None);
    // Deleting the vhost deletes its policies: a vhost made again under the name has none.
    b.put_vhost(vhost("tmp")).unwrap();
    b.put_policy(policy(
        "tmp",
        "t",
        json!({"pattern": "", "definition": {"max-length": 1}}),
    ))
    .unwrap();
    b.delete_vhost("tmp").unwrap();
    b.put_vhost(vhost("tmp")).unwrap();
    assert!(b.policies(Some("tmp")).is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn a_length_policy_reaches_messages_paged_out() {
    // 64 KiB of ready bodies in memory, the rest of 100 x 4 KiB on disk.
    let h = start("64KiB").await;
    let b: &Arc<Broker> = &h.broker;
    let conn = connect(&h).await;
    let ch = confirming_channel(&conn).await;
    for q in ["q", "dead"] {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch.queue_bind(
        "dead".into(),
        "amq.fanout".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..100 {
        let mut body = format!("m{i:03}").into_bytes();
        body.resize(4096, b'.');
        publish_confirmed(&ch, "", "q", &body, BasicProperties::default())
            .await
            .unwrap();
    }
    b.put_policy(policy(
        "/",
        "ten",
        json!({"pattern": "^q$", "definition": {"max-length": 10, "dead-letter-exchange": "amq.fanout"}}),
    ))
    .unwrap();
    let heads = |name: &'static str| {
        let ch = ch.clone();
        async move {
            let mut out = Vec::new();
            while let Some(m) = ch
                .basic_get(name.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                out.push(String::from_utf8_lossy(&m.delivery.data[..4]).into_owned());
            }
            out
        }
    };
    let kept: Vec<String> = (90..100).map(|i| format!("m{i:03}")).collect();
    assert_eq!(heads("q").await, kept);
    let dead: Vec<String> = (0..90).map(|i| format!("m{i:03}")).collect();
    assert_eq!(heads("dead").await, dead, "dead-lettered in order");
    h.shutdown().await;
}

#[tokio::test]
async fn runtime_and_global_parameters() {
    let h = start("16MiB").await;
    let b = &h.broker;
    b.put_vhost(vhost("v")).unwrap();
    let limits = parameter_from_json(
        "vhost-limits",
        "v",
        "limits",
        &json!({"value": {"max-queues": 3}}),
    )
    .unwrap();
    assert!(b.put_parameter(limits.clone()).unwrap());
    assert_eq!(
        b.vhost("v").unwrap().def().limits,
        vec![("max-queues".to_string(), 3)]
    );
    assert_eq!(b.parameters(None, None), vec![limits.clone()]);
    assert_eq!(
        b.parameters(Some("vhost-limits"), Some("v")),
        vec![limits.clone()]
    );
    assert_eq!(b.parameter("vhost-limits", "v", "limits"), Some(limits));
    assert!(b.parameters(Some("federation-upstream"), None).is_empty());
    let refused = |component: &str, value: serde_json::Value| {
        b.put_parameter(ParameterDef {
            vhost: "v".into(),
            component: component.into(),
            name: "limits".into(),
            value,
        })
        .unwrap_err()
    };
    assert_eq!(
        refused("federation-upstream", json!({"uri": "amqp://"})),
        AdminError::BadRequest(
            "Validation failed\n\ncomponent federation-upstream not found\n".into()
        )
    );
    assert_eq!(
        refused("policy", json!({})),
        AdminError::BadRequest("policies may not be set using this method".into())
    );
    assert_eq!(
        refused("vhost-limits", json!({"max-bananas": 1})),
        AdminError::BadRequest(
            "Validation failed\n\nUnrecognised terms [{<<\"max-bananas\">>,1}] in limits\n".into()
        )
    );
    assert_eq!(
        parameter_from_json("vhost-limits", "v", "limits", &json!({})).unwrap_err(),
        AdminError::BadRequest("[{key_missing,value}]".into())
    );
    b.delete_parameter("vhost-limits", "v", "limits").unwrap();
    assert!(b.parameters(None, None).is_empty());

    // Operator policies are parameters of component operator_policy (priority required);
    // policies are listed under theirs, but not set that way.
    let op = |value: serde_json::Value| ParameterDef {
        vhost: "v".into(),
        component: "operator_policy".into(),
        name: "o".into(),
        value,
    };
    assert_eq!(
        b.put_parameter(op(
            json!({"pattern": "^q", "definition": {"max-length": 1}})
        ))
        .unwrap_err(),
        AdminError::BadRequest("Validation failed\n\nKey \"priority\" not found in o\n".into())
    );
    let value =
        json!({"pattern": "^q", "definition": {"max-length": 1}, "priority": 0, "apply-to": "all"});
    assert!(b.put_parameter(op(value.clone())).unwrap());
    assert_eq!(
        b.operator_policy("v", "o").unwrap().definition["max-length"],
        1
    );
    assert_eq!(b.parameters(None, Some("v")), vec![op(value.clone())]);
    b.put_policy(policy(
        "v",
        "p",
        json!({"pattern": "^q", "definition": {"max-length": 2}}),
    ))
    .unwrap();
    assert_eq!(
        b.parameters(None, Some("v")).len(),
        1,
        "policies are not listed"
    );
    let listed = b.parameters(Some("policy"), Some("v"));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].value["definition"], json!({"max-length": 2}));
    b.delete_parameter("operator_policy", "v", "o").unwrap();
    assert!(b.operator_policies(None).is_empty());
    not_found(b.delete_parameter("vhost-limits", "v", "limits"));

    // Global parameters: internal_cluster_id is there from the first start.
    let id = b.global_parameter("internal_cluster_id").unwrap();
    assert!(
        id.value
            .as_str()
            .unwrap()
            .starts_with("rabbitmq-cluster-id-"),
        "{id:?}"
    );
    assert_eq!(b.cluster_name(), None);
    let name = global_parameter_from_json("cluster_name", &json!({"value": "east"})).unwrap();
    assert!(b.put_global_parameter(name.clone()).unwrap());
    assert!(!b.put_global_parameter(name.clone()).unwrap());
    assert_eq!(b.cluster_name().as_deref(), Some("east"));
    let names: Vec<String> = b.global_parameters().into_iter().map(|g| g.name).collect();
    assert_eq!(names, vec!["cluster_name", "internal_cluster_id"]);
    assert_eq!(
        serde_json::to_value(&name).unwrap(),
        json!({"name": "cluster_name", "value": "east"})
    );
    b.delete_global_parameter("cluster_name").unwrap();
    not_found(b.delete_global_parameter("cluster_name"));
    assert_eq!(b.cluster_name(), None);
    assert_eq!(
        b.global_parameter("cluster_name"),
        None::<GlobalParameterDef>
    );
    h.shutdown().await;
}
