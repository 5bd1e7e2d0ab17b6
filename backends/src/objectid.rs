//! Where each store's RFC 8474 object ids come from: one derivation per kind of object
//! and store, each a hash of what already identifies the object durably, so no store
//! keeps an id of its own and none can drift from what it names.
//!
//! - Maildir: a mailbox's MAILBOXID from its UIDVALIDITY (in its index, so it survives
//!   a restart and moves with the directory on RENAME; the user's UIDVALIDITYs only rise,
//!   so no two mailboxes of a user share one); a message's EMAILID from its file's unique
//!   name, which a COPY or MOVE into another mailbox keeps.
//! - The replicated store: a mailbox's MAILBOXID from its CRDT identity (the name it
//!   was created with and its incarnation, unchanged by renames) and its converged
//!   UIDVALIDITY; a message's EMAILID from its body's content hash, which every copy and
//!   every replica shares. Messages appended apart with identical bytes therefore share
//!   an EMAILID, as any content-addressed EMAILID does; what RFC 8474 5.1 asks is that
//!   one EMAILID names one immutable content, which holds.

use sha2::{Digest, Sha256};

use crate::types::ObjectId;

fn digest(domain: &[u8], parts: &[&[u8]]) -> ObjectId {
    let mut h = Sha256::new();
    h.update(domain);
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    ObjectId::from_digest(&h.finalize())
}

pub(crate) fn maildir_mailbox(uid_validity: u32) -> ObjectId {
    digest(b"pluto maildir mailbox", &[&uid_validity.to_le_bytes()])
}

pub(crate) fn maildir_email(unique: &str) -> ObjectId {
    digest(b"pluto maildir email", &[unique.as_bytes()])
}

pub(crate) fn replicated_mailbox(name: &str, incarnation: u32, uid_validity: u32) -> ObjectId {
    digest(
        b"pluto crdt mailbox",
        &[
            name.as_bytes(),
            &incarnation.to_le_bytes(),
            &uid_validity.to_le_bytes(),
        ],
    )
}

/// The body hash is a SHA-256 already: its first half.
pub(crate) fn replicated_email(body: &[u8; 32]) -> ObjectId {
    ObjectId::from_digest(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_derivation_separates_its_inputs() {
        assert_ne!(maildir_mailbox(1), maildir_mailbox(2));
        assert_ne!(maildir_email("a"), maildir_email("b"));
        assert_ne!(
            replicated_mailbox("ab", 1, 1),
            replicated_mailbox("a", 1, 1)
        );
        assert_ne!(replicated_mailbox("a", 1, 1), replicated_mailbox("a", 2, 1));
        assert_ne!(replicated_mailbox("a", 1, 1), replicated_mailbox("a", 1, 2));
        assert_eq!(maildir_mailbox(7), maildir_mailbox(7));
    }
}
