//! THREAD and UID THREAD (RFC 5256 4): ORDEREDSUBJECT and REFERENCES. The messages are
//! chosen by the SEARCH code; what threading needs of each — sent date, base subject and
//! whether it is a reply, Message-ID and parent IDs — comes from its header through the
//! header cache ([`Client::per_header`]), never from its body.
//!
//! What one THREAD holds: per matching message a small fixed record, and message IDs
//! and subjects as 64-bit keyed hashes (SipHash with a key drawn per command, so no
//! sender can make two IDs collide on purpose), at most
//! [`MAX_REFERENCES`](pluto_mime::MAX_REFERENCES) parent IDs each. The trees are walked
//! with explicit stacks, so a chain of 100,000 replies costs no call stack; the loop
//! checks of step 1 look at most [`MAX_WALK`] ancestors up (a deeper link is not made,
//! so the part below starts a thread of its own).

use std::collections::HashMap;
use std::hash::Hasher;

use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use siphasher::sip::SipHasher13;

use super::search::Matched;
use super::search_syntax::SearchCommand;
use crate::response::{CmdError, CmdResult, Done};
use crate::session::{Client, Selected};

/// Ancestors a loop check walks up at most before it refuses the link.
pub(crate) const MAX_WALK: usize = 4096;

/// What threading knows of one message. `index` is its position in the mailbox.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) index: usize,
    /// The sent date (RFC 5256 2.2), seconds since the epoch.
    pub(crate) date: i64,
    /// The base subject's hash; `None` for an empty base subject.
    pub(crate) subject: Option<u64>,
    /// Extracting the base subject removed a reply or forward marker.
    pub(crate) reply: bool,
    pub(crate) id: Option<u64>,
    /// Parent IDs, oldest first.
    pub(crate) refs: Vec<u64>,
}

/// One container of the thread tree: a message (an index into the items) or a dummy.
#[derive(Debug, Default, Clone)]
struct Node {
    item: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// A forest: the containers and the roots, in answer order once sorted.
#[derive(Debug, Default)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

/// Hashes strings with a key of its own (one per THREAD command).
pub(crate) struct Keyed(u64, u64);

impl Keyed {
    pub(crate) fn random() -> Self {
        Self(rand::random(), rand::random())
    }

    pub(crate) fn hash(&self, s: &str) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.0, self.1);
        h.write(s.as_bytes());
        h.finish()
    }
}

