"""Stream queues (x-queue-type: stream) over AMQP 0-9-1, as RabbitMQ 3.10 runs them:
declaration rules and argument validation, redeclaration, consuming with basic.qos and
acknowledgements (which move credit only), the x-stream-offset consumer argument in
every form, the x-stream-offset header on each delivery, several independent readers,
the operations streams refuse, and retention by size and by age.

/work/plan/stream-behaviour.md (kept in docs/STREAM-BEHAVIOUR.md) is the table these
tests encode. Every test passed against RabbitMQ 3.10.8 with the stream plugin.

Where RabbitMQ 3.10 crashes on a bad value (connection.close 541 INTERNAL_ERROR) the test
accepts either that or the channel error a correct broker gives (see `refused`).

Readers each get their own connection: pika's BlockingConnection does not dispatch
deliveries of a second consuming channel reliably, and pika rejects (basic.reject)
deliveries still undispatched when a channel closes, which a stream answers with a
connection error. Tests therefore read exactly what they wait for.
"""

from __future__ import annotations

import datetime
import time
import uuid

import pika
import pika.exceptions as exc
import pytest

from helpers import WAIT, settle, wait_for

STREAM = {"x-queue-type": "stream"}
NO_ARG = object()  # consume without an x-stream-offset argument


def declare_stream(channel, name, **extra):
    channel.queue_declare(name, durable=True, arguments={**STREAM, **extra})
    return name


def invalid_arg(arg, q, suffix):
    return f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/': {suffix}"


def refused_for_streams(arg, q):
    return (f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/' "
            "of queue type rabbit_stream_queue")


def not_implemented(what, q):
    return f"NOT_IMPLEMENTED - {what} not supported by stream queues queue '{q}' in vhost '/'"


def channel_error(fn, code, text):
    with pytest.raises(exc.ChannelClosedByBroker) as e:
        fn()
    assert (e.value.reply_code, e.value.reply_text) == (code, text)


def connection_error(fn, code, text):
    with pytest.raises(exc.ConnectionClosedByBroker) as e:
        fn()
    assert (e.value.reply_code, e.value.reply_text) == (code, text)


def refused(fn, text_prefix):
    """The call fails: with a channel 406 whose text starts with `text_prefix` (a correct
    broker), or with RabbitMQ 3.10's crash, connection.close 541 INTERNAL_ERROR."""
    with pytest.raises((exc.ChannelClosedByBroker, exc.ConnectionClosedByBroker)) as e:
        fn()
    if isinstance(e.value, exc.ConnectionClosedByBroker):
        assert (e.value.reply_code, e.value.reply_text) == (541, "INTERNAL_ERROR")
    else:
        assert e.value.reply_code == 406
        assert e.value.reply_text.startswith(text_prefix), e.value.reply_text


class Publisher:
    """A confirming channel: every publish waits for its basic.ack, so each message is
    stored (and, on RabbitMQ, written as its own chunk) before the next."""

    def __init__(self, connection):
        self.ch = connection.channel()
        self.ch.confirm_delivery()

    def publish(self, queue, bodies, props=None, exchange="", routing_key=None):
        for body in bodies:
            self.ch.basic_publish(exchange, routing_key if routing_key is not None else queue,
                                  body, props)


class Reader:
    """One consumer on its own connection, recording (method, properties, body)."""

    def __init__(self, connect, queue, prefetch=100, offset=NO_ARG, arguments=None,
                 auto_ack_each=False):
        self.conn = connect()
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=prefetch)
        self.got = []
        args = dict(arguments or {})
        if offset is not NO_ARG:
            args["x-stream-offset"] = offset

        def on_message(ch, method, props, body):
            self.got.append((method, props, body))
            if auto_ack_each:
                ch.basic_ack(method.delivery_tag)

        self.tag = self.ch.basic_consume(queue, on_message, arguments=args or None)

    def wait(self, n, timeout=WAIT):
        wait_for(self.conn, lambda: len(self.got) >= n, timeout, f"{n} deliveries")
        return self.got

    def quiet(self, seconds=0.3):
        """Let anything in flight arrive (only to prove that nothing more comes)."""
        settle(self.conn, seconds)
        return self.got

    def offsets(self):
        return [p.headers["x-stream-offset"] for _, p, _ in self.got]

    def bodies(self):
        return [b for _, _, b in self.got]


