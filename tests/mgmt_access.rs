//! The management HTTP API's users, vhosts, permissions, topic permissions, limits and
//! definitions, and who may do what: RabbitMQ's login and tag rules (401s with their
//! texts), vhost visibility, and the loopback rule for guest.
//! Also run against RabbitMQ 3.10 (see mgmt_api.rs); names are unique per run.

mod common;

use base64::Engine;
use common::mgmt::{Api, names, seg};
use common::{TestBroker, unique};
use serde_json::{Value, json};
use sha2::Digest;

fn id(prefix: &str) -> String {
    format!("mt-{prefix}-{}", unique())
}

/// RabbitMQ's `rabbit_password_hashing_sha256` / `_sha512` hash of `password`: base64
/// of a 4-byte salt followed by SHA-2(salt ++ password).
fn salted_hash<D: Digest>(password: &str) -> String {
    let salt = [0x90u8, 0x8d, 0xc6, 0x0a];
    let mut h = D::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn sha256_hash(password: &str) -> String {
    salted_hash::<sha2::Sha256>(password)
}

/// A fresh user with `tags` and password "pw".
async fn user(api: &Api, tags: &str) -> String {
    let u = id("u");
    api.put(
        &format!("/users/{u}"),
        json!({"password": "pw", "tags": tags}),
    )
    .await
    .expect(201);
    u
}

async fn vhost(api: &Api) -> String {
    let v = id("v");
    api.put(&format!("/vhosts/{v}"), json!({}))
        .await
        .expect(201);
    v
}

#[tokio::test]
async fn users_are_created_with_a_password_or_a_hash_and_log_in_over_amqp() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let u = id("u");
    let path = format!("/users/{u}");
    api.put(
        &path,
        json!({"password": "s3cret", "tags": "management,monitoring"}),
    )
    .await
    .expect(201);
    let v = api.json(&path).await;
    assert_eq!(v["name"], u.as_str());
    assert_eq!(v["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert!(!v["password_hash"].as_str().unwrap().is_empty());
    let mut tags: Vec<String> = serde_json::from_value(v["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["management", "monitoring"]);
    assert_eq!(v["limits"], json!({}));
    assert!(names(&api.json("/users").await).contains(&u));
    assert!(names(&api.json("/users/without-permissions").await).contains(&u));

    api.put(
        &format!("/permissions/%2F/{u}"),
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await
    .expect(201);
    let conn = b.connect_as(&u, "s3cret", "/").await.expect("logs in");
    conn.close(200, "".into()).await.unwrap();
    assert!(b.connect_as(&u, "wrong", "/").await.is_err());
    assert!(!names(&api.json("/users/without-permissions").await).contains(&u));

    // Without a password, an update clears it, as RabbitMQ's put_user: 204.
    api.put(&path, json!({"tags": "administrator"}))
        .await
        .expect(204);
    let v = api.json(&path).await;
    assert_eq!(v["tags"], json!(["administrator"]));
    assert_eq!(v["password_hash"], "");
    assert!(b.connect_as(&u, "s3cret", "/").await.is_err());

    // A precomputed hash.
    let h = id("u");
    api.put(
        &format!("/users/{h}"),
        json!({"password_hash": sha256_hash("hashed!"), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}),
    )
    .await
    .expect(201);
    assert_eq!(
        api.json(&format!("/users/{h}")).await["password_hash"],
        sha256_hash("hashed!")
    );
    api.put(
        &format!("/permissions/%2F/{h}"),
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await
    .expect(201);
    b.connect_as(&h, "hashed!", "/").await.expect("hash login");
    // SHA-512, named by hashing_algorithm.
    let h512 = id("u");
    api.put(
        &format!("/users/{h512}"),
        json!({"password_hash": salted_hash::<sha2::Sha512>("long!"), "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": ""}),
    )
    .await
    .expect(201);
    assert_eq!(
        api.json(&format!("/users/{h512}")).await["hashing_algorithm"],
        "rabbit_password_hashing_sha512"
    );
    api.put(
        &format!("/permissions/%2F/{h512}"),
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await
    .expect(201);
    b.connect_as(&h512, "long!", "/")
        .await
        .expect("SHA-512 login");
    // An empty hash: no password login at all.
    let e = id("u");
    api.put(
        &format!("/users/{e}"),
        json!({"password_hash": "", "tags": ""}),
    )
    .await
    .expect(201);
    assert_eq!(api.json(&format!("/users/{e}")).await["password_hash"], "");

    for name in [&u, &h, &h512, &e] {
        api.delete(&format!("/users/{name}")).await.expect(204);
    }
    api.get(&path).await.expect_not_found();
    api.delete(&path).await.expect_not_found();
    assert!(b.connect_as(&u, "s3cret", "/").await.is_err());
}

#[tokio::test]
async fn bulk_delete_removes_the_users_named() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let (u1, u2) = (user(&api, "").await, user(&api, "").await);
    api.post("/users/bulk-delete", json!({"users": [u1, u2]}))
        .await
        .expect(204);
    api.get(&format!("/users/{u1}")).await.expect_not_found();
    api.get(&format!("/users/{u2}")).await.expect_not_found();
}

#[tokio::test]
async fn vhosts_are_created_with_permissions_for_their_creator_and_deleted() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let v = id("v");
    let path = format!("/vhosts/{v}");
    api.put(&path, json!({"description": "for tests", "tags": "a,b"}))
        .await
        .expect(201);
    let got = api.json(&path).await;
    assert_eq!(got["name"], v.as_str());
    assert_eq!(got["description"], "for tests");
    assert_eq!(got["tags"], json!(["a", "b"]));
    assert_eq!(got["tracing"], false);
    assert!(names(&api.json("/vhosts").await).contains(&v));
    // As RabbitMQ: the creator (guest) gets full permissions in it.
    assert_eq!(
        api.json(&format!("/permissions/{v}/guest")).await,
        json!({"user": "guest", "vhost": v, "configure": ".*", "write": ".*", "read": ".*"})
    );
    let perms = api.json(&format!("/vhosts/{v}/permissions")).await;
    assert_eq!(perms.as_array().unwrap().len(), 1);
    // It has its own amq.* exchanges, and takes AMQP connections.
    let ex = names(&api.json(&format!("/exchanges/{v}")).await);
    assert!(ex.contains(&"amq.topic".to_string()), "{ex:?}");
    let conn = b.connect_as("guest", "guest", &v).await.expect("connects");
    conn.close(200, "".into()).await.unwrap();

    api.put(&path, json!({"description": "changed"}))
        .await
        .expect(204);
    assert_eq!(api.json(&path).await["description"], "changed");
    api.delete(&path).await.expect(204);
    api.get(&path).await.expect_not_found();
    api.delete(&path).await.expect_not_found();
    api.get(&format!("/permissions/{v}/guest"))
        .await
        .expect_not_found();
}

#[tokio::test]
async fn permissions_are_set_listed_refused_for_unknowns_and_cleared() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let (u, v) = (user(&api, "").await, vhost(&api).await);
    let path = format!("/permissions/{v}/{u}");
    api.put(
        &path,
        json!({"configure": "^c", "write": "^w", "read": "^r"}),
    )
    .await
    .expect(201);
    api.put(
        &path,
        json!({"configure": "^c", "write": "^w", "read": ".*"}),
    )
    .await
    .expect(204);
    let row = json!({"user": u, "vhost": v, "configure": "^c", "write": "^w", "read": ".*"});
    assert_eq!(api.json(&path).await, row);
    assert!(
        api.json("/permissions")
            .await
            .as_array()
            .unwrap()
            .contains(&row)
    );
    assert!(
        api.json(&format!("/users/{u}/permissions"))
            .await
            .as_array()
            .unwrap()
            .contains(&row)
    );
    assert!(
        api.json(&format!("/vhosts/{v}/permissions"))
            .await
            .as_array()
            .unwrap()
            .contains(&row)
    );
    for (p, body, reason) in [
        (
            format!("/permissions/{v}/{}", id("nobody")),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
            "vhost_or_user_not_found",
        ),
        (
            format!("/permissions/{}/{u}", id("nowhere")),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
            "vhost_or_user_not_found",
        ),
        (
            path.clone(),
            json!({"configure": ".*", "write": ".*"}),
            "[{key_missing,read}]",
        ),
    ] {
        api.put(&p, body)
            .await
            .expect_error(400, "bad_request", reason);
    }
    api.delete(&path).await.expect(204);
    api.get(&path).await.expect_not_found();
    api.delete(&path).await.expect_not_found();
    api.delete(&format!("/users/{u}")).await.expect(204);
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
}

#[tokio::test]
async fn topic_permissions_are_set_listed_and_cleared() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let (u, v) = (user(&api, "").await, vhost(&api).await);
    let path = format!("/topic-permissions/{v}/{u}");
    api.put(
        &path,
        json!({"exchange": "amq.topic", "write": "^a", "read": ".*"}),
    )
    .await
    .expect(201);
    let row = json!({"user": u, "vhost": v, "exchange": "amq.topic", "write": "^a", "read": ".*"});
    assert_eq!(api.json(&path).await, json!([row]));
    for listing in [
        "/topic-permissions".to_string(),
        format!("/users/{u}/topic-permissions"),
        format!("/vhosts/{v}/topic-permissions"),
    ] {
        assert!(
            api.json(&listing).await.as_array().unwrap().contains(&row),
            "{listing}"
        );
    }
    api.delete(&path).await.expect(204);
    api.get(&path).await.expect_not_found();
    api.delete(&format!("/users/{u}")).await.expect(204);
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
}

#[tokio::test]
async fn vhost_and_user_limits_are_set_shown_enforced_and_cleared() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let v = vhost(&api).await;
    let path = format!("/vhost-limits/{v}/max-queues");
    api.put(&path, json!({"value": 1})).await.expect(204);
    assert_eq!(
        api.json(&format!("/vhost-limits/{v}")).await,
        json!([{"vhost": v, "value": {"max-queues": 1}}])
    );
    assert!(
        api.json("/vhost-limits")
            .await
            .as_array()
            .unwrap()
            .contains(&json!({"vhost": v, "value": {"max-queues": 1}}))
    );
    api.put(&format!("/queues/{v}/q1"), json!({}))
        .await
        .expect(201);
    let r = api
        .put(&format!("/queues/{v}/q2"), json!({}))
        .await
        .expect(400);
    assert!(
        r.json["reason"]
            .as_str()
            .unwrap()
            .contains("queue limit in vhost"),
        "{}",
        r.text
    );
    api.put(&format!("/vhost-limits/{v}/max-bogus"), json!({"value": 1}))
        .await
        .expect_error(
            400,
            "bad_request",
            "Validation failed\n\nUnrecognised terms [{<<\"max-bogus\">>,1}] in limits\n",
        );
    api.put(&path, json!({}))
        .await
        .expect_error(400, "bad_request", "[{key_missing,value}]");
    api.delete(&path).await.expect(204);
    assert_eq!(api.json(&format!("/vhost-limits/{v}")).await, json!([]));
    api.put(&format!("/queues/{v}/q2"), json!({}))
        .await
        .expect(201);

    let u = user(&api, "").await;
    let upath = format!("/user-limits/{u}/max-channels");
    api.put(&upath, json!({"value": 7})).await.expect(204);
    assert_eq!(
        api.json(&format!("/user-limits/{u}")).await,
        json!([{"user": u, "value": {"max-channels": 7}}])
    );
    assert_eq!(
        api.json(&format!("/users/{u}")).await["limits"],
        json!({"max-channels": 7})
    );
    assert!(
        api.json("/user-limits")
            .await
            .as_array()
            .unwrap()
            .contains(&json!({"user": u, "value": {"max-channels": 7}}))
    );
    api.delete(&upath).await.expect(204);
    assert_eq!(api.json(&format!("/user-limits/{u}")).await, json!([]));
    api.delete(&format!("/users/{u}")).await.expect(204);
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
}

/// Objects of one export, in an order independent of the listing's.
fn sorted(defs: &Value, section: &str) -> Vec<Value> {
    let mut items = defs[section].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|i| i.to_string());
    items
}

#[tokio::test]
async fn vhost_definitions_round_trip_export_delete_import() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let v = vhost(&api).await;
    api.put(
        &format!("/exchanges/{v}/x1"),
        json!({"type": "topic", "durable": true}),
    )
    .await
    .expect(201);
    api.put(
        &format!("/queues/{v}/q1"),
        json!({"durable": true, "arguments": {"x-max-length": 3}}),
    )
    .await
    .expect(201);
    api.post(
        &format!("/bindings/{v}/e/x1/q/q1"),
        json!({"routing_key": "a.#"}),
    )
    .await
    .expect(201);
    let before = api.json(&format!("/definitions/{v}")).await;
    assert!(before.get("rabbit_version").is_some());
    assert!(before.get("users").is_none(), "a vhost export has no users");
    assert_eq!(
        sorted(&before, "queues"),
        vec![
            json!({"name": "q1", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 3}})
        ]
    );
    assert_eq!(
        sorted(&before, "bindings"),
        vec![
            json!({"source": "x1", "destination": "q1", "destination_type": "queue", "routing_key": "a.#", "arguments": {}})
        ]
    );

    api.delete(&format!("/vhosts/{v}")).await.expect(204);
    api.put(&format!("/vhosts/{v}"), json!({}))
        .await
        .expect(201);
    assert!(api.json(&format!("/queues/{v}")).await == json!([]));
    api.post(&format!("/definitions/{v}"), before.clone())
        .await
        .expect(204);
    let after = api.json(&format!("/definitions/{v}")).await;
    for section in ["queues", "exchanges", "bindings"] {
        assert_eq!(
            sorted(&before, section),
            sorted(&after, section),
            "{section}"
        );
    }
    api.json(&format!("/queues/{v}/q1")).await;
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
    api.get(&format!("/definitions/{v}"))
        .await
        .expect_error(400, "bad_request", "vhost_not_found");
}

