//! `datetime`: BYTES tensors of ISO-8601 timestamps, as Python's
//! `datetime.isoformat()` writes them and `datetime.fromisoformat()` reads
//! them.
//!
//! Python datetimes are either naive (no offset) or aware (with one), and a
//! model may care which, so [`IsoDateTime`] keeps the distinction instead of
//! guessing a timezone.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};

use super::common::{bytes_column, bytes_elements, unsupported, DATETIME};
use crate::{CodecError, Tensor};

/// A timestamp as Python's `datetime` has it: naive or with a fixed offset.
///
/// [`Display`](fmt::Display) is Python's `isoformat()`
/// (`2021-08-24T15:01:19`, `2021-08-24T15:01:19.250000+02:00`; UTC as
/// `+00:00`, never `Z`); [`FromStr`] accepts what `fromisoformat()` accepts
/// in Python 3.11 in the extended format:
///
/// - `YYYY-MM-DD`, alone (midnight) or followed by one separator character
///   (`T`, a space, ...) and `HH[:MM[:SS[.fraction]]]`;
/// - fractions of any length (`.` or `,`); digits past nanoseconds are
///   dropped, as Python drops those past microseconds;
/// - an optional offset `Z`, `±HH`, `±HHMM`, `±HH:MM` or `±HH:MM:SS`.
///
/// Sub-microsecond values (which Python cannot hold) are written with nine
/// fraction digits, which Python 3.11+ reads by truncating. Years are
/// written with four digits, as Python's range is 1..=9999; a year outside
/// 0..=9999 is written with a sign and cannot be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsoDateTime {
    /// No offset in the text: Python's naive `datetime`.
    Naive(NaiveDateTime),
    /// An offset was given (`Z` becomes `+00:00`): an aware `datetime`.
    Aware(DateTime<FixedOffset>),
}

impl IsoDateTime {
    /// The wall-clock date and time, whatever the offset.
    pub fn naive_local(&self) -> NaiveDateTime {
        match self {
            IsoDateTime::Naive(n) => *n,
            IsoDateTime::Aware(d) => d.naive_local(),
        }
    }

    /// The offset, if the text had one.
    pub fn offset(&self) -> Option<FixedOffset> {
        match self {
            IsoDateTime::Naive(_) => None,
            IsoDateTime::Aware(d) => Some(*d.offset()),
        }
    }

    /// The instant, if the text had an offset (a naive value has none).
    pub fn as_aware(&self) -> Option<DateTime<FixedOffset>> {
        match self {
            IsoDateTime::Naive(_) => None,
            IsoDateTime::Aware(d) => Some(*d),
        }
    }
}

impl From<NaiveDateTime> for IsoDateTime {
    fn from(value: NaiveDateTime) -> Self {
        IsoDateTime::Naive(value)
    }
}

impl From<DateTime<FixedOffset>> for IsoDateTime {
    fn from(value: DateTime<FixedOffset>) -> Self {
        IsoDateTime::Aware(value)
    }
}

impl From<DateTime<Utc>> for IsoDateTime {
    fn from(value: DateTime<Utc>) -> Self {
        IsoDateTime::Aware(value.fixed_offset())
    }
}

impl fmt::Display for IsoDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.naive_local();
        match n.year() {
            y @ 0..=9999 => write!(f, "{y:04}")?,
            y => write!(f, "{y:+05}")?,
        }
        // chrono marks a leap second with nanoseconds >= 1e9.
        let nanos = n.nanosecond() % 1_000_000_000;
        let second = n.second() + n.nanosecond() / 1_000_000_000;
        write!(
            f,
            "-{:02}-{:02}T{:02}:{:02}:{second:02}",
            n.month(),
            n.day(),
            n.hour(),
            n.minute()
        )?;
        if nanos.is_multiple_of(1000) && nanos != 0 {
            write!(f, ".{:06}", nanos / 1000)?;
        } else if nanos != 0 {
            write!(f, ".{nanos:09}")?;
        }
        if let Some(offset) = self.offset() {
            let total = offset.local_minus_utc();
            let sign = if total < 0 { '-' } else { '+' };
            let abs = total.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60)?;
            if abs % 60 != 0 {
                write!(f, ":{:02}", abs % 60)?;
            }
        }
        Ok(())
    }
}

