//! The add-wins set that merges concurrent flag changes (an add survives every remove
//! that did not see it). The flags themselves ([`Flag`], [`FlagSet`], [`FlagChange`])
//! are the mail model's (`pluto-model`), re-exported here under the crate's old names.

use serde::{Deserialize, Serialize};

pub use pluto_model::{Flag, FlagChange, FlagOp, Flags as FlagSet, Keyword};

use crate::ids::{Dot, VersionVector};

/// The add-wins set of one message's flags.
///
/// `visible` is what clients see. Each add that is not yet causally stable keeps its
/// dot in `unstable`; a remove with causal context `deps` drops the dots it has seen
/// and hides the flag only when no dot is left. An add that every replica has seen
/// needs no dot: any remove still to come was issued after it, so it has seen it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FlagState {
    pub(crate) visible: FlagSet,
    unstable: Vec<(Flag, Dot)>,
    /// Mutation hook ([`Mutation::RemoveWinsFlags`](crate::mutations::Mutation)): the
    /// removes applied, so that a concurrent add arriving later loses to them.
    #[cfg(feature = "mutations")]
    #[serde(default)]
    removes: Vec<(Flag, Dot)>,
}

impl FlagState {
    pub(crate) fn new(initial: FlagSet, dot: Dot) -> Self {
        let unstable = initial.iter().map(|f| (f, dot)).collect();
        Self {
            visible: initial,
            unstable,
            #[cfg(feature = "mutations")]
            removes: Vec::new(),
        }
    }

    fn add(&mut self, flag: Flag, dot: Dot) {
        self.visible.insert(flag.clone());
        self.unstable.push((flag, dot));
    }

    fn remove(&mut self, flag: &Flag, deps: &VersionVector) {
        if !self.visible.contains(flag) {
            return;
        }
        self.unstable
            .retain(|(f, d)| f != flag || !deps.contains(*d));
        if !self.unstable.iter().any(|(f, _)| f == flag) {
            self.visible.remove(flag);
        }
    }

    /// Applies one STORE made at `dot` with causal context `deps`.
    pub(crate) fn apply(&mut self, change: &FlagChange, dot: Dot, deps: &VersionVector) {
        #[cfg(feature = "mutations")]
        if crate::mutations::on(crate::mutations::Mutation::RemoveWinsFlags) {
            self.apply_remove_wins(change, dot, deps);
            return;
        }
        let set = &change.flags;
        match change.op {
            FlagOp::Add => set.iter().for_each(|f| self.add(f, dot)),
            FlagOp::Remove => set.iter().for_each(|f| self.remove(&f, deps)),
            FlagOp::Replace => {
                let seen: Vec<Flag> = self.visible.iter().collect();
                for flag in &seen {
                    self.remove(flag, deps);
                }
                set.iter().for_each(|f| self.add(f, dot));
            }
        }
    }

    /// The [`Mutation::RemoveWinsFlags`](crate::mutations::Mutation) rule: a remove
    /// drops every add of the flag, and an add loses to a remove it has not seen.
    #[cfg(feature = "mutations")]
    fn apply_remove_wins(&mut self, change: &FlagChange, dot: Dot, deps: &VersionVector) {
        let set = &change.flags;
        let (removed, added): (Vec<Flag>, Vec<Flag>) = match change.op {
            FlagOp::Add => (Vec::new(), set.iter().collect()),
            FlagOp::Remove => (set.iter().collect(), Vec::new()),
            FlagOp::Replace => (self.visible.iter().collect(), set.iter().collect()),
        };
        for flag in removed {
            self.unstable.retain(|(f, _)| *f != flag);
            self.visible.remove(&flag);
            self.removes.push((flag, dot));
        }
        for flag in added {
            let beaten = self
                .removes
                .iter()
                .any(|(f, d)| *f == flag && !deps.contains(*d) && *d != dot);
            if !beaten {
                self.add(flag, dot);
            }
        }
    }

    /// Forgets the dots every replica has seen.
    pub(crate) fn compact(&mut self, stable: &VersionVector) -> usize {
        let before = self.unstable.len();
        self.unstable.retain(|(_, d)| !stable.contains(*d));
        #[cfg(feature = "mutations")]
        self.removes.retain(|(_, d)| !stable.contains(*d));
        before - self.unstable.len()
    }

    pub(crate) fn unstable_len(&self) -> usize {
        self.unstable.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::ReplicaId;

    fn set(flags: &[Flag]) -> FlagSet {
        flags.iter().cloned().collect()
    }

    #[test]
    fn concurrent_add_survives_remove() {
        let a = Dot::new(ReplicaId(0), 1);
        let b = Dot::new(ReplicaId(1), 1);
        let mut s = FlagState::new(FlagSet::new(), Dot::new(ReplicaId(0), 0));
        s.apply(
            &FlagChange::add(set(&[Flag::Seen])),
            a,
            &VersionVector::new(),
        );
        // A remove that saw only `a`, then an add it did not see.
        let saw_a: VersionVector = [(ReplicaId(0), 1)].into_iter().collect();
        let mut t = s.clone();
        s.apply(
            &FlagChange::add(set(&[Flag::Seen])),
            b,
            &VersionVector::new(),
        );
        s.apply(
            &FlagChange::remove(set(&[Flag::Seen])),
            Dot::new(ReplicaId(0), 2),
            &saw_a,
        );
        // The other order.
        t.apply(
            &FlagChange::remove(set(&[Flag::Seen])),
            Dot::new(ReplicaId(0), 2),
            &saw_a,
        );
        t.apply(
            &FlagChange::add(set(&[Flag::Seen])),
            b,
            &VersionVector::new(),
        );
        assert!(s.visible.contains(&Flag::Seen));
        assert_eq!(s.visible, t.visible);
    }

    #[test]
    fn replace_keeps_unseen_adds() {
        let mut s = FlagState::new(set(&[Flag::Draft]), Dot::new(ReplicaId(0), 1));
        let k = Flag::Keyword(Keyword::new("$Junk").unwrap());
        s.apply(
            &FlagChange::add(set(std::slice::from_ref(&k))),
            Dot::new(ReplicaId(1), 1),
            &VersionVector::new(),
        );
        let saw_first: VersionVector = [(ReplicaId(0), 1)].into_iter().collect();
        s.apply(
            &FlagChange::replace(set(&[Flag::Seen])),
            Dot::new(ReplicaId(0), 2),
            &saw_first,
        );
        assert_eq!(s.visible, set(&[Flag::Seen, k]));
        assert_eq!(
            s.compact(&[(ReplicaId(0), 2), (ReplicaId(1), 1)].into_iter().collect()),
            2
        );
        assert_eq!(s.unstable_len(), 0);
    }
}
