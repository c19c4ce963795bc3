"""Channel lifecycle: open/close, many channels, soft errors, flow."""

import pika.exceptions as exc
import pika.spec as spec
import pytest

from helpers import declare_queue, get_message


def test_open_and_close(connection):
    ch = connection.channel()
    assert ch.is_open
    ch.close()
    assert ch.is_closed
    assert connection.is_open


def test_channel_numbers_are_independent(connection):
    a = connection.channel()
    b = connection.channel()
    assert a.channel_number != b.channel_number
    qa = declare_queue(a)
    b.basic_publish("", qa, b"from b")
    _, _, body = get_message(a, qa, auto_ack=True)
    assert body == b"from b"


def test_many_channels(connection):
    chans = [connection.channel() for _ in range(100)]
    for ch in chans:
        ch.queue_declare("", exclusive=True)
    for ch in chans[::2]:
        ch.close()
    assert all(ch.is_open for ch in chans[1::2])
    # closed channel numbers can be opened again
    more = [connection.channel() for _ in range(50)]
    assert all(ch.is_open for ch in more)


def test_soft_error_closes_only_that_channel(connection, unique):
    bystander = connection.channel()
    q = declare_queue(bystander)
    victim = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        victim.queue_declare(unique("missing"), passive=True)
    assert info.value.reply_code == 404
    assert victim.is_closed
    assert connection.is_open
    assert bystander.is_open
    bystander.basic_publish("", q, b"still fine")
    _, _, body = get_message(bystander, q, auto_ack=True)
    assert body == b"still fine"
    # and new channels can be opened on the same connection
    again = connection.channel()
    again.queue_declare(q, passive=True)


def test_closed_channel_rejects_client_use(connection, unique):
    ch = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker):
        ch.exchange_declare(unique("missing"), passive=True)
    with pytest.raises(exc.ChannelWrongStateError):
        ch.queue_declare("", exclusive=True)


def test_flow_active_true(channel):
    assert channel.flow(True) is True


def test_flow_active_false_not_implemented(connection, channel):
    """RabbitMQ refuses client-initiated channel.flow(active=false): connection error 540."""
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        channel.flow(False)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - active=false"
    assert connection.is_closed


def test_raw_channel_close_ok(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    ch, _ = r.expect(spec.Channel.CloseOk)
    assert ch == 1
    # the number can be reused after close-ok
    r.open_channel(1)


def test_raw_server_channel_close_fields(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="interop-no-such-queue-raw", passive=True))
    ch, close = r.expect(spec.Channel.Close)
    assert ch == 1
    assert close.reply_code == 404
    assert close.reply_text == f"NOT_FOUND - no queue 'interop-no-such-queue-raw' in vhost '{r.vhost}'"
    assert (close.class_id, close.method_id) == (50, 10)  # queue.declare


def test_raw_frames_ignored_until_close_ok(raw):
    """After the broker sends channel.close it discards methods on that channel
    until the client answers close-ok; then the channel can be reopened."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="interop-no-such-queue-raw", passive=True))
    r.expect(spec.Channel.Close)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))  # ignored
    r.send_method(1, spec.Channel.CloseOk())
    r.send_method(1, spec.Channel.Open())
    ch, m = r.recv_method()
    assert (ch, type(m)) == (1, spec.Channel.OpenOk)


def test_raw_second_channel_open_504(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Channel.Open())
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - second 'channel.open' seen"
    assert (close.class_id, close.method_id) == (20, 10)


def test_raw_method_on_unopened_channel_504(raw):
    r = raw().handshake()
    r.send_method(3, spec.Queue.Declare(queue="", exclusive=True))
    ch, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - expected 'channel.open'"
    assert (close.class_id, close.method_id) == (50, 10)


def test_raw_method_on_closed_channel_504(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    r.expect(spec.Channel.CloseOk)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - expected 'channel.open'"


def test_raw_channel_method_on_channel_zero_504(raw):
    r = raw().handshake()
    r.send_method(0, spec.Queue.Declare(queue="", exclusive=True))
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - unexpected method in connection state running"
    assert (close.class_id, close.method_id) == (50, 10)


@pytest.mark.parametrize("method", [spec.Channel.CloseOk(), spec.Channel.FlowOk(active=True)])
def test_raw_unsolicited_close_ok_or_flow_ok_503(raw, method):
    """close-ok for a close the broker never sent, and flow-ok (the broker never sends
    channel.flow), hit RabbitMQ's 'unimplemented method' connection error."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, method)
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 503
    assert close.reply_text == "COMMAND_INVALID - unimplemented method"
    assert (close.class_id, close.method_id) == (method.INDEX >> 16, method.INDEX & 0xFFFF)


def test_raw_connection_method_on_channel_503(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Connection.Close(reply_code=200, reply_text="bye",
                                           class_id=0, method_id=0))
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 503
    assert close.reply_text == "COMMAND_INVALID - unimplemented method"
    assert (close.class_id, close.method_id) == (10, 50)


def test_raw_channel_open_while_broker_closing_504(raw):
    """While the broker waits for close-ok, other methods are dropped but a
    channel.open is still 'second channel.open' (a connection error)."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="interop-no-such-queue-raw", passive=True))
    r.expect(spec.Channel.Close)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))  # ignored
    r.send_method(1, spec.Channel.Open())
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - second 'channel.open' seen"
    assert (close.class_id, close.method_id) == (20, 10)
