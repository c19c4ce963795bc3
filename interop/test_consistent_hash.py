"""The x-consistent-hash exchange (rabbitmq_consistent_hash_exchange's type) through pika.

Passes against RabbitMQ 3.10 with the plugin enabled and against Warren; skips itself on a
broker without the type (503 unknown exchange type). The binding key is the queue's weight;
the routing key (or the `hash-header` header) picks the queue.
"""

import pika
import pika.exceptions as exc
import pytest

from helpers import declare_queue

HASH = "x-consistent-hash"


@pytest.fixture
def hash_exchange(connect, unique, cleanup):
    """hash_exchange(**arguments) -> (channel, name) of a new x-consistent-hash exchange."""

    def make(**arguments):
        ch = connect().channel()
        name = cleanup.exchange(unique("hx"))
        try:
            ch.exchange_declare(name, HASH, arguments=arguments)
        except exc.ConnectionClosedByBroker as e:
            if e.reply_code == 503:
                pytest.skip("the broker lacks the x-consistent-hash exchange type")
            raise
        ch.confirm_delivery()
        return ch, name

    return make


def count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def test_weights_share_the_keys_and_a_key_always_reaches_one_queue(hash_exchange):
    ch, ex = hash_exchange()
    light, heavy = declare_queue(ch), declare_queue(ch)
    ch.queue_bind(light, ex, "1")
    ch.queue_bind(heavy, ex, "3")
    for i in range(4000):
        ch.basic_publish(ex, f"key-{i}", b"x")
    n_light, n_heavy = count(ch, light), count(ch, heavy)
    assert n_light + n_heavy == 4000
    # Weights 1:3 -> a quarter of the keys, within 5 points.
    assert abs(n_light / 4000 - 0.25) < 0.05, (n_light, n_heavy)
    # The same key, again and again: all to one queue.
    for _ in range(50):
        ch.basic_publish(ex, "key-same", b"y")
    grown = (count(ch, light) - n_light, count(ch, heavy) - n_heavy)
    assert sorted(grown) == [0, 50]


def test_hash_header_picks_the_queue_whatever_the_routing_key(hash_exchange):
    ch, ex = hash_exchange(**{"hash-header": "customer"})
    queues = [declare_queue(ch) for _ in range(3)]
    for q in queues:
        ch.queue_bind(q, ex, "10")
    props = pika.BasicProperties(headers={"customer": "c-42"})
    for i in range(30):
        ch.basic_publish(ex, f"rk-{i}", b"z", props)
    assert sorted(count(ch, q) for q in queues) == [0, 0, 30]


@pytest.mark.parametrize("weight, text", [
    ("abc", 'The binding key must be an integer: <<"abc">>'),
    ("0", "The binding key must be greater than 0"),
])
def test_binding_key_must_be_a_positive_weight(hash_exchange, weight, text):
    ch, ex = hash_exchange()
    q = declare_queue(ch)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_bind(q, ex, weight)
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - {text}"
