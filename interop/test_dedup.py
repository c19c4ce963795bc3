"""Message deduplication (rabbitmq-message-deduplication's exchange type and queue
argument) through pika.

Warren only: the plugin is not shipped with Debian's RabbitMQ, so these tests are written
from the plugin's README and skip themselves on a broker that does not know the exchange
type (503). A duplicate is confirmed to its publisher but not stored.
"""

import pika
import pika.exceptions as exc
import pytest

from helpers import declare_queue, drain

DEDUP = "x-message-deduplication"


def dedup(value):
    return pika.BasicProperties(headers={"x-deduplication-header": value})


def test_exchange_routes_a_value_once_and_confirms_the_duplicate(connect, unique, cleanup):
    ch = connect().channel()
    ex = cleanup.exchange(unique("dedup"))
    try:
        ch.exchange_declare(ex, DEDUP, arguments={"x-cache-size": 100})
    except exc.ConnectionClosedByBroker as e:
        if e.reply_code == 503:
            pytest.skip("the broker lacks the x-message-deduplication exchange type")
        raise
    ch.confirm_delivery()
    q = declare_queue(ch)
    ch.queue_bind(q, ex, "")
    for value in ("a", "b", "a", "a", "c", "b"):
        ch.basic_publish(ex, "", value.encode(), dedup(value))  # each confirmed (ack)
    ch.basic_publish(ex, "", b"no header")
    ch.basic_publish(ex, "", b"no header")
    assert [body for _, _, body in drain(ch, q)] == [b"a", b"b", b"c", b"no header", b"no header"]


def test_exchange_checks_its_cache_size(connect, unique, cleanup):
    ch = connect().channel()
    ex = cleanup.exchange(unique("dedup"))
    try:
        ch.exchange_declare(ex, DEDUP, arguments={"x-cache-size": 0})
    except exc.ConnectionClosedByBroker as e:
        if e.reply_code == 503:
            pytest.skip("the broker lacks the x-message-deduplication exchange type")
        raise
    except exc.ChannelClosedByBroker as e:
        assert e.reply_code == 406
        assert e.reply_text == ("PRECONDITION_FAILED - Missing or invalid argument, "
                                "'x-cache-size' must be an integer greater than 0")
    else:
        pytest.fail("x-cache-size 0 was accepted")


def test_queue_holds_a_value_once_until_it_leaves(connect, unique, cleanup, amqp_url):
    ch = connect().channel()
    probe = cleanup.exchange(unique("probe"))
    try:
        ch.exchange_declare(probe, DEDUP, arguments={"x-cache-size": 1})
    except exc.ConnectionClosedByBroker as e:
        if e.reply_code == 503:
            pytest.skip("the broker lacks the deduplication plugin")
        raise
    ch.confirm_delivery()
    q = declare_queue(ch, arguments={"x-message-deduplication": True})
    for body in (b"first", b"second"):
        ch.basic_publish("", q, body, dedup("order-1"))
    assert [body for _, _, body in drain(ch, q)] == [b"first"]
    # Gone from the queue: the value may be queued again.
    ch.basic_publish("", q, b"third", dedup("order-1"))
    assert [body for _, _, body in drain(ch, q)] == [b"third"]
