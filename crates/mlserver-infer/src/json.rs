//! JSON as MLServer's Python side sees it: objects keep their keys in
//! document order (a later duplicate replaces the value in place, as in a
//! Python `dict`), integers stay integers, and there are three ways to write
//! a value back out, because MLServer's output file mixes them:
//!
//! - [`Json::write_pydantic`]: pydantic's `model_dump_json` (compact, UTF-8,
//!   floats as pydantic-core prints them, non-finite floats as `null`), used
//!   for the response lines;
//! - [`Json::write_py_dumps`]: Python's `json.dumps` (`", "` and `": "`
//!   separators, `ensure_ascii`, floats as `repr`), used for the error lines;
//! - [`Json::py_repr`] / [`Json::py_str`]: Python's `repr()` / `str()`, which
//!   MLServer applies to split output parameters.

use std::fmt;
use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// An order-preserving JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// Any integer literal that fits `i64` or `u64`.
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(IndexMap<String, Json>),
}

impl Json {
    /// Parses one JSON document (surrounding whitespace allowed).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Json, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.get(key),
            _ => None,
        }
    }

    /// The Python type name of the value Python's JSON parsers produce
    /// (used in messages that imitate Python's).
    pub(crate) fn py_type(&self) -> &'static str {
        match self {
            Json::Null => "NoneType",
            Json::Bool(_) => "bool",
            Json::Int(_) => "int",
            Json::Float(_) => "float",
            Json::Str(_) => "str",
            Json::Array(_) => "list",
            Json::Object(_) => "dict",
        }
    }

    /// Compact JSON as pydantic's `model_dump_json` writes it.
    pub(crate) fn write_pydantic(&self, out: &mut String) {
        self.write_styled(out, &PYDANTIC);
    }

    /// JSON as Python's `json.dumps` writes it with its defaults.
    pub(crate) fn write_py_dumps(&self, out: &mut String) {
        self.write_styled(out, &PY_DUMPS);
    }

    fn write_styled(&self, out: &mut String, style: &Style) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Float(f) => (style.float)(*f, out),
            Json::Str(s) => (style.string)(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(style.item_separator);
                    }
                    item.write_styled(out, style);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(style.item_separator);
                    }
                    (style.string)(k, out);
                    out.push_str(style.key_separator);
                    v.write_styled(out, style);
                }
                out.push('}');
            }
        }
    }

    /// `json.dumps(value)` as a string.
    pub(crate) fn py_dumps(&self) -> String {
        let mut s = String::new();
        self.write_py_dumps(&mut s);
        s
    }

    /// Python's `repr()` of the value Python's JSON parsers produce.
    pub(crate) fn py_repr(&self) -> String {
        let mut s = String::new();
        self.write_py_repr(&mut s);
        s
    }

    fn write_py_repr(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("None"),
            Json::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Float(f) => out.push_str(&py_float_repr(*f)),
            Json::Str(s) => out.push_str(&py_str_repr(s)),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_py_repr(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&py_str_repr(k));
                    out.push_str(": ");
                    v.write_py_repr(out);
                }
                out.push('}');
            }
        }
    }

    /// Python's `str()`: a string is itself, anything else its `repr()`.
    pub(crate) fn py_str(&self) -> String {
        match self {
            Json::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }
}

/// A float as pydantic-core writes it: the shortest round-trip digits in
/// ryu's layout, with an explicit `+` on positive exponents (`1e+20`);
/// infinities and NaN become `null`.
/// What differs between the two writers MLServer's output goes through.
struct Style {
    item_separator: &'static str,
    key_separator: &'static str,
    float: fn(f64, &mut String),
    string: fn(&str, &mut String),
}

/// pydantic's `model_dump_json`: compact, UTF-8 strings.
const PYDANTIC: Style = Style {
    item_separator: ",",
    key_separator: ":",
    float: write_pydantic_float,
    string: write_json_str,
};

/// `json.dumps` with its defaults: spaced, ASCII strings, `NaN` and
/// `Infinity` for non-finite floats.
const PY_DUMPS: Style = Style {
    item_separator: ", ",
    key_separator: ": ",
    float: write_py_dumps_float,
    string: write_ascii_json_str,
};

