//! Transactions: tx.select, commit and rollback of publishes and acknowledgements.

mod common;

use common::{TestBroker, body, expect_code, unique, within};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};

struct Fixture {
    conn: Connection,
    tx: Channel,
    other: Channel,
    queue: String,
}

impl Fixture {
    async fn new(broker: &TestBroker) -> Fixture {
        let conn = broker.connect().await;
        let tx = conn.create_channel().await.unwrap();
        let other = conn.create_channel().await.unwrap();
        let queue = format!("tx-{}", unique());
        other
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        tx.tx_select().await.unwrap();
        Fixture {
            conn,
            tx,
            other,
            queue,
        }
    }

    async fn publish(&self, ch: &Channel, text: &str) {
        ch.basic_publish(
            "".into(),
            self.queue.as_str().into(),
            BasicPublishOptions::default(),
            text.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }

    /// Publishes outside any transaction and waits until the queue has it.
    async fn seed(&self, text: &str) {
        let ch = self.conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        self.publish(&ch, text).await;
        assert!(
            within("confirm", ch.wait_for_confirms())
                .await
                .unwrap()
                .is_empty()
        );
        ch.close(200, "OK".into()).await.unwrap();
    }

    async fn get(&self, ch: &Channel, no_ack: bool) -> Option<lapin::message::BasicGetMessage> {
        within(
            "basic.get",
            ch.basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack }),
        )
        .await
        .unwrap()
    }

    /// Everything ready in the queue, read (and removed) from the non-tx channel.
    async fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = self.get(&self.other, true).await {
            out.push(body(&m.delivery));
        }
        out
    }

    async fn cleanup(self) {
        self.other
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        self.conn.close(200, "OK".into()).await.unwrap();
    }
}

#[tokio::test]
async fn publishes_are_invisible_until_commit() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    f.publish(&f.tx, "t1").await;
    f.publish(&f.tx, "t2").await;
    // A synchronous round trip on the tx channel: the broker has seen both publishes.
    f.tx.basic_qos(10, Default::default()).await.unwrap();
    assert!(f.drain().await.is_empty(), "nothing visible before commit");

    within("tx.commit-ok", f.tx.tx_commit()).await.unwrap();
    assert_eq!(f.drain().await, ["t1", "t2"]);

    // The channel stays transactional: the next batch also waits for a commit.
    f.publish(&f.tx, "t3").await;
    f.tx.basic_qos(10, Default::default()).await.unwrap();
    assert!(f.drain().await.is_empty());
    f.tx.tx_commit().await.unwrap();
    assert_eq!(f.drain().await, ["t3"]);
    f.cleanup().await;
}

#[tokio::test]
async fn rollback_discards_publishes() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    f.publish(&f.tx, "discarded-1").await;
    f.publish(&f.tx, "discarded-2").await;
    within("tx.rollback-ok", f.tx.tx_rollback()).await.unwrap();
    f.tx.tx_commit().await.unwrap(); // nothing left to commit
    assert!(f.drain().await.is_empty());

    f.publish(&f.tx, "kept").await;
    f.tx.tx_commit().await.unwrap();
    assert_eq!(f.drain().await, ["kept"]);
    f.cleanup().await;
}

#[tokio::test]
async fn acks_in_a_transaction_apply_at_commit() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    f.seed("a").await;
    f.seed("b").await;

    let a = f.get(&f.tx, false).await.expect("a");
    let b = f.get(&f.tx, false).await.expect("b");
    assert_eq!(
        (body(&a.delivery), body(&b.delivery)),
        ("a".into(), "b".into())
    );

    // A requeueing nack inside the transaction does nothing until commit.
    b.delivery
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .unwrap();
    a.delivery.ack(BasicAckOptions::default()).await.unwrap();
    f.tx.basic_qos(10, Default::default()).await.unwrap();
    assert!(f.drain().await.is_empty(), "b is not back before commit");

    f.tx.tx_commit().await.unwrap();
    let back = f.get(&f.other, true).await.expect("b requeued at commit");
    assert_eq!(body(&back.delivery), "b");
    assert!(back.delivery.redelivered);

    // The committed ack is final: closing the tx channel requeues nothing.
    f.tx.close(200, "OK".into()).await.unwrap();
    assert!(f.drain().await.is_empty(), "a was acked for good");
    f.cleanup().await;
}

#[tokio::test]
async fn rolled_back_ack_leaves_the_message_unacked() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    f.seed("x").await;
    let x = f.get(&f.tx, false).await.expect("x");
    x.delivery.ack(BasicAckOptions::default()).await.unwrap();
    f.tx.tx_rollback().await.unwrap();
    f.tx.tx_commit().await.unwrap();

    // Still unacked on the tx channel, so closing it requeues the message.
    assert!(f.drain().await.is_empty());
    f.tx.close(200, "OK".into()).await.unwrap();
    let back = f.get(&f.other, true).await.expect("x back after close");
    assert_eq!(body(&back.delivery), "x");
    assert!(back.delivery.redelivered);
    f.cleanup().await;
}

#[tokio::test]
async fn commit_or_rollback_without_select_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;

    let ch = conn.create_channel().await.unwrap();
    let text = expect_code(ch.tx_commit().await, 406);
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
    assert!(!ch.status().connected());

    let ch = conn.create_channel().await.unwrap();
    let text = expect_code(ch.tx_rollback().await, 406);
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");

    assert!(conn.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn tx_select_on_a_confirm_channel_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let text = expect_code(ch.tx_select().await, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    );
    assert!(conn.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn closing_a_channel_discards_its_uncommitted_work() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    f.publish(&f.tx, "never").await;
    f.tx.close(200, "OK".into()).await.unwrap();
    assert!(f.drain().await.is_empty());
    f.cleanup().await;
}