#[tokio::test]
async fn whole_broker_definitions_round_trip() {
    let b = TestBroker::start().await;
    if !b.is_warren() {
        // Deleting and re-importing everything would disturb the other users of the
        // shared RabbitMQ; the vhost round trip covers the format there.
        return;
    }
    let api = b.mgmt();
    let (u, v) = (user(&api, "monitoring").await, vhost(&api).await);
    api.put(
        &format!("/permissions/{v}/{u}"),
        json!({"configure": "", "write": ".*", "read": ".*"}),
    )
    .await
    .expect(201);
    api.put(
        &format!("/topic-permissions/{v}/{u}"),
        json!({"exchange": "amq.topic", "write": "^a", "read": ".*"}),
    )
    .await
    .expect(201);
    api.put(
        &format!("/vhost-limits/{v}/max-connections"),
        json!({"value": 9}),
    )
    .await
    .expect(204);
    api.put(&format!("/queues/{v}/dq"), json!({"durable": true}))
        .await
        .expect(201);
    let before = api.json("/definitions").await;
    for key in [
        "rabbit_version",
        "rabbitmq_version",
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "queues",
        "exchanges",
        "bindings",
        "policies",
        "parameters",
        "global_parameters",
    ] {
        assert!(before.get(key).is_some(), "definitions lack {key}");
    }
    api.delete(&format!("/users/{u}")).await.expect(204);
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
    api.post("/definitions", before.clone()).await.expect(204);
    let after = api.json("/definitions").await;
    for section in [
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert_eq!(
            sorted(&before, section),
            sorted(&after, section),
            "{section}"
        );
    }
    b.connect_as(&u, "pw", &v).await.expect("the user is back");
}

