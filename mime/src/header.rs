//! Header blocks: where a header ends, its fields (with their original lines, for
//! HEADER.FIELDS), and values unfolded the way Dovecot's envelope code sees them.

use std::ops::Range;

/// One header field: `lines` is the original text including continuation lines and the
/// final line break; `value` starts after the colon and leading blanks.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
    pub(crate) lines: Range<usize>,
}

/// Splits `data[start..limit]` into header lines. `is_boundary(line_start)` lets the MIME
/// parser stop a header early at a boundary line. Returns the fields, the end of the header
/// block (after the blank line if there is one) and whether a blank line ended it.
pub(crate) fn parse_fields(
    data: &[u8],
    start: usize,
    mut is_boundary: impl FnMut(usize) -> bool,
) -> (Vec<Field>, usize, bool) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = start;
    while pos < data.len() {
        let line_end = line_end(data, pos);
        let line = &data[pos..line_end];
        if line == b"\r\n" || line == b"\n" {
            return (fields, line_end, true);
        }
        if (line[0] == b' ' || line[0] == b'\t') && !fields.is_empty() {
            // continuation of the previous field
            if let Some(last) = fields.last_mut() {
                last.value.end = line_end;
                last.lines.end = line_end;
            }
            pos = line_end;
            continue;
        }
        if is_boundary(pos) {
            return (fields, pos, false);
        }
        let (name, value_start) = match line.iter().position(|&c| c == b':') {
            Some(colon) => {
                let mut name_end = pos + colon;
                while name_end > pos && matches!(data[name_end - 1], b' ' | b'\t') {
                    name_end -= 1;
                }
                let mut v = pos + colon + 1;
                while v < line_end && matches!(data[v], b' ' | b'\t') {
                    v += 1;
                }
                (pos..name_end, v)
            }
            // a line without a colon: Dovecot keeps it as a field with no value
            None => (pos..trim_eol_end(data, pos, line_end), line_end),
        };
        fields.push(Field {
            name,
            value: value_start..line_end,
            lines: pos..line_end,
        });
        pos = line_end;
    }
    (fields, data.len(), false)
}

/// End of the line starting at `pos` (after its LF, or the end of data).
pub(crate) fn line_end(data: &[u8], pos: usize) -> usize {
    match data[pos..].iter().position(|&c| c == b'\n') {
        Some(i) => pos + i + 1,
        None => data.len(),
    }
}

fn trim_eol_end(data: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(data[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    end
}

impl Field {
    pub(crate) fn name<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.name.clone()]
    }

    /// The value with the final line break removed; inner folding is kept (as Dovecot's
    /// `full_value`), so callers decide how to unfold.
    pub(crate) fn raw_value<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let end = trim_eol_end(data, self.value.start, self.value.end);
        &data[self.value.start..end]
    }

    pub(crate) fn is(&self, data: &[u8], name: &str) -> bool {
        self.name(data).eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The last field called `name` (Dovecot's envelope and MIME parsers let a later field
/// overwrite an earlier one).
pub(crate) fn last<'f>(fields: &'f [Field], data: &[u8], name: &str) -> Option<&'f Field> {
    fields.iter().rev().find(|f| f.is(data, name))
}

/// The first field called `name`.
pub(crate) fn first<'f>(fields: &'f [Field], data: &[u8], name: &str) -> Option<&'f Field> {
    fields.iter().find(|f| f.is(data, name))
}
