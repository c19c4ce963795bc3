import sys
from harness import P, main, spec
S = []
def scenario(fn):
    S.append((fn.__name__, fn)); return fn
Q = spec.Queue; E = spec.Exchange; B = spec.Basic

@scenario
def crlf_names(s):
    c = s.conn(); c.open(1)
    q = s.n("qq")
    qn = q[:-1] + "\r\n" + q[-1:]
    c.rpc(1, Q.Declare(queue=qn, exclusive=True))
    c.rpc(1, Q.Declare(queue=qn, passive=True))
    c.rpc(1, Q.Declare(queue=q, passive=True))
    x = s.n("xx"); xn = x[:-1] + "\n" + x[-1:]
    c.rpc(1, E.Declare(exchange=xn, type="fanout"))
    c.rpc(1, E.Declare(exchange=x, passive=True))
    c.rpc(1, Q.Bind(queue=qn, exchange=xn))
    c.publish(1, xn, "", b"via-crlf-exchange")
    c.publish(1, "", qn, b"via-crlf-rk")
    c.sync(1)
    c.rpc(1, B.Get(queue=qn, no_ack=True))
    c.rpc(1, B.Get(queue=qn, no_ack=True))
    c.rpc(1, Q.Purge(queue=qn))
    c.rpc(1, B.Consume(queue=qn, consumer_tag="t"))
    c.rpc(1, Q.Unbind(queue=qn, exchange=xn))
    c.rpc(1, E.Delete(exchange=xn))
    c.rpc(1, Q.Delete(queue=qn))
    c.wait(0.2)

@scenario
def exclusive_durable(s):
    c = s.conn(); c.open(1)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, durable=True))
    c.rpc(1, Q.Declare(queue=q, exclusive=True, durable=False))
    c.rpc(1, Q.Declare(queue=q, exclusive=True, durable=True))
    c.open(2)
    c.rpc(2, Q.Declare(queue=q, exclusive=False, durable=True))
    c.open(3)
    q2 = s.n("q2")
    c.rpc(3, Q.Declare(queue=q2, durable=True))
    c.rpc(3, Q.Declare(queue=q2, durable=True, exclusive=True))

if __name__ == "__main__":
    main(S, sys.argv[1:])