@pytest.fixture
def stream(channel, unique):
    """stream(**args) -> the name of a new durable stream (deleted at teardown)."""

    def make(**extra):
        return declare_stream(channel, unique("s"), **extra)

    return make


@pytest.fixture
def publisher(connect):
    return Publisher(connect())


def bodies(n, prefix="m"):
    return [f"{prefix}{i}".encode() for i in range(n)]


# ---------------------------------------------------------------------------
# queue.declare
# ---------------------------------------------------------------------------


def test_durable_stream_declares_with_zero_counts(channel, unique):
    q = unique("s")
    ok = channel.queue_declare(q, durable=True, arguments=STREAM).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)


@pytest.mark.parametrize(
    "flags,prop",
    [
        ({"durable": False}, "non-durable"),
        ({"exclusive": True}, "exclusive-owner"),
        ({"auto_delete": True}, "auto-delete"),
        # Precedence when several are wrong: auto-delete, then exclusive, then durable.
        ({"durable": False, "exclusive": True}, "exclusive-owner"),
        ({"durable": False, "auto_delete": True}, "auto-delete"),
        ({"exclusive": True, "auto_delete": True}, "auto-delete"),
        ({"durable": False, "exclusive": True, "auto_delete": True}, "auto-delete"),
    ],
)
def test_refused_properties(channel, unique, flags, prop):
    q = unique("s")
    kw = {"durable": True, **flags}
    channel_error(lambda: channel.queue_declare(q, arguments=STREAM, **kw), 406,
                  f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '/'")


def test_argument_errors_come_before_property_errors(channel, unique):
    q = unique("s")
    channel_error(
        lambda: channel.queue_declare(q, durable=False,
                                      arguments={**STREAM, "x-max-length": 1}),
        406, refused_for_streams("x-max-length", q))


def test_server_named_stream_is_refused(channel):
    channel_error(lambda: channel.queue_declare("", durable=True, arguments=STREAM), 406,
                  "PRECONDITION_FAILED - Cannot declare a server-named queue for type "
                  "rabbit_stream_queue")


def test_queue_type_is_case_sensitive(channel, unique):
    q = unique("s")
    channel_error(
        lambda: channel.queue_declare(q, durable=True, arguments={"x-queue-type": "Stream"}),
        406, invalid_arg("x-queue-type", q, "\"unsupported queue type 'Stream'\""))


@pytest.mark.parametrize(
    "arg,value",
    [
        ("x-max-length-bytes", 1000),
        ("x-max-length-bytes", 0),
        ("x-max-length-bytes", 2 ** 40),
        ("x-stream-max-segment-size-bytes", 500_000_000),
        ("x-stream-max-segment-size-bytes", 0),
        ("x-stream-max-segment-size-bytes", 3_000_000_000),
        ("x-initial-cluster-size", 1),
        ("x-initial-cluster-size", 3),
        ("x-queue-leader-locator", "client-local"),
        ("x-queue-leader-locator", "balanced"),
        ("x-queue-leader-locator", "random"),
        ("x-queue-leader-locator", "least-leaders"),
        ("x-max-age", "7D"),
        ("x-max-age", "1Y"),
        ("x-max-age", "1M"),
        ("x-max-age", "1D"),
        ("x-max-age", "1h"),
        ("x-max-age", "10m"),
        ("x-max-age", "1s"),
        ("x-max-age", "100000000000000Y"),
        ("x-unknown-argument", "kept"),
    ],
)
def test_accepted_arguments(channel, unique, arg, value):
    q = unique("s")
    ok = channel.queue_declare(q, durable=True, arguments={**STREAM, arg: value}).method
    assert ok.queue == q


@pytest.mark.parametrize(
    "arg,value,suffix",
    [
        ("x-max-length-bytes", -1, "{value_negative,-1}"),
        ("x-max-length-bytes", "abc", '"expected integer, got longstr"'),
        ("x-max-length-bytes", True, '"expected integer, got bool"'),
        ("x-stream-max-segment-size-bytes", -1, "{value_negative,-1}"),
        ("x-stream-max-segment-size-bytes", "abc", '"expected integer, got longstr"'),
        ("x-initial-cluster-size", 0, "{value_zero,0}"),
        ("x-initial-cluster-size", -1, "{value_negative,-1}"),
        ("x-initial-cluster-size", "abc", '"expected integer, got longstr"'),
        ("x-queue-leader-locator", "abc", "invalid_queue_locator_arg"),
        ("x-queue-leader-locator", 1, "{unacceptable_type,signedint}"),
        ("x-max-age", 10, "{unacceptable_type,signedint}"),
        ("x-max-age", "0s", "invalid_max_age"),
        ("x-max-age", "0D", "invalid_max_age"),
        ("x-max-age", "1", "invalid_max_age"),
        ("x-max-age", "10x", "invalid_max_age"),
        ("x-max-age", "1.5h", "invalid_max_age"),
        ("x-max-age", "1d", "invalid_max_age"),
        ("x-max-age", "1H", "invalid_max_age"),
        ("x-max-age", "1S", "invalid_max_age"),
        ("x-max-age", "1y", "invalid_max_age"),
        ("x-max-age", "10 m", "invalid_max_age"),
    ],
)
def test_invalid_argument_values(channel, unique, arg, value, suffix):
    q = unique("s")
    channel_error(
        lambda: channel.queue_declare(q, durable=True, arguments={**STREAM, arg: value}),
        406, invalid_arg(arg, q, suffix))


@pytest.mark.parametrize("value", ["D", "-1D", ""])
def test_malformed_max_age_is_refused(channel, unique, value):
    # RabbitMQ 3.10 crashes on these (541); a correct broker says invalid_max_age.
    q = unique("s")
    refused(lambda: channel.queue_declare(q, durable=True,
                                          arguments={**STREAM, "x-max-age": value}),
            invalid_arg("x-max-age", q, "invalid_max_age"))


@pytest.mark.parametrize(
    "arg,value",
    [
        ("x-max-length", 10),
        ("x-message-ttl", 1000),
        ("x-dead-letter-exchange", "amq.direct"),
        ("x-dead-letter-routing-key", "k"),
        ("x-overflow", "drop-head"),
        ("x-overflow", "reject-publish"),
        ("x-max-priority", 5),
        ("x-single-active-consumer", True),
        ("x-single-active-consumer", False),
        ("x-expires", 10000),
        ("x-queue-mode", "lazy"),
        ("x-queue-mode", "default"),
        ("x-delivery-limit", 3),
        ("x-dead-letter-strategy", "at-least-once"),
        ("x-quorum-initial-group-size", 3),
        ("x-queue-master-locator", "client-local"),
        ("x-max-in-memory-length", 3),
        ("x-max-in-memory-bytes", 3),
        ("x-queue-version", 2),
    ],
)
def test_arguments_refused_for_streams(channel, unique, arg, value):
    q = unique("s")
    channel_error(
        lambda: channel.queue_declare(q, durable=True, arguments={**STREAM, arg: value}),
        406, refused_for_streams(arg, q))


def test_first_invalid_argument_is_reported(channel, unique):
    q = unique("s")
    channel_error(
        lambda: channel.queue_declare(q, durable=True, arguments={
            **STREAM, "x-max-length-bytes": -1, "x-max-length": 1}),
        406, invalid_arg("x-max-length-bytes", q, "{value_negative,-1}"))


# ---------------------------------------------------------------------------
# Redeclaration
# ---------------------------------------------------------------------------

INEQ = "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{q}' in vhost '/': {detail}"


@pytest.mark.parametrize(
    "first,second,flags,arg,detail",
    [
        ({}, None, {}, "x-queue-type",
         "received none but current is the value 'stream' of type 'longstr'"),
        ({}, {"x-queue-type": "classic"}, {}, "x-queue-type",
         "received 'classic' but current is 'stream'"),
        ({}, {"x-queue-type": "quorum"}, {}, "x-queue-type",
         "received 'quorum' but current is 'stream'"),
        ({}, {**STREAM, "x-max-length-bytes": 100}, {}, "x-max-length-bytes",
         "received the value '100' of type 'signedint' but current is none"),
        ({"x-max-length-bytes": 1000}, {**STREAM, "x-max-length-bytes": 100}, {},
         "x-max-length-bytes", "received '100' but current is '1000'"),
        ({"x-max-length-bytes": 1000}, STREAM, {}, "x-max-length-bytes",
         "received none but current is the value '1000' of type 'signedint'"),
        ({"x-max-age": "1D"}, {**STREAM, "x-max-age": "2D"}, {}, "x-max-age",
         "received '2D' but current is '1D'"),
        ({"x-stream-max-segment-size-bytes": 1000},
         {**STREAM, "x-stream-max-segment-size-bytes": 2000}, {},
         "x-stream-max-segment-size-bytes", "received '2000' but current is '1000'"),
        ({"x-initial-cluster-size": 1}, {**STREAM, "x-initial-cluster-size": 2}, {},
         "x-initial-cluster-size", "received '2' but current is '1'"),
        ({"x-queue-leader-locator": "client-local"},
         {**STREAM, "x-queue-leader-locator": "balanced"}, {},
         "x-queue-leader-locator", "received 'balanced' but current is 'client-local'"),
        ({}, STREAM, {"durable": False}, "durable", "received 'false' but current is 'true'"),
        ({}, STREAM, {"auto_delete": True}, "auto_delete",
         "received 'true' but current is 'false'"),
    ],
)
def test_inequivalent_redeclaration(channel, unique, first, second, flags, arg, detail):
    q = declare_stream(channel, unique("s"), **first)
    kw = {"durable": True, **flags}
    channel_error(lambda: channel.queue_declare(q, arguments=second, **kw), 406,
                  INEQ.format(arg=arg, q=q, detail=detail))


def test_same_redeclaration_and_passive_succeed(connect, unique):
    ch = connect().channel()
    q = declare_stream(ch, unique("s"), **{"x-max-age": "1D"})
    assert ch.queue_declare(q, durable=True,
                            arguments={**STREAM, "x-max-age": "1D"}).method.queue == q
    assert ch.queue_declare(q, passive=True).method.queue == q


def test_redeclaring_exclusive_is_resource_locked(channel, cleanup):
    # A short name: the reply text is a shortstr, cut to 255 bytes.
    q = declare_stream(channel, cleanup.queue(f"s-{uuid.uuid4().hex[:8]}"))
    channel_error(
        lambda: channel.queue_declare(q, durable=True, exclusive=True, arguments=STREAM), 405,
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost "
        "'/'. It could be originally declared on another connection or the exclusive "
        "property value does not match that of the original declaration.")


def test_classic_queue_redeclared_as_stream(channel, unique):
    q = unique("q")
    channel.queue_declare(q, durable=True)
    channel_error(lambda: channel.queue_declare(q, durable=True, arguments=STREAM), 406,
                  INEQ.format(arg="x-queue-type", q=q,
                              detail="received the value 'stream' of type 'longstr' but "
                                     "current is none"))


def test_passive_declare_eventually_counts_messages(channel, stream, publisher):
    # RabbitMQ reports the last statistics sample (every 5 s by default); a broker that
    # answers the current count passes at once.
    q = stream()
    publisher.publish(q, bodies(5))
    deadline = time.monotonic() + 15
    while channel.queue_declare(q, passive=True).method.message_count != 5:
        assert time.monotonic() < deadline, "message_count never reached 5"
        channel.connection.process_data_events(time_limit=0.2)


def test_consumer_count_of_a_stream_is_zero(channel, connect, stream, publisher):
    q = stream()
    publisher.publish(q, [b"m"])
    r = Reader(connect, q, offset="first")
    r.wait(1)
    assert channel.queue_declare(q, passive=True).method.consumer_count == 0


# ---------------------------------------------------------------------------
# basic.consume: qos, no-ack, consumer arguments
# ---------------------------------------------------------------------------


def prefetch_not_set(q):
    return f"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{q}' in vhost '/''"


@pytest.mark.parametrize(
    "qos",
    [
        [],  # no basic.qos at all
        [(0, False)],
        [(5, True)],  # a global (per-channel) prefetch does not count
    ],
    ids=["no-qos", "prefetch-0", "global-only"],
)
def test_consume_needs_a_consumer_prefetch(connect, stream, qos):
    q = stream()
    ch = connect().channel()
    for count, glob in qos:
        ch.basic_qos(prefetch_count=count, global_qos=glob)
    channel_error(lambda: ch.basic_consume(q, lambda *a: None), 406, prefetch_not_set(q))


def test_global_qos_set_after_the_consumer_prefetch_is_refused(connect, stream):
    q = stream()
    ch = connect().channel()
    ch.basic_qos(prefetch_count=3)
    ch.basic_qos(prefetch_count=5, global_qos=True)
    connection_error(lambda: ch.basic_consume(q, lambda *a: None), 540,
                     f"NOT_IMPLEMENTED - queue '{q}' in vhost '/' does not support global qos")


def test_global_qos_then_consumer_prefetch_consumes(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(3))
    conn = connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=5, global_qos=True)
    ch.basic_qos(prefetch_count=3)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), arguments={"x-stream-offset": "first"})
    wait_for(conn, lambda: len(got) == 3, what="3 deliveries")
    assert got == bodies(3)