#[tokio::test]
async fn rabbitmqs_own_export_imports_over_http() {
    let b = TestBroker::start().await;
    if !b.is_warren() {
        // The fixture holds guest and policies; importing it would change the shared
        // RabbitMQ for its other users.
        return;
    }
    let api = b.mgmt();
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rabbitmq-3.10-definitions.json"),
    )
    .unwrap();
    let fixture: Value = serde_json::from_str(&file).unwrap();
    api.post("/definitions", fixture.clone()).await.expect(204);
    let users = names(&api.json("/users").await);
    for u in fixture["users"].as_array().unwrap() {
        assert!(users.contains(&u["name"].as_str().unwrap().to_string()));
    }
    for q in fixture["queues"].as_array().unwrap() {
        let path = format!(
            "/queues/{}/{}",
            seg(q["vhost"].as_str().unwrap()),
            seg(q["name"].as_str().unwrap())
        );
        let got = api.json(&path).await;
        assert_eq!(got["arguments"], q["arguments"], "{path}");
    }
    // Again: idempotent.
    api.post("/definitions", fixture).await.expect(204);
    // A broken file changes nothing and says why.
    let r = api
        .post("/definitions", json!({"queues": [{"name": "q"}]}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

// ---- who may do what ----

#[tokio::test]
async fn logins_are_refused_as_rabbitmq_refuses_them() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let r = api.anonymous().get("/overview").await.expect(401);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Basic realm=\"RabbitMQ Management\"")
    );
    assert_eq!(r.text, "", "only the challenge, as RabbitMQ");
    let r = api
        .as_user("guest", "wrong")
        .get("/overview")
        .await
        .expect_error(401, "not_authorized", "Login failed");
    assert!(r.header("www-authenticate").is_some());
    api.as_user(&id("nobody"), "x")
        .get("/overview")
        .await
        .expect_error(401, "not_authorized", "Login failed");
    let plain = user(&api, "").await;
    let r = api
        .as_user(&plain, "pw")
        .get("/overview")
        .await
        .expect_error(401, "not_authorised", "Not management user");
    assert!(r.header("www-authenticate").is_none());
    api.delete(&format!("/users/{plain}")).await.expect(204);
}

