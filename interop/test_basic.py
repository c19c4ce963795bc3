"""basic.*: publish, consume, get, ack/nack/reject, recover, qos, returns, CC/BCC."""

import datetime
import decimal
import struct

import pika
import pika.exceptions as exc
import pika.frame
import pika.spec as spec
import pytest

from helpers import consume_n, declare_queue, drain, get_message, settle, wait_for


def vhost_of(connection):
    return connection._impl.params.virtual_host


def publish_confirmed(channel, queue, bodies, exchange=""):
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(exchange, queue, body)


def numbered(n):
    return [b"%d" % i for i in range(n)]


# ---------------------------------------------------------------- publish / properties


def test_all_properties_round_trip(connection, channel):
    q = declare_queue(channel)
    headers = {
        "str": "string",
        "int": 42,
        "neg": -7,
        "big": 2 ** 40,
        "true": True,
        "false": False,
        "decimal": decimal.Decimal("3.14"),
        "timestamp": datetime.datetime(2020, 1, 2, 3, 4, 5),
        "void": None,
        "array": [1, "two", [3], {"four": 4}],
        "table": {"nested": {"deeper": "value"}},
        "bytes": b"\x00\x01\xff",
        "utf8": "héllo wörld ☃",
    }
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers=headers,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-id",
        reply_to="reply-queue",
        expiration="60000",
        message_id="message-id",
        timestamp=1700000000,
        type="message-type",
        user_id=connection._impl.params.credentials.username,
        app_id="app-id",
        cluster_id="cluster-id",
    )
    channel.confirm_delivery()
    channel.basic_publish("", q, b"body", props)
    method, got, body = get_message(channel, q, auto_ack=True)
    assert body == b"body"
    for name in ["content_type", "content_encoding", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                 "type", "user_id", "app_id", "cluster_id"]:
        assert getattr(got, name) == getattr(props, name), name
    expected = dict(headers)
    expected["timestamp"] = datetime.datetime(2020, 1, 2, 3, 4, 5,
                                              tzinfo=datetime.timezone.utc)
    assert got.headers == expected


def test_no_properties_round_trip(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"bare"])
    _, props, body = get_message(channel, q, auto_ack=True)
    assert body == b"bare"
    for name in ["content_type", "content_encoding", "headers", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                 "type", "user_id", "app_id", "cluster_id"]:
        assert getattr(props, name) is None, name


def _short(s):
    b = s.encode()
    return bytes([len(b)]) + b


def _frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def test_field_table_types_preserved_byte_for_byte(raw):
    """Every AMQP 0-9-1 / RabbitMQ field type survives the broker unchanged:
    the delivered content header carries exactly the property bytes published."""
    fields = [
        (b"t", b"\x01"),
        (b"b", struct.pack(">b", -5)),
        (b"B", struct.pack(">B", 250)),
        (b"s", struct.pack(">h", -300)),
        (b"u", struct.pack(">H", 60000)),
        (b"I", struct.pack(">i", -70000)),
        (b"i", struct.pack(">I", 4000000000)),
        (b"l", struct.pack(">q", -2 ** 40)),
        (b"f", struct.pack(">f", 1.5)),
        (b"d", struct.pack(">d", 2.25)),
        (b"D", b"\x02" + struct.pack(">i", 12345)),
        (b"S", struct.pack(">I", 5) + b"hello"),
        (b"x", struct.pack(">I", 3) + b"\x00\x01\xff"),
        (b"T", struct.pack(">Q", 1700000000)),
        (b"V", b""),
        (b"A", struct.pack(">I", 8) + b"I" + struct.pack(">i", 1) + b"V" + b"t\x00"),
        (b"F", struct.pack(">I", 8) + _short("k") + b"S" + struct.pack(">I", 1) + b"v"),
    ]
    table = b"".join(_short("f_" + tag.decode()) + tag + payload for tag, payload in fields)
    flags = 0x8000 | 0x2000 | 0x1000  # content-type, headers, delivery-mode
    props = (struct.pack(">H", flags) + _short("text/plain")
             + struct.pack(">I", len(table)) + table + b"\x02")
    header = struct.pack(">HHQ", 60, 0, 3) + props

    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send(pika.frame.Method(1, spec.Basic.Publish(exchange="", routing_key=ok.queue)))
    r.send_raw(_frame(2, 1, header) + _frame(3, 1, b"abc"))
    r.send_method(1, spec.Basic.Get(queue=ok.queue, no_ack=True))
    # read the raw header frame that follows get-ok
    _, get_ok = r.expect(spec.Basic.GetOk)
    while len(r.buf) < 7 or len(r.buf) < 8 + struct.unpack(">I", r.buf[3:7])[0]:
        r.buf += r.sock.recv(65536)
    kind, _, size = struct.unpack(">BHI", r.buf[:7])
    assert kind == 2
    payload = r.buf[7:7 + size]
    assert payload[:12] == struct.pack(">HHQ", 60, 0, 3)
    assert payload[12:] == props


