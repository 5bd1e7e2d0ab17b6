//! Address lists for ENVELOPE, parsed from the raw (still RFC 2047 encoded) header value
//! the way Dovecot's `message-address.c` does it with `FILL_MISSING`, including its
//! recovery from broken syntax, so that the address structures match Dovecot's.

use crate::rfc822::Cursor;

/// One address structure; a group start has only `mailbox` (the group name), a group end
/// has nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Addr {
    pub(crate) name: Option<Vec<u8>>,
    pub(crate) route: Option<Vec<u8>>,
    pub(crate) mailbox: Option<Vec<u8>>,
    pub(crate) domain: Option<Vec<u8>>,
}

struct Ctx<'a> {
    p: Cursor<'a>,
    out: Vec<Addr>,
    addr: Addr,
    invalid: bool,
}

/// Upper bound on addresses taken from one field, so a hostile header stays cheap.
const MAX_ADDRESSES: usize = 10_000;

pub(crate) fn parse(value: &[u8]) -> Vec<Addr> {
    let mut ctx = Ctx {
        p: Cursor::new(value),
        out: Vec::new(),
        addr: Addr::default(),
        invalid: false,
    };
    if ctx.p.skip_lwsp() > 0 {
        ctx.address_list();
    }
    ctx.out
}

impl Ctx<'_> {
    fn add(&mut self) {
        self.out.push(std::mem::take(&mut self.addr));
        self.invalid = false;
    }

    fn add_fixed(&mut self) {
        if self.addr.mailbox.is_none() {
            self.addr.mailbox = Some(b"MISSING_MAILBOX".to_vec());
            self.invalid = true;
        }
        if self.addr.domain.as_ref().is_none_or(|d| d.is_empty()) {
            self.addr.domain = Some(b"MISSING_DOMAIN".to_vec());
            self.invalid = true;
        }
        self.add();
    }

    fn local_part(&mut self) -> i32 {
        let mut s = Vec::new();
        let ret = if self.p.peek() == Some(b'"') {
            self.p.parse_quoted_string(&mut s)
        } else {
            self.p.parse_dot_atom(&mut s)
        };
        if ret < 0 {
            return -1;
        }
        self.addr.mailbox = Some(s);
        ret
    }

    fn domain(&mut self) -> i32 {
        let mut s = Vec::new();
        let ret = self.p.parse_domain(&mut s);
        if ret < 0 {
            return -1;
        }
        self.addr.domain = Some(s);
        ret
    }

    fn domain_list(&mut self) -> i32 {
        let mut s = Vec::new();
        loop {
            if self.p.at_end() {
                return 0;
            }
            if self.p.peek() != Some(b'@') {
                break;
            }
            if !s.is_empty() {
                s.push(b',');
            }
            s.push(b'@');
            let ret = self.p.parse_domain(&mut s);
            if ret <= 0 {
                return ret;
            }
            while self.p.skip_lwsp() > 0 && self.p.peek() == Some(b',') {
                self.p.bump();
            }
        }
        self.addr.route = Some(s);
        1
    }

    fn angle_addr(&mut self) -> i32 {
        self.p.bump(); // '<'
        if self.p.skip_lwsp() <= 0 {
            return -1;
        }
        if self.p.peek() == Some(b'@') {
            if self.domain_list() > 0 && self.p.peek() == Some(b':') {
                self.p.bump();
            } else {
                self.addr.route = Some(b"INVALID_ROUTE".to_vec());
                if self.p.at_end() {
                    return -1;
                }
            }
            if self.p.skip_lwsp() <= 0 {
                return -1;
            }
        }
        if self.p.peek() != Some(b'>') {
            if self.local_part() <= 0 {
                return -1;
            }
            if self.p.peek() == Some(b'@') && self.domain() <= 0 {
                return -1;
            }
        }
        if self.p.peek() != Some(b'>') {
            return -1;
        }
        self.p.bump();
        self.p.skip_lwsp()
    }

    fn name_addr(&mut self) -> i32 {
        let mut s = Vec::new();
        if self.p.parse_phrase(&mut s) <= 0 || self.p.peek() != Some(b'<') {
            return -1;
        }
        self.addr.name = if s.is_empty() { None } else { Some(s) };
        if self.angle_addr() < 0 {
            self.addr.domain = Some(b"SYNTAX_ERROR".to_vec());
            self.invalid = true;
        }
        i32::from(!self.p.at_end())
    }

    fn addr_spec(&mut self) -> i32 {
        self.p.last_comment.clear();
        let quoted = self.p.peek() == Some(b'"');
        let mut ret = self.local_part();
        let mut ret2 = -2;
        if ret <= 0 {
            self.invalid = true;
        }
        if ret != 0 && self.p.peek() == Some(b'@') {
            ret2 = self.domain();
            if ret2 <= 0 {
                ret = ret2;
            }
        }
        if !self.p.last_comment.is_empty() {
            self.addr.name = Some(self.p.last_comment.clone());
        } else if ret2 == -2 {
            // a lone word: a mailbox if nothing follows, else the start of a display name
            let mut s = self.addr.mailbox.clone().unwrap_or_default();
            s.push(b' ');
            let before = s.len();
            let _ = self.p.parse_phrase(&mut s);
            if s.len() != before {
                self.addr.mailbox = None;
                self.addr.name = Some(s);
            } else if !quoted {
                self.addr.domain = Some(Vec::new());
            }
            self.invalid = true;
            ret = -1;
        }
        ret
    }

    fn mailbox(&mut self) -> i32 {
        let start = self.p.pos;
        let mut ret = self.name_addr();
        if ret < 0 {
            self.p.pos = start;
            self.addr = Addr::default();
            ret = self.addr_spec();
            if self.invalid
                && self.addr.name.is_none()
                && self.addr.mailbox.is_some()
                && self.addr.domain.is_none()
            {
                self.addr.name = self.addr.mailbox.take();
            }
        }
        if ret < 0 {
            self.invalid = true;
        }
        self.add_fixed();
        ret
    }

    fn group(&mut self) -> i32 {
        let mut s = Vec::new();
        if self.p.parse_phrase(&mut s) <= 0 || self.p.peek() != Some(b':') {
            return -1;
        }
        self.p.bump();
        let mut ret = self.p.skip_lwsp();
        self.addr.mailbox = Some(s);
        self.add();
        if ret > 0 && self.p.peek() != Some(b';') {
            loop {
                let _ = self.mailbox();
                if self.out.len() > MAX_ADDRESSES || self.p.at_end() || self.p.peek() != Some(b',')
                {
                    break;
                }
                self.p.bump();
                if self.p.skip_lwsp() <= 0 {
                    ret = -1;
                    break;
                }
            }
        }
        if ret >= 0 {
            if self.p.peek() != Some(b';') {
                ret = -1;
            } else {
                self.p.bump();
                ret = self.p.skip_lwsp();
            }
        }
        self.add();
        if ret == 0 { 0 } else { 1 }
    }

    fn address(&mut self) -> i32 {
        let start = self.p.pos;
        let ret = self.group();
        if ret < 0 {
            self.p.pos = start;
            self.addr = Addr::default();
            return self.mailbox();
        }
        ret
    }

    fn address_list(&mut self) {
        while self.out.len() < MAX_ADDRESSES {
            if self.address() == 0 {
                break;
            }
            if self.p.at_end() || self.p.peek() != Some(b',') {
                break;
            }
            self.p.bump();
            let ret = self.p.skip_lwsp();
            if ret <= 0 {
                if ret < 0 {
                    self.add_fixed();
                }
                break;
            }
        }
    }
}
