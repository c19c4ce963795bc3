"""Protocol errors: frame-level faults, hard vs soft error scope, exact reply codes.

Most area-specific errors (404/403/405/406 on declares, acks, ...) live next to
their area; this module covers the framing layer and how errors propagate.
"""

import struct

import pika
import pika.exceptions as exc
import pika.frame
import pika.spec as spec
import pytest

from amqp_raw import ConnectionDropped
from helpers import WAIT, declare_queue, get_message, wait_for


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def publish_method(channel=1):
    return pika.frame.Method(channel, spec.Basic.Publish(exchange="", routing_key="x")).marshal()


def expect_connection_close(r, code, text=None, class_method=None, prefix=None):
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == code, close
    if text is not None:
        assert close.reply_text == text
    if prefix is not None:
        assert close.reply_text.startswith(prefix), close.reply_text
    if class_method is not None:
        assert (close.class_id, close.method_id) == class_method
    return close


def opened(raw):
    r = raw().handshake()
    r.open_channel(1)
    return r


# ---------------------------------------------------------------- framing


def test_unknown_frame_type_501(raw):
    r = opened(raw)
    r.send_raw(frame(9, 1, b""))
    expect_connection_close(r, 501, "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame",
                            (0, 0))


def test_bad_frame_end_501(raw):
    r = opened(raw)
    r.send_raw(b"\x01\x00\x01\x00\x00\x00\x04\x00\x0a\x00\x0a\x00")  # frame-end 0x00
    expect_connection_close(
        r, 501, "FRAME_ERROR - type 1, all octets = <<0,10,0,10>>: {invalid_frame_end_marker,0}",
        (0, 0))


def test_truncated_method_arguments_501(raw):
    r = opened(raw)
    r.send_raw(frame(1, 1, struct.pack(">HH", 50, 10) + b"\x00"))  # queue.declare, cut short
    expect_connection_close(r, 501, "FRAME_ERROR - cannot decode <<0>>", (50, 10))


def test_method_with_trailing_garbage_501(raw):
    r = opened(raw)
    args = pika.frame.Method(1, spec.Queue.Declare(queue="", exclusive=True)).marshal()[11:-1]
    r.send_raw(frame(1, 1, struct.pack(">HH", 50, 10) + args + b"extra"))
    expect_connection_close(r, 501, prefix="FRAME_ERROR - cannot decode", class_method=(50, 10))


def test_heartbeat_on_nonzero_channel_505(raw):
    r = opened(raw)
    r.send_raw(frame(8, 1, b""))
    expect_connection_close(r, 505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", (0, 0))


def test_heartbeat_with_payload_501(raw):
    r = opened(raw)
    r.send_raw(frame(8, 0, b"xx"))
    expect_connection_close(r, 501, 'FRAME_ERROR - type 8, all octets = <<"xx">>: unknown_frame',
                            (0, 0))


def test_body_frame_without_header_505(raw):
    r = opened(raw)
    r.send_raw(frame(3, 1, b"abc"))
    expect_connection_close(
        r, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", (0, 0))


def test_content_header_for_wrong_class_505(raw):
    r = opened(raw)
    r.send_raw(publish_method() + frame(2, 1, struct.pack(">HHQH", 50, 0, 3, 0)))
    expect_connection_close(
        r, 505, "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 "
        "instead", (60, 40))


def test_method_where_body_expected_505(raw):
    r = opened(raw)
    r.send_raw(publish_method()
               + pika.frame.Header(1, 3, spec.BasicProperties()).marshal()
               + pika.frame.Method(1, spec.Basic.Qos(prefetch_count=1)).marshal())
    expect_connection_close(
        r, 505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        (60, 40))


def test_unknown_method_ends_connection(raw):
    """RabbitMQ 3.10 drops the socket (no Connection.Close) on an unknown class/method id."""
    r = opened(raw)
    r.send_raw(frame(1, 1, struct.pack(">HH", 60, 999)))
    try:
        _, m = r.recv_method()
    except ConnectionDropped:
        return
    assert isinstance(m, spec.Connection.Close), m  # a close would also be acceptable


# ---------------------------------------------------------------- connection-state faults


@pytest.mark.parametrize("method,class_method", [
    (spec.Connection.Open(virtual_host="/"), (10, 40)),
    (spec.Connection.TuneOk(channel_max=10, frame_max=8192, heartbeat=0), (10, 31)),
    (spec.Channel.Open(), (20, 10)),
])
def test_unexpected_method_on_channel_zero_504(raw, method, class_method):
    r = opened(raw)
    r.send_method(0, method)
    expect_connection_close(
        r, 504, "CHANNEL_ERROR - unexpected method in connection state running", class_method)


def test_client_sending_server_method_503(raw):
    r = opened(raw)
    r.send_method(1, spec.Channel.OpenOk())
    expect_connection_close(r, 503, "COMMAND_INVALID - unimplemented method", (20, 11))


def test_access_request_is_accepted(raw):
    """access.request (deprecated) still gets request-ok; old clients send it."""
    r = opened(raw)
    r.send_method(1, spec.Access.Request(realm="/data"))
    ch, ok = r.expect(spec.Access.RequestOk)
    assert ch == 1
    assert ok.ticket == 1


def test_after_server_close_connection_ends_on_close_ok(raw):
    r = opened(raw)
    r.send_raw(frame(9, 1, b""))
    r.expect(spec.Connection.Close)
    r.send_method(0, spec.Connection.CloseOk())
    assert r.wait_closed(WAIT)


def test_frames_after_server_close_are_ignored(raw):
    r = opened(raw)
    r.send_raw(frame(9, 1, b""))
    r.expect(spec.Connection.Close)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))  # discarded
    r.send_method(0, spec.Connection.CloseOk())
    with pytest.raises(ConnectionDropped):
        while True:
            ch, m = r.recv_method(timeout=WAIT)
            assert not isinstance(m, spec.Queue.DeclareOk)


