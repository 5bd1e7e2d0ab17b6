//! SEARCH in the syntax imap-codec does not read: programs nested deeper than it
//! parses, the RETURN options of ESEARCH (RFC 4731, RFC 4466 2.6) and the `$` of
//! SEARCHRES (RFC 5182). imap-codec's search-key parser has a fixed recursion limit of
//! 9 (not configurable in 2.0.0-alpha.10), so a chain of ten ORs — as Thunderbird's
//! quick filter and webmails send — or nine levels of parentheses fail with a generic
//! BAD; and it knows neither `RETURN (…)` nor `$`. When imap-codec refuses a SEARCH,
//! this module reads the command's frame (`[UID] SEARCH [RETURN (…)] [CHARSET x]`) and
//! the program's structure (parentheses, `OR`, `NOT`, `$`, `UID $`) itself, up to
//! `limits.max_nesting` levels, and has imap-codec parse each leaf key (`FROM "x"`,
//! `1:5`, `HEADER a b`, literals included), so every leaf is as strict as before.
//! Deeper than the limit is a BAD that names the limit. SORT and THREAD (RFC 5256) take
//! the same search programs (RFC 5182 2.1 names them among the users of `$`): their
//! frames (`[UID] SORT (criteria) charset`, `[UID] THREAD algorithm charset`) are read
//! here too, their criteria and algorithm by imap-codec.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{Charset, Tag, Vec1};
use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::search::SearchKey;

/// The deepest nesting this parser follows, whatever the configuration says: its
/// recursion (and the search's) stays far from the end of a task's stack.
pub(crate) const NESTING_CEILING: usize = 1000;

/// Why a SEARCH could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SearchSyntaxError {
    /// Not a SEARCH, or not valid: the caller keeps imap-codec's answer.
    Invalid,
    /// Nested deeper than the limit.
    TooDeep(usize),
    /// A RETURN option this server does not know (RFC 4466 2.6: BAD).
    UnknownReturnOption(String),
}

type Parsed<T> = Result<T, SearchSyntaxError>;

/// A search program: imap-codec's keys, and what it lacks (`$`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Program {
    /// A key as imap-codec reads it (nesting inside it included).
    Key(SearchKey<'static>),
    /// `$` or `UID $` (RFC 5182): the messages of the saved search result.
    Saved,
    /// `EMAILID objectid` (RFC 8474 6): the messages of that EMAILID.
    EmailId(String),
    /// `THREADID objectid` (RFC 8474 6): this server computes no threads (THREADID is
    /// NIL), so it matches nothing.
    ThreadId(String),
    Not(Box<Program>),
    Or(Box<Program>, Box<Program>),
    And(Vec<Program>),
}

/// ESEARCH's RETURN options (RFC 4731 3.1) and SEARCHRES's SAVE (RFC 5182 2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReturnOptions {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) all: bool,
    pub(crate) count: bool,
    pub(crate) save: bool,
}

/// What the messages a program matched are answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// SEARCH's (or ESEARCH's, with RETURN options).
    Search,
    /// SORT's, by these criteria.
    Sort(Vec1<SortCriterion>),
    /// THREAD's, by this algorithm.
    Thread(ThreadingAlgorithm<'static>),
}

/// SEARCH or UID SEARCH, whichever parser read it; or SORT or THREAD read by this
/// module (`answer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchCommand {
    pub(crate) answer: Answer,
    pub(crate) uid: bool,
    pub(crate) charset: Option<Charset<'static>>,
    /// The keys, all of which must match.
    pub(crate) criteria: Vec<Program>,
    /// `RETURN (…)`: answered with ESEARCH; `None`: the RFC 3501 SEARCH answer.
    pub(crate) returns: Option<ReturnOptions>,
}

impl SearchCommand {
    /// A SEARCH as imap-codec read it.
    pub(crate) fn from_codec(
        charset: Option<Charset<'static>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
    ) -> Self {
        Self {
            answer: Answer::Search,
            uid,
            charset,
            criteria: criteria.into_iter().map(Program::Key).collect(),
            returns: None,
        }
    }
}

