"""Queues: declare/passive/exclusive/auto-delete, bind/unbind, purge, delete, arguments."""

import re
import time

import pika
import pika.exceptions as exc
import pika.spec as spec
import pytest

from helpers import WAIT, declare_queue, drain, get_message, settle


def vhost_of(connection):
    return connection._impl.params.virtual_host


def locked_text(name, vhost):
    """RabbitMQ's 405 text. Reply texts are short strings: RabbitMQ cuts a text
    longer than 255 bytes to its first 252 bytes followed by '...'."""
    return short_string(f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in "
            f"vhost '{vhost}'. It could be originally declared on another connection or the "
            "exclusive property value does not match that of the original declaration.")


def short_string(text):
    raw = text.encode()
    if len(raw) <= 255:
        return text
    return raw[:252].decode(errors="ignore") + "..."


def publish_confirmed(channel, queue, bodies):
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish("", queue, body)


# ---------------------------------------------------------------- declare


def test_server_named_queue(channel):
    ok = channel.queue_declare("", exclusive=True)
    name = ok.method.queue
    assert name.startswith("amq.gen-")
    assert len(name) == 30  # amq.gen- + 22 chars of url-safe base64
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", name)
    assert ok.method.message_count == 0
    assert ok.method.consumer_count == 0
    other = channel.queue_declare("", exclusive=True).method.queue
    assert other != name


def test_redeclare_server_named_queue_by_name_403(connection, channel):
    """An active declare of an existing 'amq.gen-...' name hits the reserved-prefix
    check (403) even on the owning connection; passive declare works."""
    name = declare_queue(channel)
    channel.queue_declare(name, passive=True)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare(name, exclusive=True)
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")


def test_declare_named_queue_and_redeclare(channel, unique):
    name = unique("q")
    ok = channel.queue_declare(name, auto_delete=True)
    assert ok.method.queue == name
    again = channel.queue_declare(name, auto_delete=True)
    assert again.method.queue == name
    channel.queue_delete(name)


def test_passive_declare_missing_404(connection, channel, unique):
    name = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare(name, passive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '{vhost_of(connection)}'"


def test_passive_declare_empty_name_404(connection, channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", passive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no queue '' in vhost '{vhost_of(connection)}'"


def test_declare_ok_counts(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"1", b"2", b"3"])
    ok = channel.queue_declare(q, passive=True)
    assert (ok.method.message_count, ok.method.consumer_count) == (3, 0)
    # an unacked basic.get message is not counted as ready
    method, _, _ = get_message(channel, q)
    ok = channel.queue_declare(q, passive=True)
    assert (ok.method.message_count, ok.method.consumer_count) == (2, 0)
    channel.basic_ack(method.delivery_tag)
    other = connection.channel()
    other.basic_qos(prefetch_count=1)
    other.basic_consume(q, lambda *a: None)
    other.basic_consume(q, lambda *a: None)
    # both remaining messages go out (one per consumer) and stay unacked
    deadline = time.monotonic() + WAIT
    while True:
        ok = channel.queue_declare(q, passive=True)
        if ok.method.message_count == 0 or time.monotonic() > deadline:
            break
        settle(connection, 0.02)
    assert (ok.method.message_count, ok.method.consumer_count) == (0, 2)


@pytest.mark.parametrize("first,second,arg,received,current", [
    (dict(durable=False), dict(durable=True), "durable", "true", "false"),
    (dict(auto_delete=False), dict(auto_delete=True), "auto_delete", "true", "false"),
])
def test_redeclare_inequivalent_406(connection, unique, cleanup, first, second, arg, received,
                                    current):
    name = cleanup.queue(unique("q"))
    ch = connection.channel()
    ch.queue_declare(name, **first)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, **second)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in vhost "
        f"'{vhost_of(connection)}': received '{received}' but current is '{current}'")


