"""Kombu (Celery's messaging library) works unchanged: its producer/consumer API, its
SimpleQueue, priorities and its pidbox-style fanout broadcast, against the broker at
$AMQP_URL."""

import uuid

import pytest

kombu = pytest.importorskip("kombu")
from kombu import Connection, Consumer, Exchange, Producer, Queue  # noqa: E402


def kombu_url(amqp_url: str) -> str:
    # kombu spells the default vhost as a trailing "//".
    return amqp_url.rstrip("/") + "//"


def test_kombu_produce_consume_with_priorities(amqp_url):
    name = f"kombu-{uuid.uuid4().hex}"
    ex = Exchange(name, type="direct", auto_delete=True)
    q = Queue(name, ex, routing_key="k", auto_delete=True,
              queue_arguments={"x-max-priority": 5})
    got = []
    with Connection(kombu_url(amqp_url)) as conn, conn.channel() as ch:
        q(ch).declare()
        producer = Producer(ch, exchange=ex, routing_key="k")
        for i in range(5):
            producer.publish({"i": i}, serializer="json", priority=i)

        def on_message(body, message):
            got.append(body["i"])
            message.ack()

        with Consumer(ch, queues=[q], callbacks=[on_message], prefetch_count=10):
            while len(got) < 5:
                conn.drain_events(timeout=5)
    assert got == [4, 3, 2, 1, 0]


def test_kombu_simple_queue(amqp_url):
    name = f"kombu-simple-{uuid.uuid4().hex}"
    with Connection(kombu_url(amqp_url)) as conn:
        sq = conn.SimpleQueue(name, queue_opts={"auto_delete": True})
        sq.put({"hello": "world"})
        message = sq.get(block=True, timeout=5)
        assert message.payload == {"hello": "world"}
        message.ack()
        sq.close()  # cancels the consumer: the auto-delete queue goes with it


def test_kombu_fanout_broadcast(amqp_url):
    """Celery's remote-control (pidbox) pattern: a fanout to per-node auto-delete queues."""
    name = f"kombu-fan-{uuid.uuid4().hex}"
    ex = Exchange(name, type="fanout", auto_delete=True)
    with Connection(kombu_url(amqp_url)) as conn, conn.channel() as ch:
        queues = [Queue(f"{name}-{n}", ex, auto_delete=True, exclusive=True)(ch) for n in range(3)]
        for q in queues:
            q.declare()
        Producer(ch, exchange=ex).publish({"cmd": "ping"}, serializer="json")
        # basic.get after the publish on the same channel: the broker has routed it.
        for q in queues:
            message = q.get(no_ack=True)
            assert message is not None and message.payload == {"cmd": "ping"}
