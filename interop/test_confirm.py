"""Publisher confirms (confirm.select, basic.ack / basic.nack from the broker)."""

import pika
import pika.exceptions as exc
import pika.spec as spec
import pytest

from helpers import declare_queue, drain, get_message, settle


def test_confirm_delivery_and_publish(channel):
    q = declare_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"confirmed")  # raises on nack/return, returns on ack
    assert get_message(channel, q, auto_ack=True)[2] == b"confirmed"


def test_unroutable_still_acked(channel, unique):
    channel.confirm_delivery()
    channel.basic_publish("", unique("no-queue"), b"x")  # no exception: acked
    channel.basic_publish("amq.direct", "nobody-bound", b"x")
    assert channel.is_open


def test_mandatory_unroutable_returned_then_acked(channel, unique):
    channel.confirm_delivery()
    with pytest.raises(exc.UnroutableError) as info:
        channel.basic_publish("amq.direct", unique("nobody"), b"bounce", mandatory=True)
    [returned] = info.value.messages
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.body == b"bounce"
    assert channel.is_open


def test_mandatory_routable_acked(channel):
    q = declare_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"x", mandatory=True)
    assert get_message(channel, q, auto_ack=True)[2] == b"x"


def test_many_publishes_confirmed(channel):
    q = declare_queue(channel)
    channel.confirm_delivery()
    for i in range(200):
        channel.basic_publish("", q, b"%d" % i)
    assert channel.queue_declare(q, passive=True).method.message_count == 200


def test_persistent_to_durable_queue_acked(channel, unique):
    name = unique("durable")
    channel.queue_declare(name, durable=True)
    try:
        channel.confirm_delivery()
        channel.basic_publish("", name, b"persist", pika.BasicProperties(delivery_mode=2))
        _, props, body = get_message(channel, name, auto_ack=True)
        assert body == b"persist"
        assert props.delivery_mode == 2
    finally:
        channel.queue_delete(name)


def test_publish_to_missing_exchange_closes_channel_no_nack(connection, channel, unique):
    channel.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_publish(unique("missing"), "k", b"x")
    assert info.value.reply_code == 404
    assert connection.is_open


def test_confirm_select_is_idempotent(channel):
    q = declare_queue(channel)
    channel.confirm_delivery()
    channel.confirm_delivery()
    channel.basic_publish("", q, b"x")
    assert get_message(channel, q, auto_ack=True)[2] == b"x"


def test_raw_return_precedes_ack(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Confirm.Select())
    ch, _ = r.expect(spec.Confirm.SelectOk)
    assert ch == 1
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key="interop-no-such-queue",
                                         mandatory=True), b"x")
    _, ret = r.expect(spec.Basic.Return)
    assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == (
        312, "NO_ROUTE", "", "interop-no-such-queue")
    _, ack = r.expect(spec.Basic.Ack)
    assert ack.delivery_tag == 1
    assert ack.multiple is False


def test_raw_confirm_tags_cover_every_publish(raw):
    """Tags count from 1 per channel; acks (possibly multiple=True) cover all of them."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk)
    n = 100
    for _ in range(n):
        r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), b"x")
    confirmed = set()
    last = 0
    while len(confirmed) < n:
        _, ack = r.expect(spec.Basic.Ack)
        assert ack.delivery_tag > last  # acks arrive in increasing tag order
        if ack.multiple:
            confirmed.update(range(last + 1, ack.delivery_tag + 1))
        else:
            confirmed.add(ack.delivery_tag)
        last = ack.delivery_tag
    assert confirmed == set(range(1, n + 1))


def test_raw_confirm_select_twice_ok_and_nowait(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Confirm.Select(nowait=True))
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key="nowhere"), b"x")
    _, ack = r.expect(spec.Basic.Ack)  # no select-ok for nowait
    assert ack.delivery_tag == 1
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key="nowhere"), b"x")
    _, ack = r.expect(spec.Basic.Ack)
    assert ack.delivery_tag == 2  # re-select does not reset the counter


@pytest.mark.queue_args
def test_nack_on_reject_publish_overflow(channel):
    q = declare_queue(channel, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    channel.basic_publish("", q, b"fits")
    with pytest.raises(exc.NackError):
        channel.basic_publish("", q, b"overflow")
    assert [m[2] for m in drain(channel, q)] == [b"fits"]


@pytest.mark.queue_args
def test_raw_reject_publish_nack_fields(raw):
    """RabbitMQ coalesces nacks like acks: with every earlier publish confirmed the nack
    is multiple=true, and requeue carries the method's default (true)."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True, arguments={
        "x-max-length": 1, "x-overflow": "reject-publish"}))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), b"fits")
    _, ack = r.expect(spec.Basic.Ack)
    assert (ack.delivery_tag, ack.multiple) == (1, False)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), b"overflow")
    _, nack = r.expect(spec.Basic.Nack)
    assert (nack.delivery_tag, nack.multiple, nack.requeue) == (2, True, True)


def test_confirm_after_tx_406(channel):
    channel.tx_select()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.confirm_delivery()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from tx to confirm mode"


def test_tx_after_confirm_406(channel):
    channel.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.tx_select()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from confirm to tx mode"


def test_confirms_are_per_channel(connection, channel):
    q = declare_queue(channel)
    other = connection.channel()
    other.confirm_delivery()
    channel.basic_publish("", q, b"unconfirmed-channel")
    other.basic_publish("", q, b"confirmed-channel")
    settle(connection, 0.05)
    assert sorted(m[2] for m in drain(channel, q)) == [b"confirmed-channel",
                                                       b"unconfirmed-channel"]
