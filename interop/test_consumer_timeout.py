"""Consumer timeouts through pika: a delivery not acknowledged in time closes its channel
with 406 PRECONDITION_FAILED and RabbitMQ's text, and the message goes back to its queue.

Here with the queue argument `x-consumer-timeout` (RabbitMQ 3.12+ accept it; 3.10 only
has the node-wide `consumer_timeout`, checked once a minute), so these tests skip on a
broker that is not Warren (recognised by its `platform` server property).
Waits are on events with deadlines; nothing sleeps to synchronise.
"""

import pika.exceptions as exc
import pytest

from helpers import declare_queue, get_message, wait_for


@pytest.fixture
def warren_only(connection):
    platform = connection._impl.server_properties.get("platform", b"")
    if isinstance(platform, bytes):
        platform = platform.decode()
    if not platform.startswith("Warren"):
        pytest.skip("x-consumer-timeout needs RabbitMQ 3.12+ (or Warren)")


def test_unacknowledged_delivery_closes_the_channel_and_is_requeued(
        warren_only, connect, unique, cleanup):
    conn = connect()
    ch = conn.channel()
    q = cleanup.queue(unique("timeout"))
    declare_queue(ch, q, exclusive=False, arguments={"x-consumer-timeout": 300})
    ch.basic_publish("", q, b"slow job")
    got = []
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=False)
    wait_for(conn, lambda: got, what="the delivery")
    # Never acknowledged: the broker closes the channel within a few sweeps.
    closed = []
    ch._impl.add_on_close_callback(lambda c, reason: closed.append(reason))  # pika's Channel
    wait_for(conn, lambda: closed, timeout=10, what="the channel to close")
    assert isinstance(closed[0], exc.ChannelClosedByBroker)
    assert closed[0].reply_code == 406
    assert closed[0].reply_text == (
        f"PRECONDITION_FAILED - delivery acknowledgement on channel {ch.channel_number} "
        "timed out. Timeout value used: 300 ms. This timeout value can be configured, "
        "see consumers doc guide to learn more")
    # Back in the queue, flagged redelivered; the connection itself stays open.
    other = conn.channel()
    method, _, body = get_message(other, q, auto_ack=True)
    assert body == b"slow job"
    assert method.redelivered


def test_acknowledged_in_time_keeps_the_channel(warren_only, connect, unique, cleanup):
    conn = connect()
    ch = conn.channel()
    q = cleanup.queue(unique("timeout"))
    declare_queue(ch, q, exclusive=False, arguments={"x-consumer-timeout": 60000})
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    got = []
    ch.basic_consume(q, lambda c, m, p, b: (got.append(b), c.basic_ack(m.delivery_tag)),
                     auto_ack=False)
    wait_for(conn, lambda: len(got) == 3, what="three deliveries")
    assert ch.is_open
    assert ch.queue_declare(q, passive=True).method.message_count == 0