/// Text that `fromisoformat` would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not an ISO-8601 datetime: {reason}")]
pub struct InvalidDateTime {
    /// The offending text, cut to 64 characters.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for IsoDateTime {
    type Err = InvalidDateTime;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map_err(|reason| InvalidDateTime {
            input: s.chars().take(64).collect(),
            reason,
        })
    }
}

/// A position in the text being parsed.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.pos += usize::from(hit);
        hit
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize, what: &'static str) -> Result<u32, &'static str> {
        let field = self.s.as_bytes().get(self.pos..self.pos + n).ok_or(what)?;
        if !field.iter().all(u8::is_ascii_digit) {
            return Err(what);
        }
        self.pos += n;
        Ok(field
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    }

    fn starts_with_digits(&self, n: usize) -> bool {
        self.s
            .as_bytes()
            .get(self.pos..self.pos + n)
            .is_some_and(|f| f.iter().all(u8::is_ascii_digit))
    }

    /// One or more digits as nanoseconds, ignoring those past the ninth.
    fn fraction(&mut self) -> Result<u32, &'static str> {
        let rest = &self.s.as_bytes()[self.pos..];
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 {
            return Err("expected digits after the decimal point");
        }
        self.pos += len;
        let nanos = rest[..len.min(9)]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
        Ok(nanos * 10u32.pow(9 - len.min(9) as u32))
    }

    /// Skips one character, whatever it is (Python's separator rule).
    fn skip_char(&mut self) {
        self.pos += self.s[self.pos..].chars().next().map_or(0, char::len_utf8);
    }
}

fn parse(s: &str) -> Result<IsoDateTime, &'static str> {
    let mut c = Cursor { s, pos: 0 };
    let year = c.digits(4, "expected a 4-digit year")?;
    let month = eat_then(&mut c, b'-', "expected '-' and a 2-digit month")?;
    let day = eat_then(&mut c, b'-', "expected '-' and a 2-digit day")?;
    // Four digits fit an i32.
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or("no such date")?;
    if c.pos == s.len() {
        return Ok(IsoDateTime::Naive(date.and_time(NaiveTime::MIN)));
    }
    c.skip_char();
    let hour = c.digits(2, "expected a 2-digit hour after the separator")?;
    let (mut minute, mut second, mut nanos) = (0, 0, 0);
    if c.eat(b':') {
        minute = c.digits(2, "expected a 2-digit minute")?;
        if c.eat(b':') {
            second = c.digits(2, "expected 2-digit seconds")?;
            if c.eat(b'.') || c.eat(b',') {
                nanos = c.fraction()?;
            }
        }
    }
    let time =
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos).ok_or("time out of range")?;
    let naive = date.and_time(time);
    let sign = match c.peek() {
        None => return Ok(IsoDateTime::Naive(naive)),
        Some(b'Z' | b'z') => {
            c.pos += 1;
            0
        }
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err("unexpected text after the time"),
    };
    let mut offset = 0;
    if sign != 0 {
        c.pos += 1;
        let hh = c.digits(2, "expected a 2-digit offset hour")?;
        let (mut mm, mut ss) = (0, 0);
        if c.eat(b':') {
            mm = c.digits(2, "expected 2-digit offset minutes")?;
            if c.eat(b':') {
                ss = c.digits(2, "expected 2-digit offset seconds")?;
            }
        } else if c.starts_with_digits(2) {
            mm = c.digits(2, "expected 2-digit offset minutes")?;
        }
        if mm > 59 || ss > 59 {
            return Err("offset minutes and seconds must be below 60");
        }
        // At most 99*3600 + 59*60 + 59: fits an i32.
        offset = sign * (hh * 3600 + mm * 60 + ss) as i32;
    }
    if c.pos != s.len() {
        return Err("unexpected text after the offset");
    }
    let offset = FixedOffset::east_opt(offset).ok_or("offset must be less than 24 hours")?;
    let aware = offset
        .from_local_datetime(&naive)
        .single()
        .ok_or("datetime out of range")?;
    Ok(IsoDateTime::Aware(aware))
}

/// `sep` followed by two digits.
fn eat_then(c: &mut Cursor<'_>, sep: u8, what: &'static str) -> Result<u32, &'static str> {
    if !c.eat(sep) {
        return Err(what);
    }
    c.digits(2, what)
}

