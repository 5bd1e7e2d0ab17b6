//! Message flags: the visible [`FlagSet`], the [`FlagChange`] a STORE makes, and the
//! add-wins set that merges concurrent changes (an add survives every remove that did
//! not see it).

use serde::{Deserialize, Serialize};

use crate::ids::{Dot, VersionVector};

/// One flag. `\Recent` is session state and is not stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// A keyword atom (`$Forwarded`, `NonJunk`); the caller validates its syntax.
    Keyword(String),
}

impl Flag {
    const SYSTEM: [Flag; 5] = [
        Flag::Seen,
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Draft,
    ];

    fn bit(&self) -> Option<u8> {
        match self {
            Flag::Seen => Some(1),
            Flag::Answered => Some(2),
            Flag::Flagged => Some(4),
            Flag::Deleted => Some(8),
            Flag::Draft => Some(16),
            Flag::Keyword(_) => None,
        }
    }
}

/// A set of flags: system flags as bits, keywords sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlagSet {
    system: u8,
    keywords: Vec<String>,
}

impl FlagSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, flag: &Flag) -> bool {
        match (flag.bit(), flag) {
            (Some(bit), _) => self.system & bit != 0,
            (None, Flag::Keyword(k)) => self.keywords.binary_search(k).is_ok(),
            (None, _) => false,
        }
    }

    /// Adds a flag; true when it was not there.
    pub fn insert(&mut self, flag: Flag) -> bool {
        match (flag.bit(), flag) {
            (Some(bit), _) => {
                let added = self.system & bit == 0;
                self.system |= bit;
                added
            }
            (None, Flag::Keyword(k)) => match self.keywords.binary_search(&k) {
                Ok(_) => false,
                Err(at) => {
                    self.keywords.insert(at, k);
                    true
                }
            },
            (None, _) => false,
        }
    }

    /// Removes a flag; true when it was there.
    pub fn remove(&mut self, flag: &Flag) -> bool {
        match (flag.bit(), flag) {
            (Some(bit), _) => {
                let removed = self.system & bit != 0;
                self.system &= !bit;
                removed
            }
            (None, Flag::Keyword(k)) => match self.keywords.binary_search(k) {
                Ok(at) => {
                    self.keywords.remove(at);
                    true
                }
                Err(_) => false,
            },
            (None, _) => false,
        }
    }

    /// The flags: system flags first in a fixed order, then keywords sorted.
    pub fn iter(&self) -> impl Iterator<Item = Flag> + '_ {
        Flag::SYSTEM
            .into_iter()
            .filter(|f| self.contains(f))
            .chain(self.keywords.iter().cloned().map(Flag::Keyword))
    }

    pub fn is_empty(&self) -> bool {
        self.system == 0 && self.keywords.is_empty()
    }

    pub fn len(&self) -> usize {
        self.system.count_ones() as usize + self.keywords.len()
    }
}

impl FromIterator<Flag> for FlagSet {
    fn from_iter<T: IntoIterator<Item = Flag>>(iter: T) -> Self {
        let mut set = FlagSet::new();
        for flag in iter {
            set.insert(flag);
        }
        set
    }
}

/// What a STORE does to the flags of each message it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagChange {
    Add(FlagSet),
    Remove(FlagSet),
    /// `FLAGS (...)`: removes every flag the STORE saw, then adds these.
    Replace(FlagSet),
}

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
}

impl FlagState {
    pub(crate) fn new(initial: FlagSet, dot: Dot) -> Self {
        let unstable = initial.iter().map(|f| (f, dot)).collect();
        Self {
            visible: initial,
            unstable,
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
        match change {
            FlagChange::Add(set) => set.iter().for_each(|f| self.add(f, dot)),
            FlagChange::Remove(set) => set.iter().for_each(|f| self.remove(&f, deps)),
            FlagChange::Replace(set) => {
                let seen: Vec<Flag> = self.visible.iter().collect();
                for flag in &seen {
                    self.remove(flag, deps);
                }
                set.iter().for_each(|f| self.add(f, dot));
            }
        }
    }

    /// Forgets the dots every replica has seen.
    pub(crate) fn compact(&mut self, stable: &VersionVector) -> usize {
        let before = self.unstable.len();
        self.unstable.retain(|(_, d)| !stable.contains(*d));
        before - self.unstable.len()
    }

    pub(crate) fn unstable_len(&self) -> usize {
        self.unstable.len()
    }
}

#[cfg(test)]
mod tests {
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
            &FlagChange::Add(set(&[Flag::Seen])),
            a,
            &VersionVector::new(),
        );
        // A remove that saw only `a`, then an add it did not see.
        let saw_a: VersionVector = [(ReplicaId(0), 1)].into_iter().collect();
        let mut t = s.clone();
        s.apply(
            &FlagChange::Add(set(&[Flag::Seen])),
            b,
            &VersionVector::new(),
        );
        s.apply(
            &FlagChange::Remove(set(&[Flag::Seen])),
            Dot::new(ReplicaId(0), 2),
            &saw_a,
        );
        // The other order.
        t.apply(
            &FlagChange::Remove(set(&[Flag::Seen])),
            Dot::new(ReplicaId(0), 2),
            &saw_a,
        );
        t.apply(
            &FlagChange::Add(set(&[Flag::Seen])),
            b,
            &VersionVector::new(),
        );
        assert!(s.visible.contains(&Flag::Seen));
        assert_eq!(s.visible, t.visible);
    }

    #[test]
    fn replace_keeps_unseen_adds() {
        let mut s = FlagState::new(set(&[Flag::Draft]), Dot::new(ReplicaId(0), 1));
        let k = Flag::Keyword("$Junk".into());
        s.apply(
            &FlagChange::Add(set(std::slice::from_ref(&k))),
            Dot::new(ReplicaId(1), 1),
            &VersionVector::new(),
        );
        let saw_first: VersionVector = [(ReplicaId(0), 1)].into_iter().collect();
        s.apply(
            &FlagChange::Replace(set(&[Flag::Seen])),
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
