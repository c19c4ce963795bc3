import sys
from harness import P, main, spec
S = []
def scenario(fn):
    S.append((fn.__name__, fn)); return fn
Q = spec.Queue; E = spec.Exchange; B = spec.Basic

@scenario
def exclusive_unbind_existing_binding_other_conn(s):
    c = s.conn(); c.open(1)
    q = s.n("exq")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange="amq.direct", routing_key="k"))
    d = s.conn("other"); d.open(1)
    d.rpc(1, Q.Unbind(queue=q, exchange="amq.direct", routing_key="k"))
    d.open(2)
    d.rpc(2, Q.Bind(queue=q, exchange=s.n("missing"), routing_key="k"))
    d.open(3)
    d.rpc(3, Q.Bind(queue=q, exchange="", routing_key="k"))
    d.open(4)
    d.rpc(4, Q.Unbind(queue=q, exchange=s.n("missing"), routing_key="k"))
    c.publish(1, "amq.direct", "k", b"x")
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))

@scenario
def passive_sets_last_queue(s):
    c = s.conn(); c.open(1)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Declare(queue=""))
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, Q.Purge(queue=""))
    c.rpc(1, Q.Declare(queue="", passive=True))

@scenario
def bind_missing_queue_default_exchange(s):
    c = s.conn(); c.open(1)
    c.rpc(1, Q.Bind(queue=s.n("missing"), exchange="", routing_key="k"))
    c.open(2)
    c.rpc(2, E.Bind(destination=s.n("missing"), source="", routing_key="k"))
    c.open(3)
    c.rpc(3, E.Bind(destination="", source=s.n("missing"), routing_key="k"))
    c.open(4)
    c.rpc(4, Q.Unbind(queue=s.n("missing"), exchange="", routing_key="k"))
    c.open(5)
    c.rpc(5, Q.Bind(queue="", exchange="", routing_key="k"))
    c.open(6)
    c.rpc(6, Q.Bind(queue="", exchange=s.n("missing"), routing_key="k"))

@scenario
def empty_rk_unbind(s):
    c = s.conn(); c.open(1)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange="amq.direct", routing_key=q))
    c.rpc(1, Q.Unbind(queue="", exchange="amq.direct", routing_key=""))
    c.publish(1, "amq.direct", q, b"x")
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))
    c.rpc(1, Q.Bind(queue=q, exchange="amq.direct", routing_key=""))
    c.publish(1, "amq.direct", "", b"y")
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def dlx_header_order(s):
    c = s.conn(); c.open(1)
    q, dq = s.n("q"), s.n("dq")
    c.rpc(1, Q.Declare(queue=dq, exclusive=True))
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dq}))
    c.publish(1, "", q, b"1", P(headers={"zz": 1, "a": 2, "x-death2": 3, "CC": [], "m": 4}))
    c.publish(1, "", q, b"2")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.Nack(delivery_tag=0, multiple=True, requeue=False))
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Get(queue=dq, no_ack=True))
    c.rpc(1, B.Get(queue=dq, no_ack=True))


def _dlx_with_headers(h):
    def f(s):
        c = s.conn(); c.open(1)
        q, dq = s.n("q"), s.n("dq")
        c.rpc(1, Q.Declare(queue=dq, exclusive=True))
        c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dq}))
        c.publish(1, "", q, b"1", P(headers=h(s)))
        c.sync(1)
        c.rpc(1, B.Get(queue=q))
        c.send(1, B.Reject(delivery_tag=1, requeue=False))
        c.sync(1)
        c.wait(0.2)
        c.rpc(1, B.Get(queue=dq, no_ack=True))
    return f

for _n, _h in {
    "xdeath-empty-array": lambda s: {"x-death": []},
    "xdeath-other-entry": lambda s: {"x-death": [{"queue": "other", "reason": "expired", "count": 3}], "b": 1},
    "xdeath-match-int-count": lambda s: {"x-death": [{"queue": s.n("q"), "reason": "rejected", "count": 3, "zeta": 1, "alpha": 2}]},
    "xdeath-string": lambda s: {"x-death": "bogus", "a": 1},
    "xdeath-first-preset": lambda s: {"x-first-death-queue": "preset"},
}.items():
    S.append((_n, _dlx_with_headers(_h)))


if __name__ == "__main__":
    main(S, sys.argv[1:])