def test_redeclare_different_arguments_406(connection, unique, cleanup):
    name = cleanup.queue(unique("q"))
    ch = connection.channel()
    ch.queue_declare(name, auto_delete=True)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, auto_delete=True, arguments={"x-max-length": 10})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{name}' in vhost "
        f"'{vhost_of(connection)}': received the value '10' of type 'signedint' but current "
        "is none")


def test_exclusive_queue_is_never_durable(channel, unique):
    """RabbitMQ ignores durable=true on an exclusive queue: redeclaring it with either
    durable flag is equivalent."""
    name = unique("q")
    channel.queue_declare(name, exclusive=True, durable=True)
    channel.queue_declare(name, exclusive=True, durable=False)
    channel.queue_declare(name, exclusive=True, durable=True)


def test_redeclare_reports_arguments_in_rabbitmq_order(connection, unique):
    """With several inequivalent arguments RabbitMQ reports the first in its own order
    (x-message-ttl before x-max-length), whatever the table order."""
    name = unique("q")
    ch = connection.channel()
    ch.queue_declare(name, arguments={"x-max-length": 1, "x-message-ttl": 5})
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, arguments={"x-max-length": 2, "x-message-ttl": 6})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{name}' in vhost "
        f"'{vhost_of(connection)}': received '6' but current is '5'")


def test_raw_cr_lf_stripped_from_declared_queue_name(raw, unique):
    q = unique("q")
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue=q[:6] + "\r\n" + q[6:], exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    assert ok.queue == q
    r.send_method(1, spec.Queue.Declare(queue=q, passive=True))
    r.expect(spec.Queue.DeclareOk)


def test_cr_lf_stripped_from_declared_and_bound_names(connection, unique):
    """RabbitMQ strips CR and LF from queue and exchange names in declare, bind, unbind
    and delete, but not in basic.get (nor publish)."""
    q, x = unique("q"), unique("x")
    ch = connection.channel()
    ch.queue_declare(q, exclusive=True)
    ch.exchange_declare(x[:6] + "\n" + x[6:], "fanout")
    ch.exchange_declare(x, passive=True)
    ch.queue_bind(q + "\n", x + "\r")
    ch.confirm_delivery()
    ch.basic_publish(x, "", b"m")
    assert get_message(ch, q, auto_ack=True)[2] == b"m"
    ch.exchange_delete("\n" + x)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_declare(x, passive=True)
    assert info.value.reply_code == 404
    ch = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.basic_get(q + "\n")
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no queue '{q}\n' in vhost '{vhost_of(connection)}'"


def test_redeclare_non_exclusive_as_exclusive_405(connection, unique, cleanup):
    name = cleanup.queue(unique("q"))
    ch = connection.channel()
    ch.queue_declare(name)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, exclusive=True)
    assert info.value.reply_code == 405
    assert info.value.reply_text == locked_text(name, vhost_of(connection))


def test_declare_amq_prefix_403(channel, unique):
    name = "amq." + unique("q")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare(name)
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")


@pytest.mark.queue_args
@pytest.mark.parametrize("args,detail", [
    ({"x-max-length": "ten"}, '"expected integer, got longstr"'),
    ({"x-max-length": -1}, "{value_negative,-1}"),
])
def test_declare_invalid_argument_406(connection, channel, args, detail):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True, arguments=args)
    assert info.value.reply_code == 406
    text = info.value.reply_text
    assert text.startswith("PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'amq.gen-")
    assert text.endswith(f"' in vhost '{vhost_of(connection)}': {detail}")


def test_unknown_x_argument_accepted(channel):
    channel.queue_declare("", exclusive=True, arguments={"x-interop-unknown": "1"})


# ---------------------------------------------------------------- exclusive


