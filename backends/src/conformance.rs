//! The MailStore conformance suite (written with the Maildir backend).
