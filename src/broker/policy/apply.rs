//! A vhost's policies in memory, and their application to its queues and exchanges.
//!
//! Lock order: a declaration reads `VHost::policies` while it holds the map shard it
//! inserts into; a change writes them holding nothing else, releases them, then walks the
//! maps (snapshots) and applies the new match to each queue and exchange. A queue declared
//! meanwhile either read the new policies, or was inserted before the walk reached its
//! shard, and so is walked: none misses a change.

use super::{Applied, Policy, PolicyDef, PolicyKind, Target, VHostPolicies, sort};
use crate::broker::deadletter::dead_letter_all;
use crate::broker::effects::Effects;
use crate::broker::vhost::VHost;
use std::sync::Arc;

impl VHost {
    /// The policies that apply to a new queue or exchange named `name`.
    pub(crate) fn policies_for(&self, target: Target, name: &[u8]) -> Applied {
        self.policies.read().unwrap().matching(target, name)
    }

    /// Adds or replaces a policy; returns whether it is new. Applied to every queue and
    /// exchange before returning.
    pub(crate) fn put_policy(self: &Arc<Self>, kind: PolicyKind, policy: Arc<Policy>) -> bool {
        let created = {
            let mut set = self.policies.write().unwrap();
            let list = set.list_mut(kind);
            let before = list.len();
            list.retain(|p| p.name() != policy.name());
            let created = list.len() == before;
            list.push(policy);
            sort(list);
            created
        };
        self.apply_policies();
        created
    }

    /// Removes a policy; false when there was none by that name.
    pub(crate) fn delete_policy(self: &Arc<Self>, kind: PolicyKind, name: &str) -> bool {
        let removed = {
            let mut set = self.policies.write().unwrap();
            let list = set.list_mut(kind);
            let before = list.len();
            list.retain(|p| p.name() != name);
            list.len() != before
        };
        if removed {
            self.apply_policies();
        }
        removed
    }

    /// Replaces every policy at once (start-up) and applies them.
    pub(crate) fn set_policies(self: &Arc<Self>, mut set: VHostPolicies) {
        sort(&mut set.policies);
        sort(&mut set.operator);
        *self.policies.write().unwrap() = set;
        self.apply_policies();
    }

    /// The definitions of one kind of policy, by name.
    pub fn policy_defs(&self, kind: PolicyKind) -> Vec<PolicyDef> {
        let set = self.policies.read().unwrap();
        let mut out: Vec<PolicyDef> = set.list(kind).iter().map(|p| p.def.clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Matches every exchange and queue again and applies the result: what changed takes
    /// effect now (see `Queue::apply_policies`), and what dies of it is dead-lettered.
    pub(crate) fn apply_policies(self: &Arc<Self>) {
        let set = self.policies.read().unwrap().clone();
        for e in self.exchanges() {
            e.set_policies(set.matching(Target::Exchange, e.name.as_bytes()));
        }
        for q in self.queues() {
            let applied = set.matching(Target::Queue(q.args.queue_type), q.name.as_bytes());
            let mut fx = Effects::default();
            q.apply_policies(applied, &mut fx);
            dead_letter_all(self, &mut fx);
            fx.bells.ring();
        }
        // An exchange's alternate-exchange, a queue's dead-letter settings: a discard may
        // route now.
        self.dead_letters.topology_changed();
    }
}
