"""Differential harness: run scenarios against two brokers over raw AMQP, diff transcripts.

Each scenario is a function f(S) using the Session S. Every frame received is recorded
(normalised: run-specific names, server-generated names and timestamps replaced).
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pika.frame  # noqa: E402
import pika.spec as spec  # noqa: E402

from amqp_raw import ConnectionDropped, RawConnection  # noqa: E402

P = spec.BasicProperties
SYNC_TIMEOUT = 2.0


def fmt_value(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt_value(v[k])}" for k in v) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, datetime.datetime):
        return "<time>"
    if isinstance(v, bytes):
        return "b" + repr(v.decode("latin-1"))
    return f"{type(v).__name__}:{v!r}"


def fmt_method(m):
    fields = {k: v for k, v in vars(m).items() if not k.startswith("_")}
    inner = ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(fields.items()))
    return f"{m.NAME}({inner})"


def fmt_props(p):
    fields = {k: v for k, v in vars(p).items() if v is not None and not k.startswith("_")}
    return "props(" + ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(fields.items())) + ")"


class Conn:
    def __init__(self, session, label):
        self.s = session
        self.label = label
        self.r = RawConnection(session.url, timeout=SYNC_TIMEOUT)
        self.r.handshake()
        self.dead = False
        self.pending_content = {}

    def log(self, line):
        self.s.log(f"[{self.label}] {line}")

    def _frame(self, frame):
        """Record a frame; auto-answer closes. Returns the method (or None)."""
        if isinstance(frame, pika.frame.Method):
            m = frame.method
            self.log(f"ch{frame.channel_number} <- {fmt_method(m)}")
            if isinstance(m, spec.Channel.Close):
                self.r.send_method(frame.channel_number, spec.Channel.CloseOk())
            elif isinstance(m, spec.Connection.Close):
                self.r.send_method(0, spec.Connection.CloseOk())
                self.dead = True
            return m
        if isinstance(frame, pika.frame.Header):
            self.log(f"ch{frame.channel_number} <- size={frame.body_size} {fmt_props(frame.properties)}")
        elif isinstance(frame, pika.frame.Body):
            self.log(f"ch{frame.channel_number} <- body {frame.fragment!r}")
        return None

    def read_until(self, pred, timeout=SYNC_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.log("(timeout)")
                return None
            try:
                frame = self.r.recv_frame(remaining)
            except TimeoutError:
                self.log("(timeout)")
                return None
            except (ConnectionDropped, OSError):
                self.log("(socket closed)")
                self.dead = True
                return None
            m = self._frame(frame)
            if m is not None and pred(m):
                if isinstance(m, spec.Basic.GetOk):
                    self._read_content(deadline)
                return m

    def _read_content(self, deadline):
        """Record the header and body frames of the content that follows."""
        got, size = 0, None
        while size is None or got < size:
            try:
                frame = self.r.recv_frame(max(deadline - time.monotonic(), 0.01))
            except (TimeoutError, ConnectionDropped, OSError):
                self.log("(content missing)")
                return
            self._frame(frame)
            if isinstance(frame, pika.frame.Header):
                size = frame.body_size
            elif isinstance(frame, pika.frame.Body):
                got += len(frame.fragment)

    def wait(self, seconds=0.3):
        """Record everything arriving within `seconds`."""
        deadline = time.monotonic() + seconds
        while not self.dead:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                frame = self.r.recv_frame(remaining)
            except TimeoutError:
                return
            except (ConnectionDropped, OSError):
                self.log("(socket closed)")
                self.dead = True
                return
            self._frame(frame)

    def send(self, ch, method):
        if self.dead:
            self.log(f"ch{ch} -> {method.NAME} (skipped, connection dead)")
            return
        self.log(f"ch{ch} -> {fmt_method(method)}")
        try:
            self.r.send_method(ch, method)
        except OSError:
            self.dead = True
            self.log("(send failed)")

    def rpc(self, ch, method, timeout=SYNC_TIMEOUT):
        """Send a synchronous method; record frames until its reply or a close."""
        self.send(ch, method)
        if self.dead:
            return None
        if getattr(method, "nowait", False):
            return self.sync(ch)

        def is_reply(m):
            return (m.NAME.endswith("Ok") or isinstance(m, (spec.Basic.GetEmpty, spec.Channel.Close,
                                                              spec.Connection.Close)))
        return self.read_until(is_reply, timeout)

    def sync(self, ch):
        """Round trip on ch (passive declare of amq.direct) to flush what came before."""
        if self.dead:
            return None
        self.r.send_method(ch, spec.Exchange.Declare(exchange="amq.direct", passive=True))
        deadline = time.monotonic() + SYNC_TIMEOUT
        while True:
            try:
                frame = self.r.recv_frame(max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                self.log("(sync timeout)")
                return None
            except (ConnectionDropped, OSError):
                self.log("(socket closed)")
                self.dead = True
                return None
            if (isinstance(frame, pika.frame.Method) and isinstance(frame.method, spec.Exchange.DeclareOk)
                    and frame.channel_number == ch):
                return frame.method
            m = self._frame(frame)
            if isinstance(m, (spec.Channel.Close, spec.Connection.Close)):
                return m

    def open(self, ch):
        return self.rpc(ch, spec.Channel.Open())

    def publish(self, ch, exchange, rk, body=b"m", props=None, mandatory=False, immediate=False):
        if self.dead:
            return
        self.log(f"ch{ch} -> publish {exchange!r} {rk!r} {body!r} {fmt_props(props or P())}"
                 f"{' mandatory' if mandatory else ''}")
        try:
            self.r.send_content(ch, spec.Basic.Publish(exchange=exchange, routing_key=rk,
                                                       mandatory=mandatory, immediate=immediate),
                                body, props or P())
        except OSError:
            self.dead = True

    def close(self):
        if not self.dead:
            self.r.close()
        else:
            try:
                self.r.sock.close()
            except OSError:
                pass


class Session:
    def __init__(self, url, prefix):
        self.url = url
        self.prefix = prefix
        self.lines = []
        self.conns = []

    def log(self, line):
        self.lines.append(line)

    def note(self, text):
        self.lines.append(f"# {text}")

    def conn(self, label=None):
        c = Conn(self, label or f"c{len(self.conns) + 1}")
        self.conns.append(c)
        return c

    def n(self, name):
        return f"{self.prefix}-{name}"

    def finish(self):
        for c in self.conns:
            c.close()


NORMALISERS = [
    (re.compile(r"amq\.gen-[A-Za-z0-9_\-]{22}"), "amq.gen-<gen>"),
    (re.compile(r"amq\.ctag-[A-Za-z0-9_\-]{22}"), "amq.ctag-<gen>"),
]


def normalise(line, prefix):
    line = line.replace(prefix, "<P>")
    for rx, rep in NORMALISERS:
        line = rx.sub(rep, line)
    return line


def run_scenario(url, fn):
    prefix = "dfa" + uuid.uuid4().hex[:8]
    s = Session(url, prefix)
    try:
        fn(s)
    except Exception as e:  # noqa: BLE001
        s.log(f"!! exception {type(e).__name__}: {e}")
        s.log("".join(traceback.format_exc().splitlines(True)[-3:]))
    finally:
        s.finish()
        cleanup(url, prefix, s)
    return [normalise(x, prefix) for x in s.lines]


def cleanup(url, prefix, s):
    """Delete every queue/exchange the scenario named (names all start with prefix)."""
    names = set()
    for line in s.lines:
        names.update(re.findall(re.escape(prefix) + r"-[A-Za-z0-9_.\-]*", line))
    if not names:
        return
    try:
        r = RawConnection(url, timeout=2)
        r.handshake()
        r.open_channel(1)
        ch = 1
        for name in sorted(names):
            for method in (spec.Queue.Delete(queue=name), spec.Exchange.Delete(exchange=name)):
                r.send_method(ch, method)
                _, m = r.recv_method()
                if isinstance(m, spec.Channel.Close):
                    r.send_method(ch, spec.Channel.CloseOk())
                    ch += 1
                    r.open_channel(ch)
        r.close()
    except Exception:  # noqa: BLE001
        pass


def main(scenarios, argv):
    import argparse
    import difflib
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", default="amqp://guest:guest@127.0.0.1:5673/")
    ap.add_argument("--b", default="amqp://guest:guest@127.0.0.1:5672/")
    ap.add_argument("-k", default="")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args(argv)
    ndiff = 0
    for name, fn in scenarios:
        if args.k and args.k not in name:
            continue
        a = run_scenario(args.a, fn)
        b = run_scenario(args.b, fn)
        if a != b:
            ndiff += 1
            print(f"=== DIFF {name}")
            for line in difflib.unified_diff(a, b, "rabbit", "warren", lineterm="", n=2):
                print("   ", line)
        else:
            print(f"ok   {name}")
            if args.v:
                for line in a:
                    print("   ", line)
    print(f"{ndiff} scenario(s) differ")