#[tokio::test]
async fn a_management_user_sees_and_acts_in_its_vhosts_only() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let mine = vhost(&api).await;
    let other = vhost(&api).await;
    let u = user(&api, "management").await;
    api.put(
        &format!("/permissions/{mine}/{u}"),
        json!({"configure": "^own-", "write": ".*", "read": ".*"}),
    )
    .await
    .expect(201);
    api.put(&format!("/queues/{other}/theirs"), json!({}))
        .await
        .expect(201);
    let me = api.as_user(&u, "pw");

    for path in [
        "/users",
        "/permissions",
        "/definitions",
        "/topic-permissions",
    ] {
        me.get(path)
            .await
            .expect_error(401, "not_authorised", "Not administrator user");
    }
    me.put(&format!("/vhosts/{}", id("v")), json!({}))
        .await
        .expect_error(401, "not_authorised", "Not administrator user");
    me.get("/nodes")
        .await
        .expect_error(401, "not_authorised", "Not monitor user");

    me.put(&format!("/queues/{mine}/own-q"), json!({}))
        .await
        .expect(201);
    // Within its permissions only.
    me.put(&format!("/queues/{mine}/foreign"), json!({}))
        .await
        .expect_error(401, "not_authorised", "Access refused.");
    let queues = me.json("/queues").await;
    assert_eq!(names(&queues), ["own-q"]);
    assert!(names(&me.json("/vhosts").await) == [mine.clone()]);
    me.get(&format!("/queues/{other}")).await.expect_error(
        401,
        "not_authorised",
        "User not authorised to access virtual host",
    );
    me.get(&format!("/queues/{other}/theirs"))
        .await
        .expect_error(
            401,
            "not_authorised",
            "User not authorised to access virtual host",
        );
    for (method, path) in [
        ("PUT", format!("/queues/{other}/x")),
        ("DELETE", format!("/queues/{other}/theirs")),
        ("PUT", format!("/exchanges/{other}/x")),
    ] {
        let r = if method == "PUT" {
            me.put(&path, json!({})).await
        } else {
            me.delete(&path).await
        };
        r.expect_error(
            401,
            "not_authorised",
            "User not authorised to access virtual host",
        );
    }
    me.post(
        &format!("/exchanges/{other}/amq.default/publish"),
        json!({"properties": {}, "routing_key": "theirs", "payload": "x", "payload_encoding": "string"}),
    )
    .await
    .expect_error(401, "not_authorised", "User not authorised to access virtual host");
    api.json(&format!("/queues/{other}/theirs")).await;

    api.delete(&format!("/users/{u}")).await.expect(204);
    api.delete(&format!("/vhosts/{mine}")).await.expect(204);
    api.delete(&format!("/vhosts/{other}")).await.expect(204);
}

