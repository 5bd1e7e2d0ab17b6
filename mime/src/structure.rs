//! The MIME tree of a message with byte ranges into the raw message, split the way
//! Dovecot's message parser splits it (which decides every size, line count and section).
//!
//! Rules that matter for byte-equality with Dovecot:
//! - a header ends at the first empty line (included in the header) or, failing that, at
//!   the end of the data or at a boundary line of an enclosing multipart;
//! - a boundary line is a line starting with `--boundary` for the boundary of any enclosing
//!   multipart (the innermost is tried first); `--boundary--` closes that multipart;
//! - the line break before a boundary line belongs to the boundary, unless it was already
//!   consumed as the end of a previous boundary line;
//! - inside `multipart/digest` a part without Content-Type is `message/rfc822`.
//!
//! Nesting is bounded by [`MAX_DEPTH`]: deeper multiparts and messages are kept as opaque
//! leaves, so a hostile message cannot exhaust the stack.

use std::ops::Range;

use crate::header::{self, Field};
use crate::rfc822::Cursor;

/// Deepest nesting of multiparts and message/rfc822 parts that is parsed.
pub const MAX_DEPTH: usize = 50;

#[derive(Debug)]
pub(crate) struct Part {
    /// Header including the blank line that ends it (when there is one).
    pub(crate) header: Range<usize>,
    /// Whether the header ended with a blank line.
    pub(crate) has_blank_line: bool,
    pub(crate) fields: Vec<Field>,
    pub(crate) body: Range<usize>,
    pub(crate) kind: Kind,
    /// Part without Content-Type inside multipart/digest.
    pub(crate) digest_default: bool,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    Message(Box<Part>),
}

/// A boundary line that ended a part.
#[derive(Clone, Copy, Debug)]
struct Hit {
    /// Index into the boundary stack.
    level: usize,
    close: bool,
    line_start: usize,
    /// Just after the boundary line (its line break included).
    next: usize,
}

/// Content-Type as far as the tree needs it.
pub(crate) struct ContentType {
    pub(crate) ty: Vec<u8>,
    pub(crate) subtype: Vec<u8>,
    pub(crate) params: crate::rfc822::Params,
}

/// Parses the Content-Type field (the first one, as Dovecot's parser does). `None` when
/// the field is absent or has no valid `type/subtype`.
pub(crate) fn content_type(fields: &[Field], data: &[u8]) -> Option<ContentType> {
    let field = header::first(fields, data, "Content-Type")?;
    let mut cur = Cursor::new(field.raw_value(data));
    cur.skip_lwsp();
    let mut tys = Vec::new();
    let _ = cur.parse_content_type(&mut tys);
    // "Content-Type: text" (no subtype) is kept as type "text", subtype "", as Dovecot does
    let subtype = match tys.iter().position(|&c| c == b'/') {
        Some(slash) => {
            let sub = tys[slash + 1..].to_vec();
            tys.truncate(slash);
            sub
        }
        None => Vec::new(),
    };
    if tys.is_empty() {
        return None;
    }
    let params = crate::rfc822::rfc2231_merge(cur.parse_params());
    Some(ContentType {
        ty: tys,
        subtype,
        params,
    })
}

struct Parser<'a> {
    data: &'a [u8],
    boundaries: Vec<Vec<u8>>,
}