def test_no_ack_consumer_is_refused(connect, stream):
    q = stream()
    ch = connect().channel()
    ch.basic_qos(prefetch_count=10)
    connection_error(lambda: ch.basic_consume(q, lambda *a: None, auto_ack=True), 540,
                     not_implemented("automatic acknowledgement", q))


def test_consumer_priority_is_refused(connect, stream):
    q = stream()
    ch = connect().channel()
    ch.basic_qos(prefetch_count=10)
    channel_error(lambda: ch.basic_consume(q, lambda *a: None, arguments={"x-priority": 5}),
                  406, refused_for_streams("x-priority", q))


def test_stream_offset_on_a_classic_queue_is_refused(connect, unique):
    ch = connect().channel()
    q = unique("q")
    ch.queue_declare(q, durable=True)
    ch.basic_qos(prefetch_count=10)
    channel_error(
        lambda: ch.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": "first"}),
        406, f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}' in vhost "
             "'/' of queue type rabbit_classic_queue")


def test_exclusive_consumer_and_cancel(connect, stream, publisher):
    q = stream()
    publisher.publish(q, [b"m"])
    conn = connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    got = []
    tag = ch.basic_consume(q, lambda c, m, p, b: got.append(b), exclusive=True,
                           arguments={"x-stream-offset": "first"})
    wait_for(conn, lambda: got == [b"m"], what="the delivery")
    ch.basic_ack(1)
    assert ch.basic_cancel(tag) == []


