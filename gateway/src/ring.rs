//! Consistent hashing: which worker owns a user.
//!
//! Each worker is placed on a 64-bit ring at `VNODES × weight` points; a user belongs to
//! the first point at or after the hash of its name. The hash is SipHash-1-3 with fixed
//! keys over the UTF-8 bytes, so every gateway, on every platform and in every release,
//! maps a user to the same worker (a fixed-vector test pins it). Adding a worker moves
//! only the users whose arc it takes, about `1 / workers` of them.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Points per unit of weight: enough that 3 equal workers get within a few percent of
/// a third each.
pub const VNODES: u32 = 256;

const KEY0: u64 = 0x706c_7574_6f2d_7269; // "pluto-ri"
const KEY1: u64 = 0x6e67_2d76_3100_0000; // "ng-v1"

/// The ring's hash. Never change it: that would move every user.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(KEY0, KEY1);
    h.write(bytes);
    h.finish()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingNode {
    pub name: String,
    pub weight: u32,
}

#[derive(Clone, Debug)]
pub struct Ring {
    nodes: Vec<RingNode>,
    /// (point, index into `nodes`), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub fn new(nodes: Vec<RingNode>) -> Ring {
        let mut points = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for v in 0..VNODES.saturating_mul(node.weight) {
                points.push((hash(format!("{}#{v}", node.name).as_bytes()), i));
            }
        }
        // Ties (vanishingly rare) break by node name, so the order is total and stable.
        points.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| nodes[a.1].name.cmp(&nodes[b.1].name))
        });
        Ring { nodes, points }
    }

    pub fn nodes(&self) -> &[RingNode] {
        &self.nodes
    }

    /// The worker that owns `user`, or `None` on an empty ring.
    pub fn owner(&self, user: &str) -> Option<&str> {
        self.successors(user, 1).into_iter().next()
    }

    /// Up to `n` distinct workers in ring order from `user`'s point: the owner first.
    pub fn successors(&self, user: &str, n: usize) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if self.points.is_empty() {
            return out;
        }
        let h = hash(user.as_bytes());
        let start = self.points.partition_point(|p| p.0 < h);
        for k in 0..self.points.len() {
            let (_, i) = self.points[(start + k) % self.points.len()];
            let name = self.nodes[i].name.as_str();
            if !out.contains(&name) {
                out.push(name);
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }

    /// Each worker's share of the ring (fractions summing to 1).
    pub fn shares(&self) -> Vec<(String, f64)> {
        let mut owned = vec![0u128; self.nodes.len()];
        let len = self.points.len();
        for k in 0..len {
            let (point, i) = self.points[k];
            let prev = if k == 0 {
                self.points[len - 1].0
            } else {
                self.points[k - 1].0
            };
            owned[i] += u128::from(point.wrapping_sub(prev));
        }
        let total = u128::from(u64::MAX) + 1;
        self.nodes
            .iter()
            .zip(owned)
            .map(|(n, o)| (n.name.clone(), o as f64 / total as f64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ring(names: &[&str]) -> Ring {
        Ring::new(
            names
                .iter()
                .map(|n| RingNode {
                    name: (*n).to_owned(),
                    weight: 1,
                })
                .collect(),
        )
    }

    fn users() -> Vec<String> {
        (0..10_000)
            .map(|i| format!("user{i}@example.com"))
            .collect()
    }

    #[test]
    fn three_equal_workers_share_ten_thousand_users_evenly() {
        let r = ring(&["worker1", "worker2", "worker3"]);
        let mut count: HashMap<&str, usize> = HashMap::new();
        let users = users();
        for u in &users {
            *count.entry(r.owner(u).unwrap_or("none")).or_default() += 1;
        }
        for (node, n) in &count {
            let share = *n as f64 / users.len() as f64;
            assert!(
                (share - 1.0 / 3.0).abs() <= 0.1 / 3.0,
                "{node} owns {n} of 10,000"
            );
        }
        assert_eq!(count.len(), 3);
    }

    #[test]
    fn a_fourth_worker_takes_about_a_quarter_and_moves_no_one_else() {
        let before = ring(&["worker1", "worker2", "worker3"]);
        let after = ring(&["worker1", "worker2", "worker3", "worker4"]);
        let users = users();
        let mut moved = 0;
        for u in &users {
            let (a, b) = (before.owner(u), after.owner(u));
            if a != b {
                assert_eq!(b, Some("worker4"), "{u} moved between old workers");
                moved += 1;
            }
        }
        let share = moved as f64 / users.len() as f64;
        assert!((0.2..=0.3).contains(&share), "{moved} of 10,000 moved");
    }

    #[test]
    fn weights_scale_the_share() {
        let r = Ring::new(vec![
            RingNode {
                name: "big".into(),
                weight: 2,
            },
            RingNode {
                name: "small".into(),
                weight: 1,
            },
        ]);
        let shares: HashMap<String, f64> = r.shares().into_iter().collect();
        assert!((shares["big"] - 2.0 / 3.0).abs() < 0.05, "{shares:?}");
        let sum: f64 = shares.values().sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }

    /// The mapping must never change across processes and releases: these values were
    /// computed once and are pinned here.
    #[test]
    fn fixed_vectors() {
        assert_eq!(hash(b"alice"), FIXED_ALICE);
        let r = ring(&["worker1", "worker2", "worker3"]);
        let got: Vec<&str> = ["alice", "bob", "carol@example.com", "dave", "Ærø"]
            .iter()
            .map(|u| r.owner(u).unwrap_or("none"))
            .collect();
        assert_eq!(got, FIXED_OWNERS);
    }

    const FIXED_ALICE: u64 = 1_404_461_355_998_817_044;
    const FIXED_OWNERS: [&str; 5] = ["worker3", "worker1", "worker3", "worker2", "worker2"];

    #[test]
    fn successors_are_distinct_and_start_with_the_owner() {
        let r = ring(&["a", "b", "c"]);
        let s = r.successors("someone", 3);
        assert_eq!(s.len(), 3);
        assert_eq!(Some(s[0]), r.owner("someone"));
        assert!(Ring::new(Vec::new()).owner("x").is_none());
    }
}
