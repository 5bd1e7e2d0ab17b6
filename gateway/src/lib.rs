//! pluto's IMAP gateway.