# ---------------------------------------------------------------------------
# x-stream-offset
# ---------------------------------------------------------------------------

ALL = [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "offset,expected",
    [
        (NO_ARG, [5]),  # no argument: next
        ("first", ALL),
        ("last", [4, 5]),  # the last chunk (each confirmed publish is one)
        ("next", [5]),
        (0, ALL),
        (3, [3, 4, 5]),
        (4, [4, 5]),
        (5, [5]),  # the next offset
        (-1, ALL),
        (-5, ALL),
        ("10m", ALL),
        ("1h", ALL),
        ("2D", ALL),
        ("1M", ALL),
        ("1Y", ALL),
        (datetime.datetime(2000, 1, 1), ALL),
    ],
    ids=lambda v: repr(v) if not isinstance(v, list) else None,
)
def test_stream_offset_forms(connect, stream, publisher, offset, expected):
    """Offsets 0-4 exist when the consumer starts; offset 5 is published after."""
    q = stream()
    publisher.publish(q, bodies(5))
    r = Reader(connect, q, offset=offset)
    r.wait(len(expected) - 1)
    publisher.publish(q, [b"m5"])
    r.wait(len(expected))
    r.quiet()
    assert r.offsets() == expected
    assert r.bodies() == [f"m{o}".encode() for o in expected]