@pytest.mark.parametrize("op", ["passive", "declare", "get", "consume", "delete", "purge", "bind"])
def test_exclusive_queue_locked_for_other_connection_405(connect, unique, op):
    owner = connect()
    name = unique("excl")
    owner.channel().queue_declare(name, exclusive=True)
    other = connect().channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        if op == "passive":
            other.queue_declare(name, passive=True)
        elif op == "declare":
            other.queue_declare(name, exclusive=True)
        elif op == "get":
            other.basic_get(name)
        elif op == "consume":
            other.basic_consume(name, lambda *a: None)
        elif op == "delete":
            other.queue_delete(name)
        elif op == "purge":
            other.queue_purge(name)
        elif op == "bind":
            other.queue_bind(name, "amq.direct", "k")
    assert info.value.reply_code == 405
    assert info.value.reply_text == locked_text(name, vhost_of(owner))


def test_exclusive_queue_unbind_from_other_connection(connect, unique):
    """Unbinding a binding that does not exist is fine even on another connection's
    exclusive queue (as is naming a missing exchange); removing an existing binding is 405."""
    owner = connect()
    och = owner.channel()
    name = declare_queue(och, unique("excl"))
    och.queue_bind(name, "amq.direct", "bound")
    other = connect()
    och2 = other.channel()
    och2.queue_unbind(name, "amq.direct", "not-bound")
    och2.queue_unbind(name, unique("missing"), "bound")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        other.channel().queue_unbind(name, "amq.direct", "bound")
    assert info.value.reply_code == 405
    assert info.value.reply_text == locked_text(name, vhost_of(owner))


@pytest.mark.parametrize("exchange,code", [("missing", 404), ("", 403)])
def test_exclusive_queue_bind_checks_exchange_before_lock(connect, unique, exchange, code):
    """RabbitMQ checks the default exchange (403) and the exchange's existence (404)
    before exclusive access (405)."""
    owner = connect()
    name = declare_queue(owner.channel(), unique("excl"))
    other = connect().channel()
    ex = unique("missing") if exchange == "missing" else exchange
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        other.queue_bind(name, ex, "k")
    assert info.value.reply_code == code


def test_exclusive_queue_publish_from_other_connection_allowed(connect, unique):
    owner = connect()
    och = owner.channel()
    name = declare_queue(och, unique("excl"))
    other = connect().channel()
    other.confirm_delivery()
    other.basic_publish("", name, b"from outside")
    assert get_message(och, name, auto_ack=True)[2] == b"from outside"


def test_exclusive_queue_usable_from_other_channel_same_connection(connection, unique):
    a, b = connection.channel(), connection.channel()
    name = declare_queue(a, unique("excl"))
    b.queue_declare(name, passive=True)
    b.queue_declare(name, exclusive=True)
    b.queue_bind(name, "amq.direct", name)
    b.basic_get(name)


def test_exclusive_queue_deleted_when_connection_closes(connect, unique):
    owner = connect()
    name = declare_queue(owner.channel(), unique("excl"))
    owner.close()
    ch = connect().channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_exclusive_queue_survives_channel_close(connection, unique):
    ch = connection.channel()
    name = declare_queue(ch, unique("excl"))
    ch.close()
    connection.channel().queue_declare(name, passive=True)


# ---------------------------------------------------------------- auto-delete


def test_auto_delete_queue_deleted_after_last_consumer_cancels(connection, unique, cleanup):
    name = cleanup.queue(unique("ad"))
    ch = connection.channel()
    ch.queue_declare(name, auto_delete=True)
    t1 = ch.basic_consume(name, lambda *a: None)
    t2 = ch.basic_consume(name, lambda *a: None)
    ch.basic_cancel(t1)
    assert ch.queue_declare(name, passive=True).method.consumer_count == 1
    ch.basic_cancel(t2)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_auto_delete_queue_deleted_when_consumer_channel_closes(connection, unique, cleanup):
    name = cleanup.queue(unique("ad"))
    ch = connection.channel()
    ch.queue_declare(name, auto_delete=True)
    consumer = connection.channel()
    consumer.basic_consume(name, lambda *a: None)
    consumer.close()
    with pytest.raises(exc.ChannelClosedByBroker):
        ch.queue_declare(name, passive=True)