impl Parser<'_> {
    /// The innermost boundary matching the line at `pos`.
    fn boundary_at(&self, pos: usize) -> Option<Hit> {
        let line = &self.data[pos..];
        if !line.starts_with(b"--") || self.boundaries.is_empty() {
            return None;
        }
        let rest = &line[2..];
        // Only the start of the line has to match; when several boundaries match, the
        // longest wins (Dovecot's `boundary_find`), the innermost among equals.
        let mut best: Option<usize> = None;
        for level in (0..self.boundaries.len()).rev() {
            let b = &self.boundaries[level];
            if rest.starts_with(b) && best.is_none_or(|l| self.boundaries[l].len() < b.len()) {
                best = Some(level);
            }
        }
        let level = best?;
        let close = rest[self.boundaries[level].len()..].starts_with(b"--");
        Some(Hit {
            level,
            close,
            line_start: pos,
            next: header::line_end(self.data, pos),
        })
    }

    /// First boundary line at or after `pos` (a line start).
    fn scan(&self, mut pos: usize) -> Option<Hit> {
        if self.boundaries.is_empty() {
            return None;
        }
        while pos < self.data.len() {
            if let Some(hit) = self.boundary_at(pos) {
                return Some(hit);
            }
            pos = header::line_end(self.data, pos);
        }
        None
    }

    /// Where content that started at `from` ends, given the boundary that follows it.
    fn end_before(&self, hit: Option<Hit>, from: usize) -> usize {
        match hit {
            None => self.data.len(),
            Some(h) => {
                let p = h.line_start;
                let eol = if p >= 2 && &self.data[p - 2..p] == b"\r\n" {
                    2
                } else if p >= 1 && self.data[p - 1] == b'\n' {
                    1
                } else {
                    0
                };
                (p - eol).max(from)
            }
        }
    }

    fn entity(&mut self, start: usize, depth: usize, in_digest: bool) -> (Part, Option<Hit>) {
        let (fields, header_end, has_blank_line) = {
            let this = &*self;
            header::parse_fields(this.data, start, |pos| this.boundary_at(pos).is_some())
        };
        let body_start = header_end;
        let mut part = Part {
            header: start..header_end,
            has_blank_line,
            fields,
            body: body_start..body_start,
            kind: Kind::Leaf,
            digest_default: false,
        };
        if !has_blank_line && header_end < self.data.len() {
            // The header was cut short by a boundary line, whose preceding line break
            // belongs to the boundary.
            let hit = self.boundary_at(header_end);
            let end = self.end_before(hit, start);
            part.header.end = end;
            part.body = end..end;
            return (part, hit);
        }
        let ct = content_type(&part.fields, self.data);
        let (is_multipart, is_message, boundary, is_digest) = match &ct {
            Some(ct) => {
                let multi = ct.ty.eq_ignore_ascii_case(b"multipart");
                let msg = ct.ty.eq_ignore_ascii_case(b"message")
                    && ct.subtype.eq_ignore_ascii_case(b"rfc822");
                let boundary = ct
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty());
                (
                    multi,
                    msg,
                    boundary,
                    multi && ct.subtype.eq_ignore_ascii_case(b"digest"),
                )
            }
            None => (false, in_digest, None, false),
        };
        part.digest_default = ct.is_none() && in_digest;

        if depth >= MAX_DEPTH {
            let hit = self.scan(body_start);
            part.body.end = self.end_before(hit, body_start);
            return (part, hit);
        }
        if is_multipart {
            let Some(boundary) = boundary else {
                // a multipart without boundary has no parts; Dovecot shows an empty text/plain
                let hit = self.scan(body_start);
                part.body.end = self.end_before(hit, body_start);
                part.kind = Kind::Multipart(Vec::new());
                return (part, hit);
            };
            self.boundaries.push(boundary);
            let level = self.boundaries.len() - 1;
            let mut children = Vec::new();
            let mut hit = self.scan(body_start);
            let mut from = body_start;
            loop {
                match hit {
                    Some(h) if h.level == level && !h.close => {
                        let (child, child_hit) = self.entity(h.next, depth + 1, is_digest);
                        from = child.body.end;
                        children.push(child);
                        hit = child_hit;
                        if hit.is_none() {
                            from = self.data.len();
                        }
                    }
                    Some(h) if h.level == level => {
                        // closing boundary: the epilogue runs to an enclosing boundary
                        self.boundaries.pop();
                        from = h.next;
                        hit = self.scan(h.next);
                        break;
                    }
                    _ => {
                        self.boundaries.pop();
                        break;
                    }
                }
            }
            part.body.end = match hit {
                Some(_) => self.end_before(hit, from),
                None => self.data.len(),
            };
            part.kind = Kind::Multipart(children);
            return (part, hit);
        }
        if is_message {
            let (inner, hit) = self.entity(body_start, depth + 1, false);
            part.body.end = match hit {
                // Dovecot counts the line break before the boundary into the message
                // when the boundary cut its header short (header-only message).
                Some(h) if !inner.has_blank_line => h.line_start,
                _ => inner.body.end.max(inner.header.end),
            };
            part.kind = Kind::Message(Box::new(inner));
            return (part, hit);
        }
        let hit = self.scan(body_start);
        part.body.end = self.end_before(hit, body_start);
        (part, hit)
    }
}

/// Parses a whole message.
pub(crate) fn parse(data: &[u8]) -> Part {
    let mut parser = Parser {
        data,
        boundaries: Vec::new(),
    };
    parser.entity(0, 0, false).0
}

impl Part {
    pub(crate) fn is_message(&self) -> bool {
        matches!(self.kind, Kind::Message(_))
    }
}