fn write_py_dumps_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        out.push_str(&py_float_repr(f));
    }
}

pub(crate) fn write_pydantic_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push_str("null");
        return;
    }
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(f);
    match s.find('e') {
        Some(e) if !s[e + 1..].starts_with('-') => {
            out.push_str(&s[..=e]);
            out.push('+');
            out.push_str(&s[e + 1..]);
        }
        _ => out.push_str(s),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional between
/// 1e-4 and 1e16, else `d.ddde±XX`.
pub(crate) fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as Python's
    // repr does; only the layout differs.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if point >= digits.len() {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    }
    out
}

/// A JSON string with serde_json's (and pydantic-core's) escaping: only
/// `"`, `\` and control characters are escaped; the rest stays UTF-8.
pub(crate) fn write_json_str(s: &str, out: &mut String) {
    write_escaped(s, out, Escape::Utf8);
}

/// A JSON string as `json.dumps` writes it (`ensure_ascii=True`): every
/// non-ASCII character as `\uXXXX`, astral ones as surrogate pairs.
pub(crate) fn write_ascii_json_str(s: &str, out: &mut String) {
    write_escaped(s, out, Escape::Ascii { upper_hex: false });
}

/// A JSON string in ASCII with upper-case `\uXXXX` digits, as
/// python-rapidjson writes it.
pub(crate) fn write_rapidjson_str(s: &str, out: &mut String) {
    write_escaped(s, out, Escape::Ascii { upper_hex: true });
}

/// What a JSON string writer escapes beyond `"`, `\` and control characters.
#[derive(Clone, Copy)]
enum Escape {
    /// Nothing: the rest stays UTF-8.
    Utf8,
    /// Every non-ASCII character, as UTF-16 `\uXXXX` units.
    Ascii { upper_hex: bool },
}