def test_auto_delete_queue_without_consumers_survives(channel, unique):
    name = unique("ad")
    channel.queue_declare(name, auto_delete=True)
    channel.basic_publish("", name, b"x")
    get_message(channel, name, auto_ack=True)  # basic.get is not a consumer
    channel.queue_declare(name, passive=True)
    channel.queue_delete(name)


# ---------------------------------------------------------------- bind / unbind


def test_bind_unbind(channel, unique):
    ex = unique("ex")
    channel.exchange_declare(ex, "direct", auto_delete=True)
    q = declare_queue(channel)
    assert isinstance(channel.queue_bind(q, ex, "k").method, spec.Queue.BindOk)
    channel.queue_bind(q, ex, "k")  # idempotent
    channel.confirm_delivery()
    channel.basic_publish(ex, "k", b"1")
    assert len(drain(channel, q)) == 1  # one binding, one copy
    channel.queue_bind(q, ex, "k2")
    assert isinstance(channel.queue_unbind(q, ex, "k").method, spec.Queue.UnbindOk)
    channel.basic_publish(ex, "k", b"2")
    assert drain(channel, q) == []
    channel.exchange_delete(ex)


def test_bind_missing_queue_404(connection, channel, unique):
    name = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_bind(name, "amq.direct", "k")
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '{vhost_of(connection)}'"


def test_bind_missing_exchange_404(connection, channel, unique):
    q = declare_queue(channel)
    name = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_bind(q, name, "k")
    assert info.value.reply_code == 404
    assert info.value.reply_text == (
        f"NOT_FOUND - no exchange '{name}' in vhost '{vhost_of(connection)}'")


def test_bind_missing_queue_and_exchange_reports_exchange(connection, channel, unique):
    queue, ex = unique("missing-q"), unique("missing-x")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_bind(queue, ex, "k")
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no exchange '{ex}' in vhost '{vhost_of(connection)}'"


@pytest.mark.parametrize("op", ["bind", "unbind"])
def test_bind_missing_queue_to_default_exchange_403(channel, unique, op):
    """The default-exchange check comes before the queue's existence, for unbind too."""
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        getattr(channel, f"queue_{op}")(unique("missing"), "", "k")
    assert info.value.reply_code == 403
    assert info.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_queue_delete_removes_bindings(channel, unique):
    ex = unique("ex")
    channel.exchange_declare(ex, "fanout")
    try:
        name = unique("q")
        channel.queue_declare(name)
        channel.queue_bind(name, ex)
        channel.queue_delete(name)
        channel.queue_declare(name, exclusive=True)
        channel.confirm_delivery()
        channel.basic_publish(ex, "", b"x")
        assert channel.queue_declare(name, passive=True).method.message_count == 0
    finally:
        channel.exchange_delete(ex)


# ---------------------------------------------------------------- purge / delete


def test_purge_returns_count(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"%d" % i for i in range(5)])
    ok = channel.queue_purge(q)
    assert ok.method.message_count == 5
    assert channel.queue_declare(q, passive=True).method.message_count == 0
    assert channel.queue_purge(q).method.message_count == 0


def test_purge_keeps_unacked(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"a", b"b", b"c"])
    method, _, _ = get_message(channel, q)
    assert channel.queue_purge(q).method.message_count == 2
    channel.basic_nack(method.delivery_tag, requeue=True)
    _, _, body = get_message(channel, q, auto_ack=True)
    assert body == b"a"


def test_purge_missing_404(channel, unique):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_purge(unique("missing"))
    assert info.value.reply_code == 404


def test_delete_returns_count(channel, unique):
    name = unique("q")
    channel.queue_declare(name)
    publish_confirmed(channel, name, [b"1", b"2", b"3", b"4"])
    ok = channel.queue_delete(name)
    assert ok.method.message_count == 4
    with pytest.raises(exc.ChannelClosedByBroker):
        channel.queue_declare(name, passive=True)


def test_delete_missing_is_ok(channel, unique):
    """RabbitMQ 3.10: deleting a non-existent queue succeeds with message_count 0."""
    ok = channel.queue_delete(unique("missing"))
    assert ok.method.message_count == 0