def test_empty_body(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b""])
    _, _, body = get_message(channel, q, auto_ack=True)
    assert body == b""
    # and through a consumer
    publish_confirmed(channel, q, [b""])
    [(_, _, body)] = consume_n(channel.connection, channel, q, 1)
    assert body == b""


def test_large_message_1mib(channel):
    q = declare_queue(channel)
    body = bytes(range(256)) * 4096  # 1 MiB, spans many frames at frame_max 131072
    publish_confirmed(channel, q, [body])
    _, _, got = get_message(channel, q, auto_ack=True)
    assert len(got) == len(body)
    assert got == body
    publish_confirmed(channel, q, [body[::-1]])
    [(_, _, got)] = consume_n(channel.connection, channel, q, 1)
    assert got == body[::-1]


def test_body_exactly_frame_boundary(channel):
    q = declare_queue(channel)
    frame_body = channel.connection._impl.params.frame_max - 8
    bodies = [b"a" * (frame_body - 1), b"b" * frame_body, b"c" * (frame_body + 1),
              b"d" * (2 * frame_body)]
    publish_confirmed(channel, q, bodies)
    assert [m[2] for m in drain(channel, q)] == bodies


def test_fifo_ordering(connection, channel):
    q = declare_queue(channel)
    bodies = numbered(500)
    publish_confirmed(channel, q, bodies)
    got = consume_n(connection, channel, q, 500)
    assert [m[2] for m in got] == bodies
    assert [m[0].delivery_tag for m in got] == list(range(1, 501))


def test_user_id_must_match_authenticated_user_406(connection, channel):
    q = declare_queue(channel)
    user = connection._impl.params.credentials.username
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.confirm_delivery()
        channel.basic_publish("", q, b"x", pika.BasicProperties(user_id="someone-else"))
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated "
        f"user was '{user}'")


@pytest.mark.parametrize("expiration,detail", [
    ("abc", "no_integer"),
    (" 5", "no_integer"),
    ("+", "no_integer"),
    ("1.5", '{leftover_string,".5"}'),
    ("5 ", '{leftover_string," "}'),
    ("-1", "{value_negative,-1}"),
    ("315360000001", "{value_too_large,315360000001}"),
    ("999999999999999999", "{value_too_large,999999999999999999}"),
    # Erlang's ~p breaks a term that does not fit the line after its first element
    ("9999999999999999999", "{value_too_large,\n" + " " * 43 + "9999999999999999999}"),
    ("-9999999999999999999", "{value_negative,\n" + " " * 44 + "-9999999999999999999}"),
    ("12" + "x" * 17, '{leftover_string,\n' + " " * 43 + '"' + "x" * 17 + '"}'),
    ("1" + "x" * 17, '{leftover_string,"' + "x" * 17 + '"}'),
])
def test_invalid_expiration_406(connection, expiration, detail):
    ch = connection.channel()
    ch.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.basic_publish("", "nowhere", b"x", pika.BasicProperties(expiration=expiration))
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}"


@pytest.mark.parametrize("expiration", ["315360000000", "+5", "-0", "0007"])
def test_valid_expiration_edge_cases(channel, expiration):
    q = declare_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"x", pika.BasicProperties(expiration=expiration))
    channel.queue_declare(q, passive=True)


@pytest.mark.parametrize("mode", [0, 3, 255])
def test_unknown_delivery_mode_406(connection, mode):
    ch = connection.channel()
    ch.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.basic_publish("", "nowhere", b"x", pika.BasicProperties(delivery_mode=mode))
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - invalid message: {{delivery_mode_unknown,{mode}}}"


def test_publish_checks_exchange_before_expiration(connection, unique):
    ch = connection.channel()
    missing = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.basic_publish(missing, "k", b"x", pika.BasicProperties(expiration="bad"))
        ch.queue_declare("", exclusive=True)
    assert info.value.reply_code == 404


def test_immediate_flag_not_implemented_540(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key="nowhere", immediate=True),
                   b"x")
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 540
    assert close.reply_text == "NOT_IMPLEMENTED - immediate=true"
    assert (close.class_id, close.method_id) == (60, 40)


