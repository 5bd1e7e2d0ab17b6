//! IMAP's view of an RFC 5322 message: what the gateway needs for FETCH (ENVELOPE, BODY,
//! BODYSTRUCTURE, BODY[section]), SEARCH (decoded header values, body text, sent date) and
//! SORT/THREAD (base subject, first address, sent time, message IDs).
//!
//! Layout:
//! - [`Message`] parses a message once (`structure`: the MIME tree with byte ranges) and
//!   answers every question from that tree; the free functions are one-shot shortcuts.
//! - `structure` splits the message like Dovecot's message parser, `header` splits header
//!   blocks, `rfc822` and `address` tokenise field values, `imap` builds the imap-types
//!   values, `quote` picks quoted or literal strings as Dovecot does, `section` resolves
//!   BODY[section], `search` decodes text with mail-parser's decoders, `sort` reads the
//!   keys SORT and THREAD compare.
//!
//! Correctness is shown against Dovecot: `testdata/dovecot/` holds Dovecot 2.3's answers
//! for a corpus, and `tests/dovecot.rs` compares ours with them byte for byte.
//!
//! Nothing here panics on malformed input, and nesting is bounded by
//! [`MAX_DEPTH`](structure::MAX_DEPTH).

mod address;
mod header;
mod imap;
mod preview;
mod quote;
mod rfc822;
mod search;
mod section;
mod sort;
mod structure;

use std::borrow::Cow;

use chrono::NaiveDate;
use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;
use imap_types::fetch::Section;

pub use preview::MAX_CHARS as PREVIEW_MAX_CHARS;
pub use quote::extend_literal_safe;
pub use sort::{MAX_REFERENCES, base_subject, collation_key};
pub use structure::MAX_DEPTH;

/// A message parsed once; every method reads from the same tree.
#[derive(Debug)]
pub struct Message<'a> {
    raw: &'a [u8],
    root: structure::Part,
}

impl<'a> Message<'a> {
    /// Parses `raw` (the message as stored, normally with CRLF line ends). Never fails:
    /// anything unparsable degrades to a plain text body, as in Dovecot.
    pub fn parse(raw: &'a [u8]) -> Self {
        Message {
            raw,
            root: structure::parse(raw),
        }
    }

    /// The ENVELOPE structure (RFC 3501 §7.4.2).
    pub fn envelope(&self) -> Envelope<'static> {
        imap::envelope(&self.root.fields, self.raw)
    }

    /// BODYSTRUCTURE when `extended`, else BODY (no extension data).
    pub fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        imap::body_structure(&self.root, self.raw, extended)
    }

    /// The bytes of BODY[section] (`None` section = BODY[]), before any `<partial>`.
    /// `None` when the part does not exist; Dovecot answers an empty string then.
    pub fn section(&self, section: Option<&Section<'_>>) -> Option<Cow<'a, [u8]>> {
        section::section(&self.root, self.raw, section)
    }

    /// Every value of the top-level header field `field` (case-insensitive), RFC 2047
    /// decoded and unfolded, for SEARCH FROM/TO/CC/BCC/SUBJECT/HEADER.
    pub fn header_values(&self, field: &str) -> Vec<String> {
        search::header_values(&self.root.fields, self.raw, field)
    }

    /// Every `field` (From, To, Cc, Bcc, …) of the top-level header as its address list
    /// in a normal form (comments and folding gone, names RFC 2047 decoded), for
    /// SEARCH FROM/TO/CC/BCC, which match the addresses and not the raw text
    /// (RFC 3501 6.4.4), as Dovecot does.
    pub fn address_values(&self, field: &str) -> Vec<String> {
        search::address_values(&self.root.fields, self.raw, field)
    }

    /// The decoded text of all text/* parts (transfer encoding and charset undone), joined
    /// by newlines, for SEARCH BODY/TEXT.
    pub fn body_text(&self) -> String {
        let mut out = String::new();
        search::body_text(&self.root, self.raw, &mut out);
        out
    }

    /// PREVIEW (RFC 8970): at most 256 characters of the first text part, plain and
    /// folded; empty when the message has no text.
    pub fn preview(&self) -> String {
        preview::preview(&self.root, self.raw)
    }

    /// The date of the Date: field, for SENTBEFORE/SENTON/SENTSINCE.
    pub fn sent_date(&self) -> Option<NaiveDate> {
        search::sent_date(&self.root.fields, self.raw)
    }

    /// The decoded Subject (the first one), empty without one; see [`base_subject`].
    pub fn subject(&self) -> String {
        sort::subject(&self.root.fields, self.raw)
    }

    /// The mailbox (local part) of the first address of `field`, for SORT FROM/TO/CC.
    pub fn first_mailbox(&self, field: &str) -> String {
        sort::first_mailbox(&self.root.fields, self.raw, field)
    }

    /// The display name of the first address of `field` (RFC 5957), for DISPLAYFROM
    /// and DISPLAYTO.
    pub fn display_name(&self, field: &str) -> String {
        sort::display_name(&self.root.fields, self.raw, field)
    }

    /// The Date field in seconds since the epoch, UTC; `None` when absent or invalid.
    pub fn sent_timestamp(&self) -> Option<i64> {
        sort::sent_timestamp(&self.root.fields, self.raw)
    }

    /// The Message-ID without its brackets, when valid.
    pub fn message_id(&self) -> Option<String> {
        sort::message_id(&self.root.fields, self.raw)
    }

    /// The parent IDs for THREAD=REFERENCES: References (oldest first, at most
    /// [`MAX_REFERENCES`]), else In-Reply-To's first.
    pub fn references(&self) -> Vec<String> {
        sort::references(&self.root.fields, self.raw)
    }
}

/// ENVELOPE of `raw`; see [`Message::envelope`].
pub fn envelope(raw: &[u8]) -> Envelope<'static> {
    Message::parse(raw).envelope()
}

/// BODY / BODYSTRUCTURE of `raw`; see [`Message::body_structure`].
pub fn body_structure(raw: &[u8], extended: bool) -> BodyStructure<'static> {
    Message::parse(raw).body_structure(extended)
}

/// BODY[section] of `raw`; see [`Message::section`].
pub fn section<'a>(raw: &'a [u8], section: Option<&Section<'_>>) -> Option<Cow<'a, [u8]>> {
    Message::parse(raw).section(section)
}

/// Decoded values of a top-level header field; see [`Message::header_values`].
pub fn header_values(raw: &[u8], field: &str) -> Vec<String> {
    Message::parse(raw).header_values(field)
}

/// Decoded text of the text/* parts; see [`Message::body_text`].
pub fn body_text(raw: &[u8]) -> String {
    Message::parse(raw).body_text()
}

/// Date of the Date: field; see [`Message::sent_date`].
pub fn sent_date(raw: &[u8]) -> Option<NaiveDate> {
    Message::parse(raw).sent_date()
}
