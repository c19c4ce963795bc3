"""Quorum queues (x-queue-type: quorum) as RabbitMQ 3.10 runs them on one node: refused
properties and arguments, the delivery count (x-delivery-count) and x-delivery-limit,
dead-lettering past the limit, reject-publish as a soft limit, drop-head and
reject-publish-dlx, message TTL, single active consumer, at-least-once dead-lettering's
discards counted against the limits. Passes against RabbitMQ 3.10.
"""

import pika
import pika.exceptions as exc
import pytest

from helpers import get_message, wait_for

QUORUM = {"x-queue-type": "quorum"}


def quorum(channel, name, **extra):
    channel.queue_declare(name, durable=True, arguments={**QUORUM, **extra})
    return name


def quorum_dead_lettering(channel, unique, **extra):
    """A quorum queue dead-lettering into a new classic queue: (queue, dead-letter queue)."""
    dlq = unique("dlq")
    channel.queue_declare(dlq, durable=True)
    q = quorum(channel, unique("q"), **{
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dlq,
        **extra,
    })
    return q, dlq


def delivery_count(props):
    return (props.headers or {}).get("x-delivery-count")


@pytest.mark.parametrize(
    "flags,extra,text",
    [
        ({"durable": False}, {}, "invalid property 'non-durable' for queue '{q}' in vhost '/'"),
        ({"exclusive": True}, {}, "invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"),
        ({"auto_delete": True}, {}, "invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
        ({}, {"x-max-priority": 5},
         "invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue"),
        ({}, {"x-queue-mode": "lazy"},
         "invalid arg 'x-queue-mode' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue"),
        ({}, {"x-dead-letter-strategy": "bogus"},
         "invalid arg 'x-dead-letter-strategy' for queue '{q}' in vhost '/': invalid_dlx_strategy"),
    ],
)
def test_refused_declarations(connect, unique, flags, extra, text):
    conn = connect()
    ch = conn.channel()
    q = unique("q")
    args = {"durable": True, **flags}
    with pytest.raises(exc.ChannelClosedByBroker) as e:
        ch.queue_declare(q, arguments={**QUORUM, **extra}, **args)
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - " + text.format(q=q)


def test_classic_redeclared_as_quorum_is_inequivalent(connect, unique):
    conn = connect()
    ch = conn.channel()
    q = unique("q")
    ch.queue_declare(q, durable=True)
    with pytest.raises(exc.ChannelClosedByBroker) as e:
        ch.queue_declare(q, durable=True, arguments=QUORUM)
    assert e.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
        "received the value 'quorum' of type 'longstr' but current is none"
    )


def test_returns_count_and_the_limit_dead_letters(connection, channel, unique):
    q, dlq = quorum_dead_lettering(channel, unique, **{"x-delivery-limit": 1})
    channel.confirm_delivery()
    channel.basic_publish("", q, b"m", pika.BasicProperties(headers={"app": "x"}))
    seen = []

    def on_message(ch, method, props, body):
        seen.append((method.redelivered, delivery_count(props)))
        ch.basic_nack(method.delivery_tag, requeue=True)

    channel.basic_consume(q, on_message)
    # A limit of 1: delivered twice, then dead-lettered.
    wait_for(connection, lambda: len(seen) >= 2, what="two deliveries")
    method, props, body = get_message(channel, dlq, auto_ack=True)
    assert seen == [(False, None), (True, 1)]
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    assert props.headers["x-death"][0]["reason"] == "delivery_limit"
    assert "x-delivery-count" not in props.headers
    assert props.headers["app"] == "x"


def test_basic_get_counts_from_zero_and_a_closed_channel_returns(connect, unique):
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    q = quorum(ch, unique("q"))
    ch.basic_publish("", q, b"m")
    method, props, _ = ch.basic_get(q)
    assert delivery_count(props) == 0
    ch.close()
    ch = conn.channel()
    method, props, _ = get_message(ch, q)
    assert method.redelivered
    assert delivery_count(props) == 1


def test_reject_publish_is_a_soft_limit(channel, unique):
    channel.confirm_delivery()
    q = quorum(channel, unique("q"), **{"x-max-length": 2, "x-overflow": "reject-publish"})
    results = []
    for i in range(5):
        try:
            channel.basic_publish("", q, str(i).encode())
            results.append(True)
        except exc.NackError:
            results.append(False)
    assert results == [True, True, True, False, False]
    assert channel.queue_declare(q, passive=True).method.message_count == 3


@pytest.mark.parametrize("overflow", ["drop-head", "reject-publish-dlx"])
def test_drop_head_keeps_the_newest(channel, unique, overflow):
    channel.confirm_delivery()
    q = quorum(channel, unique("q"), **{"x-max-length": 1, "x-overflow": overflow})
    channel.basic_publish("", q, b"old")
    channel.basic_publish("", q, b"new")
    assert channel.queue_declare(q, passive=True).method.message_count == 1
    assert get_message(channel, q, auto_ack=True)[2] == b"new"


def test_message_ttl_dead_letters_as_expired(channel, unique):
    q, dlq = quorum_dead_lettering(channel, unique, **{"x-message-ttl": 50})
    channel.basic_publish("", q, b"m")
    _, props, _ = get_message(channel, dlq, auto_ack=True)
    assert props.headers["x-first-death-reason"] == "expired"


def test_single_active_consumer(connection, channel, unique):
    q = quorum(channel, unique("q"), **{"x-single-active-consumer": True})
    got = {"a": [], "b": []}
    channel.basic_consume(q, lambda c, m, p, b: got["a"].append(b), auto_ack=True)
    channel.basic_consume(q, lambda c, m, p, b: got["b"].append(b), auto_ack=True)
    for i in range(4):
        channel.basic_publish("", q, str(i).encode())
    wait_for(connection, lambda: len(got["a"]) == 4, what="four deliveries to the first")
    assert got["b"] == []


def test_at_least_once_discards_count_toward_reject_publish(channel, unique):
    """A message its dead-letter exchange cannot take (here: missing) stays in the source
    among rabbit_fifo's discards: not ready, but counted against x-max-length."""
    channel.confirm_delivery()
    q = quorum(channel, unique("q"), **{
        "x-dead-letter-exchange": unique("missing"),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-max-length": 3,
    })
    for body in (b"a", b"b"):
        channel.basic_publish("", q, body)
    for _ in range(2):
        method, _, _ = get_message(channel, q)
        channel.basic_reject(method.delivery_tag, requeue=False)
    wait_for(channel.connection,
             lambda: channel.queue_declare(q, passive=True).method.message_count == 0,
             what="both rejected")
    results = []
    for i in range(4):
        try:
            channel.basic_publish("", q, str(i).encode())
            results.append(True)
        except exc.NackError:
            results.append(False)
    # 2 discards + 0 ready: the third message fits, the fourth takes the queue over.
    assert results == [True, True, False, False]
    assert channel.queue_declare(q, passive=True).method.message_count == 2