/// Reads a whole `tag [UID] SEARCH [RETURN (…)] [CHARSET x] keys…\r\n` message
/// (literals inline, as the client sent them) with at most `max_nesting` levels of
/// nested keys.
pub(crate) fn parse(message: &[u8], max_nesting: usize) -> Parsed<(Tag<'static>, SearchCommand)> {
    let max_nesting = max_nesting.min(NESTING_CEILING);
    let mut p = Parser {
        input: message,
        pos: 0,
        max_nesting,
    };
    let tag = p.word()?;
    let tag = Tag::try_from(tag.to_vec())
        .map_err(|_| SearchSyntaxError::Invalid)?
        .into_static();
    p.space()?;
    let mut name = p.word()?.to_ascii_uppercase();
    let uid = name == b"UID";
    if uid {
        p.space()?;
        name = p.word()?.to_ascii_uppercase();
    }
    let answer = match &name[..] {
        b"SEARCH" => Answer::Search,
        b"SORT" => {
            p.space()?;
            let start = p.pos;
            let close = message[start..]
                .iter()
                .position(|&b| b == b')')
                .ok_or(SearchSyntaxError::Invalid)?;
            p.pos = start + close + 1;
            Answer::Sort(decode_sort_criteria(&message[start..p.pos])?)
        }
        b"THREAD" => {
            p.space()?;
            Answer::Thread(decode_algorithm(p.word()?)?)
        }
        _ => return Err(SearchSyntaxError::Invalid),
    };
    p.space()?;
    let (returns, charset) = if answer == Answer::Search {
        let mut returns = None;
        let save = p.pos;
        if p.word().is_ok_and(|w| w.eq_ignore_ascii_case(b"RETURN")) {
            p.space()?;
            returns = Some(p.return_options()?);
            p.space()?;
        } else {
            p.pos = save;
        }
        let mut charset = None;
        let save = p.pos;
        if p.word().is_ok_and(|w| w.eq_ignore_ascii_case(b"CHARSET")) {
            p.space()?;
            charset = Some(p.charset()?);
        } else {
            p.pos = save;
        }
        (returns, charset)
    } else {
        // SORT and THREAD: a charset always, no RETURN.
        (None, Some(p.charset()?))
    };
    let criteria = p.program()?;
    Ok((
        tag,
        SearchCommand {
            answer,
            uid,
            charset,
            criteria,
            returns,
        },
    ))
}

/// `x {before}{raw}{after}\r\n` as imap-codec reads it, when it reads all of it: the
/// one way this module hands a piece of a command to imap-codec.
fn decode_in(before: &[u8], raw: &[u8], after: &[u8]) -> Parsed<CommandBody<'static>> {
    let mut line = b"x ".to_vec();
    line.extend_from_slice(before);
    line.extend_from_slice(raw);
    line.extend_from_slice(after);
    line.extend_from_slice(b"\r\n");
    match CommandCodec::default().decode(&line) {
        Ok((b"", Command { body, .. })) => Ok(body.into_static()),
        _ => Err(SearchSyntaxError::Invalid),
    }
}

/// SORT's `(criteria)`, as imap-codec reads them.
fn decode_sort_criteria(raw: &[u8]) -> Parsed<Vec1<SortCriterion>> {
    match decode_in(b"SORT ", raw, b" UTF-8 ALL")? {
        CommandBody::Sort { sort_criteria, .. } => Ok(sort_criteria),
        _ => Err(SearchSyntaxError::Invalid),
    }
}

/// THREAD's algorithm, as imap-codec reads it.
fn decode_algorithm(raw: &[u8]) -> Parsed<ThreadingAlgorithm<'static>> {
    match decode_in(b"THREAD ", raw, b" UTF-8 ALL")? {
        CommandBody::Thread { algorithm, .. } => Ok(algorithm),
        _ => Err(SearchSyntaxError::Invalid),
    }
}

/// The charset of `CHARSET x`, as imap-codec reads it.
fn decode_charset(raw: &[u8]) -> Parsed<Charset<'static>> {
    match decode_in(b"SEARCH CHARSET ", raw, b" ALL")? {
        CommandBody::Search {
            charset: Some(c), ..
        } => Ok(c),
        _ => Err(SearchSyntaxError::Invalid),
    }
}

/// A search key without nesting, as imap-codec reads it.
fn decode_leaf(raw: &[u8]) -> Parsed<SearchKey<'static>> {
    match decode_in(b"SEARCH ", raw, b"")? {
        CommandBody::Search { criteria, .. } if criteria.as_ref().len() == 1 => criteria
            .into_iter()
            .next()
            .ok_or(SearchSyntaxError::Invalid),
        _ => Err(SearchSyntaxError::Invalid),
    }
}

