"""The management HTTP API through third-party Python clients.

pyrabbit2 (PyPI), a client of RabbitMQ's management API, drives overview, nodes,
aliveness, queues, exchanges, bindings, REST publish and get, users, vhosts,
permissions, connections and definitions; plain `requests` checks status codes,
bodies and the login rules. The API is at $MGMT_URL (default
http://127.0.0.1:15672; .ci/test starts Warren with its API on a free port and sets
it); the same tests pass against RabbitMQ 3.10's management plugin.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import quote

import pika
import pytest
import requests
from pyrabbit2.api import Client, PermissionError as PyrabbitPermissionError

from helpers import named_connection

MGMT_URL = os.environ.get("MGMT_URL", "http://127.0.0.1:15672").rstrip("/")
ADMIN = ("guest", "guest")
DEADLINE = 15.0


def host_port() -> str:
    return MGMT_URL.split("://", 1)[1]


@pytest.fixture
def client() -> Client:
    return Client(host_port(), *ADMIN, timeout=10)


def name(prefix: str) -> str:
    return f"mt-py-{prefix}-{uuid.uuid4().hex[:12]}"


def api(method: str, path: str, auth=ADMIN, **kwargs) -> requests.Response:
    return requests.request(method, f"{MGMT_URL}/api{path}", auth=auth, timeout=10, **kwargs)


def wait_until(what: str, check):
    """Polls `check` until it returns a true value (the API's statistics and closes
    take effect a moment later), failing after DEADLINE seconds."""
    end = time.monotonic() + DEADLINE
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def amqp_params(amqp_url: str, user: str, password: str, vhost: str) -> pika.ConnectionParameters:
    base = pika.URLParameters(amqp_url)
    return pika.ConnectionParameters(
        host=base.host,
        port=base.port,
        virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1,
        socket_timeout=5,
    )


# ---- pyrabbit2 ----


def depth(client: Client, q: str):
    """The queue's message count (pyrabbit2's get_queue_depth raises a KeyError while
    RabbitMQ's statistics have not yet filled it in)."""
    return client.get_queue("/", q).get("messages")


def test_pyrabbit_overview_nodes_and_aliveness(client):
    overview = client.get_overview()
    assert overview["rabbitmq_version"].startswith("3.10")
    assert "object_totals" in overview
    nodes = client.get_nodes()
    assert len(nodes) == 1
    assert nodes[0]["name"] == overview["node"]
    assert client.is_alive()
    assert client.get_whoami()["name"] == "guest"
    assert client.get_cluster_name()["name"]
    assert isinstance(client.get_extensions(), list)


def test_pyrabbit_queue_exchange_binding_publish_get(client):
    q, x = name("q"), name("x")
    client.create_exchange("/", x, "direct", durable=False)
    client.create_queue("/", q, durable=False)
    client.create_binding("/", x, q, "rk")
    try:
        assert client.get_exchange("/", x)["type"] == "direct"
        assert client.get_queue("/", q)["name"] == q
        # (pyrabbit2's get_bindings_between_exch_and_queue is a stub returning None.)
        bound = [b for b in client.get_queue_bindings("/", q) if b["source"] == x]
        assert [b["routing_key"] for b in bound] == ["rk"]
        assert client.publish("/", x, "rk", "hello from pyrabbit2")
        wait_until("the message", lambda: depth(client, q) == 1)
        peeked = client.get_messages("/", q, count=1, requeue=True)
        assert peeked[0]["payload"] == "hello from pyrabbit2"
        assert peeked[0]["message_count"] == 0
        got = client.get_messages("/", q, count=1, requeue=False)
        assert got[0]["payload"] == "hello from pyrabbit2"
        assert got[0]["redelivered"] is True
        assert client.get_messages("/", q) == []
        client.publish("/", x, "rk", "two")
        wait_until("the message", lambda: depth(client, q) == 1)
        client.purge_queue("/", q)
        wait_until("an empty queue", lambda: depth(client, q) == 0)
        client.delete_binding("/", x, q, "rk")
        assert [b for b in client.get_queue_bindings("/", q) if b["source"] == x] == []
        assert q in [i["name"] for i in client.get_queues("/")]
    finally:
        client.delete_queue("/", q)
        client.delete_exchange("/", x)
    assert q not in [i["name"] for i in client.get_queues("/")]


