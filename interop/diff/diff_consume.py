"""Round 2: consume semantics, cancel notifications, recover/reject, reply-to, purge/delete."""
import sys
import time

from harness import P, main, spec

S = []


def scenario(fn):
    S.append((fn.__name__, fn))
    return fn


Q = spec.Queue
E = spec.Exchange
B = spec.Basic
Ch = spec.Channel


def c1(s):
    c = s.conn()
    c.open(1)
    return c


@scenario
def exclusive_consume_when_others_consume(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, auto_delete=False))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="b", exclusive=True))


@scenario
def consume_when_exclusive_consumer(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", exclusive=True))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="b"))
    c.open(3)
    c.rpc(3, B.Consume(queue=q, consumer_tag="c", exclusive=True))


@scenario
def exclusive_consume_same_channel_twice(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="b", exclusive=True))


@scenario
def duplicate_consumer_tag(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))


@scenario
def duplicate_consumer_tag_other_queue(s):
    c = c1(s)
    q, q2 = s.n("q"), s.n("q2")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Declare(queue=q2, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Consume(queue=q2, consumer_tag="a"))


@scenario
def duplicate_tag_nowait(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", nowait=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", nowait=True))


@scenario
def empty_tag_nowait(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="", nowait=True))
    c.publish(1, "", q, b"x")
    c.wait(0.3)


@scenario
def cancel_unknown_tag(s):
    c = c1(s)
    c.rpc(1, B.Cancel(consumer_tag="nope"))
    c.rpc(1, B.Cancel(consumer_tag="nope", nowait=True))
    c.rpc(1, B.Cancel(consumer_tag=""))


@scenario
def cancel_twice(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Cancel(consumer_tag="a"))
    c.rpc(1, B.Cancel(consumer_tag="a"))


@scenario
def cancel_on_other_channel(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.open(2)
    c.rpc(2, B.Cancel(consumer_tag="a"))
    c.publish(1, "", q, b"x")
    c.wait(0.3)


@scenario
def consume_missing_queue(s):
    c = c1(s)
    c.rpc(1, B.Consume(queue=s.n("missing"), consumer_tag="a"))


@scenario
def consume_missing_queue_nowait(s):
    c = c1(s)
    c.rpc(1, B.Consume(queue=s.n("missing"), consumer_tag="a", nowait=True))


@scenario
def consume_empty_queue_name_no_default(s):
    c = c1(s)
    c.rpc(1, B.Consume(queue="", consumer_tag="a"))


@scenario
def consume_empty_queue_name_after_declare(s):
    c = c1(s)
    c.rpc(1, Q.Declare(queue="", exclusive=True))
    c.rpc(1, B.Consume(queue="", consumer_tag="a"))
    c.publish(1, "", "", b"x")
    c.wait(0.3)


@scenario
def x_priority_types(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    for i, v in enumerate(["high", 1.5, True, -5, 2**40, {"a": 1}, [1], b"x"]):
        ch = 10 + i
        c.open(ch)
        c.rpc(ch, B.Consume(queue=q, consumer_tag=f"t{i}", arguments={"x-priority": v}))


@scenario
def consumer_args_unknown_and_x_cancel(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", arguments={"x-whatever": "x", "foo": 1}))
    c.rpc(1, B.Consume(queue=q, consumer_tag="b", arguments={"x-cancel-on-ha-failover": "yes"}))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="c", arguments={"x-stream-offset": 5}))


@scenario
def no_local_flag(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", no_local=True))
    c.publish(1, "", q, b"x")
    c.wait(0.3)


@scenario
def cancel_notify_on_queue_delete_other_channel(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Consume(queue=q, consumer_tag="b", no_ack=True))
    c.publish(1, "", q, b"x")
    c.sync(1)
    c.wait(0.2)
    d = s.conn("d")
    d.open(1)
    d.rpc(1, Q.Delete(queue=q))
    c.wait(0.3)
    c.send(1, B.Ack(delivery_tag=1))
    c.sync(1)


@scenario
def cancel_notify_on_queue_delete_without_capability(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, Q.Delete(queue=q))
    c.wait(0.3)


@scenario
def delete_if_unused_with_consumer(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, Q.Delete(queue=q, if_unused=True))


@scenario
def delete_if_empty_with_unacked(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"x")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Q.Delete(queue=q, if_empty=True))


@scenario
def purge_and_delete_counts_with_unacked(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    for i in range(3):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Q.Purge(queue=q))
    c.publish(1, "", q, b"n")
    c.sync(1)
    c.rpc(1, Q.Delete(queue=q))
    c.send(1, B.Ack(delivery_tag=1))
    c.sync(1)


@scenario
def purge_then_reject_requeue(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"a")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Q.Purge(queue=q))
    c.send(1, B.Reject(delivery_tag=1, requeue=True))
    c.sync(1)
    c.rpc(1, B.Get(queue=q))