/// How many arguments a leaf key takes, by its name; `None` for a name that is no key.
fn arity(name: &[u8]) -> Option<usize> {
    const NONE: &[&str] = &[
        "ALL",
        "ANSWERED",
        "DELETED",
        "DRAFT",
        "FLAGGED",
        "NEW",
        "OLD",
        "RECENT",
        "SEEN",
        "UNANSWERED",
        "UNDELETED",
        "UNDRAFT",
        "UNFLAGGED",
        "UNSEEN",
    ];
    const ONE: &[&str] = &[
        "BCC",
        "BEFORE",
        "BODY",
        "CC",
        "FROM",
        "KEYWORD",
        "LARGER",
        "OLDER",
        "ON",
        "SENTBEFORE",
        "SENTON",
        "SENTSINCE",
        "SINCE",
        "SMALLER",
        "SUBJECT",
        "TEXT",
        "TO",
        "UID",
        "UNKEYWORD",
        "YOUNGER",
    ];
    let name = std::str::from_utf8(name).ok()?.to_ascii_uppercase();
    if NONE.contains(&name.as_str()) {
        Some(0)
    } else if ONE.contains(&name.as_str()) {
        Some(1)
    } else if name == "HEADER" {
        Some(2)
    } else if name
        .bytes()
        .all(|b| b.is_ascii_digit() || b"*:,".contains(&b))
    {
        // A sequence set.
        Some(0)
    } else {
        None
    }
}

/// A cursor over a command's bytes that reads IMAP's tokens; LIST's extended syntax
/// ([`super::list_syntax`]) reads with it too.
pub(crate) struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    max_nesting: usize,
}