def test_pyrabbit_users_vhosts_and_permissions(client, amqp_url):
    u, v = name("u"), name("v")
    client.create_vhost(v)
    client.create_user(u, "pw", tags="management")
    try:
        client.set_vhost_permissions(v, u, ".*", ".*", ".*")
        assert v in client.get_vhost_names()
        assert client.get_vhost(v)["name"] == v
        assert client.get_permission(v, u)["configure"] == ".*"
        assert any(p["user"] == u for p in client.get_vhost_permissions(v))
        assert any(p["vhost"] == v for p in client.get_user_permissions(u))
        assert any(x["name"] == u for x in client.get_users())
        # The user made over HTTP logs in over AMQP.
        conn = pika.BlockingConnection(amqp_params(amqp_url, u, "pw", v))
        conn.close()
        # A management user may not list users: pyrabbit2's PermissionError (a 401).
        with pytest.raises(PyrabbitPermissionError):
            Client(host_port(), u, "pw").get_users()
        client.delete_permission(v, u)
        assert all(p["user"] != u for p in client.get_vhost_permissions(v))
    finally:
        client.delete_user(u)
        client.delete_vhost(v)
    assert v not in client.get_vhost_names()


def test_pyrabbit_sees_and_closes_a_connection(client, amqp_url):
    label = name("conn")
    conn = named_connection(amqp_url, label)
    try:
        found = wait_until(
            "the connection",
            lambda: [c for c in client.get_connections() if c.get("user_provided_name") == label],
        )
        cname = found[0]["name"]
        assert client.get_connection(cname)["client_properties"]["product"] == "Pika Python Client Library"
        client.delete_connection(cname)

        def closed_by_broker():
            try:
                conn.process_data_events(time_limit=0.1)
            except pika.exceptions.ConnectionClosedByBroker as e:
                return e
            return None

        err = wait_until("the connection.close", closed_by_broker)
        assert err.reply_code == 320
        assert err.reply_text == "CONNECTION_FORCED - Closed via management plugin"
        wait_until(
            "the connection to leave the listing",
            lambda: all(c["name"] != cname for c in client.get_connections()),
        )
    finally:
        if conn.is_open:
            conn.close()


def test_pyrabbit_definitions(client):
    defs = client.get_definitions()
    for key in ("rabbit_version", "users", "vhosts", "permissions", "queues", "exchanges", "bindings"):
        assert key in defs
    assert any(u["name"] == "guest" for u in defs["users"])


# ---- plain requests: status codes, bodies, login rules ----