#[tokio::test]
async fn a_monitoring_user_sees_the_broker_but_cannot_change_it() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let v = vhost(&api).await;
    api.put(&format!("/queues/{v}/q"), json!({}))
        .await
        .expect(201);
    let u = user(&api, "monitoring").await;
    let mon = api.as_user(&u, "pw");
    // Nodes, every vhost, the overview's totals.
    assert_eq!(mon.json("/nodes").await.as_array().unwrap().len(), 1);
    assert!(names(&mon.json("/vhosts").await).contains(&v));
    let mine = mon.json("/overview").await["object_totals"]["queues"].as_u64();
    let all = api.json("/overview").await["object_totals"]["queues"].as_u64();
    if b.is_warren() {
        assert_eq!(mine, all);
    } else {
        // Other test runs declare and delete queues on the shared RabbitMQ meanwhile.
        assert!(mine.unwrap() > 0);
    }
    // But queues, exchanges and bindings only in vhosts it has permissions in, and
    // nothing to change anywhere, as RabbitMQ 3.10.
    assert!(!names(&mon.json("/queues").await).contains(&"q".to_string()));
    mon.get(&format!("/queues/{v}")).await.expect_error(
        401,
        "not_authorised",
        "User not authorised to access virtual host",
    );
    mon.put(&format!("/queues/{v}/q2"), json!({}))
        .await
        .expect_error(
            401,
            "not_authorised",
            "User not authorised to access virtual host",
        );
    mon.delete(&format!("/queues/{v}/q")).await.expect_error(
        401,
        "not_authorised",
        "User not authorised to access virtual host",
    );
    mon.put(
        &format!("/users/{}", id("u")),
        json!({"password": "x", "tags": ""}),
    )
    .await
    .expect_error(401, "not_authorised", "Not administrator user");
    mon.get("/definitions")
        .await
        .expect_error(401, "not_authorised", "Not administrator user");
    api.delete(&format!("/users/{u}")).await.expect(204);
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
}

