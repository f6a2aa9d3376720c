//! The layout of LightGBM's text model: a header of `key=value` lines, then
//! `Tree=N` blocks of `key=value` lines separated by blank lines, then
//! `end of trees`. Everything after that (feature importances, the
//! `parameters:` section, Python's `pandas_categorical:` line) says nothing
//! about predictions and is never read, so it may hold anything.
//!
//! This module only cuts the text into borrowed lines and fields; the
//! meaning of the fields is checked by the model and tree modules. Nothing
//! here allocates more than a small fixed amount per line of input.

use std::str::FromStr;

use super::error::{LoadError, TreeDefect};

/// `key=value` lines, in file order, both sides borrowed from the input.
type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A tree block: its `key=value` lines, in file order.
pub(crate) struct Block<'a> {
    /// Byte offset of its `Tree=` line.
    offset: usize,
    fields: Fields<'a>,
}

impl<'a> Block<'a> {
    /// The value of `key`; the last one wins, as in LightGBM's key map.
    pub(crate) fn get(&self, key: &str) -> Option<&'a [u8]> {
        find(&self.fields, key)
    }
}

/// The header and tree blocks of a model file.
pub(crate) struct Document<'a> {
    header: Fields<'a>,
    pub(crate) trees: Vec<Block<'a>>,
}

impl<'a> Document<'a> {
    /// The header value of `key`, last one winning (`""` for a bare key
    /// such as `average_output`).
    pub(crate) fn header(&self, key: &str) -> Option<&'a [u8]> {
        find(&self.header, key)
    }
}

fn find<'a>(fields: &[(&'a [u8], &'a [u8])], key: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| *k == key.as_bytes())
        .map(|&(_, v)| v)
}

/// LightGBM reads at most this many lines of a tree block (the number of
/// keys a linear tree has); more would be silently dropped there.
const MAX_TREE_LINES: usize = 22;

/// Header keys whose value may itself contain `=`.
const FREE_TEXT_KEYS: [&[u8]; 2] = [b"feature_names", b"monotone_constraints"];

/// Lines of the input, `\n` or `\r\n` terminated, with their 1-based number
/// and byte offset.
struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
    number: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let (line, advance) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], end + 1),
            None => (rest, rest.len()),
        };
        self.pos += advance;
        self.number += 1;
        Some((self.number, line.strip_suffix(b"\r").unwrap_or(line)))
    }

    /// Skips blank lines and returns the next line with its byte offset.
    fn next_non_blank(&mut self) -> Option<(usize, usize, &'a [u8])> {
        loop {
            let offset = self.pos;
            let (number, line) = self.next()?;
            if !line.is_empty() {
                return Some((offset, number, line));
            }
        }
    }

    fn truncated(&self, what: &str) -> LoadError {
        LoadError::Syntax {
            line: self.number + 1,
            reason: format!("the text ends before {what}"),
        }
    }
}

/// Cuts `text` into header and tree blocks, up to `end of trees`.
pub(crate) fn parse(text: &[u8]) -> Result<Document<'_>, LoadError> {
    let mut lines = Lines {
        text,
        pos: 0,
        number: 0,
    };
    // LightGBM picks the model class from the first line; `tree` is the
    // only one it has.
    match lines.next() {
        Some((_, b"tree")) => {}
        _ => {
            return Err(LoadError::Syntax {
                line: 1,
                reason: "the first line is not `tree` (not a LightGBM text model)".into(),
            })
        }
    }
    let mut header = Vec::new();
    let (mut offset, mut number, mut line) = loop {
        let (offset, number, line) = lines
            .next_non_blank()
            .ok_or_else(|| lines.truncated("the first tree"))?;
        if line.starts_with(b"Tree=") || line == b"end of trees" {
            break (offset, number, line);
        }
        header.push(header_field(number, line)?);
    };
    let trees_start = offset;
    let mut trees = Vec::new();
    while line.starts_with(b"Tree=") {
        trees.push(Block {
            offset,
            fields: block_fields(&mut lines, trees.len())?,
        });
        (offset, number, line) = lines
            .next_non_blank()
            .ok_or_else(|| lines.truncated("`end of trees`"))?;
    }
    if line != b"end of trees" {
        return Err(LoadError::Syntax {
            line: number,
            reason: "expected `Tree=` or `end of trees`".into(),
        });
    }
    let doc = Document { header, trees };
    check_tree_sizes(&doc, text, trees_start, offset)?;
    Ok(doc)
}