def test_requests_login_rules():
    r = requests.get(f"{MGMT_URL}/api/overview", timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    r = api("GET", "/overview", auth=("guest", "wrong"))
    assert r.status_code == 401
    assert r.json() == {"error": "not_authorized", "reason": "Login failed"}
    u = name("plain")
    assert api("PUT", f"/users/{u}", json={"password": "pw", "tags": ""}).status_code == 201
    try:
        r = api("GET", "/overview", auth=(u, "pw"))
        assert r.status_code == 401
        assert r.json() == {"error": "not_authorised", "reason": "Not management user"}
    finally:
        assert api("DELETE", f"/users/{u}").status_code == 204


def test_requests_queue_status_codes_and_bodies():
    q = name("q")
    path = f"/queues/%2F/{quote(q, safe='')}"
    assert api("GET", path).json() == {"error": "Object Not Found", "reason": "Not Found"}
    assert api("GET", path).status_code == 404
    assert api("PUT", path, json={"durable": True}).status_code == 201
    try:
        assert api("PUT", path, json={"durable": True}).status_code == 204
        r = api("PUT", path, json={"durable": False})
        assert r.status_code == 400
        assert r.json() == {
            "error": "bad_request",
            "reason": f"inequivalent arg 'durable' for queue '{q}' in vhost '/': "
            "received 'false' but current is 'true'",
        }
        page = api("GET", "/queues/%2F", params={"page": 1, "page_size": 1, "name": q}).json()
        assert page["filtered_count"] == 1
        assert page["items"][0]["name"] == q
        r = api("GET", "/queues", params={"page": 0})
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_pagination_parameters"
    finally:
        assert api("DELETE", path).status_code == 204


def test_requests_health_checks():
    assert api("GET", "/health/checks/alarms").json() == {"status": "ok"}
    r = api("GET", "/health/checks/port-listener/1")
    assert r.status_code == 503
    assert r.json()["reason"] == "No active listener"
    assert api("GET", "/aliveness-test/%2F").json() == {"status": "ok"}


# ---- policies through the API, observed over AMQP ----


def declare_queue(vhost_q: str, **arguments):
    api("PUT", f"/queues/%2F/{quote(vhost_q, safe='')}", json={"durable": False, "arguments": arguments}).raise_for_status()


@pytest.mark.parametrize(
    "definition,published,expected_in_queue,expected_dead",
    [
        # message-ttl with a dead-letter exchange: the message expires into the DLQ.
        ({"message-ttl": 50}, [b"a"], [], [b"a"]),
        # max-length 2, drop-head: the oldest message is dead-lettered as maxlen.
        ({"max-length": 2}, [b"1", b"2", b"3"], [b"2", b"3"], [b"1"]),
        # overflow reject-publish: nothing is dropped; the extra message is refused.
        ({"max-length": 1, "overflow": "reject-publish"}, [b"1", b"2"], [b"1"], []),
    ],
)
def test_a_policy_set_through_the_api_acts_on_amqp_traffic(
    amqp_url, definition, published, expected_in_queue, expected_dead
):
    q, dlq, pol = name("pol-q"), name("pol-dlq"), name("pol")
    declare_queue(q)
    declare_queue(dlq)
    body = {
        "pattern": f"^{q}$",
        "apply-to": "queues",
        "definition": {**definition, "dead-letter-exchange": "", "dead-letter-routing-key": dlq},
    }
    r = api("PUT", f"/policies/%2F/{pol}", json=body)
    assert r.status_code == 201, r.text
    try:
        wait_until("the policy on the queue", lambda: api("GET", f"/queues/%2F/{q}").json().get("policy") == pol)
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        ch = conn.channel()
        ch.confirm_delivery()
        for m in published:
            try:
                ch.basic_publish("", q, m)
            except pika.exceptions.NackError:
                pass
        def drain(queue):
            out = []
            while True:
                _, _, b = ch.basic_get(queue, auto_ack=True)
                if b is None:
                    return out
                out.append(b)
        if expected_dead:
            dead = wait_until("dead-lettered messages", lambda: (lambda d: d if d else None)(drain(dlq)))
            # One get may not see all of them at once.
            while len(dead) < len(expected_dead):
                dead += drain(dlq)
            assert dead == expected_dead
        assert drain(q) == expected_in_queue
        assert drain(dlq) == []
        conn.close()
    finally:
        api("DELETE", f"/policies/%2F/{pol}")
        api("DELETE", f"/queues/%2F/{q}")
        api("DELETE", f"/queues/%2F/{dlq}")


def test_a_vhost_definitions_round_trip_through_the_api():
    vhost = name("defs-v")
    v = quote(vhost, safe="")
    assert api("PUT", f"/vhosts/{v}").status_code == 201
    try:
        api("PUT", f"/queues/{v}/q1", json={"durable": True, "arguments": {"x-max-length": 7}}).raise_for_status()
        api("PUT", f"/exchanges/{v}/x1", json={"type": "fanout", "durable": True}).raise_for_status()
        api("POST", f"/bindings/{v}/e/x1/q/q1", json={"routing_key": "k"}).raise_for_status()
        api("PUT", f"/policies/{v}/p1", json={"pattern": "^q", "definition": {"expires": 600000}}).raise_for_status()
        exported = api("GET", f"/definitions/{v}").json()
        assert [q["name"] for q in exported["queues"]] == ["q1"]
        assert all("vhost" not in q for q in exported["queues"])
        # Remove it all, then import the export back into the vhost.
        for path in [f"/queues/{v}/q1", f"/exchanges/{v}/x1", f"/policies/{v}/p1"]:
            assert api("DELETE", path).status_code == 204
        r = api("POST", f"/definitions/{v}", json=exported)
        assert r.status_code in (201, 204), r.text
        q = wait_until("the queue back", lambda: (lambda r: r.json() if r.status_code == 200 else None)(api("GET", f"/queues/{v}/q1")))
        assert q["arguments"] == {"x-max-length": 7}
        wait_until("the policy applied", lambda: api("GET", f"/queues/{v}/q1").json().get("policy") == "p1")
        bindings = api("GET", f"/bindings/{v}/e/x1/q/q1").json()
        assert [b["routing_key"] for b in bindings] == ["k"]
    finally:
        api("DELETE", f"/vhosts/{v}")
