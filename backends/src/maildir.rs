//! The Maildir++ backend.