impl<'a> Parser<'a> {
    /// A parser at the start of `input`, for syntax without nesting.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            max_nesting: 0,
        }
    }

    /// Where the parser stands.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Takes `byte` when it comes next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Whether only the line end is left.
    pub(crate) fn at_end(&self) -> bool {
        matches!(&self.input[self.pos..], b"\r\n" | b"\n")
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    pub(crate) fn space(&mut self) -> Parsed<()> {
        if self.peek() == Some(b' ') {
            self.pos += 1;
            Ok(())
        } else {
            Err(SearchSyntaxError::Invalid)
        }
    }

    /// Bytes up to a space, a parenthesis or the line end.
    pub(crate) fn word(&mut self) -> Parsed<&'a [u8]> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n' | b'"' | b'{') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(SearchSyntaxError::Invalid);
        }
        Ok(&self.input[start..self.pos])
    }

    /// Skips an astring: an atom, a quoted string or a literal (`{n}` or `{n+}`).
    pub(crate) fn astring(&mut self) -> Parsed<()> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        Some(b'\\') => self.pos += 2,
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        Some(b'\r' | b'\n') | None => return Err(SearchSyntaxError::Invalid),
                        Some(_) => self.pos += 1,
                    }
                }
            }
            Some(b'{') => {
                let close = self.input[self.pos..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or(SearchSyntaxError::Invalid)?;
                let inner = &self.input[self.pos + 1..self.pos + close];
                let digits = inner.strip_suffix(b"+").unwrap_or(inner);
                let length: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or(SearchSyntaxError::Invalid)?;
                self.pos += close + 1;
                if self.input[self.pos..].starts_with(b"\r\n") {
                    self.pos += 2;
                } else if self.input[self.pos..].starts_with(b"\n") {
                    self.pos += 1;
                } else {
                    return Err(SearchSyntaxError::Invalid);
                }
                self.pos = self
                    .pos
                    .checked_add(length)
                    .filter(|&end| end <= self.input.len())
                    .ok_or(SearchSyntaxError::Invalid)?;
                Ok(())
            }
            _ => self.word().map(|_| ()),
        }
    }

    /// `(opt opt…)` after RETURN; `()` is ALL (RFC 4731 3.1).
    fn return_options(&mut self) -> Parsed<ReturnOptions> {
        if self.peek() != Some(b'(') {
            return Err(SearchSyntaxError::Invalid);
        }
        self.pos += 1;
        let mut options = ReturnOptions::default();
        let mut any = false;
        while self.peek() != Some(b')') {
            if any {
                self.space()?;
            }
            let word = self.word()?;
            match word.to_ascii_uppercase().as_slice() {
                b"MIN" => options.min = true,
                b"MAX" => options.max = true,
                b"ALL" => options.all = true,
                b"COUNT" => options.count = true,
                b"SAVE" => options.save = true,
                _ => {
                    return Err(SearchSyntaxError::UnknownReturnOption(
                        String::from_utf8_lossy(word).into_owned(),
                    ));
                }
            }
            any = true;
        }
        self.pos += 1;
        if !any {
            options.all = true;
        }
        Ok(options)
    }

    /// A charset and the space after it.
    fn charset(&mut self) -> Parsed<Charset<'static>> {
        let start = self.pos;
        self.astring()?;
        let charset = decode_charset(&self.input[start..self.pos])?;
        self.space()?;
        Ok(charset)
    }

    /// The keys up to the end of the line, all of which must match.
    fn program(&mut self) -> Parsed<Vec<Program>> {
        let mut criteria = vec![self.key(1)?];
        while self.peek() == Some(b' ') {
            self.pos += 1;
            criteria.push(self.key(1)?);
        }
        if !self.at_end() {
            return Err(SearchSyntaxError::Invalid);
        }
        Ok(criteria)
    }

    /// One search key at nesting `depth` (a top-level key is at 1).
    fn key(&mut self, depth: usize) -> Parsed<Program> {
        if depth > self.max_nesting {
            return Err(SearchSyntaxError::TooDeep(self.max_nesting));
        }
        if self.peek() == Some(b'(') {
            self.pos += 1;
            let mut keys = vec![self.key(depth + 1)?];
            while self.peek() == Some(b' ') {
                self.pos += 1;
                keys.push(self.key(depth + 1)?);
            }
            if self.peek() != Some(b')') {
                return Err(SearchSyntaxError::Invalid);
            }
            self.pos += 1;
            return Ok(Program::And(keys));
        }
        let start = self.pos;
        let name = self.word()?;
        if name == b"$" {
            return Ok(Program::Saved);
        }
        if name.eq_ignore_ascii_case(b"NOT") {
            self.space()?;
            return Ok(Program::Not(Box::new(self.key(depth + 1)?)));
        }
        if name.eq_ignore_ascii_case(b"OR") {
            self.space()?;
            let a = self.key(depth + 1)?;
            self.space()?;
            let b = self.key(depth + 1)?;
            return Ok(Program::Or(Box::new(a), Box::new(b)));
        }
        if name.eq_ignore_ascii_case(b"UID") && self.input[self.pos..].starts_with(b" $") {
            let after = self.input.get(self.pos + 2).copied();
            if matches!(after, None | Some(b' ' | b')' | b'\r' | b'\n')) {
                self.pos += 2;
                return Ok(Program::Saved);
            }
        }
        if name.eq_ignore_ascii_case(b"EMAILID") || name.eq_ignore_ascii_case(b"THREADID") {
            let email = name.eq_ignore_ascii_case(b"EMAILID");
            self.space()?;
            let id = self.word()?;
            // RFC 8474 7: objectid = 1*255(ALPHA / DIGIT / "_" / "-").
            let valid = id.len() <= 255
                && id
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
            if !valid {
                return Err(SearchSyntaxError::Invalid);
            }
            let id = String::from_utf8_lossy(id).into_owned();
            return Ok(if email {
                Program::EmailId(id)
            } else {
                Program::ThreadId(id)
            });
        }
        let arguments = if name.eq_ignore_ascii_case(b"MODSEQ") {
            // RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer; the
            // entry name is a quoted string.
            if self.input[self.pos..].starts_with(b" \"") {
                3
            } else {
                1
            }
        } else {
            arity(name).ok_or(SearchSyntaxError::Invalid)?
        };
        for _ in 0..arguments {
            self.space()?;
            self.astring()?;
        }
        decode_leaf(&self.input[start..self.pos]).map(Program::Key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn or_chain(n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!("OR SUBJECT s{i} "));
        }
        s.push_str("ALL");
        s
    }

    /// The program as imap-codec's keys, where it has no `$`.
    fn as_key(p: Program) -> SearchKey<'static> {
        match p {
            Program::Key(k) => k,
            Program::Saved | Program::EmailId(_) | Program::ThreadId(_) => {
                panic!("{p:?} has no imap-codec key")
            }
            Program::Not(p) => SearchKey::Not(Box::new(as_key(*p))),
            Program::Or(a, b) => SearchKey::Or(Box::new(as_key(*a)), Box::new(as_key(*b))),
            Program::And(ps) => SearchKey::And(
                Vec1::try_from(ps.into_iter().map(as_key).collect::<Vec<_>>()).unwrap(),
            ),
        }
    }

    #[test]
    fn what_imap_codec_parses_reads_the_same() {
        for program in [
            "ALL",
            "1:3,5 UNSEEN",
            "OR FROM \"a b\" (TO c SMALLER 10)",
            "MODSEQ 5",
            "NOT MODSEQ \"/flags/\\\\seen\" all 1",
            "CHARSET UTF-8 HEADER X-Y z NOT DELETED",
            "SUBJECT {3}\r\nabc SEEN",
            "OLDER 10 YOUNGER 5",
        ] {
            let line = format!("t SEARCH {program}\r\n");
            let (_, expected) = CommandCodec::default().decode(line.as_bytes()).unwrap();
            let CommandBody::Search {
                charset,
                criteria,
                uid,
            } = expected.into_static().body
            else {
                panic!("not a SEARCH");
            };
            let (tag, parsed) = parse(line.as_bytes(), 64).unwrap();
            assert_eq!(tag.inner(), "t");
            assert_eq!(
                (parsed.uid, parsed.charset, parsed.returns),
                (uid, charset, None)
            );
            let keys: Vec<_> = parsed.criteria.into_iter().map(as_key).collect();
            assert_eq!(keys, criteria.into_inner(), "{program}");
        }
    }

    #[test]
    fn return_options_and_the_saved_result() {
        let (_, c) = parse(b"t UID SEARCH RETURN (min Max COUNT) UID $ DELETED\r\n", 64).unwrap();
        assert!(c.uid);
        let r = c.returns.unwrap();
        assert!(r.min && r.max && r.count && !r.all && !r.save);
        assert_eq!(c.criteria[0], Program::Saved);
        let (_, c) = parse(b"t SEARCH RETURN () OR $ 1:5\r\n", 64).unwrap();
        assert_eq!(
            c.returns.unwrap(),
            ReturnOptions {
                all: true,
                ..Default::default()
            }
        );
        assert!(matches!(&c.criteria[0], Program::Or(a, _) if **a == Program::Saved));
        let (_, c) = parse(b"t SEARCH RETURN (SAVE) CHARSET UTF-8 UID 1:4\r\n", 64).unwrap();
        assert!(c.returns.unwrap().save && matches!(c.criteria[0], Program::Key(_)));
        assert_eq!(
            parse(b"t SEARCH RETURN (PARTIAL) ALL\r\n", 64),
            Err(SearchSyntaxError::UnknownReturnOption("PARTIAL".into()))
        );
        for bad in [
            "t SEARCH RETURN ALL\r\n",
            "t SEARCH RETURN (MIN\r\n",
            "t SEARCH RETURN (MIN  MAX) ALL\r\n",
            "t SEARCH $$\r\n",
            "t SEARCH UID $1\r\n",
        ] {
            assert_eq!(
                parse(bad.as_bytes(), 64),
                Err(SearchSyntaxError::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sort_and_thread_frames_take_the_same_programs() {
        let (_, c) = parse(b"t UID SORT (REVERSE date SUBJECT) UTF-8 $ 1:5\r\n", 64).unwrap();
        assert!(c.uid);
        let Answer::Sort(criteria) = &c.answer else {
            panic!("{c:?}")
        };
        assert_eq!(criteria.as_ref().len(), 2);
        assert!(criteria.as_ref()[0].reverse);
        assert_eq!(c.criteria.len(), 2);
        assert_eq!(c.criteria[0], Program::Saved);
        let line = format!("t THREAD REFERENCES US-ASCII {}\r\n", or_chain(30));
        let (_, c) = parse(line.as_bytes(), 64).unwrap();
        assert_eq!(c.answer, Answer::Thread(ThreadingAlgorithm::References));
        assert!(c.charset.is_some());
        // SORT needs its criteria and a charset; RETURN is SEARCH's only.
        for bad in [
            "t SORT UTF-8 $\r\n",
            "t SORT (DATE) $\r\n",
            "t SORT () UTF-8 $\r\n",
            "t SORT (DATE) RETURN (ALL) UTF-8 $\r\n",
            "t THREAD UTF-8 $\r\n",
        ] {
            assert!(parse(bad.as_bytes(), 64).is_err(), "{bad}");
        }
    }

    #[test]
    fn depth_is_bounded_by_the_limit() {
        let line = format!("t UID SEARCH {}\r\n", or_chain(30));
        assert!(parse(line.as_bytes(), 64).is_ok());
        assert_eq!(
            parse(line.as_bytes(), 20),
            Err(SearchSyntaxError::TooDeep(20))
        );
        let parens = format!("t SEARCH {}ALL{}\r\n", "(".repeat(20), ")".repeat(20));
        assert_eq!(parse(parens.as_bytes(), 21).map(|_| ()), Ok(()));
        assert!(parse(parens.as_bytes(), 20).is_err());
        for bad in [
            "t SEARCH (ALL\r\n",
            "t SEARCH OR ALL\r\n",
            "t SEARCH FROBNICATE\r\n",
            "t SEARCH SUBJECT {9}\r\nabc\r\n",
            "t FETCH 1 FLAGS\r\n",
            "t SEARCH ALL junk)\r\n",
        ] {
            assert_eq!(
                parse(bad.as_bytes(), 64),
                Err(SearchSyntaxError::Invalid),
                "{bad:?}"
            );
        }
    }
}