impl Forest {
    fn push(&mut self, item: Option<usize>) -> usize {
        self.nodes.push(Node {
            item,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    /// Whether `a` is `b` or one of its ancestors (or too far up to tell).
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        // Without children `a` is nobody's ancestor: the common case costs no walk.
        if self.nodes[a].children.is_empty() {
            return a == b;
        }
        let mut at = Some(b);
        for _ in 0..MAX_WALK {
            match at {
                None => return false,
                Some(n) if n == a => return true,
                Some(n) => at = self.nodes[n].parent,
            }
        }
        true
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn is_dummy(&self, n: usize) -> bool {
        self.nodes[n].item.is_none()
    }

    /// The message a node stands for in sorting and grouping: itself, or a dummy's
    /// first child (children sorted first).
    fn first_item(&self, mut n: usize) -> Option<usize> {
        loop {
            match self.nodes[n].item {
                Some(i) => return Some(i),
                None => n = *self.nodes[n].children.first()?,
            }
        }
    }

    /// Sorts `list` by the sent date of what each node stands for, then mailbox order.
    fn sort_by_date(&self, items: &[Item], list: &mut [usize]) {
        list.sort_by_key(|&n| {
            self.first_item(n)
                .map(|i| (items[i].date, items[i].index))
                .unwrap_or((i64::MAX, usize::MAX))
        });
    }

    /// `list` with its dummies replaced by their children, recursively; childless
    /// dummies dropped (RFC 5256 4, step 3, below the root).
    fn expand(&self, list: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack: Vec<usize> = list.iter().rev().copied().collect();
        while let Some(n) = stack.pop() {
            if self.is_dummy(n) {
                stack.extend(self.nodes[n].children.iter().rev());
            } else {
                out.push(n);
            }
        }
        out
    }

    /// Step 3: prunes the dummies. At the root a dummy stays only with two children
    /// or more; everywhere else its children take its place.
    fn prune(&mut self, roots: Vec<usize>) {
        let mut new_roots = Vec::new();
        for r in roots {
            if !self.is_dummy(r) {
                new_roots.push(r);
                continue;
            }
            let kids = self.expand(&self.nodes[r].children.clone());
            match kids.len() {
                0 => {}
                1 => {
                    self.nodes[kids[0]].parent = None;
                    new_roots.push(kids[0]);
                }
                _ => {
                    self.set_children(r, kids);
                    new_roots.push(r);
                }
            }
        }
        // Below the root, top-down: every message's children, expanded.
        let mut work: Vec<usize> = new_roots.clone();
        while let Some(n) = work.pop() {
            let kids = if self.is_dummy(n) {
                self.nodes[n].children.clone()
            } else {
                self.expand(&self.nodes[n].children.clone())
            };
            work.extend(&kids);
            self.set_children(n, kids);
        }
        self.roots = new_roots;
    }

    fn set_children(&mut self, n: usize, kids: Vec<usize>) {
        for &k in &kids {
            self.nodes[k].parent = Some(n);
        }
        self.nodes[n].children = kids;
    }

    /// Step 6: every set of siblings by sent date, the deepest first (a dummy sorts by
    /// its first child, sorted before it); then the roots.
    fn sort_all(&mut self, items: &[Item]) {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = self.roots.clone();
        while let Some(n) = stack.pop() {
            order.push(n);
            stack.extend(&self.nodes[n].children);
        }
        for &n in order.iter().rev() {
            let mut kids = std::mem::take(&mut self.nodes[n].children);
            self.sort_by_date(items, &mut kids);
            self.nodes[n].children = kids;
        }
        let mut roots = std::mem::take(&mut self.roots);
        self.sort_by_date(items, &mut roots);
        self.roots = roots;
    }

    /// The answer's threads, `number(item)` giving each message's number:
    /// `(1 2 (3)(4 5))(6)`.
    pub(crate) fn write(&self, mut number: impl FnMut(usize) -> u32, out: &mut String) {
        enum Step {
            Open(usize),
            Close,
        }
        let mut stack: Vec<Step> = self.roots.iter().rev().map(|&r| Step::Open(r)).collect();
        while let Some(step) = stack.pop() {
            let n = match step {
                Step::Close => {
                    out.push(')');
                    continue;
                }
                Step::Open(n) => n,
            };
            out.push('(');
            let mut at = n;
            if let Some(item) = self.nodes[n].item {
                out.push_str(&number(item).to_string());
                // A line of single replies is written as one list.
                while let [only] = self.nodes[at].children[..] {
                    let Some(item) = self.nodes[only].item else {
                        break;
                    };
                    out.push(' ');
                    out.push_str(&number(item).to_string());
                    at = only;
                }
                if !self.nodes[at].children.is_empty() {
                    out.push(' ');
                }
            }
            stack.push(Step::Close);
            stack.extend(self.nodes[at].children.iter().rev().map(|&c| Step::Open(c)));
        }
    }
}

/// ORDEREDSUBJECT (RFC 5256 4): threads of equal base subjects, each its earliest
/// message with the others as its children, by sent date; threads by their first
/// message's date.
pub(crate) fn ordered_subject(items: &[Item]) -> Forest {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].subject, items[i].date, items[i].index));
    let mut forest = Forest::default();
    let mut current: Option<(Option<u64>, usize)> = None;
    for i in order {
        let node = forest.push(Some(i));
        match current {
            Some((subject, parent)) if subject == items[i].subject => forest.link(parent, node),
            _ => {
                forest.roots.push(node);
                current = Some((items[i].subject, node));
            }
        }
    }
    let mut roots = std::mem::take(&mut forest.roots);
    forest.sort_by_date(items, &mut roots);
    forest.roots = roots;
    forest
}

