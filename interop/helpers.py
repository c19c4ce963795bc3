"""Helpers shared by the interop test modules (bounded waits only)."""

from __future__ import annotations

import contextlib
import signal
import time

import pika

# Upper bound for any single wait in a test.
WAIT = 5.0


class Bounded(Exception):
    """Raised by bounded() when its block overruns."""


@contextlib.contextmanager
def bounded(seconds: float):
    """Interrupt the block with Bounded after `seconds` (SIGALRM, main thread).

    pika's blocking calls have no per-call timeout; this guards teardown work
    (closing connections, deleting leftovers) against a broker that never
    answers. pytest-timeout's own SIGALRM timer is saved and restored.
    """
    def on_alarm(signum, frame):
        raise Bounded(f"no answer within {seconds}s")

    old_handler = signal.getsignal(signal.SIGALRM)
    outer_remaining = signal.getitimer(signal.ITIMER_REAL)[0]
    limit = min(seconds, outer_remaining) if outer_remaining > 0 else seconds
    started = time.monotonic()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if outer_remaining > 0:
            left = outer_remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.01))


def close_quietly(connection, seconds: float = 2.0) -> None:
    """Close a pika BlockingConnection; on no answer, drop its socket."""
    if connection is None or not connection.is_open:
        return
    try:
        with bounded(seconds):
            connection.close()
    except Exception:
        impl = getattr(connection, "_impl", None)
        transport = getattr(impl, "_transport", None)
        if transport is not None:
            try:
                transport.abort()
            except Exception:
                pass


def get_message(channel, queue: str, timeout: float = WAIT, auto_ack: bool = False):
    """basic_get polling until a message arrives; returns (method, props, body)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() >= deadline:
            raise AssertionError(f"no message on {queue!r} within {timeout}s")
        channel.connection.process_data_events(time_limit=0.02)


def drain(channel, queue: str, auto_ack: bool = True):
    """All messages currently in queue (basic_get until get-empty)."""
    out = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return out
        out.append((method, props, body))


def wait_for(connection, predicate, timeout: float = WAIT, what: str = "condition"):
    """Process connection events until predicate() is true or timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        connection.process_data_events(time_limit=min(0.05, remaining))


def settle(connection, seconds: float = 0.2):
    """Let the broker deliver anything in flight (used only to prove absence)."""
    connection.process_data_events(time_limit=seconds)


def consume_n(connection, channel, queue: str, n: int, auto_ack: bool = True,
              timeout: float = WAIT, **consume_kwargs):
    """Consume exactly n messages with basic_consume; returns list of (method, props, body)."""
    got = []

    def on_message(ch, method, props, body):
        got.append((method, props, body))

    tag = channel.basic_consume(queue, on_message, auto_ack=auto_ack, **consume_kwargs)
    wait_for(connection, lambda: len(got) >= n, timeout, f"{n} messages from {queue}")
    channel.basic_cancel(tag)
    return got


def declare_queue(channel, name: str = "", **kwargs) -> str:
    """Declare an exclusive queue (unless told otherwise) and return its name."""
    kwargs.setdefault("exclusive", True)
    return channel.queue_declare(name, **kwargs).method.queue


def named_connection(amqp_url: str, label: str, **overrides) -> pika.BlockingConnection:
    """A connection that the management API lists with `label` as its
    `user_provided_name` (the `connection_name` client property)."""
    params = pika.URLParameters(amqp_url)
    params.client_properties = {"connection_name": label}
    for key, value in overrides.items():
        setattr(params, key, value)
    return pika.BlockingConnection(params)