# ---------------------------------------------------------------- mandatory / return


def test_mandatory_unroutable_returned(connection, channel, unique):
    returned = []
    channel.add_on_return_callback(
        lambda ch, method, props, body: returned.append((method, props, body)))
    ex = unique("ex")
    channel.exchange_declare(ex, "direct", auto_delete=True)
    channel.basic_publish(ex, "nowhere", b"bounce",
                          pika.BasicProperties(message_id="m1", headers={"h": "v"}),
                          mandatory=True)
    wait_for(connection, lambda: returned, what="basic.return")
    method, props, body = returned[0]
    assert method.reply_code == 312
    assert method.reply_text == "NO_ROUTE"
    assert method.exchange == ex
    assert method.routing_key == "nowhere"
    assert props.message_id == "m1"
    assert props.headers == {"h": "v"}
    assert body == b"bounce"
    channel.exchange_delete(ex)


def test_mandatory_default_exchange_missing_queue_returned(connection, channel, unique):
    returned = []
    channel.add_on_return_callback(lambda *a: returned.append(a[1]))
    channel.basic_publish("", unique("no-queue"), b"x", mandatory=True)
    wait_for(connection, lambda: returned, what="basic.return")
    assert returned[0].reply_code == 312


def test_non_mandatory_unroutable_dropped_silently(connection, channel, unique):
    returned = []
    channel.add_on_return_callback(lambda *a: returned.append(a))
    channel.confirm_delivery()
    channel.basic_publish("", unique("no-queue"), b"x")  # acked, not returned
    settle(connection, 0.05)
    assert returned == []
    assert channel.is_open


# ---------------------------------------------------------------- consume