/// REFERENCES (RFC 5256 4, steps 1 to 6).
pub(crate) fn references(items: &[Item]) -> Forest {
    let mut f = Forest::default();
    let mut by_id: HashMap<u64, usize> = HashMap::new();
    for (k, item) in items.iter().enumerate() {
        // (1A) The message's container: a dummy made for its ID, else a new one; a
        // second message with an ID already taken gets one of its own.
        let me = match item.id.and_then(|id| by_id.get(&id).copied()) {
            Some(n) if f.is_dummy(n) => {
                f.nodes[n].item = Some(k);
                n
            }
            _ => {
                let n = f.push(Some(k));
                if let Some(id) = item.id {
                    by_id.entry(id).or_insert(n);
                }
                n
            }
        };
        // (1B) The references linked in their order, where no link is yet and no
        // loop would come of it.
        let mut prev: Option<usize> = None;
        for id in &item.refs {
            let n = match by_id.get(id) {
                Some(&n) => n,
                None => {
                    let n = f.push(None);
                    by_id.insert(*id, n);
                    n
                }
            };
            if let Some(p) = prev
                && f.nodes[n].parent.is_none()
                && !f.is_ancestor(n, p)
            {
                f.link(p, n);
            }
            prev = Some(n);
        }
        // (1C) The message's parent is its last reference, or none: a parent other
        // messages' References gave it goes, even when the new link would make a loop
        // and is not made either (imaptest's `thread`).
        match prev {
            Some(p) if f.nodes[me].parent == Some(p) => {}
            Some(p) if !f.is_ancestor(me, p) => f.link(p, me),
            _ => f.unlink(me),
        }
    }
    // (2) The root set; (3) dummies pruned; (4) the roots by date.
    let roots: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| f.nodes[n].parent.is_none())
        .collect();
    f.prune(roots);
    let mut roots = std::mem::take(&mut f.roots);
    for &r in &roots {
        if f.is_dummy(r) {
            let mut kids = std::mem::take(&mut f.nodes[r].children);
            f.sort_by_date(items, &mut kids);
            f.nodes[r].children = kids;
        }
    }
    f.sort_by_date(items, &mut roots);
    // (5) Roots of equal base subjects gathered.
    let subject = |f: &Forest, n: usize| f.first_item(n).and_then(|i| items[i].subject);
    let reply = |f: &Forest, n: usize| f.first_item(n).is_some_and(|i| items[i].reply);
    let mut table: HashMap<u64, usize> = HashMap::new();
    for &r in &roots {
        let Some(s) = subject(&f, r) else { continue };
        // The table takes a root when it has none for the subject, or this one is a
        // dummy where the table's is not, or this one is no reply where the table's is.
        let better =
            |t: usize| (f.is_dummy(r) && !f.is_dummy(t)) || (reply(&f, t) && !reply(&f, r));
        if table.get(&s).is_none_or(|&t| better(t)) {
            table.insert(s, r);
        }
    }
    let mut merged: Vec<usize> = Vec::with_capacity(roots.len());
    // Where each table entry sits in `merged`, to replace it by a new dummy.
    let mut slot: HashMap<usize, usize> = HashMap::new();
    let mut later: Vec<usize> = Vec::new();
    for &r in &roots {
        match subject(&f, r).and_then(|s| table.get(&s).map(|&t| (s, t))) {
            Some((_, t)) if t != r => later.push(r),
            _ => {
                slot.insert(r, merged.len());
                merged.push(r);
            }
        }
    }
    for r in later {
        let Some(s) = subject(&f, r) else { continue };
        let Some(&t) = table.get(&s) else { continue };
        let adopt_children = |f: &mut Forest, from: usize, to: usize| {
            for c in std::mem::take(&mut f.nodes[from].children) {
                f.nodes[c].parent = None;
                f.link(to, c);
            }
        };
        if f.is_dummy(r) && f.is_dummy(t) {
            adopt_children(&mut f, r, t);
        } else if f.is_dummy(t) {
            f.link(t, r);
        } else if reply(&f, r) && !reply(&f, t) {
            // A dummy is not written below a message: its children go there instead.
            if f.is_dummy(r) {
                adopt_children(&mut f, r, t);
            } else {
                f.link(t, r);
            }
        } else {
            let d = f.push(None);
            f.link(d, t);
            f.link(d, r);
            if let Some(&at) = slot.get(&t) {
                merged[at] = d;
                slot.insert(d, at);
            }
            table.insert(s, d);
        }
    }
    f.roots = merged;
    // (6) Siblings by date, all the way down.
    f.sort_all(items);
    f
}

