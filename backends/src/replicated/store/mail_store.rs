//! `impl MailStore for ReplicatedStore`: every IMAP-facing call as one
//! [`write`](ReplicatedStore::write) or [`read`](ReplicatedStore::read) of the user's
//! CRDT state, with the conversions between MailStore and CRDT values it needs.

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;
use pluto_crdt::{self as crdt, BodyRef, UserState};
use pluto_model::{default_mailboxes, rules};

use super::ReplicatedStore;
use crate::concurrency::blocking_err;
use crate::error::{StoreError, StoreResult};
use crate::replicated::blobs::BlobStore;
use crate::replicated::convert::*;
use crate::store::{ChangeFeed, MailStore};
use crate::types::*;

fn names_of(state: &UserState) -> HashSet<String> {
    state.mailboxes().into_iter().map(|m| m.name).collect()
}

fn all_uids(state: &UserState, name: &MailboxName) -> StoreResult<Vec<Uid>> {
    Ok(state
        .snapshot(name)
        .map_err(error_from_crdt)?
        .messages
        .iter()
        .map(|m| m.uid)
        .collect())
}

/// SELECT's view of `name`, with its MAILBOXID.
fn snapshot(st: &UserState, name: &MailboxName) -> StoreResult<MailboxSnapshot> {
    let s = st.snapshot(name).map_err(error_from_crdt)?;
    let mailbox_id = mailbox_object_id(st, name, s.uid_validity)?;
    Ok(snapshot_from_crdt(&s, mailbox_id))
}

fn copy_outcome(o: crdt::CopyOutcome) -> CopyOutcome {
    CopyOutcome {
        uid_validity: o.uid_validity,
        mapping: o.mapping,
    }
}

