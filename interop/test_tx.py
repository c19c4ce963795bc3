"""Transactions: tx.select / tx.commit / tx.rollback."""

import pika.exceptions as exc
import pika.spec as spec
import pytest

from helpers import declare_queue, drain, get_message, settle, wait_for


def count(channel, q):
    return channel.queue_declare(q, passive=True).method.message_count


def test_publish_invisible_until_commit(connection, channel):
    q = declare_queue(channel)
    observer = connection.channel()
    channel.tx_select()
    channel.basic_publish("", q, b"1")
    channel.basic_publish("", q, b"2")
    # a synchronous round trip on the tx channel proves the broker has the publishes
    channel.queue_declare(q, passive=True)
    assert count(observer, q) == 0
    assert observer.basic_get(q)[0] is None
    ok = channel.tx_commit()
    assert isinstance(ok.method, spec.Tx.CommitOk)
    assert [m[2] for m in drain(observer, q)] == [b"1", b"2"]


def test_rollback_discards_publishes(connection, channel):
    q = declare_queue(channel)
    channel.tx_select()
    channel.basic_publish("", q, b"discarded")
    ok = channel.tx_rollback()
    assert isinstance(ok.method, spec.Tx.RollbackOk)
    channel.basic_publish("", q, b"kept")
    channel.tx_commit()
    assert [m[2] for m in drain(connection.channel(), q)] == [b"kept"]


def test_channel_stays_transactional_after_commit(connection, channel):
    q = declare_queue(channel)
    observer = connection.channel()
    channel.tx_select()
    channel.basic_publish("", q, b"a")
    channel.tx_commit()
    channel.basic_publish("", q, b"b")
    channel.queue_declare(q, passive=True)
    assert [m[2] for m in drain(observer, q)] == [b"a"]
    channel.tx_commit()
    assert [m[2] for m in drain(observer, q)] == [b"b"]


def test_empty_commit_and_rollback(channel):
    channel.tx_select()
    channel.tx_commit()
    channel.tx_rollback()
    channel.tx_commit()


def test_ack_applied_at_commit(connection, channel):
    q = declare_queue(channel)
    channel.basic_publish("", q, b"x")
    channel.tx_select()
    method, _, _ = get_message(channel, q)
    channel.basic_ack(method.delivery_tag)
    channel.tx_commit()
    # acked for good: nothing comes back on recover (see the rollback test for the
    # ack not being applied before commit)
    channel.basic_recover(requeue=True)
    assert channel.basic_get(q)[0] is None
    assert count(channel, q) == 0


def test_ack_rollback_leaves_message_unacked(connection, channel):
    """Rolling back an ack does not requeue: the delivery stays unacked on the channel."""
    q = declare_queue(channel)
    channel.basic_publish("", q, b"1")
    channel.basic_publish("", q, b"2")
    channel.tx_select()
    m1, _, _ = get_message(channel, q)
    channel.basic_ack(m1.delivery_tag)
    channel.tx_rollback()
    assert count(channel, q) == 1  # only "2" is ready; "1" is still unacked
    channel.basic_ack(m1.delivery_tag)  # the tag is still valid
    channel.tx_commit()
    channel.basic_recover(requeue=True)
    assert [(m[2], m[0].redelivered) for m in drain(channel, q)] == [(b"2", False)]
    channel.tx_commit()


def test_nack_requeue_applied_at_commit(channel):
    q = declare_queue(channel)
    channel.basic_publish("", q, b"x")
    channel.tx_select()
    method, _, _ = get_message(channel, q)
    channel.basic_nack(method.delivery_tag, requeue=True)
    assert count(channel, q) == 0
    channel.tx_commit()
    assert count(channel, q) == 1
    method, _, _ = get_message(channel, q, auto_ack=True)
    assert method.redelivered is True
    channel.tx_commit()


