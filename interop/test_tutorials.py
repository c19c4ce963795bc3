"""RabbitMQ's six pika tutorials, written as the tutorials do it but asserted.

https://www.rabbitmq.com/tutorials (Python / pika): hello world, work queues,
publish/subscribe, routing, topics, RPC. Names are made unique per run.
"""

import uuid

import pika
import pytest

from helpers import WAIT, consume_n, settle, wait_for


# ------------------------------------------------------------ 1. hello world


def test_1_hello_world(connect, unique):
    queue = unique("hello")
    # send.py
    send_conn = connect()
    send_ch = send_conn.channel()
    send_ch.queue_declare(queue=queue, auto_delete=True)
    # receive.py
    recv_conn = connect()
    recv_ch = recv_conn.channel()
    recv_ch.queue_declare(queue=queue, auto_delete=True)
    received = []

    def callback(ch, method, properties, body):
        received.append(body)

    recv_ch.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)
    send_ch.basic_publish(exchange="", routing_key=queue, body="Hello World!")
    send_conn.close()
    wait_for(recv_conn, lambda: received, what="Hello World!")
    assert received == [b"Hello World!"]


# ------------------------------------------------------------ 2. work queues


def test_2_work_queues(connect, unique, cleanup):
    task_queue = cleanup.queue(unique("task_queue"))
    # new_task.py: durable queue, persistent messages
    producer = connect().channel()
    producer.queue_declare(queue=task_queue, durable=True)
    producer.confirm_delivery()
    # worker.py x2: prefetch_count=1 (fair dispatch), manual ack
    conn = connect()
    done = {"w1": [], "w2": []}
    held = {"w1": [], "w2": []}

    def worker(name, hold):
        ch = conn.channel()
        ch.queue_declare(queue=task_queue, durable=True)
        ch.basic_qos(prefetch_count=1)

        def callback(ch, method, properties, body):
            assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
            if hold and not held[name]:
                held[name].append((ch, method))  # "long" task: ack later
                return
            done[name].append(body)
            ch.basic_ack(delivery_tag=method.delivery_tag)

        ch.basic_consume(queue=task_queue, on_message_callback=callback)
        return ch

    worker("w1", hold=True)
    worker("w2", hold=False)
    tasks = [f"task {i}{'.' * (i % 3)}".encode() for i in range(10)]
    for body in tasks:
        producer.basic_publish(
            exchange="", routing_key=task_queue, body=body,
            properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
    # while w1 is busy with its first task (unacked), w2 gets every other task
    wait_for(conn, lambda: len(held["w1"]) == 1 and len(done["w2"]) == 9,
             what="fair dispatch to the idle worker")
    assert done["w1"] == []
    ch, method = held["w1"][0]
    ch.basic_ack(delivery_tag=method.delivery_tag)
    settle(conn, 0.05)
    assert producer.queue_declare(task_queue, passive=True).method.message_count == 0


# ------------------------------------------------------------ 3. publish/subscribe


def test_3_publish_subscribe(connect, unique):
    logs = unique("logs")
    emit = connect().channel()
    emit.exchange_declare(exchange=logs, exchange_type="fanout", auto_delete=True)
    subscribers = []
    for _ in range(2):
        conn = connect()
        ch = conn.channel()
        ch.exchange_declare(exchange=logs, exchange_type="fanout", auto_delete=True)
        result = ch.queue_declare(queue="", exclusive=True)
        queue_name = result.method.queue
        assert queue_name.startswith("amq.gen-")
        ch.queue_bind(exchange=logs, queue=queue_name)
        subscribers.append((conn, ch, queue_name))
    emit.confirm_delivery()
    emit.basic_publish(exchange=logs, routing_key="", body="info: Hello World!")
    for conn, ch, queue_name in subscribers:
        [(_, _, body)] = consume_n(conn, ch, queue_name, 1)
        assert body == b"info: Hello World!"


# ------------------------------------------------------------ 4. routing


def test_4_routing(connect, unique):
    direct_logs = unique("direct_logs")
    emit = connect().channel()
    emit.exchange_declare(exchange=direct_logs, exchange_type="direct", auto_delete=True)
    conn = connect()
    ch = conn.channel()
    subscriptions = {"errors-only": ["error"], "everything": ["info", "warning", "error"]}
    queues = {}
    for name, severities in subscriptions.items():
        queue_name = ch.queue_declare(queue="", exclusive=True).method.queue
        for severity in severities:
            ch.queue_bind(exchange=direct_logs, queue=queue_name, routing_key=severity)
        queues[name] = queue_name
    emit.confirm_delivery()
    messages = [("info", "Run. Run. Or it will explode."), ("warning", "Careful"),
                ("error", "Run. Run. Or it will explode."), ("debug", "nobody listens")]
    for severity, message in messages:
        emit.basic_publish(exchange=direct_logs, routing_key=severity, body=message)
    got = consume_n(conn, ch, queues["errors-only"], 1)
    assert [(m.routing_key, b) for m, _, b in got] == [("error", b"Run. Run. Or it will explode.")]
    got = consume_n(conn, ch, queues["everything"], 3)
    assert [m.routing_key for m, _, _ in got] == ["info", "warning", "error"]
    settle(conn, 0.05)
    assert ch.queue_declare(queues["errors-only"], passive=True).method.message_count == 0


# ------------------------------------------------------------ 5. topics


TOPIC_BINDINGS = {"Q1": ["*.orange.*"], "Q2": ["*.*.rabbit", "lazy.#"]}
TOPIC_MESSAGES = {
    "quick.orange.rabbit": {"Q1", "Q2"},
    "lazy.orange.elephant": {"Q1", "Q2"},
    "quick.orange.fox": {"Q1"},
    "lazy.brown.fox": {"Q2"},
    "lazy.pink.rabbit": {"Q2"},  # matches two Q2 bindings, delivered once
    "quick.brown.fox": set(),
    "orange": set(),
    "quick.orange.male.rabbit": set(),
    "lazy.orange.male.rabbit": {"Q2"},
}


def test_5_topics(connect, unique):
    topic_logs = unique("topic_logs")
    emit = connect().channel()
    emit.exchange_declare(exchange=topic_logs, exchange_type="topic", auto_delete=True)
    conn = connect()
    ch = conn.channel()
    queues = {}
    for name, keys in TOPIC_BINDINGS.items():
        queue_name = ch.queue_declare("", exclusive=True).method.queue
        for binding_key in keys:
            ch.queue_bind(exchange=topic_logs, queue=queue_name, routing_key=binding_key)
        queues[name] = queue_name
    emit.confirm_delivery()
    for routing_key in TOPIC_MESSAGES:
        emit.basic_publish(exchange=topic_logs, routing_key=routing_key, body=routing_key)
    for name, queue_name in queues.items():
        expected = [k for k, targets in TOPIC_MESSAGES.items() if name in targets]
        got = consume_n(conn, ch, queue_name, len(expected))
        assert [b.decode() for _, _, b in got] == expected
        settle(conn, 0.02)
        assert ch.queue_declare(queue_name, passive=True).method.message_count == 0


# ------------------------------------------------------------ 6. RPC


def fib(n):
    if n == 0:
        return 0
    if n == 1:
        return 1
    return fib(n - 1) + fib(n - 2)


def start_rpc_server(connect, rpc_queue):
    conn = connect()
    ch = conn.channel()
    ch.queue_declare(queue=rpc_queue, auto_delete=True)

    def on_request(ch, method, props, body):
        n = int(body)
        response = fib(n)
        ch.basic_publish(exchange="", routing_key=props.reply_to,
                         properties=pika.BasicProperties(correlation_id=props.correlation_id),
                         body=str(response))
        ch.basic_ack(delivery_tag=method.delivery_tag)

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(queue=rpc_queue, on_message_callback=on_request)
    return conn


class FibonacciRpcClient:
    def __init__(self, connection, rpc_queue, server_conn, direct_reply_to=False):
        self.connection = connection
        self.server_conn = server_conn
        self.rpc_queue = rpc_queue
        self.channel = connection.channel()
        if direct_reply_to:
            self.callback_queue = "amq.rabbitmq.reply-to"
        else:
            result = self.channel.queue_declare(queue="", exclusive=True)
            self.callback_queue = result.method.queue
        self.channel.basic_consume(queue=self.callback_queue,
                                   on_message_callback=self.on_response, auto_ack=True)
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="", routing_key=self.rpc_queue,
            properties=pika.BasicProperties(reply_to=self.callback_queue,
                                            correlation_id=self.corr_id),
            body=str(n))

        def answered():
            self.server_conn.process_data_events(time_limit=0)
            return self.response is not None

        wait_for(self.connection, answered, WAIT, f"RPC reply for fib({n})")
        return int(self.response)


@pytest.mark.parametrize("direct_reply_to", [False, True], ids=["callback-queue", "direct-reply-to"])
def test_6_rpc(connect, unique, direct_reply_to):
    rpc_queue = unique("rpc_queue")
    server_conn = start_rpc_server(connect, rpc_queue)
    client = FibonacciRpcClient(connect(), rpc_queue, server_conn, direct_reply_to)
    for n, expected in [(0, 0), (1, 1), (10, 55), (20, 6765)]:
        assert client.call(n) == expected