#[async_trait]
impl MailStore for ReplicatedStore {
    async fn open_user(&self, user: &UserId) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            // Only a user nobody has written yet gets the defaults: a replica that is
            // merely behind must not re-create what the user deleted elsewhere. A
            // replica that has no state yet although others do (new, or it lost its
            // data) creates the very mailboxes the first replica created: same
            // incarnation, same UIDVALIDITY, so nothing changes for the user's clients.
            if !st.version().is_empty() {
                return Ok(());
            }
            for (name, special) in default_mailboxes() {
                ops.extend(
                    st.create_default_mailbox(&name, special)
                        .map_err(error_from_crdt)?,
                );
            }
            Ok(())
        })
        .await?;
        self.await_uid_claim(user).await;
        Ok(())
    }

    async fn list(&self, user: &UserId) -> StoreResult<MailboxList> {
        self.read(user, |st| {
            let mut mailboxes: Vec<MailboxInfo> = st
                .mailboxes()
                .into_iter()
                .filter_map(|m| {
                    Some(MailboxInfo {
                        name: MailboxName::new(m.name).ok()?,
                        special_use: m.special_use,
                    })
                })
                .collect();
            mailboxes.sort_by(|a, b| a.name.cmp(&b.name));
            let mut subscriptions: Vec<MailboxName> = st
                .subscriptions()
                .into_iter()
                .filter_map(|n| MailboxName::new(n).ok())
                .collect();
            subscriptions.sort();
            Ok(MailboxList {
                mailboxes,
                subscriptions,
            })
        })
        .await
    }

    async fn create_mailbox(
        &self,
        user: &UserId,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<ObjectId> {
        self.write(user, Vec::new(), |st, ops| {
            let names = names_of(st);
            for made in rules::create(name, |n| names.contains(n.as_str()))? {
                let special = if &made == name { special_use } else { None };
                ops.extend(st.create_mailbox(&made, special).map_err(error_from_crdt)?);
            }
            let uid_validity = st.status(name).map_err(error_from_crdt)?.uid_validity;
            mailbox_object_id(st, name, uid_validity)
        })
        .await
    }

    async fn delete_mailbox(&self, user: &UserId, name: &MailboxName) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            rules::delete(name, names_of(st).contains(name.as_str()))?;
            // Mailboxes below it stay (RFC 3501 6.3.4).
            ops.extend(st.delete_mailbox(name).map_err(error_from_crdt)?);
            Ok(())
        })
        .await
    }

    async fn rename_mailbox(
        &self,
        user: &UserId,
        from: &MailboxName,
        to: &MailboxName,
    ) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            let existing = names_of(st)
                .into_iter()
                .filter_map(|n| MailboxName::new(n).ok());
            let plan = rules::rename(from, to, existing)?;
            for parent in &plan.parents {
                ops.extend(st.create_mailbox(parent, None).map_err(error_from_crdt)?);
            }
            ops.extend(st.rename_mailbox(from, to).map_err(error_from_crdt)?);
            Ok(())
        })
        .await
    }

    async fn set_subscribed(
        &self,
        user: &UserId,
        name: &MailboxName,
        subscribed: bool,
    ) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            let now = st.subscriptions().iter().any(|n| n == name.as_str());
            if subscribed && !now {
                ops.extend(st.subscribe(name).map_err(error_from_crdt)?);
            } else if !subscribed && now {
                ops.extend(st.unsubscribe(name).map_err(error_from_crdt)?);
            }
            Ok(())
        })
        .await
    }

    async fn recent(
        &self,
        user: &UserId,
        name: &MailboxName,
        claim: bool,
    ) -> StoreResult<RecentRange> {
        let status = self.status(user, name).await?;
        Ok(self.recent.take(user, name, &status, claim))
    }

    async fn status(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxStatus> {
        self.read(user, |st| {
            let s = st.status(name).map_err(error_from_crdt)?;
            Ok(MailboxStatus {
                mailbox_id: mailbox_object_id(st, name, s.uid_validity)?,
                messages: s.messages,
                unseen: s.unseen,
                deleted: s.deleted,
                uid_next: s.uid_next,
                uid_validity: s.uid_validity,
                highest_modseq: s.highest_modseq,
                size: s.size,
            })
        })
        .await
    }

    /// From the CRDT's running totals: the same on every replica that applied the same
    /// operations, one addition per mailbox.
    async fn usage(&self, user: &UserId) -> StoreResult<Usage> {
        self.read(user, |st| Ok(st.usage())).await
    }

    async fn select(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxSnapshot> {
        self.read(user, |st| snapshot(st, name)).await
    }

    async fn changes_since(
        &self,
        user: &UserId,
        name: &MailboxName,
        since: ModSeq,
    ) -> StoreResult<Changes> {
        self.read(user, |st| {
            match st.changes_since(name, since).map_err(error_from_crdt)? {
                crdt::Changes::Delta {
                    highest_modseq,
                    uid_next,
                    updated,
                    expunged,
                } => Ok(Changes::Delta {
                    highest_modseq,
                    uid_next,
                    updated: updated.iter().map(meta_from_crdt).collect(),
                    expunged,
                }),
                crdt::Changes::TooOld => Ok(Changes::Snapshot(snapshot(st, name)?)),
            }
        })
        .await
    }

    async fn watch(&self, user: &UserId, name: &MailboxName) -> StoreResult<ChangeFeed> {
        let first = self
            .read(user, |st| {
                Ok(st
                    .mailboxes()
                    .into_iter()
                    .find(|m| m.name == name.as_str())
                    .map(|m| m.highest_modseq))
            })
            .await?;
        let Some(first) = first else {
            return Err(StoreError::NoSuchMailbox(name.clone()));
        };
        let slot = self.slot(user)?;
        let rx = slot.changed.subscribe();
        let name = name.as_str().to_owned();
        let feed = futures::stream::unfold(
            (rx, slot, name, first),
            |(mut rx, slot, name, last)| async move {
                loop {
                    if rx.changed().await.is_err() {
                        return None;
                    }
                    let now = {
                        let entry = slot.state.lock().await;
                        entry
                            .crdt
                            .mailboxes()
                            .into_iter()
                            .find(|m| m.name == name)
                            .map(|m| m.highest_modseq)
                    };
                    if let Some(now) = now.filter(|n| *n != last) {
                        return Some((now, (rx, slot, name, now)));
                    }
                }
            },
        );
        Ok(Box::pin(feed))
    }

    async fn fetch(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.read_bodies(user, name, uids, BlobStore::get).await
    }

    async fn fetch_headers(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.read_bodies(user, name, uids, BlobStore::get_header)
            .await
    }

    async fn append(
        &self,
        user: &UserId,
        name: &MailboxName,
        messages: Vec<NewMessage>,
    ) -> StoreResult<AppendOutcome> {
        self.check()?;
        if messages.is_empty() {
            let validity = self
                .read(user, |st| {
                    Ok(st.status(name).map_err(error_from_crdt)?.uid_validity)
                })
                .await?;
            return Ok(AppendOutcome {
                uid_validity: validity,
                uids: Vec::new(),
            });
        }
        for m in &messages {
            if u32::try_from(m.body.len()).is_err() {
                return Err(StoreError::TooBig {
                    limit: u64::from(u32::MAX),
                });
            }
        }
        // Bodies first, durable: an op must never name a body that a crash could lose.
        let blobs = self.blobs.clone();
        let bodies: Vec<Bytes> = messages.iter().map(|m| m.body.clone()).collect();
        let stored = tokio::task::spawn_blocking(move || {
            bodies
                .iter()
                .map(|b| blobs.put(b))
                .collect::<StoreResult<Vec<_>>>()
        })
        .await
        .map_err(blocking_err)??;
        let fresh: Vec<BodyRef> = stored.iter().filter(|(_, n)| *n).map(|(r, _)| *r).collect();
        let now = now();
        let data: Vec<crdt::MessageData> = messages
            .iter()
            .zip(&stored)
            .map(|(m, (body, _))| crdt::MessageData {
                body: *body,
                size: u32::try_from(m.body.len()).unwrap_or(u32::MAX),
                internal_date: m.internal_date.as_ref().map_or(now, date_to_crdt),
                flags: m.flags.clone(),
            })
            .collect();
        self.write(user, fresh, |st, ops| {
            let applied = st.append(name, data).map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            Ok(AppendOutcome {
                uid_validity: applied.outcome.uid_validity,
                uids: applied.outcome.uids,
            })
        })
        .await
    }

    async fn store_flags(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<StoreOutcome> {
        self.write(user, Vec::new(), |st, ops| {
            let views = st.messages(name, uids).map_err(error_from_crdt)?;
            let mut modified = Vec::new();
            let mut targets = Vec::new();
            for v in &views {
                if unchanged_since.is_some_and(|since| v.modseq > since) {
                    modified.push(v.uid);
                    continue;
                }
                // A STORE that changes nothing makes no op and reports no update.
                let mut after = v.flags.clone();
                if after.apply(change) {
                    targets.push(v.uid);
                }
            }
            if targets.is_empty() {
                return Ok(StoreOutcome {
                    updated: Vec::new(),
                    modified,
                });
            }
            let applied = st
                .store_flags(name, &targets, change, None)
                .map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            Ok(StoreOutcome {
                updated: applied.outcome.updated.iter().map(meta_from_crdt).collect(),
                modified,
            })
        })
        .await
    }

    async fn copy(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        self.write(user, Vec::new(), |st, ops| {
            let applied = st.copy(from, uids, to).map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            Ok(copy_outcome(applied.outcome))
        })
        .await
    }

    async fn move_messages(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        self.write(user, Vec::new(), |st, ops| {
            let applied = st.move_messages(from, uids, to).map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            Ok(copy_outcome(applied.outcome))
        })
        .await
    }

    async fn expunge(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: Option<&[Uid]>,
    ) -> StoreResult<Vec<Uid>> {
        self.write(user, Vec::new(), |st, ops| {
            let asked = match uids {
                Some(u) => u.to_vec(),
                None => all_uids(st, name)?,
            };
            let deleted: Vec<Uid> = st
                .messages(name, &asked)
                .map_err(error_from_crdt)?
                .into_iter()
                .filter(|v| v.flags.contains(&Flag::Deleted))
                .map(|v| v.uid)
                .collect();
            if deleted.is_empty() {
                return Ok(Vec::new());
            }
            let applied = st.expunge(name, &deleted).map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            Ok(applied.outcome)
        })
        .await
    }
}