def test_offset_beyond_the_end_skips_lower_offsets(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(3))
    r = Reader(connect, q, offset=100)
    publisher.publish(q, [b"m3"])
    ends = Reader(connect, q, offset=3)  # proves m3 is readable: the first reader skips it
    ends.wait(1)
    assert r.quiet() == []


def test_offset_2_pow_40_waits_for_data(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(3))
    assert Reader(connect, q, offset=2 ** 40).quiet() == []


def test_time_based_offsets_skip_older_messages(connect, stream, publisher):
    """An interval ("1s") or a timestamp reads from the first chunk at or after it."""
    q = stream()
    publisher.publish(q, [b"old"])
    time.sleep(1.5)  # the feature under test is the passing of time
    now = datetime.datetime.now()
    publisher.publish(q, [b"new"])
    by_interval = Reader(connect, q, offset="1s")
    by_timestamp = Reader(connect, q, offset=now)
    assert [b for _, _, b in by_interval.wait(1)] == [b"new"]
    assert [b for _, _, b in by_timestamp.wait(1)] == [b"new"]
    assert by_interval.quiet() == by_interval.got[:1]
    assert by_timestamp.quiet() == by_timestamp.got[:1]


@pytest.mark.parametrize("value", ["0s", "10x", "1d"])
def test_invalid_interval_offsets(connect, stream, value):
    q = stream()
    ch = connect().channel()
    ch.basic_qos(prefetch_count=10)
    channel_error(
        lambda: ch.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": value}),
        406, invalid_arg("x-stream-offset", q,
                         f'{{invalid_stream_offset_arg,{{longstr,<<"{value}">>}}}}'))