# ---------------------------------------------------------------- error scope


def test_soft_error_does_not_disturb_consumer_on_other_channel(connection, unique):
    consumer_ch = connection.channel()
    q = declare_queue(consumer_ch)
    got = []
    consumer_ch.basic_consume(q, lambda ch, m, p, b: got.append(b), auto_ack=True)
    bad = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker):
        bad.queue_declare(unique("missing"), passive=True)
    pub = connection.channel()
    pub.basic_publish("", q, b"after-error")
    wait_for(connection, lambda: got, what="delivery after soft error")
    assert got == [b"after-error"]


def test_soft_error_requeues_that_channels_unacked(connection, channel, unique):
    q = declare_queue(channel)
    channel.basic_publish("", q, b"x")
    worker = connection.channel()
    get_message(worker, q)
    with pytest.raises(exc.ChannelClosedByBroker):
        worker.queue_declare(unique("missing"), passive=True)
    method, _, body = get_message(channel, q, auto_ack=True)
    assert (body, method.redelivered) == (b"x", True)


def test_hard_error_closes_every_channel_and_exclusive_queues(connect, unique):
    victim = connect()
    a, b = victim.channel(), victim.channel()
    q = declare_queue(a, unique("excl"))
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        b.basic_qos(prefetch_size=1)
    assert info.value.reply_code == 540
    assert victim.is_closed
    assert a.is_closed and b.is_closed
    ch = connect().channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(q, passive=True)
    assert info.value.reply_code == 404


def test_reply_code_classes(connection, channel, unique):
    """Sanity: 4xx are channel (soft) errors, 5xx connection (hard) errors."""
    with pytest.raises(exc.ChannelClosedByBroker) as soft:
        channel.queue_declare(unique("missing"), passive=True)
    assert 400 <= soft.value.reply_code < 500
    assert connection.is_open
    ch = connection.channel()
    with pytest.raises(exc.ConnectionClosedByBroker) as hard:
        ch.exchange_declare(unique("ex"), "not-a-type")
    assert 500 <= hard.value.reply_code < 600
    assert connection.is_closed


def test_message_over_max_size_406_closes_only_the_channel(connection, channel):
    """RabbitMQ's default max_message_size is 128 MiB: one octet more closes the channel."""
    q = declare_queue(channel)
    publisher = connection.channel()
    max_size = 128 * 1024 * 1024
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        publisher.basic_publish("", q, b"x" * (max_size + 1))
        publisher.queue_declare(q, passive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - message size {max_size + 1} is larger than configured max size {max_size}"
    )
    assert connection.is_open
    assert channel.queue_declare(q, passive=True).method.message_count == 0
