//! IMAP's view of a message (BODYSTRUCTURE, ENVELOPE, BODY[section], search text).