fn write_escaped(s: &str, out: &mut String, escape: Escape) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20
                || (c as u32 > 0x7f && matches!(escape, Escape::Ascii { .. })) =>
            {
                let upper = matches!(escape, Escape::Ascii { upper_hex: true });
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = if upper {
                        write!(out, "\\u{unit:04X}")
                    } else {
                        write!(out, "\\u{unit:04x}")
                    };
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(str)`: single quotes unless the text has a single quote
/// and no double quote; non-printable characters escaped.
pub(crate) fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !py_printable(c) => {
                let n = c as u32;
                let _ = if n < 0x100 {
                    write!(out, "\\x{n:02x}")
                } else if n < 0x10000 {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// An approximation of Python's `str.isprintable` for one character: the
/// control and format characters and the non-ASCII separators are not.
fn py_printable(c: char) -> bool {
    let n = c as u32;
    !(n < 0x20
        || (0x7f..=0xa0).contains(&n)
        || n == 0xad
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x206f).contains(&n)
        || n == 0x3000
        || n == 0xfeff)
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = IndexMap::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            // A Python dict keeps a repeated key where it first appeared,
            // with the last value: IndexMap::insert does the same.
            members.insert(k, v);
        }
        Ok(Json::Object(members))
    }
}

/// Writes one byte string, or says why it cannot be written.
pub(crate) type WriteBytes<'a> = dyn FnMut(&[u8], &mut String) -> Result<(), String> + 'a;

/// A typed tensor's elements as a flat JSON array: integers and booleans
/// as Python prints them, floats with `float` (pydantic's and
/// python-rapidjson's spellings differ), byte strings with `bytes`, which
/// may refuse one (invalid UTF-8).
pub(crate) fn write_tensor_elements(
    data: &mlserver_types::TensorData,
    out: &mut String,
    float: fn(f64, &mut String),
    bytes: &mut WriteBytes<'_>,
) -> Result<(), String> {
    use mlserver_types::TensorData;
    fn each<T>(
        v: &[T],
        out: &mut String,
        mut write: impl FnMut(&T, &mut String) -> Result<(), String>,
    ) -> Result<(), String> {
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write(x, out)?;
        }
        Ok(())
    }
    fn int<T: std::fmt::Display>(x: &T, out: &mut String) -> Result<(), String> {
        let _ = write!(out, "{x}");
        Ok(())
    }
    let f = |x: f64, out: &mut String| {
        float(x, out);
        Ok(())
    };
    out.push('[');
    match data {
        TensorData::Bool(v) => each(v, out, |x, out| {
            out.push_str(if *x { "true" } else { "false" });
            Ok(())
        }),
        TensorData::Uint8(v) => each(v, out, int),
        TensorData::Uint16(v) => each(v, out, int),
        TensorData::Uint32(v) => each(v, out, int),
        TensorData::Uint64(v) => each(v, out, int),
        TensorData::Int8(v) => each(v, out, int),
        TensorData::Int16(v) => each(v, out, int),
        TensorData::Int32(v) => each(v, out, int),
        TensorData::Int64(v) => each(v, out, int),
        TensorData::Fp16(v) => each(v, out, |x, out| f(f64::from(*x), out)),
        TensorData::Bf16(v) => each(v, out, |x, out| f(f64::from(*x), out)),
        TensorData::Fp32(v) => each(v, out, |x, out| f(f64::from(*x), out)),
        TensorData::Fp64(v) => each(v, out, |x, out| f(*x, out)),
        TensorData::Bytes(v) => each(v, out, |x, out| bytes(x, out)),
    }?;
    out.push(']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pyd(f: f64) -> String {
        let mut s = String::new();
        write_pydantic_float(f, &mut s);
        s
    }

    #[test]
    fn floats_are_written_as_pydantic_writes_them() {
        // Each pair was printed by pydantic 2 (MLServer 1.7.1's venv).
        for (f, want) in [
            (1e-7, "1e-7"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (123456789012345680000.0, "1.2345678901234568e+20"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (5e-324, "5e-324"),
            (1e15, "1000000000000000.0"),
            (1e-5, "0.00001"),
            (0.0001, "0.0001"),
            (f64::from(6.6f32), "6.599999904632568"),
            (f64::INFINITY, "null"),
            (f64::NAN, "null"),
        ] {
            assert_eq!(pyd(f), want, "{f:e}");
        }
    }

    #[test]
    fn floats_are_repr_as_python_does() {
        for (f, want) in [
            (1e-7, "1e-07"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5, "1.5"),
            (-2.0, "-2.0"),
            (1e30, "1e+30"),
            (1.2345e-10, "1.2345e-10"),
            (123.456, "123.456"),
            (0.5, "0.5"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(py_float_repr(f), want, "{f:e}");
        }
    }

    #[test]
    fn objects_keep_document_order_and_duplicates_replace_in_place() {
        let v = Json::parse(br#"{"b": 1, "a": [1, 2.5, "x"], "b": null}"#).unwrap();
        let mut s = String::new();
        v.write_pydantic(&mut s);
        assert_eq!(s, r#"{"b":null,"a":[1,2.5,"x"]}"#);
        assert_eq!(v.py_dumps(), r#"{"b": null, "a": [1, 2.5, "x"]}"#);
        assert_eq!(v.py_repr(), "{'b': None, 'a': [1, 2.5, 'x']}");
    }

    #[test]
    fn strings_escape_as_json_dumps_and_pydantic_do() {
        // What Python printed for the same text.
        let v = Json::Str("héllo\n\u{2028} \u{1} 😀 /\u{7f}".into());
        assert_eq!(
            v.py_dumps(),
            "\"h\\u00e9llo\\n\\u2028 \\u0001 \\ud83d\\ude00 /\u{7f}\""
        );
        let mut s = String::new();
        v.write_pydantic(&mut s);
        assert_eq!(s, "\"héllo\\n\u{2028} \\u0001 😀 /\u{7f}\"");
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_str_repr("\u{1}é"), "'\\x01é'");
        assert_eq!(Json::Str("x".into()).py_str(), "x");
        assert_eq!(Json::Bool(true).py_str(), "True");
    }
}
