"""The x-delayed-message exchange (rabbitmq-delayed-message-exchange's type) through pika.

Warren only: the delayed-message plugin is not shipped with Debian's RabbitMQ, so these
tests are written from the plugin's README and source, and skip themselves on a broker
that does not know the type (503 unknown exchange type). Where Warren does better than
the plugin (mandatory honoured when due), the test says so. Waits are on deliveries with
deadlines; nothing sleeps to synchronise.
"""

import time

import pika
import pika.exceptions as exc
import pytest

from helpers import declare_queue, wait_for

DELAYED = "x-delayed-message"


@pytest.fixture
def delayed(connect, unique, cleanup):
    """Declares an x-delayed-message exchange: delayed(kind) -> (connection, channel, name)."""

    def make(kind="direct", **kwargs):
        conn = connect()
        ch = conn.channel()
        name = cleanup.exchange(unique("dx"))
        try:
            ch.exchange_declare(name, DELAYED, arguments={"x-delayed-type": kind}, **kwargs)
        except exc.ConnectionClosedByBroker as e:
            if e.reply_code == 503:
                pytest.skip("the broker lacks the x-delayed-message exchange type")
            raise
        return conn, ch, name

    return make


def delay(ms, **headers):
    return pika.BasicProperties(headers={"x-delay": ms, **headers})


def collect(conn, ch, queue, n, timeout=10.0):
    """The next n deliveries of queue, each with its arrival time."""
    got = []
    tag = ch.basic_consume(
        queue, lambda c, m, p, b: got.append((time.monotonic(), p, b)), auto_ack=True)
    wait_for(conn, lambda: len(got) >= n, timeout, f"{n} deliveries")
    ch.basic_cancel(tag)
    return got


def test_declare_checks_x_delayed_type(connect, unique, delayed):
    delayed()  # skips on a broker without the type
    for args, text in [
        ({}, "Invalid argument, 'x-delayed-type' must be an existing exchange type"),
        ({"x-delayed-type": DELAYED},
         "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"),
    ]:
        ch = connect().channel()
        with pytest.raises(exc.ChannelClosedByBroker) as info:
            ch.exchange_declare(unique("dx"), DELAYED, arguments=args)
        assert info.value.reply_code == 406
        assert info.value.reply_text == f"PRECONDITION_FAILED - {text}"
    conn = connect()
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        conn.channel().exchange_declare(unique("dx"), DELAYED, arguments={"x-delayed-type": "nope"})
    assert info.value.reply_code == 503
    assert info.value.reply_text == "COMMAND_INVALID - unknown exchange type 'nope'"


def test_due_order_and_the_swapped_header(delayed):
    conn, ch, ex = delayed()
    q = declare_queue(ch)
    ch.queue_bind(q, ex, "k")
    start = time.monotonic()
    for ms in (700, 200, 2600, 450):  # 2600 waits on disk in Warren
        ch.basic_publish(ex, "k", str(ms).encode(), delay(ms))
    got = collect(conn, ch, q, 4)
    assert [int(b) for _, _, b in got] == [200, 450, 700, 2600]
    for at, props, body in got:
        ms = int(body)
        assert at - start >= ms / 1000
        assert at - start < ms / 1000 + 0.7
        assert props.headers["x-delay"] == -ms


def test_missing_or_invalid_x_delay_routes_at_once(delayed):
    conn, ch, ex = delayed()
    q = declare_queue(ch)
    ch.queue_bind(q, ex, "k")
    ch.basic_publish(ex, "k", b"late", delay(1500))
    ch.basic_publish(ex, "k", b"none", pika.BasicProperties(headers={}))
    ch.basic_publish(ex, "k", b"zero", delay(0))
    ch.basic_publish(ex, "k", b"negative", delay(-100))
    ch.basic_publish(ex, "k", b"text", delay("soon"))
    got = collect(conn, ch, q, 5)
    assert [b for _, _, b in got] == [b"none", b"zero", b"negative", b"text", b"late"]
    assert got[3][1].headers["x-delay"] == "soon"


def test_topic_and_headers_routing_when_due(delayed):
    conn, ch, topic = delayed("topic")
    q = declare_queue(ch)
    ch.queue_bind(q, topic, "*.eu.#")
    for key in ("stock.us.ibm", "stock.eu.sap"):
        ch.basic_publish(topic, key, key.encode(), delay(200))
    assert [b for _, _, b in collect(conn, ch, q, 1)] == [b"stock.eu.sap"]
    _, hch, headers = delayed("headers")
    hq = declare_queue(hch)
    hch.queue_bind(hq, headers, "", arguments={"x-match": "any", "colour": "red"})
    for colour in ("blue", "red"):
        hch.basic_publish(headers, "", colour.encode(), delay(150, colour=colour))
    assert [b for _, _, b in collect(hch.connection, hch, hq, 1)] == [b"red"]


def test_mandatory_returned_when_due(delayed):
    """Better than the plugin, which returns a delayed mandatory message at once."""
    conn, ch, ex = delayed()
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((time.monotonic(), m, b)))
    ch.confirm_delivery()
    start = time.monotonic()
    ch.basic_publish(ex, "nowhere", b"back", delay(300), mandatory=True)
    wait_for(conn, lambda: returned, 10, "basic.return")
    at, method, body = returned[0]
    assert at - start >= 0.3
    assert (method.reply_code, method.reply_text, body) == (312, "NO_ROUTE", b"back")


def test_deleting_the_exchange_drops_its_schedule(delayed):
    conn, ch, ex = delayed()
    q = declare_queue(ch)
    ch.queue_bind(q, ex, "k")
    ch.basic_publish(ex, "k", b"dropped", delay(300))
    ch.exchange_delete(ex)
    ch.exchange_declare(ex, DELAYED, arguments={"x-delayed-type": "direct"})
    ch.queue_bind(q, ex, "k")
    ch.basic_publish(ex, "k", b"marker", delay(600))
    assert [b for _, _, b in collect(conn, ch, q, 1)] == [b"marker"]
