//! RFC 822/5322 lexical tokens (atoms, quoted strings, comments, phrases, MIME tokens and
//! parameters), modelled on Dovecot's `rfc822-parser` so that ENVELOPE and BODYSTRUCTURE
//! values come out exactly as Dovecot writes them.

/// Most parameters read from one field.
const MAX_PARAMS: usize = 1000;

/// MIME parameters in header order: (attribute, value), both as raw bytes.
pub(crate) type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// `atext` plus 8-bit bytes, which Dovecot accepts in atoms so that raw UTF-8 names survive.
pub(crate) fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c) || c >= 0x80
}

/// A MIME `token` character (RFC 2045): anything but CTLs, space and tspecials.
fn is_token_char(c: u8) -> bool {
    c > 0x20 && c != 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

/// A cursor over one header value.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pub(crate) pos: usize,
    /// Text of the last comment skipped, as Dovecot keeps it for `addr (Name)`.
    pub(crate) last_comment: Vec<u8>,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor {
            data,
            pos: 0,
            last_comment: Vec::new(),
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    /// Skips whitespace and comments. Returns 1 if data remains, 0 at the end, -1 for an
    /// unterminated comment (Dovecot's convention, which the address parser relies on).
    pub(crate) fn skip_lwsp(&mut self) -> i32 {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    if !self.skip_comment() {
                        return -1;
                    }
                }
                _ => return 1,
            }
        }
        0
    }

    fn skip_comment(&mut self) -> bool {
        self.last_comment.clear();
        let mut level = 0usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'(' => {
                    if level > 0 {
                        self.last_comment.push(c);
                    }
                    level += 1;
                }
                b')' => {
                    level -= 1;
                    if level == 0 {
                        return true;
                    }
                    self.last_comment.push(c);
                }
                b'\\' => {
                    if let Some(n) = self.peek() {
                        self.pos += 1;
                        self.last_comment.push(n);
                    }
                }
                b'\r' | b'\n' => {}
                _ => self.last_comment.push(c),
            }
        }
        false
    }

    /// `atom`, then CFWS. Returns like [`Cursor::skip_lwsp`]; -1 if no atom is here.
    pub(crate) fn parse_atom(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.pos;
        while self.peek().is_some_and(is_atext) {
            self.pos += 1;
        }
        if self.pos == start {
            return -1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        self.skip_lwsp()
    }

    /// `atom` allowing dots (obs-phrase), then CFWS. Like Dovecot's, an empty atom is not
    /// an error: that is what lets `<addr>` parse as a name-addr without display name.
    fn parse_atom_or_dot(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.pos;
        while self.peek().is_some_and(|c| is_atext(c) || c == b'.') {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() {
            return 0;
        }
        self.skip_lwsp()
    }

    /// `dot-atom` with CFWS allowed around the dots.
    pub(crate) fn parse_dot_atom(&mut self, out: &mut Vec<u8>) -> i32 {
        let mut ret = self.parse_atom(out);
        while ret > 0 && self.peek() == Some(b'.') {
            out.push(b'.');
            self.pos += 1;
            ret = self.skip_lwsp();
            if ret <= 0 {
                return -1;
            }
            ret = self.parse_atom(out);
        }
        ret
    }

    /// `quoted-string` without its quotes and escapes; folding line breaks are dropped.
    pub(crate) fn parse_quoted_string(&mut self, out: &mut Vec<u8>) -> i32 {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => return self.skip_lwsp(),
                b'\\' => {
                    if let Some(n) = self.peek() {
                        self.pos += 1;
                        out.push(n);
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(c),
            }
        }
        -1
    }

    /// `phrase` (words joined by one space), then CFWS. Returns 0 at the end, -1 on error.
    pub(crate) fn parse_phrase(&mut self, out: &mut Vec<u8>) -> i32 {
        match self.peek() {
            None => return 0,
            Some(b'.') => return -1,
            _ => {}
        }
        loop {
            let ret = if self.peek() == Some(b'"') {
                self.parse_quoted_string(out)
            } else {
                self.parse_atom_or_dot(out)
            };
            if ret <= 0 {
                return ret;
            }
            match self.peek() {
                Some(c) if is_atext(c) || c == b'"' || c == b'.' => out.push(b' '),
                _ => break,
            }
        }
        self.skip_lwsp()
    }

    /// `"@" (dot-atom / domain-literal)`, the cursor being on the `@`.
    pub(crate) fn parse_domain(&mut self, out: &mut Vec<u8>) -> i32 {
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        if self.peek() == Some(b'[') {
            let start = self.pos;
            while let Some(c) = self.peek() {
                self.pos += 1;
                if c == b'\\' {
                    self.pos += 1;
                } else if c == b']' {
                    let end = self.pos.min(self.data.len());
                    out.extend(
                        self.data[start..end]
                            .iter()
                            .filter(|&&c| c != b'\r' && c != b'\n'),
                    );
                    return self.skip_lwsp();
                }
            }
            return -1;
        }
        self.parse_dot_atom(out)
    }

    /// A MIME `token`, then CFWS.
    pub(crate) fn parse_mime_token(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        if self.pos == start {
            return -1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        self.skip_lwsp()
    }

    /// `type "/" subtype`, written into `out` as "type/subtype".
    pub(crate) fn parse_content_type(&mut self, out: &mut Vec<u8>) -> i32 {
        if self.parse_mime_token(out) <= 0 {
            return -1;
        }
        if self.peek() != Some(b'/') {
            return -1;
        }
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        out.push(b'/');
        self.parse_mime_token(out)
    }

    /// The `;` separated `attribute=value` list that follows a MIME value; unparsable
    /// parameters end the list, as in Dovecot.
    pub(crate) fn parse_params(&mut self) -> Params {
        let mut params = Vec::new();
        // A bound on the number of parameters keeps RFC 2231 merging cheap on hostile input.
        while params.len() < MAX_PARAMS {
            // skip to the next ';'
            while let Some(c) = self.peek() {
                if c == b';' {
                    break;
                }
                if c == b'(' || c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
                    if self.skip_lwsp() < 0 {
                        return params;
                    }
                    continue;
                }
                self.pos += 1;
            }
            if self.at_end() {
                return params;
            }
            self.pos += 1;
            if self.skip_lwsp() <= 0 {
                return params;
            }
            let mut key = Vec::new();
            if self.parse_mime_token(&mut key) <= 0 || self.peek() != Some(b'=') {
                // Dovecot gives up on the rest after a broken parameter.
                return params;
            }
            self.pos += 1;
            if self.skip_lwsp() <= 0 {
                // `key=` at the very end: an empty value
                params.push((key, Vec::new()));
                return params;
            }
            let mut value = Vec::new();
            let ret = if self.peek() == Some(b'"') {
                self.parse_quoted_string(&mut value)
            } else {
                let start = self.pos;
                while self.peek().is_some_and(|c| is_token_char(c) || c >= 0x80) {
                    self.pos += 1;
                }
                value.extend_from_slice(&self.data[start..self.pos]);
                self.skip_lwsp()
            };
            params.push((key, value));
            if ret < 0 {
                return params;
            }
        }
        params
    }
}

/// Merges RFC 2231 continuations (`name*0`, `name*1*`, …) into one parameter, as Dovecot's
/// `rfc2231_parse` does: plain parameters keep their order, merged ones follow them; a merged
/// parameter whose first segment is extended (`*0*`) or that was `name*` keeps the `*` suffix
/// and its value stays percent-encoded.
pub(crate) fn rfc2231_merge(params: Params) -> Params {
    struct Ext {
        key: Vec<u8>,
        idx: Option<u32>,
        extended: bool,
        value: Vec<u8>,
    }
    let mut plain = Vec::new();
    let mut ext: Vec<Ext> = Vec::new();
    for (key, value) in params {
        let Some(star) = key.iter().position(|&c| c == b'*') else {
            plain.push((key, value));
            continue;
        };
        let base = key[..star].to_vec();
        let rest = &key[star + 1..];
        let (idx, extended) = if rest.is_empty() {
            (None, true)
        } else {
            let (digits, tail) = match rest.iter().position(|&c| c == b'*') {
                Some(p) => (&rest[..p], &rest[p..]),
                None => (rest, &b""[..]),
            };
            let parsed = std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse::<u32>().ok());
            match (parsed, tail) {
                (Some(n), b"") => (Some(n), false),
                (Some(n), b"*") => (Some(n), true),
                _ => {
                    plain.push((key, value));
                    continue;
                }
            }
        };
        ext.push(Ext {
            key: base,
            idx,
            extended,
            value,
        });
    }
    let mut out = plain;
    let mut done = vec![false; ext.len()];
    for i in 0..ext.len() {
        if done[i] {
            continue;
        }
        let base = ext[i].key.clone();
        let mut group: Vec<usize> = (i..ext.len())
            .filter(|&j| !done[j] && ext[j].key.eq_ignore_ascii_case(&base))
            .collect();
        for &j in &group {
            done[j] = true;
        }
        group.sort_by_key(|&j| ext[j].idx);
        let first_extended = group.first().is_some_and(|&j| ext[j].extended);
        // continuation numbers must run 0, 1, 2, …; Dovecot stops at the first gap
        let mut value = Vec::new();
        for (n, &j) in group.iter().enumerate() {
            match ext[j].idx {
                Some(idx) if idx as usize != n => break,
                _ => value.extend_from_slice(&ext[j].value),
            }
        }
        let mut key = base;
        if first_extended {
            key.push(b'*');
        }
        out.push((key, value));
    }
    out
}
