//! Single active consumer groups of streams: RabbitMQ's `rabbit_stream_sac_coordinator`
//! (3.11 to 4.0, the `_v4` module), for one node and without its Raft log.
//!
//! A group is (vhost, stream, name); this coordinator lives in its vhost, so it is keyed
//! by (stream, name). Members are (connection, subscription id) in subscription order.
//! What the coordinator decides reaches a member's connection as an [`Update`] on the
//! [`Mailbox`] it registered with; the connection tells its client (the stream protocol's
//! ConsumerUpdate) and, when the client has answered, starts or stops reading.
//!
//! Two kinds of group, as RabbitMQ's:
//!
//! - **A plain stream** (partition index -1): the first member is active; the others wait.
//!   When the active one leaves, the first remaining one becomes active.
//! - **A super stream partition** (index ≥ 0): the active member is the one at
//!   `index mod members`, so that the partitions of one super stream spread their active
//!   consumers over the group's members. On a change the active member is first told to
//!   step down (`active: false, stepping_down: true`); only when its connection has
//!   answered (or is gone) does it call [`Coordinator::activate`], which makes the new
//!   one active. No two members of a group ever read at once.
//!
//! Invariants: at most one member of a group is active; a group with no member is
//! removed. The mutex is a leaf: updates are sent on unbounded channels while it is held
//! (a non-blocking push), which keeps each mailbox's updates in decision order.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedSender;

/// A group in a vhost: the stream and the consumer name (the `name` subscription
/// property).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub stream: String,
    pub name: String,
}

/// What the coordinator tells a member's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub group: GroupId,
    pub subscription: u8,
    pub active: bool,
    /// An active member told to become inactive because another should take over: once
    /// its client has answered, the connection calls [`Coordinator::activate`].
    pub stepping_down: bool,
}

/// Where a connection receives its members' updates.
pub type Mailbox = UnboundedSender<Update>;

#[derive(Debug)]
struct Member {
    connection: u64,
    subscription: u8,
    active: bool,
    mailbox: Mailbox,
}

#[derive(Debug)]
struct Group {
    /// -1 for a plain stream, else the stream's index in its super stream.
    partition_index: i64,
    members: Vec<Member>,
}

impl Group {
    fn active(&self) -> Option<usize> {
        self.members.iter().position(|m| m.active)
    }

    /// The member that should be active (the group is not empty).
    fn evaluate(&self) -> usize {
        if self.partition_index < 0 {
            0
        } else {
            (self.partition_index as usize) % self.members.len()
        }
    }

    fn tell(&self, id: &GroupId, i: usize, stepping_down: bool) {
        let m = &self.members[i];
        // A closed mailbox is a connection that is going away: it unregisters itself.
        let _ = m.mailbox.send(Update {
            group: id.clone(),
            subscription: m.subscription,
            active: m.active,
            stepping_down,
        });
    }

    /// Makes member `i` active and tells it.
    fn activate(&mut self, id: &GroupId, i: usize) {
        self.members[i].active = true;
        self.tell(id, i, false);
    }

    /// Tells the active member `i` to step down.
    fn step_down(&mut self, id: &GroupId, i: usize) {
        self.members[i].active = false;
        self.tell(id, i, true);
    }

    /// After members left (`active_removed`: the active one among them):
    /// `handle_consumer_removal`.
    fn after_removal(&mut self, id: &GroupId, active_removed: bool) {
        if self.members.is_empty() {
            return;
        }
        if self.partition_index < 0 {
            if active_removed {
                for m in &mut self.members {
                    m.active = false;
                }
                self.activate(id, 0);
            }
            return;
        }
        match self.active() {
            Some(current) if current != self.evaluate() => self.step_down(id, current),
            Some(_) => {}
            None if active_removed => {
                let next = self.evaluate();
                self.activate(id, next);
            }
            // Waiting for a member stepping down to answer.
            None => {}
        }
    }
}

/// A vhost's single active consumer groups.
#[derive(Debug, Default)]
pub struct Coordinator {
    groups: Mutex<HashMap<GroupId, Group>>,
}

/// One member of a group, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub connection: u64,
    pub subscription: u8,
    pub active: bool,
}

impl Coordinator {
    /// Adds subscription `subscription` of `connection` to group `id` (created with
    /// `partition_index` if new) and answers whether it is active now. An active newcomer
    /// is also sent its update (after the caller's subscribe response, since the caller
    /// reads its mailbox later); a newcomer that changes which member should be active
    /// makes the current one step down.
    pub fn register(
        &self,
        id: &GroupId,
        partition_index: i64,
        connection: u64,
        subscription: u8,
        mailbox: &Mailbox,
    ) -> bool {
        let mut groups = self.groups.lock().unwrap();
        let g = groups.entry(id.clone()).or_insert_with(|| Group {
            partition_index,
            members: Vec::new(),
        });
        let first = g.members.is_empty();
        let active = if partition_index < 0 {
            g.active().is_none()
        } else {
            first
        };
        g.members.push(Member {
            connection,
            subscription,
            active: false,
            mailbox: mailbox.clone(),
        });
        let me = g.members.len() - 1;
        if active {
            g.activate(id, me);
        } else if partition_index >= 0
            && let Some(current) = g.active()
            && current != g.evaluate()
        {
            g.step_down(id, current);
        }
        active
    }