@pytest.mark.parametrize("value", ["abc", "", True, [1]], ids=["abc", "empty", "bool", "array"])
def test_malformed_offsets_are_refused(connect, stream, value):
    # RabbitMQ 3.10 crashes on these (541); a correct broker refuses the argument.
    q = stream()
    ch = connect().channel()
    ch.basic_qos(prefetch_count=10)
    refused(lambda: ch.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": value}),
            f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}' in vhost '/'")


# ---------------------------------------------------------------------------
# What a delivery carries
# ---------------------------------------------------------------------------


def test_delivery_keeps_exchange_routing_key_and_properties(connect, channel, stream, publisher):
    q = stream()
    channel.queue_bind(q, "amq.direct", routing_key="rk1")
    props = pika.BasicProperties(
        content_type="text/plain", content_encoding="enc", headers={"app": "v", "n": 7},
        delivery_mode=2, priority=3, correlation_id="c1", reply_to="r", expiration="60000",
        message_id="mid", timestamp=1234, type="t", user_id="guest", app_id="app")
    publisher.publish(q, [b"via-direct"], props, exchange="amq.direct", routing_key="rk1")
    publisher.publish(q, [b"plain"])
    r = Reader(connect, q, offset="first")
    (m1, p1, b1), (m2, p2, b2) = r.wait(2)
    assert (m1.delivery_tag, m1.redelivered, m1.exchange, m1.routing_key, b1) == (
        1, False, "amq.direct", "rk1", b"via-direct")
    assert (m2.delivery_tag, m2.redelivered, m2.exchange, m2.routing_key, b2) == (
        2, False, "", q, b"plain")
    assert p1.headers == {"app": "v", "n": 7, "x-stream-offset": 0}
    for field in ("content_type", "content_encoding", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                  "type", "user_id", "app_id"):
        assert getattr(p1, field) == getattr(props, field), field
    assert p2.headers == {"x-stream-offset": 1}
    assert p2.content_type is None and p2.delivery_mode is None