fn header_field(number: usize, line: &[u8]) -> Result<(&[u8], &[u8]), LoadError> {
    let mut parts = line.splitn(2, |&b| b == b'=');
    let key = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or_default();
    if value.contains(&b'=') && !FREE_TEXT_KEYS.contains(&key) {
        return Err(LoadError::Syntax {
            line: number,
            reason: "more than one `=` in a header line".into(),
        });
    }
    Ok((key, value))
}

/// Reads the `key=value` lines after a `Tree=` line, up to a blank line.
fn block_fields<'a>(lines: &mut Lines<'a>, tree: usize) -> Result<Fields<'a>, LoadError> {
    let defect = |d| LoadError::Tree { tree, defect: d };
    let mut fields = Vec::new();
    loop {
        let (_, line) = lines
            .next()
            .ok_or_else(|| lines.truncated("the end of a tree block"))?;
        if line.is_empty() {
            return Ok(fields);
        }
        if fields.len() == MAX_TREE_LINES {
            return Err(defect(TreeDefect::TooManyLines(MAX_TREE_LINES)));
        }
        let eq = line
            .iter()
            .position(|&b| b == b'=')
            .ok_or(defect(TreeDefect::NotKeyValue))?;
        fields.push((&line[..eq], &line[eq + 1..]));
    }
}

/// LightGBM locates tree `i` at the sum of the first `i` `tree_sizes`
/// (bytes from the first `Tree=` line), not by reading sequentially. Both
/// agree on every file it writes; when they would not, the file is
/// refused rather than read differently from LightGBM.
fn check_tree_sizes(
    doc: &Document<'_>,
    text: &[u8],
    trees_start: usize,
    trees_end: usize,
) -> Result<(), LoadError> {
    let Some(raw) = doc.header("tree_sizes") else {
        return Ok(());
    };
    let bad = |reason: String| LoadError::Field {
        field: "tree_sizes".into(),
        reason,
    };
    let sizes: Vec<usize> = parse_tokens(raw).map_err(|t| bad(format!("cannot parse `{t}`")))?;
    if sizes.len() != doc.trees.len() {
        return Err(bad(format!(
            "{} sizes for {} trees",
            sizes.len(),
            doc.trees.len()
        )));
    }
    let mut at = trees_start;
    for (i, (size, tree)) in sizes.iter().zip(&doc.trees).enumerate() {
        if tree.offset != at {
            return Err(bad(format!("tree {i} does not start where the sizes say")));
        }
        at = at
            .checked_add(*size)
            .filter(|&end| end <= trees_end)
            .ok_or_else(|| bad(format!("tree {i} extends past `end of trees`")))?;
    }
    // Only blank lines may separate the last tree from `end of trees`.
    if text[at..trees_end]
        .iter()
        .any(|&b| b != b'\n' && b != b'\r')
    {
        return Err(bad("the sizes do not cover every tree".into()));
    }
    Ok(())
}

/// Parses every space-separated token of `value` (LightGBM skips empty
/// tokens). On failure returns the offending token, cut to 40 characters.
pub(crate) fn parse_tokens<T: FromStr>(value: &[u8]) -> Result<Vec<T>, String> {
    value
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .map(|t| {
            std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| String::from_utf8_lossy(&t[..t.len().min(40)]).into_owned())
        })
        .collect()
}

/// [`parse_tokens`] for a tree field, checking the count.
pub(crate) fn tree_array<T: FromStr>(
    tree: usize,
    block: &Block<'_>,
    field: &'static str,
    expected: usize,
) -> Result<Vec<T>, LoadError> {
    let defect = |d| LoadError::Tree { tree, defect: d };
    let raw = block
        .get(field)
        .ok_or(defect(TreeDefect::MissingField(field)))?;
    let values: Vec<T> =
        parse_tokens(raw).map_err(|token| defect(TreeDefect::BadToken { field, token }))?;
    if values.len() != expected {
        return Err(defect(TreeDefect::ArrayLength {
            field,
            expected,
            found: values.len(),
        }));
    }
    Ok(values)
}

/// A single integer tree field such as `num_leaves`.
pub(crate) fn tree_int(
    tree: usize,
    block: &Block<'_>,
    field: &'static str,
) -> Result<i64, LoadError> {
    let mut v = tree_array::<i64>(tree, block, field, 1)?;
    Ok(v.pop().unwrap_or_default())
}