def test_consume_server_generated_tag_raw(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send_method(1, spec.Basic.Consume(queue=ok.queue, consumer_tag=""))
    _, cok = r.expect(spec.Basic.ConsumeOk)
    assert cok.consumer_tag.startswith("amq.ctag-")
    r.send_method(1, spec.Basic.Consume(queue=ok.queue, consumer_tag=""))
    _, cok2 = r.expect(spec.Basic.ConsumeOk)
    assert cok2.consumer_tag.startswith("amq.ctag-")
    assert cok2.consumer_tag != cok.consumer_tag


def test_consume_delivery_fields(connection, channel):
    q = declare_queue(channel)
    got = []
    tag = channel.basic_consume(q, lambda ch, m, p, b: got.append((m, p, b)),
                                consumer_tag="my-tag")
    assert tag == "my-tag"
    channel.basic_publish("", q, b"hello", pika.BasicProperties(correlation_id="c"))
    wait_for(connection, lambda: got, what="delivery")
    method, props, body = got[0]
    assert isinstance(method, spec.Basic.Deliver)
    assert method.consumer_tag == "my-tag"
    assert method.delivery_tag == 1
    assert method.redelivered is False
    assert method.exchange == ""
    assert method.routing_key == q
    assert props.correlation_id == "c"
    assert body == b"hello"
    channel.basic_ack(method.delivery_tag)


def test_duplicate_consumer_tag_530(raw):
    """Reusing a consumer tag on the same channel is a *connection* error in RabbitMQ."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send_method(1, spec.Basic.Consume(queue=ok.queue, consumer_tag="dup"))
    r.expect(spec.Basic.ConsumeOk)
    r.send_method(1, spec.Basic.Consume(queue=ok.queue, consumer_tag="dup"))
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 530
    assert close.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'dup'"
    assert (close.class_id, close.method_id) == (60, 20)


def test_same_consumer_tag_on_different_channels(connection):
    a, b = connection.channel(), connection.channel()
    q = declare_queue(a)
    a.basic_consume(q, lambda *x: None, consumer_tag="shared")
    b.basic_consume(q, lambda *x: None, consumer_tag="shared")
    assert a.queue_declare(q, passive=True).method.consumer_count == 2


def test_exclusive_consume_with_existing_consumer_403(connection, channel):
    q = declare_queue(channel)
    channel.basic_consume(q, lambda *a: None)
    other = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        other.basic_consume(q, lambda *a: None, exclusive=True)
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - queue '{q}' in vhost '{vhost_of(connection)}' in exclusive use")


def test_consume_when_exclusive_consumer_exists_403(connection, channel):
    q = declare_queue(channel)
    channel.basic_consume(q, lambda *a: None, exclusive=True)
    other = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        other.basic_consume(q, lambda *a: None)
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - queue '{q}' in vhost '{vhost_of(connection)}' in exclusive use")


def test_consume_missing_queue_404(connection, channel, unique):
    name = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_consume(name, lambda *a: None)
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '{vhost_of(connection)}'"


def test_cancel_stops_deliveries(connection, channel):
    q = declare_queue(channel)
    got = []
    tag = channel.basic_consume(q, lambda ch, m, p, b: got.append(b), auto_ack=True)
    channel.basic_publish("", q, b"1")
    wait_for(connection, lambda: got, what="first delivery")
    channel.basic_cancel(tag)
    publish_confirmed(channel, q, [b"2"])
    settle(connection, 0.05)
    assert got == [b"1"]
    assert channel.queue_declare(q, passive=True).method.message_count == 1
    assert channel.queue_declare(q, passive=True).method.consumer_count == 0


def test_cancel_unknown_tag_is_ok(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Basic.Cancel(consumer_tag="never-existed"))
    ch, ok = r.expect(spec.Basic.CancelOk)
    assert (ch, ok.consumer_tag) == (1, "never-existed")


def test_unacked_after_cancel_can_still_be_acked(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"1", b"2"])
    consumer = connection.channel()
    got = []
    tag = consumer.basic_consume(q, lambda ch, m, p, b: got.append(m))
    wait_for(connection, lambda: len(got) == 2, what="2 deliveries")
    consumer.basic_cancel(tag)
    consumer.basic_ack(got[0].delivery_tag)
    consumer.close()  # the other unacked message is requeued
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [(b"2", True)]


def test_server_cancel_when_queue_deleted(connection, unique):
    ch = connection.channel()
    name = unique("q")
    ch.queue_declare(name)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method))
    tag = ch.basic_consume(name, lambda *a: None)
    connection.channel().queue_delete(name)
    wait_for(connection, lambda: cancelled, what="server basic.cancel")
    assert isinstance(cancelled[0], spec.Basic.Cancel)
    assert cancelled[0].consumer_tag == tag
    assert ch.is_open
    assert ch.consumer_tags == []


def test_round_robin_between_consumers(connection, channel):
    q = declare_queue(channel)
    channel.basic_qos(prefetch_count=1)
    got = {"a": [], "b": []}

    def handler(name):
        def on_message(ch, method, props, body):
            got[name].append(body)
            ch.basic_ack(method.delivery_tag)
        return on_message

    channel.basic_consume(q, handler("a"))
    channel.basic_consume(q, handler("b"))
    publish_confirmed(connection.channel(), q, numbered(10))
    wait_for(connection, lambda: len(got["a"]) + len(got["b"]) == 10, what="10 deliveries")
    assert len(got["a"]) == 5 and len(got["b"]) == 5
    assert sorted(got["a"] + got["b"], key=int) == numbered(10)


def test_consumer_priorities(connection, channel):
    q = declare_queue(channel)
    channel.basic_qos(prefetch_count=2)
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append(("low", b)),
                          arguments={"x-priority": 1})
    channel.basic_consume(q, lambda ch, m, p, b: got.append(("high", b)),
                          arguments={"x-priority": 10})
    pub = connection.channel()
    publish_confirmed(pub, q, numbered(5))
    wait_for(connection, lambda: len(got) == 4, what="4 deliveries")
    settle(connection, 0.05)
    assert got == [("high", b"0"), ("high", b"1"), ("low", b"2"), ("low", b"3")]
    assert pub.queue_declare(q, passive=True).method.message_count == 1


def test_consumer_priority_invalid_type_406(connection, channel):
    q = declare_queue(channel)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_consume(q, lambda *a: None, arguments={"x-priority": "high"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost "
        f"'{vhost_of(connection)}': \"expected integer, got longstr\"")


@pytest.mark.parametrize("value,tname", [("yes", "longstr"), (1, "signedint")])
def test_consumer_cancel_on_ha_failover_must_be_bool_406(connection, channel, value, tname):
    q = declare_queue(channel)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_consume(q, lambda *a: None, arguments={"x-cancel-on-ha-failover": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-cancel-on-ha-failover' for queue '{q}' in vhost "
        f"'{vhost_of(connection)}': {{unacceptable_type,{tname}}}")


def test_consumer_cancel_on_ha_failover_bool_accepted(channel):
    q = declare_queue(channel)
    channel.basic_consume(q, lambda *a: None, arguments={"x-cancel-on-ha-failover": True})


def test_consumer_stream_offset_on_classic_queue_406(connection, channel):
    q = declare_queue(channel)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": 5})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}' in vhost "
        f"'{vhost_of(connection)}' of queue type rabbit_classic_queue")


# ---------------------------------------------------------------- get


def test_get_ok_and_get_empty(channel):
    q = declare_queue(channel)
    assert channel.basic_get(q) == (None, None, None)
    publish_confirmed(channel, q, [b"a", b"b", b"c"])
    method, _, body = channel.basic_get(q, auto_ack=True)
    assert isinstance(method, spec.Basic.GetOk)
    assert body == b"a"
    assert method.message_count == 2  # messages left after this one
    assert method.redelivered is False
    assert method.exchange == ""
    assert method.routing_key == q
    method, _, _ = channel.basic_get(q, auto_ack=True)
    assert method.message_count == 1
    channel.basic_get(q, auto_ack=True)
    assert channel.basic_get(q) == (None, None, None)


def test_get_missing_queue_404(connection, channel, unique):
    name = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_get(name)
    assert info.value.reply_code == 404


def test_delivery_tags_shared_between_get_and_consume(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"1", b"2", b"3"])
    m1, _, _ = channel.basic_get(q)
    m2, _, _ = channel.basic_get(q)
    [(m3, _, _)] = consume_n(connection, channel, q, 1, auto_ack=False)
    assert [m1.delivery_tag, m2.delivery_tag, m3.delivery_tag] == [1, 2, 3]
    channel.basic_ack(3, multiple=True)


def test_get_does_not_obey_qos(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, numbered(3))
    channel.basic_qos(prefetch_count=1)
    assert all(channel.basic_get(q)[0] is not None for _ in range(3))


# ---------------------------------------------------------------- ack / nack / reject


def test_ack_removes_message(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"x"])
    method, _, _ = get_message(channel, q)
    channel.basic_ack(method.delivery_tag)
    channel.basic_recover(requeue=True)
    assert channel.basic_get(q)[0] is None


def test_ack_multiple(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, numbered(5))
    tags = [channel.basic_get(q)[0].delivery_tag for _ in range(5)]
    channel.basic_ack(tags[2], multiple=True)  # acks 1..3
    channel.basic_recover(requeue=True)
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [(b"3", True), (b"4", True)]


def test_ack_zero_multiple_acks_all(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, numbered(3))
    for _ in range(3):
        channel.basic_get(q)
    channel.basic_ack(0, multiple=True)
    channel.basic_recover(requeue=True)
    assert drain(channel, q) == []


def test_ack_zero_multiple_with_nothing_outstanding_is_ok(channel):
    channel.basic_ack(0, multiple=True)
    channel.queue_declare("", exclusive=True)  # channel still open


@pytest.mark.parametrize("op", ["ack", "nack", "reject"])
def test_unknown_delivery_tag_406(connection, channel, op):
    getattr(channel, f"basic_{op}")(42)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 42"
    assert connection.is_open


def test_ack_zero_not_multiple_406(channel):
    channel.basic_ack(0)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 0"


def test_double_ack_406(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"x"])
    method, _, _ = get_message(channel, q)
    channel.basic_ack(method.delivery_tag)
    channel.basic_ack(method.delivery_tag)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}"


def test_ack_multiple_beyond_outstanding_406(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"x"])
    method, _, _ = get_message(channel, q)
    channel.basic_ack(method.delivery_tag + 5, multiple=True)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag + 5}")


def test_ack_on_other_channel_406(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"x"])
    method, _, _ = get_message(channel, q)
    other = connection.channel()
    other.basic_ack(method.delivery_tag)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        other.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}"


def test_ack_auto_acked_delivery_406(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"x"])
    method, _, _ = get_message(channel, q, auto_ack=True)
    channel.basic_ack(method.delivery_tag)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406


def test_nack_requeue_sets_redelivered(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"x"])
    method, _, _ = get_message(channel, q)
    assert method.redelivered is False
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, _, body = get_message(channel, q, auto_ack=True)
    assert body == b"x"
    assert method.redelivered is True


def test_nack_without_requeue_discards(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"x"])
    method, _, _ = get_message(channel, q)
    channel.basic_nack(method.delivery_tag, requeue=False)
    assert channel.queue_declare(q, passive=True).method.message_count == 0
    assert channel.basic_get(q)[0] is None


def test_nack_multiple_requeue(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, numbered(4))
    tags = [channel.basic_get(q)[0].delivery_tag for _ in range(3)]
    channel.basic_nack(tags[1], multiple=True, requeue=True)  # 0 and 1 back
    channel.basic_ack(tags[2])
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [
        (b"0", True), (b"1", True), (b"3", False)]


def test_nack_multiple_discard(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, numbered(3))
    for _ in range(2):
        channel.basic_get(q)
    channel.basic_nack(0, multiple=True, requeue=False)
    assert [m[2] for m in drain(channel, q)] == [b"2"]


def test_reject_requeue_and_discard(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"a", b"b"])
    m_a, _, _ = channel.basic_get(q)
    m_b, _, _ = channel.basic_get(q)
    channel.basic_reject(m_a.delivery_tag, requeue=True)
    channel.basic_reject(m_b.delivery_tag, requeue=False)
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [(b"a", True)]


def test_requeue_restores_original_order(channel):
    """Requeued messages go back to their original position, whatever the nack order."""
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"1", b"2", b"3", b"4"])
    m1, m2, m3 = (channel.basic_get(q)[0] for _ in range(3))
    channel.basic_nack(m3.delivery_tag)
    channel.basic_nack(m1.delivery_tag)
    channel.basic_nack(m2.delivery_tag)
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [
        (b"1", True), (b"2", True), (b"3", True), (b"4", False)]


def test_unacked_requeued_in_order_on_channel_close(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"1", b"2", b"3", b"4", b"5"])
    other = connection.channel()
    other.basic_get(q)
    other.basic_get(q)
    m3, _, _ = other.basic_get(q)
    other.basic_ack(m3.delivery_tag)
    other.close()
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [
        (b"1", True), (b"2", True), (b"4", False), (b"5", False)]


def test_consumer_unacked_requeued_in_order_on_channel_close(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, numbered(6))
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=3)
    got = []
    consumer.basic_consume(q, lambda ch, m, p, b: got.append(b))
    wait_for(connection, lambda: len(got) == 3, what="3 deliveries")
    consumer.close()
    assert got == [b"0", b"1", b"2"]
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [
        (b"0", True), (b"1", True), (b"2", True), (b"3", False), (b"4", False), (b"5", False)]


def test_unacked_requeued_on_connection_close(connect, unique, cleanup):
    keeper = connect()
    kch = keeper.channel()
    q = cleanup.queue(unique("q"))
    kch.queue_declare(q)
    publish_confirmed(kch, q, numbered(4))
    worker = connect()
    wch = worker.channel()
    for _ in range(3):
        wch.basic_get(q)
    worker.close()
    assert [(m[2], m[0].redelivered) for m in drain(kch, q)] == [
        (b"0", True), (b"1", True), (b"2", True), (b"3", False)]


# ---------------------------------------------------------------- recover


def test_recover_requeue_redelivers_to_consumer(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, [b"1", b"2"])
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append((b, m.redelivered, m.delivery_tag)))
    wait_for(connection, lambda: len(got) == 2, what="2 deliveries")
    channel.basic_recover(requeue=True)
    wait_for(connection, lambda: len(got) == 4, what="redeliveries")
    assert got == [(b"1", False, 1), (b"2", False, 2), (b"1", True, 3), (b"2", True, 4)]
    # old tags are gone
    channel.basic_ack(4, multiple=True)


def test_recover_requeue_for_get(channel):
    q = declare_queue(channel)
    publish_confirmed(channel, q, [b"1", b"2"])
    channel.basic_get(q)
    channel.basic_recover(requeue=True)
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [(b"1", True), (b"2", False)]


def test_raw_recover_ok_precedes_redeliveries(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), b"1")
    r.expect(spec.Basic.Ack)
    r.send_method(1, spec.Basic.Consume(queue=ok.queue, consumer_tag="c"))
    r.expect(spec.Basic.ConsumeOk)
    r.expect(spec.Basic.Deliver)
    r.send_method(1, spec.Basic.Recover(requeue=True))
    r.expect(spec.Basic.RecoverOk)
    _, deliver = r.expect(spec.Basic.Deliver)
    assert deliver.redelivered and deliver.delivery_tag == 2


def test_recover_without_requeue_not_implemented_540(connection, channel):
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        channel.basic_recover(requeue=False)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - requeue=false"


# ---------------------------------------------------------------- qos


def test_qos_prefetch_limits_unacked(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, numbered(10))
    channel.basic_qos(prefetch_count=3)
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append(m))
    wait_for(connection, lambda: len(got) == 3, what="3 deliveries")
    settle(connection, 0.1)
    assert len(got) == 3
    channel.basic_ack(got[0].delivery_tag)
    wait_for(connection, lambda: len(got) == 4, what="4th delivery")
    settle(connection, 0.1)
    assert len(got) == 4
    channel.basic_ack(got[-1].delivery_tag, multiple=True)
    wait_for(connection, lambda: len(got) == 7, what="3 more deliveries")


def test_qos_per_consumer(connection, channel):
    """global=False (default): the limit applies to each consumer separately."""
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, numbered(10))
    channel.basic_qos(prefetch_count=3)
    a, b = [], []
    channel.basic_consume(q, lambda ch, m, p, body: a.append(body))
    channel.basic_consume(q, lambda ch, m, p, body: b.append(body))
    wait_for(connection, lambda: len(a) + len(b) == 6, what="6 deliveries")
    settle(connection, 0.1)
    assert (len(a), len(b)) == (3, 3)


def test_qos_global_is_per_channel(connection, channel):
    """global=True: RabbitMQ shares the limit among all consumers of the channel."""
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, numbered(10))
    channel.basic_qos(prefetch_count=3, global_qos=True)
    a, b = [], []
    channel.basic_consume(q, lambda ch, m, p, body: a.append(body))
    channel.basic_consume(q, lambda ch, m, p, body: b.append(body))
    wait_for(connection, lambda: len(a) + len(b) == 3, what="3 deliveries")
    settle(connection, 0.1)
    assert len(a) + len(b) == 3


def test_qos_global_credit_freed_wakes_every_queue(connection, channel):
    """Acks free global credit for all the channel's consumers, not only for the queue
    the acked messages came from."""
    q1, q2 = declare_queue(channel), declare_queue(channel)
    pub = connection.channel()
    publish_confirmed(pub, q1, [b"a0", b"a1", b"a2", b"a3"])
    publish_confirmed(pub, q2, [b"b0", b"b1", b"b2", b"b3"])
    channel.basic_qos(prefetch_count=3, global_qos=True)
    got = []
    channel.basic_consume(q1, lambda ch, m, p, b: got.append((b, m.delivery_tag)))
    wait_for(connection, lambda: len(got) == 3, what="3 deliveries from q1")
    channel.basic_consume(q2, lambda ch, m, p, b: got.append((b, m.delivery_tag)))
    settle(connection, 0.2)
    assert len(got) == 3
    channel.basic_ack(got[-1][1], multiple=True)
    # q1 has one message left, so q2 must fill the other two slots.
    wait_for(connection, lambda: len(got) == 6, what="3 more deliveries")
    settle(connection, 0.2)
    assert sorted(b for b, _ in got[3:]) == [b"a3", b"b0", b"b1"]


def test_qos_per_consumer_after_global_lifts_global_limit(connection, channel):
    """RabbitMQ 3.10: basic.qos global=false after a global limit removes the global
    limit; each consumer then gets its own prefetch."""
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, numbered(6))
    channel.basic_qos(prefetch_count=4, global_qos=True)
    channel.basic_qos(prefetch_count=2, global_qos=False)
    per_consumer = [[], [], []]
    for got in per_consumer:
        channel.basic_consume(q, lambda ch, m, p, b, got=got: got.append(b))
    wait_for(connection, lambda: sum(map(len, per_consumer)) == 6, what="6 deliveries")
    assert [len(g) for g in per_consumer] == [2, 2, 2]


def test_global_qos_raised_delivers_more(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, numbered(6))
    channel.basic_qos(prefetch_count=2, global_qos=True)
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append(b))
    wait_for(connection, lambda: len(got) == 2, what="2 deliveries")
    channel.basic_qos(prefetch_count=5, global_qos=True)
    wait_for(connection, lambda: len(got) == 5, what="5 deliveries")
    settle(connection, 0.1)
    assert len(got) == 5


def test_qos_applies_only_to_later_consumers(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, numbered(10))
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append(b))
    channel.basic_qos(prefetch_count=3)
    wait_for(connection, lambda: len(got) == 10, what="10 deliveries")


def test_qos_zero_is_unlimited(connection, channel):
    q = declare_queue(channel)
    publish_confirmed(connection.channel(), q, numbered(50))
    channel.basic_qos(prefetch_count=0)
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append(b))
    wait_for(connection, lambda: len(got) == 50, what="50 deliveries")


def test_qos_prefetch_size_not_implemented_540(connection, channel):
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        channel.basic_qos(prefetch_size=1000)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (1000)"


# ---------------------------------------------------------------- CC / BCC


def test_cc_and_bcc_headers(channel):
    main, cc, bcc = declare_queue(channel), declare_queue(channel), declare_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", main, b"x", pika.BasicProperties(
        headers={"CC": [cc], "BCC": [bcc], "other": "v"}))
    for q in (main, cc, bcc):
        method, props, body = get_message(channel, q, auto_ack=True)
        assert body == b"x"
        assert method.routing_key == main  # the original routing key
        assert props.headers == {"CC": [cc], "other": "v"}, q  # BCC stripped, CC kept


def test_cc_routes_through_exchange(channel):
    a, b = declare_queue(channel), declare_queue(channel)
    channel.queue_bind(a, "amq.topic", "x.*")
    channel.queue_bind(b, "amq.topic", "y.#")
    channel.confirm_delivery()
    channel.basic_publish("amq.topic", "x.1", b"m", pika.BasicProperties(headers={"CC": ["y.z.w"]}))
    for q in (a, b):
        method, props, _ = get_message(channel, q, auto_ack=True)
        assert method.routing_key == "x.1"
        assert props.headers == {"CC": ["y.z.w"]}


def test_cc_makes_mandatory_message_routable(channel, unique):
    b = declare_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", unique("no-queue"), b"x",
                          pika.BasicProperties(headers={"BCC": [b]}), mandatory=True)
    assert get_message(channel, b, auto_ack=True)[2] == b"x"


def test_cc_must_be_an_array_406(channel):
    a, b = declare_queue(channel), declare_queue(channel)
    channel.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_publish("", a, b"x", pika.BasicProperties(headers={"CC": b}))
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}')


# ---------------------------------------------------------------- content framing errors


def test_header_frame_without_method_505(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send(pika.frame.Header(1, 3, spec.BasicProperties()))
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 505
    assert close.reply_text == (
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_method_instead_of_content_header_505(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Basic.Publish(exchange="", routing_key="x"))
    r.send_method(1, spec.Basic.Publish(exchange="", routing_key="x"))
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 505
    assert close.reply_text == (
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header "
        "frame instead")
    assert (close.class_id, close.method_id) == (60, 40)


def test_publish_split_into_small_body_frames(raw):
    """Body split into many tiny frames (and an empty-body message with no body frame)."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    body = bytes(range(200))
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), body, frame_max=18)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), b"")
    r.send_method(1, spec.Basic.Get(queue=ok.queue, no_ack=True))
    r.expect(spec.Basic.GetOk)
    header = r.recv_frame()
    assert header.body_size == 200
    got = b""
    while len(got) < 200:
        got += r.recv_frame().fragment
    assert got == body
    r.send_method(1, spec.Basic.Get(queue=ok.queue, no_ack=True))
    r.expect(spec.Basic.GetOk)
    header = r.recv_frame()
    assert isinstance(header, pika.frame.Header)
    assert header.body_size == 0
    # no body frame for an empty body: the next thing is the next method
    r.send_method(1, spec.Basic.Get(queue=ok.queue, no_ack=True))
    nxt = r.recv_frame()
    assert isinstance(nxt, pika.frame.Method)
    assert isinstance(nxt.method, spec.Basic.GetEmpty)