impl Client {
    pub(crate) async fn cmd_thread(
        &mut self,
        selected: &mut Selected,
        algorithm: ThreadingAlgorithm<'static>,
        search: SearchCommand,
    ) -> CmdResult {
        let SearchCommand {
            uid,
            charset,
            criteria: program,
            ..
        } = search;
        let by_references = match &algorithm {
            ThreadingAlgorithm::OrderedSubject => false,
            ThreadingAlgorithm::References => true,
            other => {
                return Err(CmdError::bad(format!(
                    "Unknown threading algorithm {other}"
                )));
            }
        };
        let Matched { hits, .. } = self.matching(selected, charset.as_ref(), &program).await?;
        let keyed = Keyed::random();
        let items = self
            .per_header(selected, &hits, |i, msg, header| {
                let (base, reply) = pluto_mime::base_subject(&header.subject());
                Item {
                    index: i,
                    date: super::sort::sent_date(msg, header),
                    subject: (!base.is_empty()).then(|| keyed.hash(&base)),
                    reply,
                    id: header.message_id().map(|id| keyed.hash(&id)),
                    refs: if by_references {
                        header.references().iter().map(|r| keyed.hash(r)).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .await?;
        let forest = if by_references {
            references(&items)
        } else {
            ordered_subject(&items)
        };
        let messages = &selected.mailbox.messages;
        let mut line = String::from("* THREAD ");
        forest.write(
            |k| {
                let i = items[k].index;
                if uid {
                    messages[i].uid.get()
                } else {
                    i as u32 + 1
                }
            },
            &mut line,
        );
        if line.ends_with(' ') {
            line.pop();
        }
        line.push_str("\r\n");
        self.conn.send_encoded(line.as_bytes()).await?;
        Ok(Done::ok("Thread completed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, date: i64, subject: u64, reply: bool, id: u64, refs: &[u64]) -> Item {
        Item {
            index,
            date,
            subject: Some(subject),
            reply,
            id: Some(id),
            refs: refs.to_vec(),
        }
    }

    fn written(f: &Forest) -> String {
        let mut out = String::new();
        f.write(|k| k as u32 + 1, &mut out);
        out
    }

    #[test]
    fn references_link_replies_and_prune_missing_parents() {
        // 1 root; 2 replies to 1; 3 replies to 2; 4 replies to 1; 5 replies to a
        // message not in the mailbox, as 6 does: they share a dummy parent.
        let items = vec![
            item(0, 10, 1, false, 100, &[]),
            item(1, 20, 1, true, 101, &[100]),
            item(2, 30, 1, true, 102, &[100, 101]),
            item(3, 40, 1, true, 103, &[100]),
            item(4, 50, 2, true, 104, &[999]),
            item(5, 60, 2, true, 105, &[999]),
            item(6, 5, 3, false, 106, &[]),
        ];
        assert_eq!(written(&references(&items)), "(7)(1 (2 3)(4))((5)(6))");
    }

    #[test]
    fn a_loop_through_a_message_own_references_drops_the_parent_others_gave_it() {
        // imaptest's `thread`: 1 is <a>; 2 references <a> <c>; 3 is <c> and
        // references <b>, which is 2, below it: 3 loses the parent <a> and stays a
        // root, and 1 is alone.
        let items: Vec<Item> = [
            item(0, 30, 1, false, 10, &[]),
            item(1, 10, 1, false, 11, &[10, 12]),
            item(2, 20, 1, false, 12, &[11]),
        ]
        .into_iter()
        // No subjects, so that step 5 leaves the roots apart, as imaptest's have none.
        .map(|i| Item { subject: None, ..i })
        .collect();
        assert_eq!(written(&references(&items)), "(3 2)(1)");
    }

    #[test]
    fn references_gather_roots_by_subject() {
        // Two roots of one subject, the second a reply: it goes under the first.
        let items = vec![
            item(0, 10, 1, false, 100, &[]),
            item(1, 20, 1, true, 101, &[]),
            item(2, 30, 1, false, 102, &[]),
        ];
        // 3 is no reply and 1 is not either: both under a new dummy, with 2 under 1.
        assert_eq!(written(&references(&items)), "((1 2)(3))");
    }

    #[test]
    fn a_long_chain_costs_no_call_stack_and_loops_are_refused() {
        let n = 100_000u64;
        let items: Vec<Item> = (0..n)
            .map(|k| {
                let refs: Vec<u64> = if k == 0 { vec![n - 1] } else { vec![k - 1] };
                item(k as usize, k as i64, 1, k > 0, k, &refs)
            })
            .collect();
        let out = written(&references(&items));
        // The last message closes the loop: it stays the root, above the first.
        assert!(out.starts_with("(100000 1 2 3 "), "{}", &out[..40]);
        assert_eq!(out.matches('(').count(), 1);
    }

    #[test]
    fn ordered_subject_groups_by_subject_and_sorts_by_date() {
        let items = vec![
            item(0, 30, 1, false, 1, &[]),
            item(1, 10, 2, false, 2, &[]),
            item(2, 20, 1, true, 3, &[]),
            item(3, 40, 1, true, 4, &[]),
            item(4, 50, 2, true, 5, &[]),
        ];
        assert_eq!(written(&ordered_subject(&items)), "(2 5)(3 (1)(4))");
    }
}