def test_stream_stores_once_per_routing(connect, channel, stream, publisher, unique):
    """A stream bound twice to a fanout exchange still stores each message once."""
    q = stream()
    x = unique("x")
    channel.exchange_declare(x, "fanout", auto_delete=True)
    channel.queue_bind(q, x, routing_key="a")
    channel.queue_bind(q, x, routing_key="b")
    publisher.publish(q, [b"one"], exchange=x, routing_key="")
    r = Reader(connect, q, offset="first")
    assert [b for _, _, b in r.wait(1)] == [b"one"]
    assert r.quiet() == r.got[:1]


# ---------------------------------------------------------------------------
# Credit and acknowledgements
# ---------------------------------------------------------------------------


def test_prefetch_bounds_unacked_deliveries(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(10))
    r = Reader(connect, q, prefetch=3, offset="first")
    r.wait(3)
    assert r.quiet() and r.offsets() == [0, 1, 2]


def test_ack_releases_credit_and_removes_nothing(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(10))
    r = Reader(connect, q, prefetch=1, offset="first")
    r.wait(1)
    assert r.quiet() and r.offsets() == [0]
    r.ch.basic_ack(1)
    r.wait(2)
    r.ch.basic_ack(2)
    r.wait(3)
    assert r.quiet() and r.offsets() == [0, 1, 2]
    # A second reader still sees everything: acks removed nothing.
    again = Reader(connect, q, prefetch=100, offset="first")
    assert [m.delivery_tag for m, _, _ in again.wait(10)] == list(range(1, 11))


def test_ack_multiple_releases_all_credit(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(6))
    r = Reader(connect, q, prefetch=3, offset="first")
    r.wait(3)
    r.ch.basic_ack(3, multiple=True)
    r.wait(6)
    assert r.offsets() == list(range(6))


def test_consumer_acking_each_delivery_reads_everything(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(20))
    r = Reader(connect, q, prefetch=3, offset="first", auto_ack_each=True)
    r.wait(20)
    assert r.offsets() == list(range(20))
    assert all(not m.redelivered for m, _, _ in r.got)


def test_ack_of_unknown_tag(connect, stream):
    ch = connect().channel()
    channel_error(lambda: (ch.basic_ack(99), ch.basic_qos(prefetch_count=1)), 406,
                  "PRECONDITION_FAILED - unknown delivery tag 99")


@pytest.mark.parametrize(
    "settle_fn",
    [
        lambda ch, tag: ch.basic_nack(tag, requeue=False),
        lambda ch, tag: ch.basic_nack(tag, requeue=True),
        lambda ch, tag: ch.basic_reject(tag, requeue=False),
        lambda ch, tag: ch.basic_reject(tag, requeue=True),
    ],
    ids=["nack", "nack-requeue", "reject", "reject-requeue"],
)
def test_nack_and_reject_close_the_connection(connect, stream, publisher, settle_fn):
    q = stream()
    publisher.publish(q, [b"m"])
    r = Reader(connect, q, prefetch=1, offset="first")
    r.wait(1)

    def act():
        settle_fn(r.ch, 1)
        r.ch.basic_qos(prefetch_count=1)  # a round trip that sees the close

    connection_error(act, 540, not_implemented("basic.nack and basic.reject", q))


def test_several_readers_read_independently(connect, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(6))
    starts = {"first": [0, 1, 2, 3, 4, 5, 6], 2: [2, 3, 4, 5, 6], "last": [5, 6],
              "next": [6], -5: [0, 1, 2, 3, 4, 5, 6], 6: [6]}
    readers = {k: Reader(connect, q, offset=k) for k in starts}
    for k, want in starts.items():
        readers[k].wait(len(want) - 1)
    publisher.publish(q, [b"m6"])
    for k, want in starts.items():
        readers[k].wait(len(want))
        assert readers[k].offsets() == want, k


