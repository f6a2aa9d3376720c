//! A defensive reader for the UBJSON subset XGBoost writes.
//!
//! XGBoost writes objects as `{` (`L` int64 key length, key bytes, value)*
//! `}`, arrays as `[#L<count>` followed by values, and numeric arrays as
//! strongly typed `[$<type>#L<count>` followed by big-endian payload. Scalars
//! are `Z T F i U I l L d D S` (`d` is float32, everything big-endian).
//!
//! Every declared count is checked against the bytes that remain *before*
//! anything is allocated, so a forged count of 2^62 fails fast instead of
//! asking for exabytes, and nesting is bounded.

use crate::json::{SyntaxError, MAX_DEPTH};
use crate::value::Value;

/// Parses one UBJSON document; nothing may follow it.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, SyntaxError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let value = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(r.error("trailing data after the document"));
    }
    Ok(value)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, reason: &'static str) -> SyntaxError {
        SyntaxError {
            offset: self.pos,
            reason,
        }
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, SyntaxError> {
        let c = *self
            .b
            .get(self.pos)
            .ok_or_else(|| self.error("unexpected end of input"))?;
        self.pos += 1;
        Ok(c)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], SyntaxError> {
        let bytes = self
            .b
            .get(self.pos..self.pos + N)
            .ok_or_else(|| self.error("unexpected end of input"))?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    /// Reads an integer whose type marker is `marker`.
    fn int_of(&mut self, marker: u8) -> Result<i64, SyntaxError> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.take()?)),
            b'U' => i64::from(u8::from_be_bytes(self.take()?)),
            b'I' => i64::from(i16::from_be_bytes(self.take()?)),
            b'l' => i64::from(i32::from_be_bytes(self.take()?)),
            b'L' => i64::from_be_bytes(self.take()?),
            _ => return Err(self.error("expected an integer type marker")),
        })
    }

    /// A length or count: an integer of any width, never negative.
    fn count(&mut self) -> Result<usize, SyntaxError> {
        let marker = self.byte()?;
        let n = self.int_of(marker)?;
        usize::try_from(n).map_err(|_| self.error("negative length"))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let len = self.count()?;
        if len > self.remaining() {
            return Err(self.error("string length exceeds the input"));
        }
        let bytes = &self.b[self.pos..self.pos + len];
        let s = std::str::from_utf8(bytes).map_err(|_| self.error("string is not valid UTF-8"))?;
        self.pos += len;
        Ok(s.to_owned())
    }

    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let mut marker = self.byte()?;
        while marker == b'N' {
            marker = self.byte()?; // no-op padding
        }
        Ok(match marker {
            b'{' => self.object(depth)?,
            b'[' => self.array(depth)?,
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Int(self.int_of(marker)?),
            b'C' => Value::Int(i64::from(self.byte()?)),
            b'd' => Value::Float(f32::from_be_bytes(self.take()?)),
            // XGBoost narrows float64 to its float32 `Number` too.
            b'D' => Value::Float(f64::from_be_bytes(self.take()?) as f32),
            b'S' => Value::Str(self.string()?),
            b'H' => return Err(self.error("high-precision numbers are not supported")),
            _ => {
                self.pos -= 1;
                return Err(self.error("unknown type marker"));
            }
        })
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if matches!(self.peek(), Some(b'$' | b'#')) {
            return Err(self.error("optimized object containers are not supported"));
        }
        let mut members = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unexpected end of input")),
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                Some(b'N') => self.pos += 1,
                Some(_) => {
                    let key = self.string()?;
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        match self.peek() {
            Some(b'$') => {
                self.pos += 1;
                let ty = self.byte()?;
                if self.byte()? != b'#' {
                    self.pos -= 1;
                    return Err(self.error("typed array without a count"));
                }
                let n = self.count()?;
                self.typed_array(ty, n)
            }
            Some(b'#') => {
                self.pos += 1;
                let n = self.count()?;
                // Every element takes at least one byte.
                if n > self.remaining() {
                    return Err(self.error("array count exceeds the input"));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            _ => {
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.error("unexpected end of input")),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Array(items));
                        }
                        Some(_) => items.push(self.value(depth + 1)?),
                    }
                }
            }
        }
    }

    fn typed_array(&mut self, ty: u8, n: usize) -> Result<Value, SyntaxError> {
        let width = match ty {
            b'i' | b'U' => 1,
            b'I' => 2,
            b'l' | b'd' => 4,
            b'L' | b'D' => 8,
            _ => return Err(self.error("unsupported typed-array element type")),
        };
        let fits = n
            .checked_mul(width)
            .is_some_and(|bytes| bytes <= self.remaining());
        if !fits {
            return Err(self.error("typed array count exceeds the input"));
        }
        Ok(match ty {
            b'd' => Value::F32s(
                (0..n)
                    .map(|_| self.take().map(f32::from_be_bytes))
                    .collect::<Result<_, _>>()?,
            ),
            b'D' => Value::F32s(
                (0..n)
                    .map(|_| self.take().map(|b| f64::from_be_bytes(b) as f32))
                    .collect::<Result<_, _>>()?,
            ),
            _ => Value::Ints((0..n).map(|_| self.int_of(ty)).collect::<Result<_, _>>()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Vec<u8> {
        let mut v = vec![b'L'];
        v.extend_from_slice(&(k.len() as i64).to_be_bytes());
        v.extend_from_slice(k.as_bytes());
        v
    }

    #[test]
    fn reads_the_subset_xgboost_writes() {
        let mut doc = vec![b'{'];
        doc.extend(key("f"));
        doc.extend_from_slice(b"[$d#L");
        doc.extend_from_slice(&2i64.to_be_bytes());
        doc.extend_from_slice(&0.5f32.to_be_bytes());
        doc.extend_from_slice(&(-2.25f32).to_be_bytes());
        doc.extend(key("i"));
        doc.extend_from_slice(b"[$U#i\x02\x00\xff");
        doc.extend(key("a"));
        doc.extend_from_slice(b"[#L");
        doc.extend_from_slice(&3i64.to_be_bytes());
        doc.extend_from_slice(b"i\xfeTZ");
        doc.extend(key("s"));
        doc.push(b'S');
        doc.extend(key("gbtree"));
        doc.push(b'}');
        let v = parse(&doc).expect("valid");
        assert_eq!(v.get("f"), Some(&Value::F32s(vec![0.5, -2.25])));
        assert_eq!(v.get("i"), Some(&Value::Ints(vec![0, 255])));
        assert_eq!(
            v.get("a"),
            Some(&Value::Array(vec![
                Value::Int(-2),
                Value::Bool(true),
                Value::Null
            ]))
        );
        assert_eq!(v.get("s").and_then(Value::as_str), Some("gbtree"));
    }

    #[test]
    fn huge_declared_counts_fail_before_allocating() {
        let mut typed = b"[$d#L".to_vec();
        typed.extend_from_slice(&(1i64 << 61).to_be_bytes());
        assert!(parse(&typed).is_err());
        let mut overflow = b"[$L#L".to_vec();
        overflow.extend_from_slice(&i64::MAX.to_be_bytes());
        assert!(parse(&overflow).is_err());
        let mut plain = b"[#L".to_vec();
        plain.extend_from_slice(&(1i64 << 40).to_be_bytes());
        assert!(parse(&plain).is_err());
        let mut string = b"SL".to_vec();
        string.extend_from_slice(&(1i64 << 50).to_be_bytes());
        assert!(parse(&string).is_err());
        let mut negative = b"[#L".to_vec();
        negative.extend_from_slice(&(-1i64).to_be_bytes());
        assert!(parse(&negative).is_err());
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        for bad in [
            &b""[..],
            b"{",
            b"{L",
            b"[$d#L\0\0\0\0\0\0\0\x01\0\0",
            b"[",
            b"d\0\0",
            b"?",
            b"[$Z#i\x01",
            b"{$d#i\x01",
            b"H",
            b"ZZ",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse(&"[".repeat(MAX_DEPTH + 2).into_bytes()).map_err(|e| e.reason),
            Err("nesting too deep")
        );
    }
}
