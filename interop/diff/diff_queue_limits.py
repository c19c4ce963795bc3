import sys
import time
from harness import P, main, spec
S = []
def scenario(fn):
    S.append((fn.__name__, fn)); return fn
Q = spec.Queue; E = spec.Exchange; B = spec.Basic; CF = spec.Confirm; TX = spec.Tx

def c1(s):
    c = s.conn(); c.open(1); return c

@scenario
def sac_counts_and_order(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-single-active-consumer": True}))
    for i in range(3):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Qos(prefetch_count=1))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.wait(0.2)
    c.rpc(1, B.Consume(queue=q, consumer_tag="b"))
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-single-active-consumer": True}))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="ex", exclusive=True))
    c.rpc(1, B.Cancel(consumer_tag="a"))
    c.wait(0.3)
    c.send(1, B.Ack(delivery_tag=1))
    c.wait(0.3)
    c.rpc(1, Q.Declare(queue=q, passive=True))

@scenario
def priority_queue_requeue_order(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-max-priority": 5}))
    for i, p in enumerate([1, 5, 3, 9, 0, None]):
        c.publish(1, "", q, b"%d" % i, P(priority=p))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    for _ in range(3):
        c.rpc(1, B.Get(queue=q))
    c.send(1, B.Nack(delivery_tag=0, multiple=True, requeue=True))
    c.sync(1)
    for _ in range(7):
        c.rpc(1, B.Get(queue=q, no_ack=True))

@scenario
def priority_maxlen(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-max-priority": 5, "x-max-length": 2}))
    for i, p in enumerate([5, 1, 3, 0]):
        c.publish(1, "", q, b"%d" % i, P(priority=p))
    c.sync(1)
    for _ in range(3):
        c.rpc(1, B.Get(queue=q, no_ack=True))

@scenario
def maxlen_bytes_and_overflow_reject(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-max-length-bytes": 5, "x-overflow": "reject-publish"}))
    c.rpc(1, CF.Select())
    c.publish(1, "", q, b"123")
    c.publish(1, "", q, b"45")
    c.publish(1, "", q, b"6")
    c.publish(1, "", q, b"")
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, passive=True))

@scenario
def maxlen_with_unacked(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-max-length": 2}))
    for i in range(2):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.publish(1, "", q, b"2")
    c.publish(1, "", q, b"3")
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.send(1, B.Reject(delivery_tag=1, requeue=True))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    for _ in range(4):
        c.rpc(1, B.Get(queue=q, no_ack=True))

@scenario
def mandatory_to_reject_publish_queue(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}))
    c.publish(1, "", q, b"1", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, CF.Select())
    c.publish(1, "", q, b"2", mandatory=True)
    c.sync(1)
    c.wait(0.2)

@scenario
def mandatory_ae_and_e2e(s):
    c = c1(s)
    x, x2, ae = s.n("x"), s.n("x2"), s.n("ae")
    c.rpc(1, E.Declare(exchange=ae, type="fanout"))
    c.rpc(1, E.Declare(exchange=x, type="direct", arguments={"alternate-exchange": ae}))
    c.rpc(1, E.Declare(exchange=x2, type="fanout"))
    c.rpc(1, E.Bind(destination=x2, source=x, routing_key="k"))
    c.publish(1, x, "k", b"to-e2e-without-queue", mandatory=True)
    c.publish(1, x, "j", b"to-ae-without-queue", mandatory=True)
    c.sync(1)
    c.wait(0.2)

@scenario
def ttl_zero_and_expired_unacked(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-message-ttl": 200}))
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    time.sleep(0.4)
    c.send(1, B.Reject(delivery_tag=1, requeue=True))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, B.Get(queue=q, no_ack=True))
    c.publish(1, "", q, b"2", P(expiration="0"))
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))

@scenario
def nowait_errors(s):
    c = c1(s)
    c.rpc(1, Q.Declare(queue=s.n("q"), nowait=True, arguments={"x-max-length": -1}))
    c.open(2)
    c.rpc(2, E.Declare(exchange=s.n("x"), type="direct", nowait=True, arguments={"alternate-exchange": 1}))
    c.open(3)
    c.rpc(3, Q.Bind(queue=s.n("missing"), exchange="amq.direct", nowait=True))
    c.open(4)
    c.rpc(4, Q.Delete(queue="amq.foo", nowait=True))
    c.open(5)
    c.rpc(5, E.Delete(exchange="amq.direct", nowait=True))
    c.open(6)
    c.rpc(6, B.Consume(queue=s.n("missing"), nowait=True))

@scenario
def consumer_count_in_declare(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", no_ack=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="b"))
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Purge(queue=q))
    c.rpc(1, Q.Delete(queue=q, if_unused=True))

@scenario
def channel_close_then_reopen_same_number(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.open(1)
    c.send(1, B.Ack(delivery_tag=1))
    c.sync(1)
    c.open(2)
    c.rpc(2, B.Get(queue=q))

@scenario
def headers_exchange_unbind_and_x_args(s):
    c = c1(s)
    q = s.n("q")
    x = s.n("hx")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, E.Declare(exchange=x, type="headers"))
    c.rpc(1, Q.Bind(queue=q, exchange=x, routing_key="a", arguments={"x-match": "any", "k": "v"}))
    c.rpc(1, Q.Bind(queue=q, exchange=x, routing_key="b", arguments={"x-match": "any", "k": "v"}))
    c.publish(1, x, "", b"1", P(headers={"k": "v"}))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, Q.Unbind(queue=q, exchange=x, routing_key="a", arguments={"x-match": "any", "k": "v"}))
    c.publish(1, x, "", b"2", P(headers={"k": "v"}))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, Q.Unbind(queue=q, exchange=x, routing_key="b", arguments={"k": "v", "x-match": "any"}))
    c.publish(1, x, "", b"3", P(headers={"k": "v"}))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))

@scenario
def topic_binding_weird_keys(s):
    c = c1(s)
    x = s.n("tx")
    c.rpc(1, E.Declare(exchange=x, type="topic"))
    pats = ["a.*.#.b", "#.#.a", "*.#.*.a", "a.#.#", "*.*.#.*"]
    keys = ["a.b", "a.x.b", "a.x.y.b", "x.a", "a", "b.a", "x.y.a", "a.b.c", "x.y.z"]
    qs = []
    for i, p in enumerate(pats):
        q = s.n(f"q{i}")
        c.rpc(1, Q.Declare(queue=q, exclusive=True))
        c.rpc(1, Q.Bind(queue=q, exchange=x, routing_key=p))
        qs.append(q)
    for k in keys:
        c.publish(1, x, k, k.encode())
    c.sync(1)
    for q in qs:
        for _ in range(10):
            m = c.rpc(1, B.Get(queue=q, no_ack=True))
            if isinstance(m, B.GetEmpty):
                break

@scenario
def exclusive_consume_then_second_consumer_other_channel(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="b", exclusive=True))
    c.open(3)
    c.rpc(3, B.Consume(queue=q, consumer_tag="a"))
    c.open(4)
    c.rpc(4, B.Cancel(consumer_tag="a"))

@scenario
def autodelete_queue_delete_via_get_consume_cancel_other_channel(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, auto_delete=True))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, Q.Delete(queue=q, if_unused=True))
    c.open(3)
    c.rpc(3, B.Cancel(consumer_tag="a"))
    c.rpc(2, B.Cancel(consumer_tag="a"))
    c.wait(0.2)
    c.open(4)
    c.rpc(4, Q.Declare(queue=q, passive=True))

if __name__ == "__main__":
    main(S, sys.argv[1:])
