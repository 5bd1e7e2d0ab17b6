//! The IMAP CRDT. Built in its own issue; see `crdt/README.md` once it exists.