    /// Removes a member (unsubscribe, stream gone, connection closed); the group moves
    /// on as [`Group::after_removal`] says. Unknown members are ignored.
    pub fn unregister(&self, id: &GroupId, connection: u64, subscription: u8) {
        let mut groups = self.groups.lock().unwrap();
        let Some(g) = groups.get_mut(id) else {
            return;
        };
        let Some(i) = g
            .members
            .iter()
            .position(|m| m.connection == connection && m.subscription == subscription)
        else {
            return;
        };
        let removed = g.members.remove(i);
        g.after_removal(id, removed.active);
        if g.members.is_empty() {
            groups.remove(id);
        }
    }

    /// A member that stepped down has answered (or is gone): the member that should be
    /// active becomes active (`activate_consumer`).
    pub fn activate(&self, id: &GroupId) {
        let mut groups = self.groups.lock().unwrap();
        let Some(g) = groups.get_mut(id) else {
            return;
        };
        if g.members.is_empty() {
            return;
        }
        let next = g.evaluate();
        g.activate(id, next);
    }

    /// The members of group `id` in subscription order (empty when there is no group).
    pub fn members(&self, id: &GroupId) -> Vec<MemberInfo> {
        let groups = self.groups.lock().unwrap();
        groups.get(id).map_or_else(Vec::new, |g| {
            g.members
                .iter()
                .map(|m| MemberInfo {
                    connection: m.connection,
                    subscription: m.subscription,
                    active: m.active,
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    fn gid() -> GroupId {
        GroupId {
            stream: "s".into(),
            name: "g".into(),
        }
    }

    /// (subscription, active, stepping_down) of every update waiting in `rx`.
    fn drain(rx: &mut UnboundedReceiver<Update>) -> Vec<(u8, bool, bool)> {
        let mut v = Vec::new();
        while let Ok(u) = rx.try_recv() {
            v.push((u.subscription, u.active, u.stepping_down));
        }
        v
    }

    #[test]
    fn plain_stream_first_is_active_next_takes_over_in_order() {
        let c = Coordinator::default();
        let (tx, mut rx) = unbounded_channel();
        assert!(c.register(&gid(), -1, 1, 0, &tx));
        assert!(!c.register(&gid(), -1, 1, 1, &tx));
        assert!(!c.register(&gid(), -1, 2, 0, &tx));
        assert_eq!(drain(&mut rx), [(0, true, false)]);
        // An inactive member leaving changes nothing.
        c.unregister(&gid(), 2, 0);
        assert_eq!(drain(&mut rx), []);
        c.unregister(&gid(), 1, 0);
        assert_eq!(drain(&mut rx), [(1, true, false)]);
        c.unregister(&gid(), 1, 1);
        assert!(c.members(&gid()).is_empty());
    }

    /// Partition 1 of a super stream: with one member it is active; a second member
    /// takes over (1 mod 2 = 1) after the first steps down and answers.
    #[test]
    fn partition_spreads_and_steps_down_before_the_next_is_active() {
        let c = Coordinator::default();
        let (a, mut ra) = unbounded_channel();
        let (b, mut rb) = unbounded_channel();
        assert!(c.register(&gid(), 1, 1, 0, &a));
        assert_eq!(drain(&mut ra), [(0, true, false)]);
        assert!(!c.register(&gid(), 1, 2, 0, &b));
        assert_eq!(drain(&mut ra), [(0, false, true)]);
        assert_eq!(drain(&mut rb), []);
        assert!(c.members(&gid()).iter().all(|m| !m.active));
        c.activate(&gid());
        assert_eq!(drain(&mut rb), [(0, true, false)]);
        // The active one leaves: 1 mod 1 = 0, the first takes over at once (nobody to
        // step down).
        c.unregister(&gid(), 2, 0);
        assert_eq!(drain(&mut ra), [(0, true, false)]);
    }

    /// Partition 0: a newcomer does not change the active member (0 mod n = 0).
    #[test]
    fn partition_zero_keeps_its_first_member() {
        let c = Coordinator::default();
        let (a, mut ra) = unbounded_channel();
        assert!(c.register(&gid(), 0, 1, 0, &a));
        assert!(!c.register(&gid(), 0, 2, 0, &a));
        assert!(!c.register(&gid(), 0, 3, 0, &a));
        assert_eq!(drain(&mut ra), [(0, true, false)]);
        // The first leaves: 0 mod 2 = 0, the second becomes active.
        c.unregister(&gid(), 1, 0);
        assert_eq!(drain(&mut ra), [(0, true, false)]);
        let m = c.members(&gid());
        assert_eq!((m[0].connection, m[0].active), (2, true));
    }
}