#[tokio::test]
async fn an_administrator_sees_every_vhost_but_acts_only_where_permitted() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let v = vhost(&api).await;
    api.put(&format!("/queues/{v}/q"), json!({}))
        .await
        .expect(201);
    api.delete(&format!("/permissions/{v}/guest"))
        .await
        .expect(204);
    assert!(names(&api.json(&format!("/queues/{v}")).await).contains(&"q".to_string()));
    api.json(&format!("/queues/{v}/q")).await;
    api.delete(&format!("/queues/{v}/q")).await.expect_error(
        401,
        "not_authorised",
        "Access refused.",
    );
    api.put(&format!("/queues/{v}/q2"), json!({}))
        .await
        .expect_error(401, "not_authorised", "Access refused.");
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
}

#[tokio::test]
async fn guest_is_refused_from_a_non_loopback_address() {
    let b = TestBroker::start().await;
    if !b.is_warren() {
        // Needs a broker listening beyond loopback; RabbitMQ's reference listens on
        // 127.0.0.1 only.
        return;
    }
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let b = TestBroker::start_with(|c| {
        c.mgmt.listen = "0.0.0.0:0".into();
        c.prometheus.listen = "127.0.0.1:0".into();
    })
    .await;
    let port = b.server().unwrap().mgmt_addr.unwrap().port();
    let remote = Api::new(&format!("http://{ip}:{port}"), "guest", "guest");
    remote.get("/overview").await.expect_error(
        401,
        "not_authorized",
        "User can only log in via localhost",
    );
    // Another administrator may.
    let local = Api::new(&format!("http://127.0.0.1:{port}"), "guest", "guest");
    let admin = user(&local, "administrator").await;
    remote.as_user(&admin, "pw").json("/overview").await;
    local.json("/overview").await;
}

/// This machine's own non-loopback address, if it has one (no packet is sent).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.255:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}
