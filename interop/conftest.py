"""Shared fixtures for the Warren interop suite.

The broker under test is taken from $AMQP_URL
(default amqp://guest:guest@127.0.0.1:5672/). Every name a test declares comes
from the `unique` fixture so runs never collide and can be repeated; tests
use exclusive / auto-delete entities or names from `unique`, which are all
deleted at teardown (see Janitor).
"""

from __future__ import annotations

import os
import sys
import uuid

import pika
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from amqp_raw import RawConnection  # noqa: E402
from helpers import WAIT, bounded, close_quietly  # noqa: E402

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _params(url: str, **overrides) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = WAIT
    params.blocked_connection_timeout = WAIT
    params.stack_timeout = WAIT * 2
    for key, value in overrides.items():
        setattr(params, key, value)
    return params


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return os.environ.get("AMQP_URL", DEFAULT_URL)


@pytest.fixture
def make_params(amqp_url):
    """Build pika connection parameters for the broker under test."""

    def make(**overrides) -> pika.URLParameters:
        return _params(amqp_url, **overrides)

    return make


@pytest.fixture
def connect(make_params):
    """Factory opening extra BlockingConnections, all closed at teardown."""
    opened: list[pika.BlockingConnection] = []

    def _connect(**overrides) -> pika.BlockingConnection:
        conn = pika.BlockingConnection(make_params(**overrides))
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        close_quietly(conn)


@pytest.fixture
def connection(connect) -> pika.BlockingConnection:
    return connect()


@pytest.fixture
def channel(connection):
    return connection.channel()


@pytest.fixture
def raw(amqp_url):
    """Factory for raw protocol connections (see amqp_raw.py), closed at teardown."""
    opened: list[RawConnection] = []

    def _raw() -> RawConnection:
        conn = RawConnection(amqp_url, timeout=WAIT)
        opened.append(conn)
        return conn

    yield _raw
    for conn in opened:
        conn.close()


class Janitor:
    """One long-lived connection (heartbeats off) that deletes test leftovers.

    Reconnects when a previous failure left it closed; every use is bounded."""

    def __init__(self, url: str):
        self.url = url
        self.conn = None
        self.ch = None

    def delete(self, queues, exchanges) -> None:
        try:
            with bounded(WAIT):
                if self.conn is None or not self.conn.is_open:
                    self.conn = pika.BlockingConnection(_params(self.url, heartbeat=0))
                    self.ch = None
                for kind, items in (("queue", queues), ("exchange", exchanges)):
                    for name in items:
                        if self.ch is None or not self.ch.is_open:
                            self.ch = self.conn.channel()
                        try:
                            if kind == "queue":
                                self.ch.queue_delete(name)
                            else:
                                self.ch.exchange_delete(name)
                        except (pika.exceptions.ChannelClosedByBroker,
                                pika.exceptions.ChannelWrongStateError):
                            pass
        except Exception:
            close_quietly(self.conn)
            self.conn = None

    def close(self) -> None:
        close_quietly(self.conn)


@pytest.fixture(scope="session")
def janitor(amqp_url):
    j = Janitor(amqp_url)
    yield j
    j.close()


@pytest.fixture
def unique(request, janitor):
    """unique('q') -> 'interop-<test>-q-<uuid>' names that never collide.

    Every name handed out is also deleted (as a queue and as an exchange) at
    teardown by the session's Janitor connection, so a test that fails half-way leaves
    nothing behind. Deleting something that does not exist is a no-op in
    RabbitMQ; any error here is ignored.
    """
    test = request.node.name.split("[")[0][:40]
    names: list[str] = []

    def _unique(kind: str = "x") -> str:
        name = f"interop-{test}-{kind}-{uuid.uuid4().hex[:12]}"
        names.append(name)
        return name

    yield _unique
    if names:
        janitor.delete(names, names)


@pytest.fixture
def cleanup(janitor):
    """Register extra exchanges/queues to delete at teardown (via the Janitor),
    for entities a test must not leave behind even when it fails."""
    exchanges: list[str] = []
    queues: list[str] = []

    class Cleanup:
        def exchange(self, name: str) -> str:
            exchanges.append(name)
            return name

        def queue(self, name: str) -> str:
            queues.append(name)
            return name

    yield Cleanup()
    if exchanges or queues:
        janitor.delete(queues, exchanges)