def test_reject_discard_applied_at_commit(channel):
    q = declare_queue(channel)
    channel.basic_publish("", q, b"x")
    channel.tx_select()
    method, _, _ = get_message(channel, q)
    channel.basic_reject(method.delivery_tag, requeue=False)
    channel.tx_commit()
    channel.basic_recover(requeue=True)
    assert channel.basic_get(q)[0] is None
    channel.tx_commit()


@pytest.mark.parametrize("method", ["ack", "nack", "reject"])
def test_raw_unknown_tag_in_tx_fails_at_once(raw, method):
    """An unknown delivery tag is a 406 on the basic.ack itself, not at tx.commit."""
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Tx.Select())
    r.expect(spec.Tx.SelectOk)
    frame = {"ack": spec.Basic.Ack(delivery_tag=7), "nack": spec.Basic.Nack(delivery_tag=7),
             "reject": spec.Basic.Reject(delivery_tag=7)}[method]
    r.send_method(1, frame)
    _, close = r.expect(spec.Channel.Close)
    assert close.reply_code == 406
    assert close.reply_text == "PRECONDITION_FAILED - unknown delivery tag 7"
    assert (close.class_id, close.method_id) == (frame.INDEX >> 16, frame.INDEX & 0xFFFF)


def test_raw_double_ack_in_tx_fails_at_second_ack(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), b"x")
    r.send_method(1, spec.Tx.Select())
    r.expect(spec.Tx.SelectOk)
    r.send_method(1, spec.Basic.Get(queue=ok.queue))
    r.expect(spec.Basic.GetOk)
    r.send_method(1, spec.Basic.Ack(delivery_tag=1))
    r.send_method(1, spec.Basic.Ack(delivery_tag=1, multiple=True))
    _, close = r.expect(spec.Channel.Close)
    assert close.reply_code == 406
    assert close.reply_text == "PRECONDITION_FAILED - unknown delivery tag 1"
    assert (close.class_id, close.method_id) == (60, 80)


def test_ack_in_tx_frees_prefetch_only_at_commit(connection, channel):
    q = declare_queue(channel)
    for body in (b"1", b"2"):
        channel.basic_publish("", q, body)
    channel.tx_select()
    channel.tx_commit()
    channel.basic_qos(prefetch_count=1)
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append(m.delivery_tag))
    wait_for(connection, lambda: len(got) == 1, what="first delivery")
    channel.basic_ack(got[0])
    settle(connection, 0.3)
    assert len(got) == 1
    channel.tx_commit()
    wait_for(connection, lambda: len(got) == 2, what="second delivery after commit")


def test_commit_without_select_406(connection, channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.tx_commit()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"
    assert connection.is_open


def test_rollback_without_select_406(channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.tx_rollback()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"


def test_publish_to_missing_exchange_fails_immediately_in_tx(connection, channel, unique):
    channel.tx_select()
    name = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_publish(name, "k", b"x")
        channel.tx_commit()
    assert info.value.reply_code == 404


def test_mandatory_return_sent_at_commit(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(1, spec.Tx.Select())
    r.expect(spec.Tx.SelectOk)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key="interop-no-such-queue",
                                         mandatory=True), b"x")
    with pytest.raises(TimeoutError):
        r.recv_method(timeout=0.2)  # nothing before commit
    r.send_method(1, spec.Tx.Commit())
    _, ret = r.expect(spec.Basic.Return)
    assert (ret.reply_code, ret.reply_text) == (312, "NO_ROUTE")
    r.expect(spec.Tx.CommitOk)


def test_unacked_in_tx_requeued_on_close(connection, channel):
    q = declare_queue(channel)
    channel.basic_publish("", q, b"x")
    worker = connection.channel()
    worker.tx_select()
    method, _, _ = get_message(worker, q)
    worker.basic_ack(method.delivery_tag)
    worker.close()  # uncommitted ack is discarded, message requeued
    method, _, body = get_message(channel, q, auto_ack=True)
    assert (body, method.redelivered) == (b"x", True)
