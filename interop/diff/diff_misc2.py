"""Round 2: qos variants, immediate, internal exchanges, expiry with consumers, redelivery."""
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
def qos_prefetch_size_nonzero(s):
    c = c1(s)
    c.rpc(1, B.Qos(prefetch_size=1000, prefetch_count=1))


@scenario
def qos_global_then_consume(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Qos(prefetch_count=2, global_qos=True))
    c.rpc(1, B.Qos(prefetch_count=1, global_qos=False))
    for i in range(4):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Consume(queue=q, consumer_tag="b"))
    c.wait(0.3)


@scenario
def publish_immediate(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"x", immediate=True)
    c.sync(1)
    c.wait(0.2)


@scenario
def publish_to_internal_exchange(s):
    c = c1(s)
    x = s.n("x")
    c.rpc(1, E.Declare(exchange=x, type="fanout", internal=True, auto_delete=True))
    c.publish(1, x, "", b"x")
    c.sync(1)


@scenario
def publish_missing_exchange_mandatory(s):
    c = c1(s)
    c.publish(1, s.n("nx"), "k", b"x", mandatory=True)
    c.sync(1)


@scenario
def publish_amq_default_name(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "amq.default", q, b"x", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def expires_with_consumer(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, arguments={"x-expires": 200}))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    time.sleep(0.5)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, B.Cancel(consumer_tag="a"))
    time.sleep(0.6)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def redelivered_flag_after_nack(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.Nack(delivery_tag=1, requeue=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.wait(0.2)
    c.rpc(1, B.Cancel(consumer_tag="a"))
    c.wait(0.1)
    c.rpc(1, B.Get(queue=q))


@scenario
def exclusive_queue_from_other_connection(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    d = s.conn("d")
    d.open(1)
    d.rpc(1, B.Get(queue=q))
    d.open(2)
    d.rpc(2, B.Consume(queue=q, consumer_tag="x"))
    d.open(3)
    d.rpc(3, Q.Purge(queue=q))
    d.open(4)
    d.rpc(4, Q.Bind(queue=q, exchange="amq.direct", routing_key="k"))
    d.open(5)
    d.rpc(5, Q.Delete(queue=q))
    d.open(6)
    d.rpc(6, Q.Declare(queue=q, passive=True))
    d.open(7)
    d.rpc(7, Q.Unbind(queue=q, exchange="amq.direct", routing_key="k"))


@scenario
def consume_nowait_then_cancel_nowait(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.send(1, B.Consume(queue=q, consumer_tag="a", nowait=True))
    c.publish(1, "", q, b"1")
    c.send(1, B.Cancel(consumer_tag="a", nowait=True))
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def tx_select_then_confirm(s):
    c = c1(s)
    c.rpc(1, spec.Tx.Select())
    c.rpc(1, spec.Confirm.Select())
    c.open(2)
    c.rpc(2, spec.Confirm.Select())
    c.rpc(2, spec.Tx.Select())


@scenario
def tx_commit_without_select(s):
    c = c1(s)
    c.rpc(1, spec.Tx.Commit())
    c.open(2)
    c.rpc(2, spec.Tx.Rollback())


@scenario
def access_request(s):
    c = c1(s)
    c.rpc(1, spec.Access.Request(realm="/data"))


@scenario
def exchange_delete_in_use(s):
    c = c1(s)
    x = s.n("x")
    q = s.n("q")
    c.rpc(1, E.Declare(exchange=x, type="direct"))
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange=x, routing_key="k"))
    c.rpc(1, E.Delete(exchange=x, if_unused=True))
    c.open(2)
    c.rpc(2, E.Delete(exchange=s.n("missing")))
    c.rpc(2, E.Delete(exchange="amq.direct"))
    c.open(3)
    c.rpc(3, E.Delete(exchange=""))


@scenario
def queue_delete_missing_and_nowait(s):
    c = c1(s)
    c.rpc(1, Q.Delete(queue=s.n("missing")))
    c.rpc(1, Q.Delete(queue=s.n("missing"), nowait=True))
    c.rpc(1, Q.Purge(queue=s.n("missing")))


if __name__ == "__main__":
    main(S, sys.argv[1:])