/// MLServer's `DatetimeCodec.decode_input`: each BYTES element parsed with
/// `fromisoformat` rules (see [`IsoDateTime`]). Errors name the element.
pub fn decode_datetimes(tensor: &Tensor) -> Result<Vec<IsoDateTime>, CodecError> {
    bytes_elements(DATETIME, tensor)?
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let text = std::str::from_utf8(b).map_err(|_| {
                unsupported(DATETIME, &tensor.name, format!("element {i} is not text"))
            })?;
            text.parse().map_err(|e: InvalidDateTime| {
                unsupported(DATETIME, &tensor.name, format!("element {i}: {e}"))
            })
        })
        .collect()
}

/// MLServer's `DatetimeCodec.encode_output`: each value as `isoformat()`
/// text, `[N, 1]` BYTES, `content_type: "datetime"`.
pub fn encode_datetimes<D: Into<IsoDateTime>>(
    name: impl Into<String>,
    values: impl IntoIterator<Item = D>,
) -> Tensor {
    let elements = values
        .into_iter()
        .map(|d| d.into().to_string().into_bytes())
        .collect();
    bytes_column(name.into(), elements, DATETIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IsoDateTime {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn writes_like_python_isoformat() {
        let cases = [
            "2021-08-24T15:01:19",
            "2021-08-24T15:01:19.250000",
            "2021-08-24T15:01:19.000001+02:00",
            "0001-01-01T00:00:00-23:59",
            "2021-08-24T15:01:19+00:00",
            "2021-08-24T15:01:19+05:30:15",
            "2021-08-24T15:01:19.123456789-01:00",
        ];
        for s in cases {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn reads_what_fromisoformat_reads() {
        assert_eq!(p("2021-08-24").to_string(), "2021-08-24T00:00:00");
        assert_eq!(p("2021-08-24 15:01").to_string(), "2021-08-24T15:01:00");
        assert_eq!(p("2021-08-24T15").to_string(), "2021-08-24T15:00:00");
        assert_eq!(
            p("2021-08-24T15:01:19.5Z").to_string(),
            "2021-08-24T15:01:19.500000+00:00"
        );
        assert_eq!(
            p("2021-08-24T15:01:19,1234567891+0130").to_string(),
            "2021-08-24T15:01:19.123456789+01:30"
        );
        assert_eq!(
            p("2021-08-24T15:01:19-05").to_string(),
            "2021-08-24T15:01:19-05:00"
        );
        assert!(p("2021-08-24T15:01:19").offset().is_none());
        let aware = p("2021-08-24T15:01:19+02:00");
        assert_eq!(aware.offset(), FixedOffset::east_opt(7200));
        assert_eq!(aware.as_aware().unwrap().to_utc().hour(), 13);
    }

    #[test]
    fn rejects_malformed_text_with_a_reason() {
        for bad in [
            "",
            "21-08-24",
            "2021-13-01",
            "2021-02-30",
            "2021-08-24T25:00",
            "2021-08-24T15:01:60",
            "2021-08-24T15:01:19+24:00",
            "2021-08-24T15:01:19 junk",
            "2021-08-24T15:01:19.",
            "2021-08-24T",
        ] {
            let e = bad.parse::<IsoDateTime>().unwrap_err();
            assert!(
                e.to_string().contains("is not an ISO-8601 datetime"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn codec_round_trip_and_errors() {
        let values = [p("2021-08-24T15:01:19"), p("2000-01-01T00:00:00+01:00")];
        let t = encode_datetimes("d", values);
        assert_eq!(t.shape, vec![2, 1]);
        assert_eq!(t.content_type(), Some("datetime"));
        assert_eq!(decode_datetimes(&t).unwrap(), values);
        let bad = Tensor::new("d", vec![2], vec!["2021-08-24", "yesterday"]).unwrap();
        let e = decode_datetimes(&bad).unwrap_err().to_string();
        assert!(e.contains("element 1") && e.contains("yesterday"), "{e}");
    }

    #[test]
    fn utc_converts_to_an_aware_value() {
        let utc = Utc.with_ymd_and_hms(2021, 8, 24, 15, 1, 19).unwrap();
        assert_eq!(
            IsoDateTime::from(utc).to_string(),
            "2021-08-24T15:01:19+00:00"
        );
    }
}