# ---------------------------------------------------------------- direct reply-to


def test_direct_reply_to(connection, channel):
    server = connection.channel()
    q = declare_queue(server)
    replies = []
    channel.basic_consume("amq.rabbitmq.reply-to", lambda ch, m, p, b: replies.append((m, p, b)),
                          auto_ack=True)
    channel.basic_publish("", q, b"request", pika.BasicProperties(
        reply_to="amq.rabbitmq.reply-to", correlation_id="c1"))
    _, props, _ = get_message(server, q, auto_ack=True)
    # the broker rewrites reply_to into a routable pseudo-queue name
    assert props.reply_to.startswith("amq.rabbitmq.reply-to.")
    server.basic_publish("", props.reply_to, b"response",
                         pika.BasicProperties(correlation_id=props.correlation_id))
    wait_for(connection, lambda: replies, what="direct reply")
    method, rprops, body = replies[0]
    assert body == b"response"
    assert rprops.correlation_id == "c1"
    assert method.exchange == ""
    assert method.routing_key == props.reply_to


def test_direct_reply_to_requires_auto_ack_406(channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_direct_reply_to_publish_without_consumer_406(channel):
    q = declare_queue(channel)
    channel.basic_publish("", q, b"x", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


def test_direct_reply_to_passive_declare_reports_one_consumer(channel):
    """RabbitMQ answers a passive declare of the pseudo-queue with consumer_count 1,
    whether or not anything consumes from it."""
    ok = channel.queue_declare("amq.rabbitmq.reply-to", passive=True)
    assert ok.method.queue == "amq.rabbitmq.reply-to"
    assert (ok.method.message_count, ok.method.consumer_count) == (0, 1)
