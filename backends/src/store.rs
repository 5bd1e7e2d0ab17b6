//! The `MailStore` trait: what a session needs from storage.
//!
//! Designed for a store that may be remote and replicated:
//! - one call per IMAP command, batched (a list of UIDs, a list of messages), never one
//!   call per message;
//! - the session resolves sequence numbers to UIDs itself, so every call speaks UIDs;
//! - changes reach sessions through [`MailStore::watch`] (a notification carrying the new
//!   highest modseq) plus [`MailStore::changes_since`] (the changes themselves), so a
//!   session never misses a change however many notifications were coalesced or lost,
//!   and a remote store needs no per-session state.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::StoreResult;
use crate::types::*;

/// Notifications that a mailbox changed: each item is the mailbox's highest modseq at
/// least at that moment. Notifications may be coalesced. The stream ends when the store
/// can no longer tell (a remote node was lost): the session should then end with `BYE`.
pub type ChangeFeed = BoxStream<'static, ModSeq>;

/// A user's mail storage. Every method names the user; implementations must be safe for
/// many concurrent sessions of one user.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Prepares a user's mail at login: a user seen for the first time gets
    /// [`DEFAULT_MAILBOXES`]. Idempotent.
    async fn open_user(&self, user: &UserId) -> StoreResult<()>;

    /// Every mailbox and subscription of the user.
    async fn list(&self, user: &UserId) -> StoreResult<MailboxList>;

    /// Creates a mailbox, and any missing mailboxes above it. Returns the new mailbox's
    /// MAILBOXID (RFC 8474 4.1: CREATE's `OK [MAILBOXID (…)]`).
    async fn create_mailbox(
        &self,
        user: &UserId,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<ObjectId>;

    /// Deletes a mailbox and its messages; mailboxes below it stay (RFC 3501 6.3.4).
    /// INBOX cannot be deleted ([`StoreError::NotAllowed`](crate::StoreError::NotAllowed)).
    async fn delete_mailbox(&self, user: &UserId, name: &MailboxName) -> StoreResult<()>;

    /// Renames a mailbox and everything below it. Renaming INBOX moves its messages to
    /// a new mailbox and leaves INBOX empty (RFC 3501).
    async fn rename_mailbox(
        &self,
        user: &UserId,
        from: &MailboxName,
        to: &MailboxName,
    ) -> StoreResult<()>;

    /// Subscribes or unsubscribes a name (which need not exist).
    async fn set_subscribed(
        &self,
        user: &UserId,
        name: &MailboxName,
        subscribed: bool,
    ) -> StoreResult<()>;

    async fn status(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxStatus>;

    /// `\Recent` (RFC 3501 2.3.2): the messages of `name` that no read-write session has
    /// been told of yet. With `claim` (SELECT, and a read-write session learning of new
    /// mail) they become this caller's alone and no later call returns them; without it
    /// (EXAMINE, STATUS) they are only looked at. Session state, kept by the process that
    /// serves the mailbox and never replicated: every session on one node, whichever
    /// gateway it came through, is told of a message at most once.
    async fn recent(
        &self,
        user: &UserId,
        name: &MailboxName,
        claim: bool,
    ) -> StoreResult<RecentRange>;

    /// The whole mailbox as SELECT needs it. Messages another program delivered since the
    /// last look (a Maildir's `new/`) are taken in first, with fresh UIDs.
    async fn select(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxSnapshot>;

    /// What changed after `since`: see [`Changes`].
    async fn changes_since(
        &self,
        user: &UserId,
        name: &MailboxName,
        since: ModSeq,
    ) -> StoreResult<Changes>;

    /// Subscribes to a mailbox's change notifications.
    async fn watch(&self, user: &UserId, name: &MailboxName) -> StoreResult<ChangeFeed>;

    /// The bytes of these messages, in the order asked; UIDs that no longer exist are
    /// left out.
    async fn fetch(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>>;

    /// The header sections of these messages (up to and with the empty line that ends
    /// each header), as [`MailStore::fetch`] would give them: for ENVELOPE and header
    /// FETCHes, which need nothing else. Stores that can read less than the whole
    /// message override it.
    async fn fetch_headers(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        let mut bodies = self.fetch(user, name, uids).await?;
        for body in &mut bodies {
            body.bytes = body.bytes.slice(..header_len(&body.bytes));
        }
        Ok(bodies)
    }

    /// Appends messages; answered only once they are durable.
    async fn append(
        &self,
        user: &UserId,
        name: &MailboxName,
        messages: Vec<NewMessage>,
    ) -> StoreResult<AppendOutcome>;

    /// Changes flags. With `unchanged_since`, messages whose modseq is above it are left
    /// alone and reported in [`StoreOutcome::modified`].
    async fn store_flags(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<StoreOutcome>;

    /// Copies messages (bytes, flags, internal date) to another mailbox.
    async fn copy(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome>;

    /// Moves messages: a copy, then an expunge of the sources, as one step.
    async fn move_messages(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome>;

    /// What the user's mail uses (RFC 9208's STORAGE and MESSAGE): the sizes and the
    /// number of the messages of every mailbox, counted from the store's own state (the
    /// same on every replica that has applied the same writes), never from bodies. The
    /// gateway's quota checks call it before each write of a user with limits, so a
    /// store should answer it without a pass over the messages; this default, a STATUS
    /// of every mailbox, is for stores that cannot.
    async fn usage(&self, user: &UserId) -> StoreResult<Usage> {
        let mut usage = Usage::default();
        for mailbox in self.list(user).await?.mailboxes {
            let status = match self.status(user, &mailbox.name).await {
                Ok(status) => status,
                // Deleted since the list: it holds nothing any more.
                Err(crate::StoreError::NoSuchMailbox(_)) => continue,
                Err(e) => return Err(e),
            };
            usage = usage.plus(Usage::new(status.size, u64::from(status.messages)));
        }
        Ok(usage)
    }

    /// Expunges the messages flagged `\Deleted` (only those among `uids` when given).
    /// Returns the expunged UIDs, ascending.
    async fn expunge(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: Option<&[Uid]>,
    ) -> StoreResult<Vec<Uid>>;
}