@scenario
def auto_delete_after_last_cancel(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, auto_delete=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Consume(queue=q, consumer_tag="b"))
    c.rpc(1, B.Cancel(consumer_tag="a"))
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, B.Cancel(consumer_tag="b"))
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def auto_delete_never_consumed_get(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, auto_delete=True))
    c.publish(1, "", q, b"a")
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, Q.Delete(queue=q))


@scenario
def auto_delete_channel_close(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, auto_delete=True))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(2, Ch.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def recover_requeue_true(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    for i in range(3):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.wait(0.2)
    c.send(1, B.Ack(delivery_tag=2))
    c.rpc(1, B.Recover(requeue=True))
    c.wait(0.3)


@scenario
def recover_requeue_false(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    for i in range(3):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.wait(0.2)
    c.rpc(1, B.Recover(requeue=False))
    c.wait(0.3)
    c.send(1, B.Ack(delivery_tag=1))
    c.sync(1)


@scenario
def recover_with_get(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"a")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, B.Recover(requeue=False))
    c.wait(0.3)
    c.rpc(1, B.Get(queue=q))


@scenario
def recover_async(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"a")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.RecoverAsync(requeue=True))
    c.sync(1)
    c.rpc(1, B.Get(queue=q))


@scenario
def ack_tag_zero_multiple(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    for i in range(2):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.Ack(delivery_tag=0, multiple=True))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.send(1, B.Ack(delivery_tag=0, multiple=True))
    c.sync(1)


@scenario
def nack_tag_zero_multiple_requeue_order(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    for i in range(4):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    for i in range(3):
        c.rpc(1, B.Get(queue=q))
    c.send(1, B.Nack(delivery_tag=0, multiple=True, requeue=True))
    c.sync(1)
    for i in range(4):
        c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def ack_tag_zero_not_multiple(s):
    c = c1(s)
    c.send(1, B.Ack(delivery_tag=0))
    c.sync(1)


@scenario
def reject_after_channel_reopen(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q))
    c.publish(1, "", q, b"a")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Ch.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.open(1)
    c.send(1, B.Reject(delivery_tag=1, requeue=False))
    c.sync(1)
    c.open(2)
    c.send(2, B.Nack(delivery_tag=1, multiple=True))
    c.sync(2)
    c.open(3)
    c.rpc(3, B.Get(queue=q))


@scenario
def get_empty_fields(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Get(queue=q))


@scenario
def get_ok_fields(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange="amq.topic", routing_key="a.#"))
    c.publish(1, "amq.topic", "a.b.c", b"1")
    c.publish(1, "", q, b"2")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.Reject(delivery_tag=1, requeue=True))
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, B.Get(queue=q))


@scenario
def reply_to_publish_without_consume(s):
    c = c1(s)
    c.publish(1, "", "x", b"1", P(reply_to="amq.rabbitmq.reply-to"))
    c.sync(1)


@scenario
def reply_to_consume_ack_mode(s):
    c = c1(s)
    c.rpc(1, B.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="a"))


@scenario
def reply_to_two_consumers(s):
    c = c1(s)
    c.rpc(1, B.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="a", no_ack=True))
    c.rpc(1, B.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="b", no_ack=True))


@scenario
def reply_to_other_channel(s):
    c = c1(s)
    c.rpc(1, B.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="a", no_ack=True))
    c.open(2)
    c.publish(2, "", "x", b"1", P(reply_to="amq.rabbitmq.reply-to"))
    c.sync(2)


@scenario
def reply_to_declare_passive(s):
    c = c1(s)
    c.rpc(1, Q.Declare(queue="amq.rabbitmq.reply-to", passive=True))
    c.rpc(1, Q.Declare(queue="amq.rabbitmq.reply-to.foo", passive=True))


@scenario
def reply_to_publish_to_bogus_target(s):
    c = c1(s)
    c.publish(1, "", "amq.rabbitmq.reply-to.garbage", b"1", mandatory=True)
    c.sync(1)
    c.wait(0.2)


@scenario
def reply_to_roundtrip(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="a", no_ack=True))
    c.publish(1, "", q, b"req", P(reply_to="amq.rabbitmq.reply-to"))
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))
    c.rpc(1, B.Cancel(consumer_tag="a"))
    c.publish(1, "", q, b"req2", P(reply_to="amq.rabbitmq.reply-to"))
    c.sync(1)


if __name__ == "__main__":
    main(S, sys.argv[1:])