def test_delete_if_unused_406(connection, unique, cleanup):
    name = cleanup.queue(unique("q"))
    ch = connection.channel()
    ch.queue_declare(name)
    ch.basic_consume(name, lambda *a: None)
    other = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        other.queue_delete(name, if_unused=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - queue '{name}' in vhost '{vhost_of(connection)}' in use")


def test_delete_if_empty_406(connection, unique, cleanup):
    name = cleanup.queue(unique("q"))
    ch = connection.channel()
    ch.queue_declare(name)
    publish_confirmed(ch, name, [b"x"])
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_delete(name, if_empty=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - queue '{name}' in vhost '{vhost_of(connection)}' not empty")


def test_delete_if_unused_and_if_empty_succeed_when_true(channel, unique):
    name = unique("q")
    channel.queue_declare(name)
    ok = channel.queue_delete(name, if_unused=True, if_empty=True)
    assert ok.method.message_count == 0


def test_delete_queue_cancels_consumers(connection, unique):
    """Deleting a queue sends basic.cancel to its consumers (consumer_cancel_notify)."""
    ch = connection.channel()
    name = unique("q")
    ch.queue_declare(name)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(name, lambda *a: None)
    connection.channel().queue_delete(name)
    deadline = time.monotonic() + WAIT
    while not cancelled and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    assert cancelled == [tag]
    assert ch.is_open


# ---------------------------------------------------------------- "last declared queue"


def test_empty_queue_name_means_last_declared(raw):
    """AMQP 0-9-1: an empty queue name refers to the channel's last declared queue."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    key = "lastq-" + ok.queue
    r.send_method(1, spec.Queue.Bind(queue="", exchange="amq.direct", routing_key=key))
    r.expect(spec.Queue.BindOk)
    r.send_content(1, spec.Basic.Publish(exchange="amq.direct", routing_key=key), b"hello")
    r.send_method(1, spec.Basic.Get(queue="", no_ack=True))
    _, get_ok = r.expect(spec.Basic.GetOk)
    assert get_ok.routing_key == key
    r.send_method(1, spec.Queue.Purge(queue=""))
    r.expect(spec.Queue.PurgeOk)
    r.send_method(1, spec.Queue.Delete(queue=""))
    r.expect(spec.Queue.DeleteOk)


def test_empty_queue_name_and_routing_key_bind_by_queue_name(raw):
    """AMQP 0-9-1: with an empty queue name and an empty routing key, queue.bind and
    queue.unbind use the last declared queue's name as the routing key too."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send_method(1, spec.Queue.Bind(queue="", exchange="amq.direct", routing_key=""))
    r.expect(spec.Queue.BindOk)
    r.send_content(1, spec.Basic.Publish(exchange="amq.direct", routing_key=""), b"by-empty")
    r.send_content(1, spec.Basic.Publish(exchange="amq.direct", routing_key=ok.queue), b"by-name")
    r.send_method(1, spec.Basic.Get(queue="", no_ack=True))
    _, get_ok = r.expect(spec.Basic.GetOk)
    assert get_ok.routing_key == ok.queue
    assert get_ok.message_count == 0
    r.send_method(1, spec.Queue.Unbind(queue="", exchange="amq.direct", routing_key=""))
    r.expect(spec.Queue.UnbindOk)
    r.send_content(1, spec.Basic.Publish(exchange="amq.direct", routing_key=ok.queue), b"gone")
    r.send_method(1, spec.Basic.Get(queue="", no_ack=True))
    r.expect(spec.Basic.GetEmpty)


def test_passive_declare_empty_name_after_declare_404(raw):
    """Passive declare with an empty name does not mean the last declared queue."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    r.expect(spec.Queue.DeclareOk)
    r.send_method(1, spec.Queue.Declare(queue="", passive=True))
    _, close = r.expect(spec.Channel.Close)
    assert close.reply_code == 404
    assert close.reply_text == f"NOT_FOUND - no queue '' in vhost '{r.vhost}'"


def test_empty_queue_name_without_previous_declare_404(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Basic.Get(queue="", no_ack=True))
    ch, close = r.expect(spec.Channel.Close)
    assert ch == 1
    assert close.reply_code == 404
    assert close.reply_text == "NOT_FOUND - no previously declared queue"
    assert (close.class_id, close.method_id) == (60, 70)


def test_nowait_declare(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True, nowait=True))
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    ch, ok = r.expect(spec.Queue.DeclareOk)  # only one declare-ok comes back
    assert ch == 1
    r.send_method(1, spec.Basic.Qos(prefetch_count=1))
    r.expect(spec.Basic.QosOk)


# ---------------------------------------------------------------- common x-arguments


@pytest.mark.queue_args
def test_message_ttl_argument(channel):
    q = declare_queue(channel, arguments={"x-message-ttl": 50})
    publish_confirmed(channel, q, [b"expires"])
    deadline = time.monotonic() + WAIT
    while channel.queue_declare(q, passive=True).method.message_count:
        assert time.monotonic() < deadline, "message did not expire"
        settle(channel.connection, 0.05)
    assert channel.basic_get(q)[0] is None


@pytest.mark.queue_args
def test_per_message_expiration(channel):
    q = declare_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"short", pika.BasicProperties(expiration="50"))
    channel.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    settle(channel.connection, 0.2)
    bodies = [m[2] for m in drain(channel, q)]
    assert bodies == [b"long"]


@pytest.mark.queue_args
def test_max_length_drops_head(channel):
    q = declare_queue(channel, arguments={"x-max-length": 2})
    publish_confirmed(channel, q, [b"0", b"1", b"2", b"3"])
    assert [m[2] for m in drain(channel, q)] == [b"2", b"3"]


@pytest.mark.queue_args
def test_max_length_reject_publish_nacks(channel):
    q = declare_queue(channel, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    channel.basic_publish("", q, b"1")
    with pytest.raises(exc.NackError):
        channel.basic_publish("", q, b"2")
    assert [m[2] for m in drain(channel, q)] == [b"1"]


@pytest.mark.queue_args
def test_dead_letter_on_reject(channel):
    dlq = declare_queue(channel)
    q = declare_queue(channel, arguments={"x-dead-letter-exchange": "",
                                          "x-dead-letter-routing-key": dlq})
    publish_confirmed(channel, q, [b"doomed"])
    method, _, _ = get_message(channel, q)
    channel.basic_reject(method.delivery_tag, requeue=False)
    dmethod, props, body = get_message(channel, dlq, auto_ack=True)
    assert body == b"doomed"
    assert dmethod.routing_key == dlq
    death = props.headers["x-death"][0]
    assert death["reason"] == "rejected"
    assert death["queue"] == q
    assert death["count"] == 1
    assert death["exchange"] == ""
    assert death["routing-keys"] == [q]
    assert props.headers["x-first-death-reason"] == "rejected"
    assert props.headers["x-first-death-queue"] == q


@pytest.mark.queue_args
def test_max_priority(channel):
    q = declare_queue(channel, arguments={"x-max-priority": 10})
    channel.confirm_delivery()
    for p in [1, 5, 3, None, 9]:
        channel.basic_publish("", q, str(p).encode(), pika.BasicProperties(priority=p))
    assert [m[2] for m in drain(channel, q)] == [b"9", b"5", b"3", b"1", b"None"]


@pytest.mark.queue_args
def test_queue_expires(channel, unique):
    name = unique("expiring")
    channel.queue_declare(name, arguments={"x-expires": 100})
    deadline = time.monotonic() + WAIT
    while True:
        # NB: a (passive) declare counts as use and restarts the expiry timer in
        # RabbitMQ, so poll less often than the expiry period.
        settle(channel.connection, 0.3)
        try:
            channel.queue_declare(name, passive=True)
        except exc.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline, "queue did not expire"