# ---------------------------------------------------------------------------
# Other operations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("auto_ack", [False, True])
def test_basic_get_is_not_implemented(connect, stream, publisher, auto_ack):
    q = stream()
    publisher.publish(q, [b"m"])
    ch = connect().channel()
    connection_error(lambda: ch.basic_get(q, auto_ack=auto_ack), 540,
                     not_implemented("basic.get", q))


def test_purge_is_not_implemented(connect, stream):
    q = stream()
    ch = connect().channel()
    connection_error(lambda: ch.queue_purge(q), 540, not_implemented("queue.purge", q))


def test_delete_answers_zero_messages(channel, stream, publisher):
    q = stream()
    publisher.publish(q, bodies(3))
    assert channel.queue_delete(q).method.message_count == 0
    channel_error(lambda: channel.queue_declare(q, passive=True), 404,
                  f"NOT_FOUND - no queue '{q}' in vhost '/'")


def test_delete_if_empty_and_if_unused_do_not_hold_a_stream(connect, channel, stream, publisher):
    """Streams report 0 messages and 0 consumers to these checks: both delete."""
    full = stream()
    publisher.publish(full, bodies(3))
    assert channel.queue_delete(full, if_empty=True).method.message_count == 0
    used = stream()
    publisher.publish(used, [b"m"])
    r = Reader(connect, used, offset="first")
    r.wait(1)
    assert channel.queue_delete(used, if_unused=True).method.message_count == 0


def test_delete_cancels_consumers(connect, channel, stream, publisher):
    q = stream()
    publisher.publish(q, [b"m"])
    r = Reader(connect, q, offset="first", auto_ack_each=True)
    cancelled = []
    r.ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    r.wait(1)
    channel.queue_delete(q)
    wait_for(r.conn, lambda: cancelled == [r.tag], what="basic.cancel")
    assert r.ch.is_open


def test_mandatory_publish_to_a_stream_is_confirmed_and_not_returned(connect, stream):
    q = stream()
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    for body in bodies(3):
        ch.basic_publish("", q, body, mandatory=True)  # raises unless acked
    settle(conn)
    assert returned == []
    r = Reader(connect, q, offset="first")
    assert [b for _, _, b in r.wait(3)] == bodies(3)


def test_transactional_publish_into_a_stream(connect, stream):
    q = stream()
    ch = connect().channel()
    ch.tx_select()
    ch.basic_publish("", q, b"tx")
    r = Reader(connect, q, offset="first")
    assert r.quiet() == []
    ch.tx_commit()
    assert [b for _, _, b in r.wait(1)] == [b"tx"]


def test_basic_recover_is_accepted(connect, stream):
    ch = connect().channel()
    ch.basic_qos(prefetch_count=1)
    ch.basic_recover(requeue=True)


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------


def test_retention_by_size_drops_whole_old_segments(connect, stream, publisher):
    q = stream(**{"x-max-length-bytes": 2000, "x-stream-max-segment-size-bytes": 500})
    publisher.publish(q, [b"%03d" % i + b"x" * 100 for i in range(100)])
    r = Reader(connect, q, prefetch=1000, offset="first")
    wait_for(r.conn, lambda: r.got and r.got[-1][2].startswith(b"099"),
             what="the last message")
    first = r.offsets()[0]
    assert first > 0
    assert 0 < len(r.got) < 100
    # What is kept is the newest messages, in order, up to the last one published.
    numbers = [int(b[:3]) for b in r.bodies()]
    assert numbers == list(range(numbers[0], 100))


def test_retention_by_age_drops_old_segments(connect, stream, publisher):
    q = stream(**{"x-max-age": "1s", "x-stream-max-segment-size-bytes": 500})
    publisher.publish(q, [b"old" + b"x" * 100] * 10)
    time.sleep(1.5)  # the feature under test is the passing of time
    publisher.publish(q, [b"new" + b"x" * 100] * 10)
    r = Reader(connect, q, prefetch=1000, offset="first")
    r.wait(10)
    r.quiet()
    assert [b[:3] for b in r.bodies()] == [b"new"] * 10
    assert r.offsets()[0] >= 10
